// The one place a worker is configured (Dittofeed's buildWorker): connections, activities,
// workflow code, concurrency and shutdown grace all come from Config.
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import {
  bundleWorkflowCode,
  NativeConnection,
  Runtime,
  Worker,
  type ActivityInterceptorsFactory,
  type Logger,
  type WorkflowBundle,
  type WorkerOptions,
} from '@temporalio/worker';
import { createActivities } from '../activities/index.ts';
import { retentionSettings } from '../activities/retention.ts';
import type { JobLookup } from '../activities/kubernetes.ts';
import type { Config } from './config.ts';
import type { PrismaClient } from './db/client.ts';
import { startJobWatch, type JobWatch, type JobWatchOptions } from './job-watch.ts';
import { taskOfActivityInput } from './log.ts';
import { countDatabaseError, exposeJobWatch, exposeTaskCounts } from './metrics.ts';
import type { KubeClients } from './kubernetes.ts';
import { policyFromConfig } from './policy.ts';
import { temporalConnectionOptions } from './temporal.ts';

/**
 * Local activities (every step of a task) are not stopped by the shutdown grace; past it plus this
 * margin the worker is forced down, so a hung call cannot hold a stopping replica. What was in
 * flight is retried by another replica from Temporal's history.
 */
const SHUTDOWN_FORCE_MARGIN_MS = 3_000;

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/**
 * Modules evaluated once in the workflow thread's V8 context and shared by every workflow it runs.
 * Without this, the SDK's reusable context evaluates every module the workflow code imports once
 * per workflow run (the first activation, and again each time an evicted workflow is replayed):
 * 28 KB of live heap per cached workflow, more than half of it (scripts/bench/workflow-memory.ts:
 * 48.0 KB per parked task workflow without, 20.0 KB with). Shared modules are deep-frozen by the SDK, and
 * must keep no per-workflow state at module level (a `let`, a Map filled at run time): nightwatch's
 * own are checked for it by test/unit/workflow-modules.test.ts; the SDK's keep theirs on the
 * workflow's activator. Preloading the entry point takes everything it imports with it.
 */
export const WORKFLOW_PRELOAD_MODULES: readonly string[] = ['@temporalio/workflow', '@temporalio/common', WORKFLOWS_PATH];

/** The workflow bundle every worker runs, built ahead of time (npm run build:workflows, the tests, the benchmark). */
export async function bundleWorkflows(options: { logger?: Logger; preload?: boolean } = {}): Promise<WorkflowBundle> {
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    preloadModules: options.preload === false ? [] : [...WORKFLOW_PRELOAD_MODULES],
    ...(options.logger ? { logger: options.logger } : {}),
  });
}

export interface WorkerDeps {
  config: Config;
  prisma: PrismaClient;
  kube: Pick<KubeClients, 'batch' | 'core'>;
  connection: NativeConnection;
  /** The Job watch whose cache answers the workflows' reads; without it they read the API server. */
  jobs?: JobLookup;
}

export function workflowSource(config: Config): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'bundlerOptions'> {
  return config.WORKFLOW_BUNDLE_PATH
    ? { workflowBundle: { codePath: config.WORKFLOW_BUNDLE_PATH } }
    : { workflowsPath: WORKFLOWS_PATH, bundlerOptions: { preloadModules: [...WORKFLOW_PRELOAD_MODULES] } };
}

/**
 * The client the worker's own code uses (starting task workflows, signalling them), on the worker's
 * native connection: eager workflow start needs the two to share it, and the Rust transport costs
 * this process less than the JavaScript one.
 */
export function workerClient(deps: Pick<WorkerDeps, 'config' | 'connection'>): Client {
  return new Client({ connection: deps.connection, namespace: deps.config.TEMPORAL_NAMESPACE });
}

/**
 * Around every activity (local ones too): its log lines name the task it works on and the task's
 * attempt (the SDK adds the workflow id), and a database error that fails it is counted.
 */
export const observeActivities: ActivityInterceptorsFactory = () => {
  let task: ReturnType<typeof taskOfActivityInput> = {};
  return {
    inbound: {
      async execute(input, next) {
        task = taskOfActivityInput(input.args);
        try {
          return await next(input);
        } catch (err) {
          countDatabaseError(err);
          throw err;
        }
      },
    },
    outbound: {
      getLogAttributes: (input, next) => next({ ...input, ...task }),
    },
  };
};

/**
 * How the SDK's workflow sandbox runs: by default with no watchdog thread per call into it and no
 * stack trace captured per promise in it (src/config.ts, patches/). The SDK reads
 * isolateExecutionTimeout but leaves it out of the WorkerOptions type; workflowStackTraces is the
 * patch's own option.
 */
export function sandboxOptions(config: Pick<Config, 'WORKER_WORKFLOW_DEADLOCK_TIMEOUT' | 'WORKER_WORKFLOW_STACK_TRACES'>): Partial<WorkerOptions> {
  return {
    isolateExecutionTimeout: config.WORKER_WORKFLOW_DEADLOCK_TIMEOUT,
    workflowStackTraces: config.WORKER_WORKFLOW_STACK_TRACES,
  } as Partial<WorkerOptions>;
}

export async function buildWorker(deps: WorkerDeps, overrides: Partial<WorkerOptions> = {}): Promise<Worker> {
  const { config } = deps;
  exposeTaskCounts(deps.prisma);
  return Worker.create({
    interceptors: { activity: [observeActivities] },
    connection: deps.connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    activities: createActivities({
      prisma: deps.prisma,
      kube: deps.kube,
      temporal: workerClient(deps),
      policy: policyFromConfig(config),
      maxTasksInProgressPerUser: config.MAX_TASKS_IN_PROGRESS_PER_USER,
      retention: retentionSettings(config),
      ...(deps.jobs ? { jobs: deps.jobs } : {}),
    }),
    ...workflowSource(config),
    shutdownGraceTime: config.WORKER_SHUTDOWN_GRACE,
    shutdownForceTime: config.WORKER_SHUTDOWN_GRACE + SHUTDOWN_FORCE_MARGIN_MS,
    maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    maxCachedWorkflows: config.WORKER_MAX_CACHED_WORKFLOWS,
    ...sandboxOptions(config),
    ...overrides,
  });
}

export async function connectWorker(config: Config): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(config));
}

export interface NightwatchWorker {
  worker: Worker;
  watch: JobWatch;
  /** Settles when the worker has stopped (after `worker.shutdown()` or a fatal error), with the watch stopped too. */
  finished: Promise<void>;
}

/**
 * A running worker replica: the Temporal worker plus its Job watch, which signals task workflows
 * when their Jobs change and answers their reads from its cache. They start and stop together.
 */
export async function startNightwatchWorker(
  deps: Omit<WorkerDeps, 'jobs' | 'kube'> & { kube: Pick<KubeClients, 'batch' | 'core' | 'kubeconfig'> },
  overrides: Partial<WorkerOptions> = {},
  watchTuning: Pick<JobWatchOptions, 'stallAfterMs' | 'watchdogEveryMs' | 'resendEveryMs'> = {},
): Promise<NightwatchWorker> {
  const watch = startJobWatch({
    ...watchTuning,
    kubeconfig: deps.kube.kubeconfig,
    batch: deps.kube.batch,
    core: deps.kube.core,
    client: workerClient(deps),
    namespaces: deps.config.ALLOWED_NAMESPACES,
    idPrefix: deps.config.WORKFLOW_ID_PREFIX,
    // The runtime's logger: the worker's JSON logger once worker.ts has installed it.
    log: (message) => Runtime.instance().logger.warn(`job watch: ${message}`, { component: 'job-watch' }),
  });
  exposeJobWatch(watch);
  let worker: Worker;
  try {
    worker = await buildWorker({ ...deps, jobs: watch }, overrides);
  } catch (err) {
    await watch.stop();
    throw err;
  }
  const finished = worker.run().finally(() => watch.stop());
  return { worker, watch, finished };
}
