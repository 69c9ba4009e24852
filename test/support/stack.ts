// Reaching the local stack from tests: configuration for this run, clients, an in-process
// worker, and polling helpers. Every run gets its own task queue and workflow-id prefix, so
// runs (and a developer's `npm start`) sharing one Temporal server never see each other's work.
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../src/config.ts';
import { createPrisma, type PrismaClient } from '../../src/db/client.ts';
import { createKubeClients, type KubeClients } from '../../src/kubernetes.ts';
import { scheduleId } from '../../src/schedules.ts';
import { temporalConnectionOptions } from '../../src/temporal.ts';
import { allWatchers } from '../../src/watchers/index.ts';
import { buildWorker, connectWorker } from '../../src/worker-setup.ts';

export function testConfig(env: Record<string, string> = {}): Config {
  const tag = randomBytes(3).toString('hex');
  return loadConfig({
    ...process.env,
    DATABASE_URL: inject('databaseUrl'),
    TEMPORAL_TASK_QUEUE: `nightwatch-test-${tag}`,
    WORKFLOW_ID_PREFIX: `t${tag}-`,
    WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
    ...env,
  });
}

export interface Stack {
  config: Config;
  prisma: PrismaClient;
  kube: KubeClients;
  client: Client;
  close(): Promise<void>;
}

export async function connectStack(config: Config = testConfig()): Promise<Stack> {
  const prisma = createPrisma(config.DATABASE_URL, 5);
  const kube = createKubeClients(config.KUBECONFIG);
  const connection = await Connection.connect(temporalConnectionOptions(config));
  const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  return {
    config,
    prisma,
    kube,
    client,
    async close() {
      await removeTemporalLeftovers(client, config);
      await connection.close();
      await prisma.$disconnect();
    },
  };
}

/** Leave nothing of a run in Temporal: its Schedules, and workflows still running on its task queue. */
export async function removeTemporalLeftovers(client: Client, config: Config): Promise<void> {
  for (const w of allWatchers(config)) {
    await client.schedule.getHandle(scheduleId(config, w)).delete().catch(() => undefined);
  }
  const query = `TaskQueue = '${config.TEMPORAL_TASK_QUEUE}' AND ExecutionStatus = 'Running'`;
  for await (const wf of client.workflow.list({ query })) {
    await client.workflow.getHandle(wf.workflowId, wf.runId).terminate('run finished').catch(() => undefined);
  }
}

export interface RunningWorker {
  worker: Worker;
  stop(): Promise<void>;
}

/** A real nightwatch worker in this process, on the stack's task queue. */
export async function startWorker(stack: Stack): Promise<RunningWorker> {
  const connection: NativeConnection = await connectWorker(stack.config);
  const worker = await buildWorker({ ...stack, connection }, { shutdownGraceTime: '2s' });
  const running = worker.run();
  let stopped: Promise<void> | undefined;
  return {
    worker,
    /** Shut down and close the connection; safe to call more than once. */
    stop() {
      stopped ??= (async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await running;
        await connection.close();
      })();
      return stopped;
    },
  };
}

/** Poll until `probe` returns something other than undefined; fail with `what` on time-out. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
