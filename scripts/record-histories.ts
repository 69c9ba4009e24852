// Records the event histories of today's workflows, so that later workflow code can be replayed
// against them (test/unit/replay.test.ts): a workflow that is running when a new version is
// deployed resumes on the new code from its history, and any nondeterministic change breaks it.
//
// Run with the local stack up and its environment exported, from the checkout whose workflows
// are to be recorded:
//   eval "$(npm run -s stack env)"; npm exec -- tsx scripts/record-histories.ts <version-tag>
// It writes test/histories/<version-tag>/<scenario>.json (one file per workflow run, in the JSON
// form `temporal workflow show --output json` prints) and a README.md naming the commit. It uses
// a throwaway database, its own task queues and workflow-id prefix, and removes its Jobs.
//
// Only the workflow type names and the module paths below tie it to the code it records, so the
// same script records later versions; adapt it when they change.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig, type Config } from '../src/config.ts';
import { createPrisma } from '../src/db/client.ts';
import { migrate } from '../src/db/migrate.ts';
import { createKubeClients, type KubeClients } from '../src/kubernetes.ts';
import { connectTemporalClient } from '../src/temporal.ts';
import * as workerSetup from '../src/worker-setup.ts';
import { isFinal } from '../src/task-status.ts';
import { createTestDatabase } from '../test/support/database.ts';
import { closedPort } from '../test/support/net.ts';

const tag = process.argv[2];
if (!tag || !/^[a-z0-9][a-z0-9.-]*$/.test(tag)) {
  console.error('usage: npm exec -- tsx scripts/record-histories.ts <version-tag>   (e.g. v2-informer; lower case, digits, dot, dash)');
  process.exit(2);
}
const outDir = resolve('test/histories', tag);

Runtime.install({ logger: new DefaultLogger('WARN') });
const run = randomBytes(3).toString('hex');
const db = await createTestDatabase();
await migrate(db.url);
// Jobs live in a shared cluster labelled with task ids: start ids where no test run's are.
await db.query(`ALTER TABLE task AUTO_INCREMENT = ${2_000_000_000 + Math.floor(Math.random() * 1_000_000_000)}`);
const config = loadConfig({
  ...process.env,
  DATABASE_URL: db.url,
  TEMPORAL_TASK_QUEUE: `record-${run}`,
  WORKFLOW_ID_PREFIX: `rec${run}-`,
  WORKFLOW_BUNDLE_PATH: '',
});
const prisma = createPrisma(config.DATABASE_URL, 5);
const kube = createKubeClients(config.KUBECONFIG);
const client = await connectTemporalClient(config);
const prefix = config.WORKFLOW_ID_PREFIX;
const jobs: { name: string; namespace: string }[] = [];
/** scenario file name (without .json) → what it recorded */
const recorded = new Map<string, string>();

interface Row {
  id: bigint;
  name: string;
  namespace: string;
}

/** A pod that "runs" for `duration` on KWOK (scripts/stack/kwok-stages.yaml), failing when asked. */
const kwok = (duration: string, fail = false) => ({
  'nightwatch.io/kwok-run-duration': duration,
  ...(fail ? { 'nightwatch.io/kwok-outcome': 'fail' } : {}),
});

async function insert(scenario: string, info: unknown, i = 0): Promise<Row> {
  const name = `rec-${run}-${scenario}${i ? `-${i}` : ''}`.slice(0, 63);
  const row = await prisma.task.create({
    data: { name, namespace: 'default', info: typeof info === 'string' ? info : JSON.stringify(info), userId: 'recorder' },
  });
  jobs.push(row);
  return row;
}

const taskId = (row: Row) => `${prefix}task-${row.id}`;

function startTask(row: Row, extra: Record<string, unknown> = {}, queue = config.TEMPORAL_TASK_QUEUE) {
  return client.workflow.start('taskWorkflow', { taskQueue: queue, workflowId: taskId(row), args: [{ taskId: row.id.toString(), ...extra }] });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const rowWhere = (row: Row, ok: (r: { status: string; reason: string | null }) => boolean) =>
  waitFor(`task ${row.id} (${row.name})`, async () => {
    const r = await prisma.task.findUnique({ where: { id: row.id } });
    return r && ok(r) ? r : undefined;
  });

/**
 * Write every run of a workflow, first to last (following continue-as-new), as
 * `<scenario>.json`, or `<scenario>-run<n>.json` when there are several.
 */
async function save(scenario: string, description: string, workflowId: string, firstRunId?: string): Promise<void> {
  await client.workflow.getHandle(workflowId, firstRunId).result().catch(() => undefined);
  const runs = [];
  let runId = firstRunId ?? (await client.workflow.getHandle(workflowId).describe()).runId;
  for (;;) {
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    runs.push(history);
    const last = history.events?.at(-1);
    const next = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
    if (!next) break;
    runId = next;
  }
  for (const [i, history] of runs.entries()) {
    const file = runs.length === 1 ? scenario : `${scenario}-run${i + 1}`;
    // Re-indented so a diff between recordings is readable.
    await writeFile(join(outDir, `${file}.json`), `${JSON.stringify(JSON.parse(historyToJSON(history)), null, 1)}\n`);
    recorded.set(file, runs.length === 1 ? description : `${description} (run ${i + 1} of ${runs.length})`);
  }
}

/** A real worker replica, as `npm run worker` runs it, for the length of `body`. */
async function withWorker<T>(kubeClients: KubeClients, cfg: Config, body: () => Promise<T>): Promise<T> {
  const connection = await workerSetup.connectWorker(cfg);
  const deps = { config: cfg, prisma, kube: kubeClients, client, connection };
  const { buildWorker } = workerSetup;
  // Versions with a Job watch start it with the worker (startNightwatchWorker); earlier ones
  // (v1-polling) have only buildWorker.
  const { worker, finished } =
    'startNightwatchWorker' in workerSetup
      ? await workerSetup.startNightwatchWorker(deps, { shutdownGraceTime: '2s' })
      : await (async () => {
          const worker = await buildWorker(deps, { shutdownGraceTime: '2s' });
          return { worker, finished: worker.run() };
        })();
  try {
    return await body();
  } finally {
    worker.shutdown();
    await finished;
    await connection.close();
  }
}

// ---- scenarios -------------------------------------------------------------------------------

async function dispatchManyChildren(): Promise<void> {
  const rows = [];
  for (let i = 1; i <= 30; i++) rows.push(await insert('dispatch', { image: 'alpine', annotations: kwok('1s') }, i));
  const id = `${prefix}dispatch`;
  const handle = await client.workflow.start('dispatchWorkflow', {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowId: id,
    // Small pages and few children per run, so 30 rows take several continue-as-new runs.
    args: [{ idPrefix: prefix, pageSize: 5, maxChildrenPerRun: 10 }],
  });
  await save('dispatch', 'dispatchWorkflow over 30 Normal rows, pageSize 5, 10 children per run', id, handle.firstExecutionRunId);
  for (const row of rows) await rowWhere(row, (r) => r.status === 'Succeeded');
  await save('dispatch-child', 'a task workflow started by the dispatcher, Succeeded', taskId(rows[0]!));
}

async function succeeded(): Promise<void> {
  const row = await insert('ok', { image: 'alpine', command: ['true'], annotations: kwok('2s') });
  const h = await startTask(row);
  await save('task-succeeded', 'a 2 s Job: Normal → Pending → Running → Succeeded', h.workflowId, h.firstExecutionRunId);
}

async function failed(): Promise<void> {
  const row = await insert('fail', { image: 'alpine', command: ['false'], annotations: kwok('1s', true) });
  const h = await startTask(row);
  await save('task-failed', 'a pod that fails: Failed with BackoffLimitExceeded', h.workflowId, h.firstExecutionRunId);
}

async function invalid(): Promise<void> {
  const row = await insert('invalid', { command: ['true'] });
  const h = await startTask(row);
  await save('task-invalid', 'info without an image: Failed at once, no Job', h.workflowId, h.firstExecutionRunId);
}

async function continuesAsNew(): Promise<void> {
  const row = await insert('long', { image: 'alpine', annotations: kwok('25s') });
  // A low event limit makes the observing loop continue as new after a few polls.
  const h = await startTask(row, { continueAfterEvents: 25 });
  await save('task-continue-as-new', 'a 25 s Job observed across continue-as-new', h.workflowId, h.firstExecutionRunId);
}

async function cancelled(): Promise<void> {
  const row = await insert('cancel', { image: 'alpine', annotations: kwok('60s') });
  const h = await startTask(row);
  await rowWhere(row, (r) => r.status === 'Running');
  await h.signal('cancel', { reason: 'recorded cancel' });
  await save('task-cancelled', 'a running Job cancelled by the cancel signal: Job deleted, Cancelled', h.workflowId, h.firstExecutionRunId);
}

async function cancelledBeforeStart(): Promise<void> {
  const row = await insert('cancel-early', { image: 'alpine' });
  // What the API does for a Normal row: signal-with-start, so the signal precedes the first task.
  const h = await client.workflow.signalWithStart('taskWorkflow', {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowId: taskId(row),
    args: [{ taskId: row.id.toString() }],
    signal: 'cancel',
    signalArgs: [{}],
  });
  await save('task-cancelled-before-job', 'cancel signalled with the start: Cancelled without a Job', h.workflowId, h.signaledRunId);
}

async function rowDeleted(): Promise<void> {
  const row = await insert('deleted', { image: 'alpine', annotations: kwok('4s') });
  const h = await startTask(row);
  await rowWhere(row, (r) => r.status === 'Running');
  await prisma.task.delete({ where: { id: row.id } });
  await save('task-row-deleted', 'the row deleted while its Job runs: the Job is deleted, result Deleted', h.workflowId, h.firstExecutionRunId);
}

async function throughOutage(): Promise<void> {
  // Its own task queue, so only the cut-off worker, then only the good one, serves it.
  const cfg = { ...config, TEMPORAL_TASK_QUEUE: `${config.TEMPORAL_TASK_QUEUE}-outage` };
  const good = await readFile(config.KUBECONFIG!, 'utf8');
  const deadPath = join(tmpdir(), `nightwatch-record-dead-${run}.kubeconfig`);
  await writeFile(deadPath, good.replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${await closedPort()}`));
  try {
    const row = await insert('outage', { image: 'alpine', annotations: kwok('1s') });
    const h = await withWorker(createKubeClients(deadPath), cfg, async () => {
      const started = await startTask(row, {}, cfg.TEMPORAL_TASK_QUEUE);
      // Two failed rounds (row shows the error, then the backoff grows) before the cluster returns.
      await rowWhere(row, (r) => r.reason !== null);
      await new Promise((r) => setTimeout(r, 5_000));
      return started;
    });
    await withWorker(kube, cfg, () =>
      save('task-outage', 'Kubernetes unreachable at first (error on the row, retried), then Succeeded', h.workflowId, h.firstExecutionRunId),
    );
  } finally {
    await rm(deadPath, { force: true });
  }
}

async function reconcileAdopts(): Promise<void> {
  const row = await insert('orphan', { image: 'alpine', annotations: kwok('8s') });
  const h = await startTask(row);
  await rowWhere(row, (r) => r.status === 'Running');
  // The owner vanishes (as after `temporal workflow terminate`); reconcile must start a new one.
  await h.terminate('recording an orphaned row');
  const id = `${prefix}reconcile`;
  const r = await client.workflow.start('reconcileWorkflow', { taskQueue: config.TEMPORAL_TASK_QUEUE, workflowId: id, args: [{ idPrefix: prefix, pageSize: 5 }] });
  await save('reconcile', 'reconcileWorkflow starting a workflow for a Running row that has none', id, r.firstExecutionRunId);
  await rowWhere(row, (x) => x.status === 'Succeeded');
  await save('task-adopted', 'a task workflow started by reconcile on a Running row: adopts the Job, Succeeded', taskId(row));
}

/** A recurring task's template (issue 9): its runs are 1 s tasks in `default`. */
async function recurringTemplate(scenario: string, kind: string, timing: unknown) {
  return prisma.recurringTask.create({
    data: {
      name: `rec-${run}-${scenario}`.slice(0, 47),
      namespace: 'default',
      info: JSON.stringify({ image: 'alpine', annotations: kwok('1s') }),
      userId: 'recorder',
      kind,
      timing: JSON.stringify(timing),
    },
  });
}

/** The rows (and so the Jobs) a recurring task's runs made, for the clean-up. */
async function runsOf(recurringTaskId: bigint): Promise<(Row & { status: string })[]> {
  const rows = await prisma.task.findMany({ where: { recurringTaskId }, select: { id: true, name: true, namespace: true, status: true } });
  for (const r of rows) if (!jobs.some((j) => j.name === r.name && j.namespace === r.namespace)) jobs.push(r);
  return rows;
}

async function recurringRun(): Promise<void> {
  const template = await recurringTemplate('rate', 'rate', { kind: 'rate', every: '1h' });
  // Started as its Schedule would start it (without the Schedule's search attributes, the run is
  // named after the workflow's start time).
  const id = `${prefix}recurring-${template.id}-run`;
  const h = await client.workflow.start('recurringRunWorkflow', {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowId: id,
    args: [{ recurringTaskId: template.id.toString(), idPrefix: prefix }],
  });
  await save('recurring-run', 'one run of a recurring task: writes its row, runs it as the child task-<id>, Succeeded', id, h.firstExecutionRunId);
  const [row] = await runsOf(template.id);
  if (!row) throw new Error('the recurring run wrote no row');
  await save('recurring-run-child', 'the task workflow of that run, a child of recurringRunWorkflow, Succeeded', taskId(row));
}

async function fixedDelay(): Promise<void> {
  const template = await recurringTemplate('delay', 'delay', { kind: 'delay', delay: '1s' });
  const id = `${prefix}recurring-${template.id}`;
  const h = await client.workflow.start('fixedDelayWorkflow', {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowId: id,
    args: [{ recurringTaskId: template.id.toString(), idPrefix: prefix, settings: { delayMs: 1_000, startAt: null, endAt: null, maxRuns: 2 } }],
  });
  await waitFor('two finished runs of the fixed delay', async () => {
    const rows = await runsOf(template.id);
    return rows.length >= 2 && rows.every((r) => isFinal(r.status)) ? true : undefined;
  });
  // maxRuns 2 ends it; should it not, the history up to here is what is recorded.
  await Promise.race([h.result().catch(() => undefined), new Promise((r) => setTimeout(r, 30_000))]);
  await h.terminate('recording finished').catch(() => undefined);
  await save('fixed-delay', 'a fixed delay of 1 s with maxRuns 2: run, wait for the task, sleep, run, end', id, h.firstExecutionRunId);
}

// ---- run ---------------------------------------------------------------------------------------

async function cleanUp(): Promise<void> {
  for await (const wf of client.workflow.list({ query: `WorkflowId STARTS_WITH '${prefix}' AND ExecutionStatus = 'Running'` })) {
    await client.workflow.getHandle(wf.workflowId, wf.runId).terminate('recording finished').catch(() => undefined);
  }
  await Promise.all(
    jobs.map((j) => kube.batch.deleteNamespacedJob({ name: j.name, namespace: j.namespace, propagationPolicy: 'Background' }).catch(() => undefined)),
  );
  await prisma.$disconnect();
  await db.drop();
}

let failures = 0;
try {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await withWorker(kube, config, async () => {
    // The scanners see every Normal (dispatch) or in-progress (reconcile) row of the database, so
    // each runs alone; the single-task scenarios run side by side.
    const phases: (() => Promise<void>)[][] = [
      [dispatchManyChildren],
      [succeeded, failed, invalid, continuesAsNew, cancelled, cancelledBeforeStart, rowDeleted, throughOutage, recurringRun, fixedDelay],
      [reconcileAdopts],
    ];
    for (const phase of phases) {
      const results = await Promise.allSettled(phase.map((s) => s()));
      for (const [i, r] of results.entries()) {
        if (r.status === 'rejected') {
          failures++;
          console.error(`scenario ${phase[i]!.name} failed: ${r.reason instanceof Error ? r.reason.stack : String(r.reason)}`);
        }
      }
    }
  });
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--', 'workflows'], { encoding: 'utf8' }).trim() !== '';
  const files = (await readdir(outDir)).filter((f) => f.endsWith('.json')).sort();
  await writeFile(
    join(outDir, 'README.md'),
    [
      `# Workflow histories: ${tag}`,
      '',
      `Recorded by \`scripts/record-histories.ts\` from commit ${commit}${dirty ? ' (with uncommitted changes in workflows/)' : ''} ` +
        `on ${new Date().toISOString().slice(0, 10)}. Every workflow of today's code must replay them ` +
        '(test/unit/replay.test.ts) for as long as workflows of this version may still be running.',
      '',
      '| file | scenario |',
      '| --- | --- |',
      ...files.map((f) => `| \`${f}\` | ${recorded.get(f.replace(/\.json$/, '')) ?? ''} |`),
      '',
    ].join('\n'),
  );
  console.log(`recorded ${files.length} histories in ${outDir}${failures ? `; ${failures} scenario(s) failed` : ''}`);
} finally {
  await cleanUp();
  await client.connection.close();
}
process.exit(failures ? 1 : 0);
