// Configuration from environment variables, with defaults that work on the local stack.
// Parsed once at start-up; an invalid value stops the process with an error naming the variable.
import { z } from 'zod';

const duration = z
  .string()
  .regex(/^\d+(ms|s|m|h)$/, 'a duration like 500ms, 30s, 5m or 1h')
  .transform((v) => {
    const n = Number.parseInt(v, 10);
    const unit = v.replace(/^\d+/, '');
    return n * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  });
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Every variable nightwatch reads, with its default. README.md's configuration table mirrors this. */
const schema = z.object({
  DATABASE_URL: z.url().default('mysql://root@127.0.0.1:3306/nightwatch'),
  DATABASE_POOL_SIZE: int(1, 100).default(10),

  TEMPORAL_ADDRESS: z.string().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('nightwatch'),
  TEMPORAL_TLS: bool.default(false),
  TEMPORAL_TLS_CERT_PATH: z.string().optional(),
  TEMPORAL_TLS_KEY_PATH: z.string().optional(),
  TEMPORAL_TLS_CA_PATH: z.string().optional(),
  TEMPORAL_API_KEY: z.string().optional(),
  TEMPORAL_UI_URL: z.url().default('http://localhost:8233'),
  /** Prefix for workflow and schedule ids, so several deployments can share one Temporal namespace. */
  WORKFLOW_ID_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, 'letters, digits, dot, dash and underscore only')
    .default(''),
  /** A workflow bundle prebuilt by `npm run build:workflows` (lib/workflow-bundle.js); unset means bundle at start-up. */
  WORKFLOW_BUNDLE_PATH: z.string().optional(),

  /** Path to a kubeconfig; unset means ~/.kube/config or the in-cluster service account. */
  KUBECONFIG: z.string().optional(),

  DISPATCH_INTERVAL: duration.default(30_000),
  DISPATCH_PAGE_SIZE: int(1, 1000).default(100),
  RECONCILE_INTERVAL: duration.default(300_000),
  WORKER_SHUTDOWN_GRACE: duration.default(30_000),
  WORKER_MAX_CONCURRENT_ACTIVITIES: int(1, 10_000).default(100),
  WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: int(2, 10_000).default(100),
  /**
   * Workflows kept in the worker's memory between their tasks. The SDK's default grows with the
   * heap limit (about 2,300 on a 4 GB heap); each costs memory, and one evicted costs a replay of
   * its short history on its next task. See README, "Scale".
   */
  WORKER_MAX_CACHED_WORKFLOWS: int(2, 100_000).default(1_000),

  API_HOST: z.string().default('127.0.0.1'),
  API_PORT: int(0, 65535).default(8080),
  /** `token:user,token:user`; each API token is bound to one user id. */
  API_TOKENS: z.string().default(''),
  API_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * The most time a client gets to send a whole request (headers and body); a slow or incomplete
   * one is answered 408 and its connection closed, so trickling clients cannot hold connections open.
   */
  API_REQUEST_TIMEOUT: duration.pipe(z.number().int().min(100, 'at least 100ms').max(600_000, 'at most 10m')).default(30_000),
  /** Namespaces tasks may target; `*` allows any. */
  ALLOWED_NAMESPACES: list.default(['default', 'demo']),
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const given = Object.fromEntries(Object.entries(env).filter(([k, v]) => k in schema.shape && v !== ''));
  const parsed = schema.safeParse(given);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const c = parsed.data;
  if (Boolean(c.TEMPORAL_TLS_CERT_PATH) !== Boolean(c.TEMPORAL_TLS_KEY_PATH)) {
    throw new ConfigError('invalid configuration: TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together');
  }
  return c;
}
