// Configuration from environment variables, with defaults that work on the local stack.
// Parsed once at start-up; an invalid value stops the process with an error naming the variable.
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseResourceList, policyConfigProblems } from './policy.ts';

const duration = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, 'a duration like 500ms, 30s, 5m, 1h or 90d')
  .transform((v) => {
    const n = Number.parseInt(v, 10);
    const unit = v.replace(/^\d+/, '');
    return n * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit as 'ms' | 's' | 'm' | 'h' | 'd'];
  });
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** Whole seconds: `3600`, `90m`, `24h`, `7d`. */
const seconds = z
  .string()
  .regex(/^\d+(s|m|h|d)?$/, 'a number of seconds like 3600, or 90m, 24h, 7d')
  .transform((v) => {
    const n = Number.parseInt(v, 10);
    const unit = v.replace(/^\d+/, '') || 's';
    return n * { s: 1, m: 60, h: 3_600, d: 86_400 }[unit as 's' | 'm' | 'h' | 'd'];
  })
  .refine((n) => n >= 1, 'at least 1 second');
/** `none` turns a default or a maximum off (an empty value reads as unset, i.e. the default). */
const secondsOrNone = z.union([z.literal('none').transform(() => null), seconds]);
const resourceList = z.string().transform((v, ctx) => {
  try {
    return parseResourceList(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

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
  /**
   * Longest a workflow may run in one go inside the worker's sandbox before the SDK calls it a
   * deadlock; 0 (the default) sets no limit. Any limit makes Node start a watchdog thread for each
   * of the dozens of calls into the sandbox per workflow task: 170 µs each against 1.5 µs without,
   * about 15% of the worker's CPU at 1,000 tasks (patches/@temporalio+worker+*.patch makes 0 mean
   * "none"; the SDK alone cannot). nightwatch runs only its own workflow code there. README, "Scale".
   */
  WORKER_WORKFLOW_DEADLOCK_TIMEOUT: z.union([z.literal('0').transform(() => 0), duration]).default(0),
  /**
   * Whether the worker records where each workflow waits, for the Web UI's "Stack Trace" tab (the
   * `__stack_trace` query). The SDK does it with a hook on every promise created in workflow code,
   * which captures and source-maps a stack trace each time: a quarter of the worker's CPU at 1,000
   * tasks (patches/@temporalio+worker+*.patch lets it be turned off). Off by default; the query then
   * answers that stack traces are not enabled. README, "Scale".
   */
  WORKER_WORKFLOW_STACK_TRACES: bool.default(false),
  /**
   * How far V8 lets a worker's heaps grow past what the last full collection kept, in percent; 0
   * leaves it to V8. V8's own factor goes up to 4× on a machine with gigabytes to spare, so garbage
   * from thousands of tasks in flight sat in the heaps: with 30, a worker with 2,000 long tasks
   * peaked at 488 MB of heaps instead of 709 MB, at no measurable CPU. Unlike a heap limit
   * (`--max-old-space-size`) it follows the live size, so it cannot thrash. README, "Memory".
   */
  WORKER_HEAP_GROWTH_PERCENT: int(0, 1_000).default(30),
  /** The worker's Prometheus endpoint (GET /metrics, nightwatch_* metrics); 0 turns it off. README, "Operating". */
  WORKER_METRICS_PORT: int(0, 65535).default(9464),
  /** The Temporal SDK's own worker metrics (temporal_*), served by its runtime on /metrics; 0 turns them off. */
  TEMPORAL_METRICS_PORT: int(0, 65535).default(9465),
  /** Address both metrics ports listen on. */
  METRICS_HOST: z.string().min(1).default('0.0.0.0'),
  /** The worker's log level (JSON lines on stdout); the API's is API_LOG_LEVEL. */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  // Retention (src/watchers/retention.ts; README, "Retention").
  /** Rows final for longer than this (by finished_at) leave `task`; unset (the default) keeps every row. */
  RETENTION_AFTER: duration.pipe(z.number().min(3_600_000, 'at least 1h')).optional(),
  /** `archive` moves them to `task_archive`; `delete` removes them. */
  RETENTION_MODE: z.enum(['archive', 'delete']).default('archive'),
  /** Count the rows that would go, log and return the count, and change nothing. */
  RETENTION_DRY_RUN: bool.default(false),
  /** Cadence of `nightwatch-retention` when it is first created. */
  RETENTION_INTERVAL: duration.default(3_600_000),
  /** Rows per transaction. */
  RETENTION_BATCH_SIZE: int(1, 10_000).default(500),
  /** Pause between two batches, so other writers always get their turn. */
  RETENTION_BATCH_PAUSE: duration.default(1_000),

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
  /** Namespaces tasks may target; `*` allows any but kube-* and NIGHTWATCH_NAMESPACE, which are never open. */
  ALLOWED_NAMESPACES: list.default(['default', 'demo']),
  /**
   * Tasks one user may have in progress (Pending or Running) at once; 0 means no cap. Above it the
   * API answers 429 and rows inserted directly wait Normal, saying why (src/db/user-cap.ts).
   */
  MAX_TASKS_IN_PROGRESS_PER_USER: int(0, 1_000_000).default(0),

  // Operator policy (src/policy.ts; README, "Operator policy").
  /** The namespace nightwatch runs in; unset: POD_NAMESPACE, then the in-cluster service account's namespace. */
  NIGHTWATCH_NAMESPACE: z.string().regex(DNS_LABEL, 'a namespace name (a DNS-1123 label)').optional(),
  /** Pod annotation keys tasks may set: `key`, `domain/` or `prefix*`; empty: none. */
  POD_ANNOTATIONS_ALLOWED: list.default([]),
  /** Registries or repository prefixes tasks' images must come from; empty: any. */
  IMAGES_ALLOWED: list.default([]),
  /** imagePullPolicy of every task's container; unset: Kubernetes' default. */
  IMAGE_PULL_POLICY: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  TASK_DEFAULT_TIMEOUT: secondsOrNone.default(86_400),
  TASK_MAX_TIMEOUT: secondsOrNone.default(7 * 86_400),
  TASK_DEFAULT_TTL: secondsOrNone.default(86_400),
  TASK_DEFAULT_REQUESTS: resourceList.default({ cpu: '100m', memory: '128Mi' }),
  TASK_DEFAULT_LIMITS: resourceList.default({ memory: '1Gi' }),
  TASK_MAX_RESOURCES: resourceList.default({ cpu: '4', memory: '16Gi' }),
  /** Run every task's container as POD_RUN_AS_USER with runAsNonRoot (Pod Security `restricted`). */
  POD_RUN_AS_NON_ROOT: bool.default(false),
  POD_RUN_AS_USER: int(1, 2_147_483_647).default(65532),
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {}

/** Where Kubernetes mounts the pod's service-account namespace. */
export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** The namespace this process runs in, when it runs in a pod; undefined elsewhere. */
function runningNamespace(env: NodeJS.ProcessEnv, namespaceFile: string): string | undefined {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    if (existsSync(namespaceFile)) return readFileSync(namespaceFile, 'utf8').trim() || undefined;
  } catch {
    // unreadable: not in a pod, or no service account mounted
  }
  return undefined;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, namespaceFile = SERVICE_ACCOUNT_NAMESPACE_FILE): Config {
  const given = Object.fromEntries(Object.entries(env).filter(([k, v]) => k in schema.shape && v !== ''));
  const parsed = schema.safeParse(given);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const c = parsed.data;
  c.NIGHTWATCH_NAMESPACE ??= runningNamespace(env, namespaceFile);
  if (Boolean(c.TEMPORAL_TLS_CERT_PATH) !== Boolean(c.TEMPORAL_TLS_KEY_PATH)) {
    throw new ConfigError('invalid configuration: TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH must be set together');
  }
  const policyProblems = policyConfigProblems(c);
  if (policyProblems.length > 0) throw new ConfigError(`invalid configuration: ${policyProblems.join('; ')}`);
  return c;
}
