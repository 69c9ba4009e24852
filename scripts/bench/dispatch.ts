// Benchmark: N tasks inserted at once on the local stack, default settings (Schedule every
// DISPATCH_INTERVAL, default worker concurrency, KWOK pods that run 2 s). Prints the time
// until the first Job exists and until every row is Succeeded, plus Kubernetes API requests
// and database writes per task. Run with the stack up:
//   eval "$(npm run -s stack env)"; npm exec -- tsx scripts/bench/dispatch.ts [tasks=200]
// It uses a throwaway database, task queue and id prefix, and removes its Schedules and Jobs.
import { randomBytes } from 'node:crypto';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig } from '../../src/config.ts';
import { createPrisma } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createKubeClients } from '../../src/kubernetes.ts';
import { ensureSchedules } from '../../src/schedules.ts';
import { connectTemporalClient } from '../../src/temporal.ts';
import { buildWorker, connectWorker } from '../../src/worker-setup.ts';
import { createTestDatabase } from '../../test/support/database.ts';
import { removeTemporalLeftovers } from '../../test/support/stack.ts';

Runtime.install({ logger: new DefaultLogger('WARN') });
const count = Number(process.argv[2] ?? 200);
const tag = randomBytes(3).toString('hex');
const db = await createTestDatabase();
await migrate(db.url);
const config = loadConfig({ ...process.env, DATABASE_URL: db.url, TEMPORAL_TASK_QUEUE: `bench-${tag}`, WORKFLOW_ID_PREFIX: `bench${tag}-` });

/** `target` with each call of a method whose name passes `counts` tallied in `tally.calls`. */
function counting<T extends object>(target: T, counts: (method: string) => boolean, tally: { calls: number }): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (typeof value !== 'function' || !counts(String(prop))) return value;
      return (...args: unknown[]) => {
        tally.calls++;
        return (value as (...a: unknown[]) => unknown).apply(obj, args);
      };
    },
  });
}

// Every call through the Job API client is one HTTP request; every write call the activities
// make on the task table is one statement.
const kubeRequests = { calls: 0 };
const dbWrites = { calls: 0 };
const kube = createKubeClients(config.KUBECONFIG);
const batch = counting(kube.batch, () => true, kubeRequests);
const prismaClient = createPrisma(config.DATABASE_URL, config.DATABASE_POOL_SIZE);
const countedTask = counting(prismaClient.task, (m) => /^(create|update|upsert|delete)/.test(m), dbWrites);
const prisma = new Proxy(prismaClient, {
  get: (target, prop, receiver) => (prop === 'task' ? countedTask : Reflect.get(target, prop, receiver)),
});
const client = await connectTemporalClient(config);
const connection = await connectWorker(config);
const worker = await buildWorker({ config, prisma, kube: { batch }, client, connection });
const running = worker.run();
await ensureSchedules(client, config);

const names = Array.from({ length: count }, (_, i) => `bench-${tag}-${i}`);
// Whatever happens, leave nothing behind: Schedules, Jobs, the throwaway database.
try {
  const t0 = performance.now();
  await prismaClient.task.createMany({
    data: names.map((name) => ({ name, namespace: 'default', userId: 'bench', info: JSON.stringify({ image: 'alpine', command: ['true'] }) })),
  });

  let firstJobMs: number | null = null;
  let allJobsMs: number | null = null;
  for (;;) {
    const counts = await prismaClient.task.groupBy({ by: ['status'], _count: true });
    const by = Object.fromEntries(counts.map((c) => [c.status, c._count]));
    const created = (by.Pending ?? 0) + (by.Running ?? 0) + (by.Succeeded ?? 0) + (by.Failed ?? 0);
    if (firstJobMs === null && created > 0) firstJobMs = performance.now() - t0;
    if (allJobsMs === null && created === count) allJobsMs = performance.now() - t0;
    if ((by.Succeeded ?? 0) + (by.Failed ?? 0) === count) {
      if (by.Failed) console.log(`warning: ${by.Failed} tasks failed`);
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const allDoneMs = performance.now() - t0;

  console.log(`tasks                              ${count}`);
  console.log(`dispatch interval                  ${config.DISPATCH_INTERVAL / 1000} s (first tick comes within one interval)`);
  console.log(`time to the first Job created      ${(firstJobMs! / 1000).toFixed(1)} s`);
  console.log(`time to all Jobs created           ${(allJobsMs! / 1000).toFixed(1)} s`);
  console.log(`time until all Succeeded           ${(allDoneMs / 1000).toFixed(1)} s`);
  console.log(`  after the first Job              ${((allDoneMs - firstJobMs!) / 1000).toFixed(1)} s`);
  console.log(`Kubernetes API requests per task   ${(kubeRequests.calls / count).toFixed(2)} (${kubeRequests.calls} in all)`);
  console.log(`database writes per task           ${(dbWrites.calls / count).toFixed(2)} (${dbWrites.calls} in all, after the insert)`);
} finally {
  await removeTemporalLeftovers(client, config);
  worker.shutdown();
  await running;
  await Promise.all(
    names.map((name) => kube.batch.deleteNamespacedJob({ name, namespace: 'default', propagationPolicy: 'Background' }).catch(() => undefined)),
  );
  await connection.close();
  await client.connection.close();
  await prismaClient.$disconnect();
  await db.drop();
}
