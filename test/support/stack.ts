// Reaching the local stack from tests: configuration for a test file, clients, an in-process
// worker, and polling helpers. Every test file gets its own task queue and workflow-id prefix,
// database and Kubernetes namespaces, so files (and other runs, and a developer's `npm start`)
// sharing one stack never see, page, adopt or delete each other's work.
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { Client, Connection } from '@temporalio/client';
import type { NativeConnection, Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../src/config.ts';
import { createPrisma, type PrismaClient } from '../../src/db/client.ts';
import { createKubeClients, type KubeClients } from '../../src/kubernetes.ts';
import { scheduleId } from '../../src/schedules.ts';
import { temporalConnectionOptions } from '../../src/temporal.ts';
import { allWatchers } from '../../src/watchers/index.ts';
import type { JobWatch } from '../../src/job-watch.ts';
import { connectWorker, startNightwatchWorker } from '../../src/worker-setup.ts';
import { createMigratedTestDatabase, unconnectedDatabaseUrl, type TestDatabase } from './database.ts';
import { startJobLedger, type JobLedger } from './job-ledger.ts';

/**
 * A test file's configuration. Its database and namespaces are made by `connectStack`; until then it
 * names a database that does not exist and allows no namespace, so nothing reaches shared data by
 * accident. ALLOWED_NAMESPACES given here is added to the file's own namespaces.
 */
export function testConfig(env: Record<string, string> = {}): Config {
  const tag = randomBytes(3).toString('hex');
  const config = loadConfig({
    // The KWOK knobs tests set (runFor), as the local stack's environment allows them.
    POD_ANNOTATIONS_ALLOWED: 'nightwatch.io/kwok-*',
    ...process.env,
    DATABASE_URL: unconnectedDatabaseUrl(),
    TEMPORAL_TASK_QUEUE: `nightwatch-test-${tag}`,
    WORKFLOW_ID_PREFIX: `t${tag}-`,
    WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
    ...env,
  });
  // Only what the caller allows: never the shared `default` and `demo` of the defaults (an empty
  // ALLOWED_NAMESPACES reads as unset, so the list is set here rather than through the environment).
  return { ...config, ALLOWED_NAMESPACES: env.ALLOWED_NAMESPACES ? config.ALLOWED_NAMESPACES : [] };
}

/**
 * A deployment of its own on the same database and namespaces: its own task queue and id prefix,
 * so its Schedules and workflows are its own and a killed test's leftovers cannot serve the next.
 * Remove its Temporal leftovers at the end with `removeTemporalLeftovers`.
 */
export function separateDeployment(base: Config): Config {
  const tag = randomBytes(3).toString('hex');
  return { ...base, TEMPORAL_TASK_QUEUE: `${base.TEMPORAL_TASK_QUEUE}-${tag}`, WORKFLOW_ID_PREFIX: `${base.WORKFLOW_ID_PREFIX}${tag}-` };
}

export interface Stack {
  /** DATABASE_URL is the file's database; ALLOWED_NAMESPACES starts with the file's namespaces. */
  config: Config;
  prisma: PrismaClient;
  kube: KubeClients;
  client: Client;
  /** The file's own namespaces, created for it and deleted (with every Job in them) by `close`. */
  namespaces: string[];
  /** The first of `namespaces`. */
  namespace: string;
  /** Every Job and pod these namespaces ever had, recorded from before the file's first task. */
  jobs: JobLedger;
  close(): Promise<void>;
}

export interface StackOptions {
  /** How many namespaces of its own the file gets (default 1). */
  namespaces?: number;
}

/**
 * Connect a test file to the stack: a migrated database of its own, namespaces of its own (allowed
 * in its config) and a Job ledger watching them. `close` removes all of it.
 */
export async function connectStack(base: Config = testConfig(), options: StackOptions = {}): Promise<Stack> {
  const undo: (() => Promise<unknown>)[] = [];
  // Every step runs even when an earlier one fails, so a failed test file leaves nothing behind.
  const cleanUp = async () => {
    const failures: unknown[] = [];
    for (const step of undo.reverse()) await step().catch((err: unknown) => failures.push(err));
    if (failures.length > 0) throw new AggregateError(failures, `cleaning up the test file's stack failed: ${failures.map(String).join('; ')}`);
  };
  try {
    const database: TestDatabase = await createMigratedTestDatabase();
    undo.push(() => database.drop());
    const kube = createKubeClients(base.KUBECONFIG);
    const tag = randomBytes(3).toString('hex');
    const namespaces = Array.from({ length: options.namespaces ?? 1 }, (_, i) => `nw-test-${tag}-${i + 1}`);
    for (const name of namespaces) {
      await createNamespace(kube, name);
      undo.push(() => kube.core.deleteNamespace({ name, propagationPolicy: 'Background' }));
    }
    const config: Config = { ...base, DATABASE_URL: database.url, ALLOWED_NAMESPACES: [...namespaces, ...base.ALLOWED_NAMESPACES] };
    const kubeconfig = new KubeConfig();
    if (config.KUBECONFIG) kubeconfig.loadFromFile(config.KUBECONFIG);
    else kubeconfig.loadFromDefault();
    const jobs = await startJobLedger(kubeconfig, namespaces);
    undo.push(() => jobs.stop());
    const prisma = createPrisma(config.DATABASE_URL, 5);
    undo.push(() => prisma.$disconnect());
    const connection = await Connection.connect(temporalConnectionOptions(config));
    undo.push(() => connection.close());
    const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
    undo.push(() => removeTemporalLeftovers(client, config));
    return { config, prisma, kube, client, namespaces, namespace: namespaces[0]!, jobs, close: cleanUp };
  } catch (err) {
    await cleanUp();
    throw err;
  }
}

/** A namespace pods can be created in: the service-account controller has given it its `default` account. */
async function createNamespace(kube: KubeClients, name: string): Promise<void> {
  await kube.core.createNamespace({ body: { metadata: { name, labels: { 'nightwatch.io/test': 'true' } } } });
  await waitFor(`namespace ${name} to get its default service account`, () =>
    kube.core.readNamespacedServiceAccount({ name: 'default', namespace: name }).then(() => true),
  30_000, 100);
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
  /** The worker's Job watch (signals task workflows, answers their reads). */
  watch: JobWatch;
  stop(): Promise<void>;
}

/** A real nightwatch worker (with its Job watch) in this process, on the stack's task queue. */
export async function startWorker(
  stack: Pick<Stack, 'config' | 'prisma'> & { kube: Pick<KubeClients, 'batch' | 'core' | 'kubeconfig'> },
  watchTuning: Parameters<typeof startNightwatchWorker>[2] = {},
): Promise<RunningWorker> {
  const connection: NativeConnection = await connectWorker(stack.config);
  const { worker, watch, finished } = await startNightwatchWorker({ ...stack, connection }, { shutdownGraceTime: '2s' }, watchTuning);
  let stopped: Promise<void> | undefined;
  return {
    worker,
    watch,
    /** Shut down and close the connection; safe to call more than once. */
    stop() {
      stopped ??= (async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await finished;
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

/**
 * Wait until a workflow run is closed with `status` (e.g. COMPLETED). A task workflow writes its
 * final row in its last workflow task, whose completion reaches the server a moment later: the run
 * closes soon after the row is final, not before.
 */
export async function waitForRunClosed(client: Client, workflowId: string, status = 'COMPLETED', timeoutMs = 10_000): Promise<void> {
  let last = '';
  await waitFor(`workflow ${workflowId} to be ${status}`, async () => {
    last = (await client.workflow.getHandle(workflowId).describe()).status.name;
    return last === 'RUNNING' ? undefined : true;
  }, timeoutMs, 100);
  if (last !== status) throw new Error(`workflow ${workflowId} closed as ${last}, not ${status}`);
}
