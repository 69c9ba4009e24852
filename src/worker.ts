// `npm run worker`: one nightwatch worker replica. Run as many as you like; all are active.
// SIGINT/SIGTERM stop polling, give in-flight activities WORKER_SHUTDOWN_GRACE to finish,
// then exit; anything unfinished is retried by another replica from Temporal's history.
import { GracefulShutdownPeriodExpiredError } from '@temporalio/worker';
import { loadConfig } from './config.ts';
import { createPrisma } from './db/client.ts';
import { createKubeClients } from './kubernetes.ts';
import { ensureSchedules } from './schedules.ts';
import { connectTemporalClient } from './temporal.ts';
import { connectWorker, startNightwatchWorker } from './worker-setup.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  const prisma = createPrisma(config.DATABASE_URL, config.DATABASE_POOL_SIZE);
  const kube = createKubeClients(config.KUBECONFIG);
  const client = await connectTemporalClient(config);
  const connection = await connectWorker(config);
  try {
    const schedules = await ensureSchedules(client, config);
    const { finished } = await startNightwatchWorker({ config, prisma, kube, connection });
    console.log(
      `nightwatch worker: task queue '${config.TEMPORAL_TASK_QUEUE}' on ${config.TEMPORAL_ADDRESS} (namespace ${config.TEMPORAL_NAMESPACE}), ` +
        `Kubernetes ${kube.server}; schedules created: ${schedules.created.join(', ') || 'none'}, kept: ${schedules.existing.join(', ') || 'none'}`,
    );
    await finished.catch((err: unknown) => {
      if (!(err instanceof GracefulShutdownPeriodExpiredError)) throw err;
      console.warn(
        `nightwatch worker: in-flight steps did not finish within WORKER_SHUTDOWN_GRACE (${config.WORKER_SHUTDOWN_GRACE} ms); ` +
          'stopped anyway, another replica retries them',
      );
    });
  } finally {
    await connection.close();
    await client.connection.close();
    await prisma.$disconnect();
  }
}

main().then(
  // Everything is stopped and closed: exit now rather than wait for a request the client library
  // cannot abort yet (a watch still waiting for its response headers keeps the event loop alive).
  () => process.exit(0),
  (err: unknown) => {
    console.error(`nightwatch worker: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
