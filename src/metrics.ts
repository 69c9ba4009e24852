// nightwatch's own Prometheus metrics (README, "Operating"), in one registry per process: the
// worker serves it on WORKER_METRICS_PORT, the API on GET /metrics. Names follow Prometheus
// conventions: the `nightwatch_` prefix, `_total` for counters, `_seconds` for durations.
// The Temporal SDK's own worker metrics are served by its runtime on TEMPORAL_METRICS_PORT.
import { createServer, type Server } from 'node:http';
import type { HeapInfo } from 'node:v8';
import type { AddressInfo } from 'node:net';
import type { V1Job } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PrismaClient } from './db/client.ts';
import type { JobWatchStats } from './job-watch.ts';
import { TaskStatus } from './task-status.ts';
import { workflowThreads } from './workflow-threads.ts';

export const registry = new Registry();
// Node's process metrics too (nightwatch_process_*, nightwatch_nodejs_*): memory, CPU, event-loop lag.
collectDefaultMetrics({ register: registry, prefix: 'nightwatch_' });

/**
 * The heap of the Temporal SDK's workflow thread: the isolate that holds every cached workflow (the
 * main thread's heap, in nightwatch_nodejs_heap_*, holds the activities, the Job watch's cache and
 * the clients), read with Worker.getHeapStatistics() on each scrape.
 */
new Gauge({
  name: 'nightwatch_workflow_thread_heap_bytes',
  help: "Heap of the worker's workflow thread(s), where cached workflows live, by kind: used, total (allocated), limit",
  labelNames: ['kind'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    const read = await Promise.all([...workflowThreads].map((w) => w.getHeapStatistics().catch(() => undefined)));
    const stats = read.filter((s): s is HeapInfo => s !== undefined);
    if (stats.length === 0) return;
    const sum = (pick: (s: HeapInfo) => number) => stats.reduce((total, s) => total + pick(s), 0);
    this.labels({ kind: 'used' }).set(sum((s) => s.used_heap_size));
    this.labels({ kind: 'total' }).set(sum((s) => s.total_heap_size));
    this.labels({ kind: 'limit' }).set(sum((s) => s.heap_size_limit));
  },
});

/** Latency buckets in seconds, from a fast API answer to a Job that waited minutes for a node. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export const taskTransitions = new Counter({
  name: 'nightwatch_task_transitions_total',
  help: 'Status writes that moved a task row, by the status written (Pending: Job created; Running; Succeeded, Failed, Cancelled: finished)',
  labelNames: ['to'] as const,
  registers: [registry],
});

export const submissionToJob = new Histogram({
  name: 'nightwatch_task_submission_to_job_seconds',
  help: "Time from a task row's created_at to its Job being created (this attempt's Job, created by this worker)",
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const jobEndToRow = new Histogram({
  name: 'nightwatch_task_job_end_to_row_seconds',
  help: "Time from a Job's end (status.completionTime, or its Failed condition's lastTransitionTime; whole seconds) to the row's final status being written",
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

export const kubernetesErrors = new Counter({
  name: 'nightwatch_kubernetes_errors_total',
  help: "Failed Kubernetes API calls of the activities, by class (task: the task's fault; transient: the cluster's or network's; conflict: already exists) and HTTP code (`network` without one)",
  labelNames: ['kind', 'code'] as const,
  registers: [registry],
});

export const databaseErrors = new Counter({
  name: 'nightwatch_database_errors_total',
  help: 'Database errors (Prisma) that failed an activity or an API request, by Prisma error code (P2034, P1001, …) or error class',
  labelNames: ['code'] as const,
  registers: [registry],
});

export const dispatchBatches = new Counter({
  name: 'nightwatch_dispatch_batches_total',
  help: 'startTaskWorkflows calls: pages of Normal rows the dispatcher (or reconcile) handed to this worker to start',
  registers: [registry],
});

export const dispatchRows = new Counter({
  name: 'nightwatch_dispatch_rows_total',
  help: "Rows of those pages, by result: started (a new task workflow), already_running (its workflow was open), held (its user is at the cap)",
  labelNames: ['result'] as const,
  registers: [registry],
});

export const dispatchBatchRows = new Histogram({
  name: 'nightwatch_dispatch_batch_rows',
  help: 'Rows per startTaskWorkflows call',
  buckets: [0, 1, 5, 10, 25, 50, 100, 250, 500, 1000],
  registers: [registry],
});

export const apiRequests = new Counter({
  name: 'nightwatch_api_requests_total',
  help: 'HTTP requests answered by the API, by method, route pattern (not the raw URL; `unmatched` for 404s) and status code',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});

export const apiRequestDuration = new Histogram({
  name: 'nightwatch_api_request_duration_seconds',
  help: 'Time to answer an API request, by method and route pattern',
  labelNames: ['method', 'route'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

// ---- Collected on scrape -------------------------------------------------------------------

/** The Job watch this process runs (the worker's), whose counters are exposed as they are. */
let watchStats: { stats: JobWatchStats; healthy(): boolean } | undefined;
export function exposeJobWatch(watch: { stats: JobWatchStats; healthy(): boolean } | undefined): void {
  watchStats = watch;
}

new Counter({
  name: 'nightwatch_job_watch_signals_total',
  help: "jobChanged signals the worker's Job watch sent, by result (sent; resent: a change that ends a task, sent again until its workflow has ended, dropped by the server when it already has it; no_workflow: the task's workflow was not running; error: retried)",
  labelNames: ['result'] as const,
  registers: [registry],
  collect() {
    this.reset();
    if (!watchStats) return;
    this.labels({ result: 'sent' }).inc(watchStats.stats.signalsSent);
    this.labels({ result: 'resent' }).inc(watchStats.stats.signalsResent);
    this.labels({ result: 'no_workflow' }).inc(watchStats.stats.signalsToNoWorkflow);
    this.labels({ result: 'error' }).inc(watchStats.stats.signalErrors);
  },
});

new Counter({
  name: 'nightwatch_job_watch_restarts_total',
  help: "Restarts of the Job watch's informers after an error or a stall",
  registers: [registry],
  collect() {
    this.reset();
    if (watchStats) this.inc(watchStats.stats.restarts);
  },
});

new Gauge({
  name: 'nightwatch_job_watch_healthy',
  help: "1 while every informer of the worker's Job watch is connected and current, else 0",
  registers: [registry],
  collect() {
    this.reset();
    if (watchStats) this.set(watchStats.healthy() ? 1 : 0);
  },
});

/** How long a count read from the database is reused, so frequent or parallel scrapes cost one query. */
const TASK_COUNT_CACHE_MS = 5_000;
const IN_PROGRESS = [TaskStatus.Normal, TaskStatus.Pending, TaskStatus.Running] as const;
let taskSource: PrismaClient | undefined;
let taskCounts: Promise<{ at: number; counts: Map<string, number>; oldest: Map<string, number> }> | undefined;

/** The database the in-progress gauges are read from on scrape (the worker's and the API's). */
export function exposeTaskCounts(prisma: PrismaClient | undefined): void {
  taskSource = prisma;
  taskCounts = undefined;
}

async function readTaskCounts(prisma: PrismaClient) {
  // One (status, id) index range each: cheap however many finished rows the table holds.
  const [groups, ...oldest] = await Promise.all([
    prisma.task.groupBy({ by: ['status'], where: { status: { in: [...IN_PROGRESS] } }, _count: { _all: true } }),
    ...IN_PROGRESS.map((status) => prisma.task.findFirst({ where: { status }, orderBy: { id: 'asc' }, select: { createdAt: true } })),
  ]);
  const counts = new Map<string, number>(IN_PROGRESS.map((s) => [s, 0]));
  for (const g of groups) counts.set(g.status, g._count._all);
  const now = Date.now();
  const ages = new Map<string, number>();
  IN_PROGRESS.forEach((s, i) => ages.set(s, oldest[i] ? Math.max(0, (now - oldest[i]!.createdAt.getTime()) / 1000) : 0));
  return { at: now, counts, oldest: ages };
}

async function cachedTaskCounts() {
  if (!taskSource) return undefined;
  const cached = taskCounts ? await taskCounts.catch(() => undefined) : undefined;
  if (cached && Date.now() - cached.at < TASK_COUNT_CACHE_MS) return cached;
  const source = taskSource;
  taskCounts = readTaskCounts(source);
  try {
    return await taskCounts;
  } catch (err) {
    taskCounts = undefined;
    countDatabaseError(err);
    return undefined;
  }
}

new Gauge({
  name: 'nightwatch_tasks',
  help: 'Task rows in progress, by status (Normal: waiting to start; Pending; Running), read from the database on scrape (cached 5 s)',
  labelNames: ['status'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    const read = await cachedTaskCounts();
    for (const [status, n] of read?.counts ?? []) this.labels({ status }).set(n);
  },
});

new Gauge({
  name: 'nightwatch_oldest_task_age_seconds',
  help: 'Age (since created_at) of the oldest row in each in-progress status; 0 when there is none (dispatch lag, stuck tasks)',
  labelNames: ['status'] as const,
  registers: [registry],
  async collect() {
    this.reset();
    const read = await cachedTaskCounts();
    for (const [status, age] of read?.oldest ?? []) this.labels({ status }).set(age);
  },
});

// ---- Helpers -------------------------------------------------------------------------------

/** A Prisma error's code (P2034, …), its class for errors without one, or undefined for anything else. */
export function prismaErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { name, code, errorCode } = err as { name?: unknown; code?: unknown; errorCode?: unknown };
  if (typeof name !== 'string' || !name.startsWith('PrismaClient')) return undefined;
  if (typeof code === 'string' && /^P\d{4}$/.test(code)) return code;
  if (typeof errorCode === 'string' && /^P\d{4}$/.test(errorCode)) return errorCode;
  return name;
}

/** Count `err` in nightwatch_database_errors_total when it is a Prisma error. */
export function countDatabaseError(err: unknown): void {
  const code = prismaErrorCode(err);
  if (code) databaseErrors.labels({ code }).inc();
}

/**
 * When the Job's work ended: the first condition that made it final. Kubernetes 1.31+ first sets
 * `SuccessCriteriaMet` or `FailureTarget`, which already decide the task (jobStatusToTaskStatus),
 * and only later `Complete` or `Failed` with `completionTime`, so a row is often final before
 * `Complete` exists; older clusters set only `Complete`/`Failed`.
 */
export function jobEndTime(job: V1Job): Date | undefined {
  const final = new Set(['SuccessCriteriaMet', 'FailureTarget', 'Complete', 'Failed']);
  const times = (job.status?.conditions ?? [])
    .filter((c) => c.status === 'True' && final.has(c.type) && c.lastTransitionTime)
    .map((c) => new Date(c.lastTransitionTime!).getTime());
  if (times.length > 0) return new Date(Math.min(...times));
  return job.status?.completionTime ? new Date(job.status.completionTime) : undefined;
}

/** Observe a duration in seconds, never negative (clocks of the database, the cluster and the worker differ a little). */
export function observeSince(histogram: Histogram, since: Date, now = new Date()): void {
  histogram.observe(Math.max(0, (now.getTime() - since.getTime()) / 1000));
}

/** Prometheus' text exposition of the registry. */
export async function exposition(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/** A bare HTTP server with GET /metrics (the worker's WORKER_METRICS_PORT). */
export async function startMetricsServer(port: number, host = '0.0.0.0'): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    exposition().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  server.unref();
  return server;
}

export const metricsPort = (server: Server) => (server.address() as AddressInfo).port;
