// `npm run api`: the HTTP API and web page. Stateless, so run as many replicas as you like behind a
// load balancer. SIGINT/SIGTERM stop accepting connections, let requests in flight finish (at most
// SHUTDOWN_GRACE_MS), then close the clients; a second signal exits at once.
import { loadConfig } from '../config.ts';
import { createPrisma } from '../db/client.ts';
import { connectTemporalClient } from '../temporal.ts';
import { loggerOptions } from '../log.ts';
import { buildApp } from './app.ts';

/** Requests are short (Temporal calls have a 5 s deadline); a request still running after this is stuck. */
const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  const config = loadConfig();
  const prisma = createPrisma(config.DATABASE_URL, config.DATABASE_POOL_SIZE);
  const client = await connectTemporalClient(config).catch((err: unknown) => {
    throw new Error(`cannot connect to Temporal at ${config.TEMPORAL_ADDRESS} (TEMPORAL_ADDRESS): ${String(err)}`);
  });
  // One JSON line per event (pino); the Authorization header and any task `info` are redacted.
  const app = buildApp({ config, prisma, client }, { logger: loggerOptions(config.API_LOG_LEVEL, 'nightwatch-api') });

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      app.log.warn(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    stopping = true;
    app.log.info(`${signal}: not accepting new connections; finishing requests in flight`);
    const force = setTimeout(() => {
      app.log.error(`requests still running after ${SHUTDOWN_GRACE_MS} ms; exiting anyway`);
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    try {
      await app.close();
      await client.connection.close();
      await prisma.$disconnect();
    } finally {
      clearTimeout(force);
    }
    app.log.info('stopped');
  };
  const onSignal = (signal: NodeJS.Signals) =>
    stop(signal).catch((err: unknown) => {
      app.log.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  await app.listen({ host: config.API_HOST, port: config.API_PORT });
  app.log.info(
    `nightwatch API: tasks go to task queue '${config.TEMPORAL_TASK_QUEUE}' on ${config.TEMPORAL_ADDRESS}; namespaces allowed: ${config.ALLOWED_NAMESPACES.join(', ')}`,
  );
}

main().catch((err: unknown) => {
  console.error(`nightwatch api: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
