// Benchmark: N tasks at once, side by side with the cluster alone, in one run (issue "Scale").
//   eval "$(npm run -s stack env)"
//   npm exec -- tsx scripts/bench/scale.ts [tasks=1000] [--workers=1] [--run=2s] [--no-baseline] [--baseline-jobs=minimal|nightwatch] [--no-preload] [--worker-processes [--tsx] [--worker-node-options='…']]
// 1. The cluster alone: N Jobs created straight through the Kubernetes API (20 in flight, about
//    what a worker's concurrent activities amount to), timed until all are Complete. The Jobs are
//    minimal ones, or with --baseline-jobs=nightwatch the very Jobs nightwatch creates.
// 2. nightwatch: N rows inserted at once with plain SQL, the Schedule's default cadence, worker(s)
//    with their Job watch in this process. Timed from the insert to the first Job and from the first
//    Job until every row is Succeeded; the ratio to (1) is the figure that matters.
// Counted at the clients: Kubernetes API requests (the worker's Job API client) and database writes
// (the task table) per task; Temporal history events per task (every run of every task workflow);
// signals per task; how long a Job's end takes to reach its row (Job seen Complete by this script's
// own watch → the row's finished_at); RSS sampled during the batch, with the workflow bundle prebuilt
// as in production: of this process (worker(s) and benchmark), or with --worker-processes of each
// `npm run worker` process (whose requests and writes are then not counted); CPU seconds by process.
// Each phase works in a namespace of its own, deleted at the end, and a throwaway database.
import { randomBytes } from 'node:crypto';
import { makeInformer, type V1Job } from '@kubernetes/client-node';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { loadConfig, type Config } from '../../src/config.ts';
import { createPrisma } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createKubeClients, type KubeClients } from '../../src/kubernetes.ts';
import { ensureSchedules } from '../../src/schedules.ts';
import { checkInfoAgainstPolicy, podOptions, policyFromConfig } from '../../src/policy.ts';
import { parseTaskInfo } from '../../src/task/info.ts';
import { buildJob, type JobTask } from '../../src/task/job.ts';
import { jobStatusToTaskStatus } from '../../src/task/job-status.ts';
import { connectTemporalClient } from '../../src/temporal.ts';
import { bundleWorkflows, connectWorker, startNightwatchWorker, type NightwatchWorker } from '../../src/worker-setup.ts';
import { createTestDatabase } from '../../test/support/database.ts';
import { removeTemporalLeftovers } from '../../test/support/stack.ts';

Runtime.install({ logger: new DefaultLogger('WARN') });
const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const count = Number(args.find((a) => /^\d+$/.test(a)) ?? 1000);
const workerCount = Number(flag('workers', '1'));
const runFor = flag('run', '2s');
const baseline = !args.includes('--no-baseline');
/** Workers as separate `npm run worker` processes: their own RSS is measured, but not their requests and writes. */
const workerProcesses = args.includes('--worker-processes');
/** Those processes run through tsx's loader, as `npm run worker` did before Node ran the TypeScript itself (to compare). */
const workerThroughTsx = args.includes('--tsx');
/** Bundle the workflow code without preloaded modules (each workflow evaluates its own copy), to compare. */
const preloadWorkflowModules = !args.includes('--no-preload');
/** NODE_OPTIONS for those processes (e.g. a heap limit), without limiting this one. */
const workerNodeOptions = flag('worker-node-options', '');
const tag = randomBytes(3).toString('hex');
const kube = createKubeClients(process.env.KUBECONFIG);
const podAnnotations: Record<string, string> = runFor === '2s' ? {} : { 'nightwatch.io/kwok-run-duration': runFor };
/** Each task's `info`, as inserted into its row. */
const taskInfo = JSON.stringify({ image: 'alpine', command: ['true'], ...(runFor === '2s' ? {} : { annotations: podAnnotations }) });
/**
 * The Jobs the cluster alone runs: `minimal` (name, restartPolicy, the container) or `nightwatch`
 * (the very Job nightwatch creates for such a task, built by src/task/job.ts under this machine's
 * configured policy: its labels, backoffLimit and hardened pod).
 */
const baselineJobs = flag('baseline-jobs', 'minimal');
if (baselineJobs !== 'minimal' && baselineJobs !== 'nightwatch') throw new Error(`--baseline-jobs must be minimal or nightwatch, not ${baselineJobs}`);

const isComplete = (job: V1Job) => job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') ?? false;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

async function createNamespace(name: string): Promise<void> {
  await kube.core.createNamespace({ body: { metadata: { name, labels: { 'nightwatch.io/benchmark': tag } } } });
  // Pods wait for the namespace's default ServiceAccount; don't time that.
  for (;;) {
    const ok = await kube.core.readNamespacedServiceAccount({ name: 'default', namespace: name }).then(() => true, () => false);
    if (ok) return;
    await sleep(200);
  }
}

async function deleteNamespace(name: string, wait: boolean): Promise<void> {
  await kube.core.deleteNamespace({ name, body: { propagationPolicy: 'Background' } }).catch(() => undefined);
  while (wait && (await kube.core.readNamespace({ name }).then(() => true, () => false))) await sleep(500);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Wait until no benchmark's namespace is left, deleting those an earlier run left behind. A run
 * deletes its nightwatch namespace without waiting (its figures are printed first), and the
 * cluster then spends a minute or so deleting those 1,000s of Jobs and pods: a run started right
 * after would time the cluster alone while it is still doing that, and flatter the ratio.
 */
async function settleCluster(): Promise<void> {
  const started = performance.now();
  const { items } = await kube.core.listNamespace({ labelSelector: 'nightwatch.io/benchmark' });
  const left = items.map((n) => n.metadata!.name!);
  await Promise.all(left.map((name) => deleteNamespace(name, true)));
  if (left.length > 0) console.error(`[bench] waited ${((performance.now() - started) / 1000).toFixed(1)} s for an earlier run's namespaces to be deleted: ${left.join(', ')}`);
}

/**
 * CPU seconds used so far by each process of the local stack (pid files under NW_STACK_DIR or
 * .stack/run), MariaDB and this process, so each phase can say where the 2 cores went.
 */
const workerPids: number[] = [];
function cpuSeconds(): Map<string, number> {
  const tick = 100; // USER_HZ on Linux
  const used = new Map<string, number>();
  const read = (name: string, pid: string) => {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      used.set(name, (used.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / tick);
    } catch {
      // the process is gone; it used nothing more
    }
  };
  const runDir = join(process.env.NW_STACK_DIR || join(import.meta.dirname, '../../.stack'), 'run');
  for (const file of existsSync(runDir) ? readdirSync(runDir) : []) {
    if (file.endsWith('.pid')) read(file.replace(/\.pid$/, ''), readFileSync(join(runDir, file), 'utf8').trim());
  }
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'mariadbd') read('mariadb', pid);
    } catch {
      // gone
    }
  }
  read(workerProcesses ? 'this process (benchmark)' : 'this process (worker + benchmark)', 'self');
  for (const pid of workerPids) read('worker process(es)', String(pid));
  return used;
}

function cpuSince(before: Map<string, number>): Map<string, number> {
  const now = cpuSeconds();
  return new Map([...now].map(([k, v]) => [k, v - (before.get(k) ?? 0)]));
}

/**
 * This script's own view of the Jobs in a namespace: when each was first seen, first seen Complete
 * (the cluster-alone figure), and first seen in a state that means Succeeded for its task.
 */
async function watchJobs(namespace: string) {
  const created = new Map<string, number>();
  const completed = new Map<string, number>();
  const succeeded = new Map<string, number>();
  /** Every Job uid seen per name: more than one means a task ran twice. */
  const uids = new Map<string, Set<string>>();
  const informer = makeInformer<V1Job>(kube.kubeconfig, `/apis/batch/v1/namespaces/${namespace}/jobs`, () =>
    kube.batch.listNamespacedJob({ namespace }),
  );
  const seen = (job: V1Job) => {
    const name = job.metadata!.name!;
    if (!created.has(name)) created.set(name, performance.now());
    if (!uids.has(name)) uids.set(name, new Set());
    uids.get(name)!.add(job.metadata!.uid!);
    if (isComplete(job) && !completed.has(name)) completed.set(name, Date.now());
    if (jobStatusToTaskStatus(job).status === 'Succeeded' && !succeeded.has(name)) succeeded.set(name, Date.now());
  };
  informer.on('add', seen);
  informer.on('update', seen);
  informer.on('error', () => void sleep(1000).then(() => informer.start()));
  await informer.start();
  return { created, completed, succeeded, uids, stop: () => informer.stop() };
}

async function clusterAlone(): Promise<{ ms: number; cpu: Map<string, number> }> {
  const namespace = `bench-cluster-${tag}`;
  await createNamespace(namespace);
  try {
    const nightwatchJob = baselineJobs === 'nightwatch' ? jobBuilder(namespace) : null;
    const jobs = await watchJobs(namespace);
    const cpu0 = cpuSeconds();
    const t0 = performance.now();
    const names = Array.from({ length: count }, (_, i) => `job-${i}`);
    for (let i = 0; i < names.length; i += 20) {
      await Promise.all(
        names.slice(i, i + 20).map((name, j) =>
          kube.batch.createNamespacedJob({
            namespace,
            body: nightwatchJob
              ? nightwatchJob({ id: String(i + j + 1), name, namespace, attempt: 1 })
              : {
                  metadata: { name },
                  spec: {
                    backoffLimit: 0,
                    template: {
                      metadata: { annotations: podAnnotations },
                      spec: { restartPolicy: 'Never', containers: [{ name: 'task', image: 'alpine', command: ['true'] }] },
                    },
                  },
                },
          }),
        ),
      );
    }
    while (jobs.completed.size < count) await sleep(100);
    const ms = performance.now() - t0;
    const cpu = cpuSince(cpu0);
    await jobs.stop();
    return { ms, cpu };
  } finally {
    // Wait until its Jobs and pods are gone, so nightwatch's phase has the cluster to itself.
    await deleteNamespace(namespace, true);
  }
}

/** Builds the Job nightwatch would create for a task of this run, under the configured policy. */
function jobBuilder(namespace: string): (task: JobTask) => V1Job {
  const policy = policyFromConfig(loadConfig({ ...process.env, ALLOWED_NAMESPACES: namespace }));
  const parsed = parseTaskInfo(taskInfo);
  if (!parsed.ok) throw new Error(`the benchmark's task info is invalid: ${parsed.reason}`);
  const checked = checkInfoAgainstPolicy(policy, parsed.info);
  if (!checked.ok) throw new Error(`the benchmark's task info breaks the policy: ${checked.reason}`);
  const pod = podOptions(policy);
  return (task) => buildJob(task, checked.info, pod);
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return line ? Number(line[1]) / 1024 : NaN;
}

/** What the worker processes said they run with (their malloc, heap growth, young generation). */
let workerRuntime: string | undefined;

/** `npm run worker` (scripts/worker.sh: its malloc, then node running the TypeScript itself) for this run's configuration. */
async function spawnWorkerProcess(config: Config, metricsPort: number): Promise<ChildProcess> {
  const child = spawn('bash', [join(import.meta.dirname, '../worker.sh'), ...(workerThroughTsx ? ['--import', 'tsx'] : [])], {
    env: {
      ...process.env,
      NODE: process.execPath,
      DATABASE_URL: config.DATABASE_URL,
      TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
      WORKFLOW_ID_PREFIX: config.WORKFLOW_ID_PREFIX,
      WORKFLOW_BUNDLE_PATH: config.WORKFLOW_BUNDLE_PATH!,
      ALLOWED_NAMESPACES: config.ALLOWED_NAMESPACES.join(','),
      WORKER_METRICS_PORT: String(metricsPort),
      METRICS_HOST: '127.0.0.1',
      TEMPORAL_METRICS_PORT: '0',
      ...(workerNodeOptions ? { NODE_OPTIONS: workerNodeOptions } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const at = out.indexOf('nightwatch worker: task queue');
      const end = at < 0 ? -1 : out.indexOf('\n', at);
      if (end < 0) return;
      // Ready. Its start-up line says which malloc and heap growth it runs with; what it logs from
      // now on is drained unread (a pipe left full would block the worker), not kept for the run.
      child.stdout!.off('data', onData).resume();
      child.stderr!.off('data', onData).resume();
      try {
        const fields = JSON.parse(out.slice(out.lastIndexOf('\n', at) + 1, end)) as { malloc?: string; heapGrowthPercent?: unknown; semiSpaceMb?: unknown };
        workerRuntime = `malloc ${fields.malloc ?? '?'}, heap growth ${String(fields.heapGrowthPercent ?? '?')}, semi-space ${String(fields.semiSpaceMb ?? '?')}`;
      } catch {
        // Not a JSON line: the table just does not say.
      }
      resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}:\n${out}`)));
  });
  return child;
}

/** Where a worker process's memory is, from its own metrics (MB): the heaps of its main and workflow threads. */
interface MemoryBreakdown {
  rss: number;
  mainHeapUsed: number;
  mainHeapTotal: number;
  workflowHeapUsed: number;
  workflowHeapTotal: number;
  external: number;
}
async function memoryOf(pid: number, metricsPort: number): Promise<MemoryBreakdown | undefined> {
  const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text(), () => '');
  const value = (name: string) => Number(text.match(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm'))?.[1] ?? NaN) / 2 ** 20;
  if (!text) return undefined;
  return {
    rss: rssMb(pid),
    mainHeapUsed: value('nightwatch_nodejs_heap_size_used_bytes'),
    mainHeapTotal: value('nightwatch_nodejs_heap_size_total_bytes'),
    workflowHeapUsed: value('nightwatch_workflow_thread_heap_bytes{kind="used"}'),
    workflowHeapTotal: value('nightwatch_workflow_thread_heap_bytes{kind="total"}'),
    external: value('nightwatch_nodejs_external_memory_bytes'),
  };
}

/** `target` with each call of a method whose name passes `counts` tallied in `tally.calls`. */
function counting<T extends object>(target: T, counts: (method: string) => boolean, tally: { calls: number }): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (typeof value !== 'function' || !counts(String(prop))) return value;
      return (...a: unknown[]) => {
        tally.calls++;
        return (value as (...x: unknown[]) => unknown).apply(obj, a);
      };
    },
  });
}

async function nightwatch() {
  // Prebuilt, as in production (npm run build:workflows): bundling at start-up is not what a running worker costs.
  const bundlePath = join(mkdtempSync(join(tmpdir(), 'nightwatch-bench-')), 'workflows.js');
  writeFileSync(bundlePath, (await bundleWorkflows({ logger: new DefaultLogger('WARN'), preload: preloadWorkflowModules })).code);
  const namespace = `bench-nw-${tag}`;
  await createNamespace(namespace);
  const db = await createTestDatabase();
  await migrate(db.url);
  const config = loadConfig({
    ...process.env,
    DATABASE_URL: db.url,
    TEMPORAL_TASK_QUEUE: `bench-${tag}`,
    WORKFLOW_ID_PREFIX: `bench${tag}-`,
    ALLOWED_NAMESPACES: namespace,
    WORKFLOW_BUNDLE_PATH: bundlePath,
  });
  const kubeRequests = { calls: 0 };
  const dbWrites = { calls: 0 };
  const prismaClient = createPrisma(config.DATABASE_URL, config.DATABASE_POOL_SIZE);
  const countedTask = counting(prismaClient.task, (m) => /^(create|update|upsert|delete)/.test(m), dbWrites);
  const prisma = new Proxy(prismaClient, { get: (t, p, r) => (p === 'task' ? countedTask : Reflect.get(t, p, r)) });
  const workerKube: Pick<KubeClients, 'batch' | 'core' | 'kubeconfig'> = {
    batch: counting(kube.batch, () => true, kubeRequests),
    core: counting(kube.core, () => true, kubeRequests),
    kubeconfig: kube.kubeconfig,
  };
  const client = await connectTemporalClient(config);
  const workers: { connection: Awaited<ReturnType<typeof connectWorker>>; running: NightwatchWorker }[] = [];
  const processes: ChildProcess[] = [];
  const metricsPorts: number[] = [];
  const jobs = await watchJobs(namespace);
  try {
    for (let i = 0; i < workerCount; i++) {
      if (workerProcesses) {
        metricsPorts.push(19_464 + i);
        processes.push(await spawnWorkerProcess(config, metricsPorts[i]!));
        workerPids.push(processes.at(-1)!.pid!);
        continue;
      }
      const connection = await connectWorker(config);
      workers.push({ connection, running: await startNightwatchWorker({ config, prisma, kube: workerKube, connection }) });
    }
    await ensureSchedules(client, config);
    const cpu0 = cpuSeconds();
    const t0 = performance.now();
    const insertedAt = Date.now();
    await prismaClient.task.createMany({
      data: Array.from({ length: count }, (_, i) => ({
        name: `task-${i}`,
        namespace,
        userId: 'bench',
        info: taskInfo,
      })),
    });
    let rssWhileInFlight = 0;
    let rssDuringBatch = 0;
    let mostInFlight = 0;
    // The first worker process's memory by part, at the largest RSS seen in a scrape (every 5 s).
    let memoryAtPeak: MemoryBreakdown | undefined;
    for (let tick = 0; ; tick++) {
      if (workerProcesses && tick % 20 === 0) {
        const m = await memoryOf(processes[0]!.pid!, metricsPorts[0]!);
        if (m && m.rss > (memoryAtPeak?.rss ?? 0)) memoryAtPeak = m;
      }
      const counts = await prismaClient.task.groupBy({ by: ['status'], _count: true });
      const by = Object.fromEntries(counts.map((c) => [c.status, c._count]));
      const rss = workerProcesses ? Math.max(...processes.map((c) => rssMb(c.pid!))) : process.memoryUsage.rss() / 2 ** 20;
      rssDuringBatch = Math.max(rssDuringBatch, rss);
      const inFlight = (by.Running ?? 0) + (by.Pending ?? 0);
      if (inFlight > mostInFlight) mostInFlight = inFlight;
      if (inFlight >= count * 0.95) rssWhileInFlight = Math.max(rssWhileInFlight, rss);
      const final = (by.Succeeded ?? 0) + (by.Failed ?? 0) + (by.Cancelled ?? 0);
      if (final === count) {
        if (by.Failed || by.Cancelled) console.log(`warning: ${by.Failed ?? 0} tasks failed, ${by.Cancelled ?? 0} cancelled`);
        break;
      }
      await sleep(250);
    }
    const allDoneMs = performance.now() - t0;
    const cpu = cpuSince(cpu0);
    const firstJobMs = Math.min(...jobs.created.values()) - t0;
    const allJobsMs = Math.max(...jobs.created.values()) - t0;

    // A Job's end → its row: this script's watch saw it succeed → the row's finished_at.
    const rows = await prismaClient.task.findMany({ select: { name: true, finishedAt: true } });
    const lag = rows
      .filter((r) => r.finishedAt && jobs.succeeded.has(r.name))
      .map((r) => r.finishedAt!.getTime() - jobs.succeeded.get(r.name)!)
      .sort((a, b) => a - b);

    const runTwice = [...jobs.uids.values()].filter((u) => u.size > 1).length;
    const notSucceeded = await prismaClient.task.count({ where: { status: { not: 'Succeeded' } } });
    let events = 0;
    let runs = 0;
    for await (const wf of client.workflow.list({ query: `TaskQueue = '${config.TEMPORAL_TASK_QUEUE}' AND WorkflowType = 'taskWorkflow'` })) {
      events += wf.historyLength;
      runs++;
    }
    // Signals each worker sent, and those the server recorded (replicas' duplicates are dropped).
    let recorded = 0;
    const ids = await prismaClient.task.findMany({ select: { id: true } });
    for (let i = 0; i < ids.length; i += 50) {
      const histories = await Promise.all(
        ids.slice(i, i + 50).map((r) => client.workflow.getHandle(`${config.WORKFLOW_ID_PREFIX}task-${r.id}`).fetchHistory()),
      );
      for (const h of histories) recorded += (h.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes).length;
    }
    const signals = workers.reduce((n, w) => n + w.running.watch.stats.signalsSent, 0);
    const signalErrors = workers.reduce((n, w) => n + w.running.watch.stats.signalErrors, 0);
    return {
      insertToFirstJobMs: firstJobMs,
      runTwice,
      notSucceeded,
      jobsSeen: jobs.uids.size,
      insertToAllJobsMs: allJobsMs,
      firstJobToAllDoneMs: allDoneMs - firstJobMs,
      insertedAt,
      kubePerTask: kubeRequests.calls / count,
      dbWritesPerTask: dbWrites.calls / count,
      eventsPerTask: events / count,
      runs,
      signalsPerTask: signals / count,
      recordedSignalsPerTask: recorded / count,
      signalErrors,
      lagMedianMs: quantile(lag, 0.5),
      lagP90Ms: quantile(lag, 0.9),
      rssWhileInFlight,
      rssDuringBatch,
      memoryAtPeak,
      mostInFlight,
      dispatchInterval: config.DISPATCH_INTERVAL,
      cpu,
    };
  } finally {
    for (const c of processes) c.kill('SIGTERM');
    await removeTemporalLeftovers(client, config);
    for (const w of workers) {
      w.running.worker.shutdown();
      await w.running.finished.catch(() => undefined);
      await w.connection.close();
    }
    await jobs.stop();
    await client.connection.close();
    await prismaClient.$disconnect();
    await db.drop();
    await deleteNamespace(namespace, false);
  }
}

await settleCluster();
const cluster = baseline ? await clusterAlone() : null;
const clusterMs = cluster?.ms ?? NaN;
const nw = await nightwatch();
const row = (k: string, v: string) => console.log(`| ${k.padEnd(58)} | ${v.padEnd(24)} |`);
console.log();
console.log(`${count} tasks of ${runFor}, ${workerCount} worker(s), dispatch every ${nw.dispatchInterval / 1000} s`);
row('measure', 'figure');
row('-'.repeat(58), '-'.repeat(24));
if (baseline) row(`the cluster alone: all Complete (${baselineJobs} Jobs)`, seconds(clusterMs));
row('tasks not Succeeded / with more than one Job / Jobs seen', `${nw.notSucceeded} / ${nw.runTwice} / ${nw.jobsSeen}`);
row('nightwatch: insert → first Job', seconds(nw.insertToFirstJobMs));
row('nightwatch: insert → all Jobs created', seconds(nw.insertToAllJobsMs));
row('nightwatch: first Job → all Succeeded', seconds(nw.firstJobToAllDoneMs));
if (baseline) row('  ratio to the cluster alone', `${(nw.firstJobToAllDoneMs / clusterMs).toFixed(2)}×`);
if (!workerProcesses) row('Kubernetes API requests per task (nightwatch)', nw.kubePerTask.toFixed(2));
row('Temporal history events per task', `${nw.eventsPerTask.toFixed(1)} (${nw.runs} runs)`);
if (!workerProcesses) row('database writes per task', nw.dbWritesPerTask.toFixed(2));
row(
  'jobChanged signals per task: sent (all workers) / recorded',
  `${workerProcesses ? '–' : nw.signalsPerTask.toFixed(2)} / ${nw.recordedSignalsPerTask.toFixed(2)}${nw.signalErrors ? ` (${nw.signalErrors} failed)` : ''}`,
);
row('Job end → row, median / p90', `${nw.lagMedianMs} ms / ${nw.lagP90Ms} ms`);
row('most tasks in flight (Pending or Running) at once', String(nw.mostInFlight));
const processNotes = [!preloadWorkflowModules && 'workflow modules not preloaded', workerThroughTsx && 'through tsx', workerNodeOptions && `NODE_OPTIONS=${workerNodeOptions}`, workerRuntime].filter(Boolean);
const whose = workerProcesses ? ['largest worker process', ...processNotes].join(', ') : 'worker + benchmark';
row(`RSS with ≥ 95% of tasks in flight (${whose})`, nw.rssWhileInFlight ? `${nw.rssWhileInFlight.toFixed(0)} MB` : 'n/a (never that many at once)');
row(`RSS during the batch, max (${whose})`, `${nw.rssDuringBatch.toFixed(0)} MB`);
if (nw.memoryAtPeak) {
  const m = nw.memoryAtPeak;
  const mb = (n: number) => n.toFixed(0);
  row(
    '  at its peak scrape: RSS = main heap + workflow heap + rest',
    `${mb(m.rss)} = ${mb(m.mainHeapTotal)} + ${mb(m.workflowHeapTotal)} + ${mb(m.rss - m.mainHeapTotal - m.workflowHeapTotal)} MB`,
  );
  row('  heaps used (live + garbage not yet collected): main / workflow', `${mb(m.mainHeapUsed)} / ${mb(m.workflowHeapUsed)} MB`);
  row('  main thread external memory (buffers)', `${mb(m.external)} MB`);
}

console.log();
console.log('CPU seconds by process (2 cores): the cluster alone | nightwatch, insert to all Succeeded');
for (const name of [...new Set([...(cluster?.cpu.keys() ?? []), ...nw.cpu.keys()])].sort()) {
  console.log(`  ${name.padEnd(36)} ${(cluster?.cpu.get(name) ?? NaN).toFixed(1).padStart(7)} | ${(nw.cpu.get(name) ?? 0).toFixed(1).padStart(7)}`);
}
process.exit(0);
