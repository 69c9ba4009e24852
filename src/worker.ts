// `npm run worker`: one nightwatch worker replica. Run as many as you like; all are active.
// SIGINT/SIGTERM stop polling, give in-flight activities WORKER_SHUTDOWN_GRACE to finish,
// then exit; anything unfinished is retried by another replica from Temporal's history.
import type { Server } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { GracefulShutdownPeriodExpiredError, Runtime, type TelemetryOptions } from '@temporalio/worker';
import type { Logger as Pino } from 'pino';
import { loadConfig, type Config } from './config.ts';
import { createLogger, PinoTemporalLogger } from './log.ts';
import { startMetricsServer } from './metrics.ts';
import { createPrisma } from './db/client.ts';
import { createKubeClients } from './kubernetes.ts';
import { ensureSchedules } from './schedules.ts';
import { connectTemporalClient } from './temporal.ts';
import { connectWorker, startNightwatchWorker } from './worker-setup.ts';

let log: Pino | undefined;

/**
 * The Temporal SDK's runtime, installed before anything connects: its logger is the worker's JSON
 * logger (the SDK's messages, workflow and activity logs, the native core's warnings), and its
 * Prometheus exporter serves the SDK's worker metrics on TEMPORAL_METRICS_PORT.
 */
function installRuntime(config: Config, logger: Pino): void {
  const logging: TelemetryOptions['logging'] = { filter: { core: 'WARN', other: 'ERROR' }, forward: {} };
  const sdkLogger = new PinoTemporalLogger(logger.child({ component: 'temporal' }));
  if (config.TEMPORAL_METRICS_PORT > 0) {
    const bindAddress = `${config.METRICS_HOST}:${config.TEMPORAL_METRICS_PORT}`;
    try {
      Runtime.install({
        logger: sdkLogger,
        telemetryOptions: { logging, metrics: { prometheus: { bindAddress, countersTotalSuffix: true, useSecondsForDurations: true } } },
      });
      logger.info({ component: 'metrics', bindAddress }, `Temporal SDK metrics on http://${bindAddress}/metrics`);
      return;
    } catch (err) {
      // Metrics are worth less than running tasks: say so loudly, and run without them.
      logger.error({ component: 'metrics', err, bindAddress }, `Temporal SDK metrics not served (TEMPORAL_METRICS_PORT): ${String(err)}`);
    }
  }
  Runtime.install({ logger: sdkLogger, telemetryOptions: { logging } });
}

/**
 * WORKER_HEAP_GROWTH_PERCENT as V8's heap growing factor. Set before the workflow threads start, so
 * their heaps grow by it from the first collection; the main thread's from its next one. V8 reads
 * the flag each time it sets a heap's next limit, which is why setting it at run time takes
 * (Node allows only a few V8 flags in NODE_OPTIONS, and this is not one of them).
 */
function tuneHeap(config: Config): void {
  if (config.WORKER_HEAP_GROWTH_PERCENT > 0) setFlagsFromString(`--heap-growing-percent=${config.WORKER_HEAP_GROWTH_PERCENT}`);
}

/**
 * The cap on V8's young generation this process runs with (`--max-semi-space-size`, which
 * scripts/worker.sh passes from WORKER_SEMI_SPACE_MB and the image's command line sets): V8 reads
 * it when a heap is created, so it must be on Node's command line (or NODE_OPTIONS), where it
 * holds for the main thread and the workflow threads alike.
 */
function semiSpaceMb(): number | undefined {
  // Node reads NODE_OPTIONS first, then its command line: the last one given wins.
  const args = [...(process.env.NODE_OPTIONS ?? '').split(/\s+/), ...process.execArgv];
  let found: number | undefined;
  args.forEach((arg, i) => {
    const m = /^--max[-_]semi[-_]space[-_]size(?:=(\d+))?$/.exec(arg);
    const value = m && (m[1] ?? args[i + 1]);
    if (value && /^\d+$/.test(value)) found = Number(value);
  });
  return found;
}

async function serveMetrics(config: Config, logger: Pino): Promise<Server | undefined> {
  if (config.WORKER_METRICS_PORT === 0) return undefined;
  const where = `${config.METRICS_HOST}:${config.WORKER_METRICS_PORT}`;
  try {
    const server = await startMetricsServer(config.WORKER_METRICS_PORT, config.METRICS_HOST);
    logger.info({ component: 'metrics', bindAddress: where }, `nightwatch metrics on http://${where}/metrics`);
    return server;
  } catch (err) {
    logger.error({ component: 'metrics', err, bindAddress: where }, `nightwatch metrics not served (WORKER_METRICS_PORT): ${String(err)}`);
    return undefined;
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  tuneHeap(config);
  log = createLogger(config.LOG_LEVEL, 'nightwatch-worker');
  installRuntime(config, log);
  const metrics = await serveMetrics(config, log);
  const prisma = createPrisma(config.DATABASE_URL, config.DATABASE_POOL_SIZE);
  const kube = createKubeClients(config.KUBECONFIG);
  const client = await connectTemporalClient(config);
  const connection = await connectWorker(config);
  try {
    const schedules = await ensureSchedules(client, config);
    const { finished } = await startNightwatchWorker({ config, prisma, kube, connection });
    log.info(
      {
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        namespace: config.TEMPORAL_NAMESPACE,
        schedulesCreated: schedules.created,
        schedulesKept: schedules.existing,
        // Which malloc runs the native side (scripts/worker.sh preloads one when the machine has it).
        malloc: process.env.LD_PRELOAD || 'the system\'s',
        heapGrowthPercent: config.WORKER_HEAP_GROWTH_PERCENT || 'V8\'s own',
        semiSpaceMb: semiSpaceMb() ?? 'V8\'s own',
      },
      `nightwatch worker: task queue '${config.TEMPORAL_TASK_QUEUE}' on ${config.TEMPORAL_ADDRESS} (namespace ${config.TEMPORAL_NAMESPACE}), ` +
        `Kubernetes ${kube.server}; schedules created: ${schedules.created.join(', ') || 'none'}, kept: ${schedules.existing.join(', ') || 'none'}`,
    );
    await finished.catch((err: unknown) => {
      if (!(err instanceof GracefulShutdownPeriodExpiredError)) throw err;
      log!.warn(
        `nightwatch worker: in-flight steps did not finish within WORKER_SHUTDOWN_GRACE (${config.WORKER_SHUTDOWN_GRACE} ms); ` +
          'stopped anyway, another replica retries them',
      );
    });
  } finally {
    metrics?.close();
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
    const message = `nightwatch worker: ${err instanceof Error ? err.message : String(err)}`;
    if (log) {
      log.fatal({ err }, message);
      log.flush();
    } else console.error(message);
    process.exit(1);
  },
);
