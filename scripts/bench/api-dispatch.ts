// Benchmark: the API's immediate dispatch. Submits N tasks through POST /tasks one after another
// and times each from the moment the request is sent until a Kubernetes watch sees its Job; no
// Schedule exists, so every Job comes from the API starting the workflow itself. Prints median,
// p90 and max of that and of the POST's own response time. Run with the stack up:
//   eval "$(npm run -s stack env)"; npm exec -- tsx scripts/bench/api-dispatch.ts [tasks=50]
// It runs its own API (port 0) and worker in this process, on a throwaway database, task queue and
// id prefix, and removes its Jobs and database at the end.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { KubeConfig, Watch, type V1Job } from '@kubernetes/client-node';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { buildApp } from '../../src/api/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createPrisma } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createKubeClients } from '../../src/kubernetes.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../../src/task/job.ts';
import { connectTemporalClient } from '../../src/temporal.ts';
import { connectWorker, startNightwatchWorker } from '../../src/worker-setup.ts';
import { createTestDatabase } from '../../test/support/database.ts';

/** Past this a Job is not coming from the fast path at all. */
const JOB_WAIT_MS = 30_000;
const NAMESPACE = 'default';

Runtime.install({ logger: new DefaultLogger('WARN') });
const count = Number(process.argv[2] ?? 50);
const tag = randomBytes(3).toString('hex');
const token = `bench-token-${tag}`;
const db = await createTestDatabase();
await migrate(db.url);
const config = loadConfig({
  ...process.env,
  DATABASE_URL: db.url,
  TEMPORAL_TASK_QUEUE: `bench-api-${tag}`,
  WORKFLOW_ID_PREFIX: `benchapi${tag}-`,
  API_TOKENS: `${token}:bench`,
  ALLOWED_NAMESPACES: NAMESPACE,
});

const prisma = createPrisma(config.DATABASE_URL, config.DATABASE_POOL_SIZE);
const kube = createKubeClients(config.KUBECONFIG);
const client = await connectTemporalClient(config);
const connection = await connectWorker(config);
const { worker, finished: running } = await startNightwatchWorker({ config, prisma, kube, connection });
const app = buildApp({ config, prisma, client });
await app.listen({ host: '127.0.0.1', port: 0 });
const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/tasks`;

// A watch sees a Job within milliseconds of its creation; creationTimestamp has only 1 s resolution.
const seenAt = new Map<string, number>();
let watching = true;
const waiting = new Map<string, () => void>();
const kc = new KubeConfig();
if (config.KUBECONFIG) kc.loadFromFile(config.KUBECONFIG);
else kc.loadFromDefault();
const watch = await new Watch(kc).watch(
  `/apis/batch/v1/namespaces/${NAMESPACE}/jobs`,
  { labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` },
  (phase: string, job: V1Job) => {
    const name = job.metadata?.name ?? '';
    if (phase !== 'ADDED' || seenAt.has(name)) return;
    seenAt.set(name, performance.now());
    waiting.get(name)?.();
  },
  (err: unknown) => {
    if (watching) console.error(`the Job watch ended early${err ? `: ${String(err)}` : ''}; Jobs created after this are not seen`);
  },
);

function jobSeen(name: string): Promise<void> {
  if (seenAt.has(name)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no Job ${NAMESPACE}/${name} within ${JOB_WAIT_MS} ms of POST /tasks`)), JOB_WAIT_MS);
    waiting.set(name, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const names = Array.from({ length: count }, (_, i) => `bench-api-${tag}-${i}`);
const toJob: number[] = [];
const toResponse: number[] = [];
try {
  for (const name of names) {
    const body = { name, namespace: NAMESPACE, info: { image: 'alpine:3.20', annotations: { 'nightwatch.io/kwok-run-duration': '500ms' } } };
    const sent = performance.now();
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    toResponse.push(performance.now() - sent);
    if (response.status !== 201) throw new Error(`POST /tasks answered ${response.status}: ${await response.text()}`);
    await jobSeen(name);
    toJob.push(seenAt.get(name)! - sent);
  }

  const finished = await waitUntilAllFinal();
  const row = (label: string, ms: number[]) => {
    const sorted = [...ms].sort((a, b) => a - b);
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
    const f = (v: number) => `${v.toFixed(0).padStart(5)} ms`;
    console.log(`${label.padEnd(34)} median ${f(at(50))}   p90 ${f(at(90))}   max ${f(sorted[sorted.length - 1]!)}`);
  };
  console.log(`tasks ${count}, submitted one after another; no Schedule exists`);
  row('POST /tasks sent → Job exists', toJob);
  row('POST /tasks response time', toResponse);
  console.log(`all tasks final: ${finished}`);
} finally {
  watching = false;
  watch.abort();
  await app.close();
  worker.shutdown();
  await running;
  await Promise.all(
    names.map((name) => kube.batch.deleteNamespacedJob({ name, namespace: NAMESPACE, propagationPolicy: 'Background' }).catch(() => undefined)),
  );
  await connection.close();
  await client.connection.close();
  await prisma.$disconnect();
  await db.drop();
}

/** Let every workflow finish before the worker stops, so none is left open on the dev server. */
async function waitUntilAllFinal(): Promise<string> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const counts = await prisma.task.groupBy({ by: ['status'], _count: true });
    const by = Object.fromEntries(counts.map((c) => [c.status, c._count]));
    const final = (by.Succeeded ?? 0) + (by.Failed ?? 0) + (by.Cancelled ?? 0);
    if (final === count || Date.now() > deadline) return Object.entries(by).map(([s, n]) => `${s} ${n}`).join(', ');
    await new Promise((r) => setTimeout(r, 500));
  }
}
