// Dispatch end to end on the real local stack: rows in MariaDB, the dispatcher and task
// workflows on the Temporal dev server with a real worker, Jobs in the local cluster.
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '../../src/db/client.ts';
import { buildJob } from '../../src/task/job.ts';
import { MAX_INFO_BYTES, parseTaskInfo } from '../../src/task/info.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { dispatchWorkflow, reconcileWorkflow } from '../../workflows/index.ts';
import { seedDemoTasks } from '../../prisma/seed.ts';
import { expectNoJob, expectOneRunPerTask } from '../support/job-ledger.ts';
import { connectStack, startWorker, testConfig, type RunningWorker, type Stack } from '../support/stack.ts';
import { insertTask, jobsOfTask, runFor, uniqueName, waitForStatus } from '../support/tasks.ts';

/** Allowed, but not in the cluster: the cluster itself must reject it. */
const missingNamespace = uniqueName('no-such-ns');
let stack: Stack;
let worker: RunningWorker | null;
const tasks: Task[] = [];
/** Every workflow these tests ran, replayed at the end to catch nondeterminism. */
const workflowIds = new Set<string>();
let dispatches = 0;

beforeAll(async () => {
  // Two namespaces of the file's own stand in for the demo tasks' `default` and `demo`.
  stack = await connectStack(testConfig({ ALLOWED_NAMESPACES: missingNamespace }), { namespaces: 2 });
  worker = await startWorker(stack);
});
afterAll(async () => {
  await worker?.stop();
  await stack?.close();
});

async function add(row: Parameters<typeof insertTask>[1]): Promise<Task> {
  const task = await insertTask(stack, row);
  tasks.push(task);
  workflowIds.add(taskWorkflowId(task.id.toString(), stack.config.WORKFLOW_ID_PREFIX));
  return task;
}

/** One dispatcher run, as the Schedule would start it. */
async function dispatch(): Promise<{ started: number; alreadyRunning: number }> {
  const workflowId = `${stack.config.WORKFLOW_ID_PREFIX}dispatch-${++dispatches}`;
  workflowIds.add(workflowId);
  return stack.client.workflow.execute(dispatchWorkflow, {
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    workflowId,
    args: [{ idPrefix: stack.config.WORKFLOW_ID_PREFIX, pageSize: 3 }],
  });
}

describe('dispatch', () => {
  it('runs the classic demo tasks to Succeeded, with exactly one labelled Job each', async () => {
    // The demo rows as `npm run db:seed` writes them, moved from the shared `default` and `demo`
    // namespaces into this file's own: their fixed names then collide with no one's Jobs.
    await seedDemoTasks(stack.prisma);
    const [own1, own2] = stack.namespaces;
    await stack.prisma.task.update({ where: { name_namespace: { name: 'demo-task-1', namespace: 'default' } }, data: { namespace: own1! } });
    await stack.prisma.task.update({ where: { name_namespace: { name: 'demo-task-2', namespace: 'demo' } }, data: { namespace: own2! } });
    const demos = await stack.prisma.task.findMany({ where: { name: { in: ['demo-task-1', 'demo-task-2'] } }, orderBy: { name: 'asc' } });
    expect(demos.map((d) => d.namespace)).toEqual([own1, own2]);
    for (const d of demos) {
      tasks.push(d);
      workflowIds.add(taskWorkflowId(d.id.toString(), stack.config.WORKFLOW_ID_PREFIX));
    }
    const totals = await dispatch();
    // The file's database holds only these two rows: the dispatcher pages no other file's tasks.
    expect(totals).toMatchObject({ started: 2 });
    for (const d of demos) {
      const done = await waitForStatus(stack, d.id, ['Succeeded', 'Failed']);
      expect(done).toMatchObject({ status: 'Succeeded', reason: null });
      expect(done.startedAt).not.toBeNull();
      expect(done.finishedAt).not.toBeNull();
      const job = await stack.kube.batch.readNamespacedJob({ name: d.name, namespace: d.namespace });
      expect(job.metadata!.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'nightwatch', 'nightwatch.io/task-id': d.id.toString(), 'nightwatch.io/attempt': '1' });
    }
    await expectOneRunPerTask(stack.jobs, demos);
    const memo = await stack.client.workflow.getHandle(taskWorkflowId(demos[0]!.id.toString(), stack.config.WORKFLOW_ID_PREFIX)).describe();
    expect(memo.memo).toMatchObject({ taskName: demos[0]!.name, namespace: demos[0]!.namespace, userId: 'demo' });
  });

  it('fails a task whose pod fails, with the reason from the Job', async () => {
    const task = await add({ info: { image: 'alpine', command: ['false'], ...runFor('500ms', 'fail') } });
    await dispatch();
    const done = await waitForStatus(stack, task.id, ['Succeeded', 'Failed']);
    expect(done.status).toBe('Failed');
    expect(done.reason).toMatch(/^BackoffLimitExceeded/);
    await expectOneRunPerTask(stack.jobs, [task]);
  });

  it('fails each malformed task with an actionable reason while a good one beside them succeeds', async () => {
    const good = await add({});
    const cases = [
      { row: { rawInfo: '{"image": "alpine", "command": ["sleep" "1"]}' }, reason: /not valid JSON/i },
      { row: { info: { command: ['true'] } }, reason: /info\.image is required/ },
      { row: { name: 'Bad_Name' }, reason: /task name "Bad_Name" is not valid/ },
      { row: { namespace: missingNamespace }, reason: /namespace '.*' does not exist in the cluster/ },
      { row: { namespace: 'kube-system' }, reason: new RegExp(`^namespace 'kube-system' is not open to tasks \\(ALLOWED_NAMESPACES is ${stack.config.ALLOWED_NAMESPACES.join(',')}\\)`) },
      { row: { info: { image: 'alpine', args: ['x'.repeat(4000), ...Array(20).fill('y'.repeat(4000))] } }, reason: /info is \d+ bytes|too large|at most/i },
    ];
    // the oversized case must really exceed the limit
    expect(JSON.stringify(cases.at(-1)!.row.info).length).toBeGreaterThan(MAX_INFO_BYTES);
    const bad = [];
    for (const c of cases) bad.push({ task: await add(c.row), reason: c.reason });
    await dispatch();
    for (const { task, reason } of bad) {
      const done = await waitForStatus(stack, task.id, ['Succeeded', 'Failed']);
      expect(done.status, `task ${task.name}`).toBe('Failed');
      expect(done.reason, `task ${task.name}`).toMatch(reason);
      // The ledger watches the file's own namespaces; a shared one (kube-system) or one that does
      // not exist can only be looked at now. A Job nightwatch made there would still be there.
      if (stack.jobs.watches(task.namespace)) await expectNoJob(stack.jobs, task);
      else expect(await jobsOfTask(stack, task), `Jobs of task ${task.name} in ${task.namespace}`).toEqual([]);
    }
    expect((await waitForStatus(stack, good.id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
    await expectOneRunPerTask(stack.jobs, [good]);
  });

  it('fails a task whose name is taken by a foreign Job, and leaves that Job untouched', async () => {
    const name = uniqueName('foreign');
    const foreign = await stack.kube.batch.createNamespacedJob({
      namespace: stack.namespace,
      body: {
        metadata: { name, labels: { owner: 'someone-else' } },
        spec: { template: { metadata: { annotations: runFor('1h').annotations }, spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox' }] } } },
      },
    });
    const task = await add({ name });
    await dispatch();
    const done = await waitForStatus(stack, task.id, ['Succeeded', 'Failed']);
    expect(done.status).toBe('Failed');
    expect(done.reason).toContain(`a Job named '${name}' already exists in namespace '${stack.namespace}' and does not belong to this task`);
    const after = await stack.kube.batch.readNamespacedJob({ name, namespace: stack.namespace });
    expect(after.metadata!.uid).toBe(foreign.metadata!.uid);
    expect(after.metadata!.deletionTimestamp).toBeUndefined();
    expect(after.metadata!.labels).toEqual({ owner: 'someone-else' });
    await expectNoJob(stack.jobs, task);
    // Never deleted and replaced either: the only Job ever of that name is the foreign one.
    expect(stack.jobs.runsNamed(stack.namespace, name).map((r) => ({ uid: r.uid, deleted: r.deleted }))).toEqual([
      { uid: foreign.metadata!.uid, deleted: false },
    ]);
  });

  it('fails a task whose Job is deleted from outside while it runs', async () => {
    const task = await add({ info: { image: 'alpine', ...runFor('1h') } });
    await dispatch();
    await waitForStatus(stack, task.id, ['Running']);
    await stack.kube.batch.deleteNamespacedJob({ name: task.name, namespace: task.namespace, propagationPolicy: 'Background' });
    const done = await waitForStatus(stack, task.id, ['Failed', 'Succeeded']);
    expect(done.status).toBe('Failed');
    expect(done.reason).toMatch(/disappeared before it finished/);
    // Failed, not run again: the deleted Job stays the only one.
    await expectOneRunPerTask(stack.jobs, [task]);
  });

  it('reconcile adopts a Running row that has no workflow, without creating a second Job', async () => {
    const task = await add({ status: 'Running' });
    const info = parseTaskInfo(task.info);
    if (!info.ok) throw new Error(info.reason);
    await stack.kube.batch.createNamespacedJob({ namespace: task.namespace, body: buildJob(task, info.info) });
    const workflowId = `${stack.config.WORKFLOW_ID_PREFIX}reconcile-1`;
    workflowIds.add(workflowId);
    const totals = await stack.client.workflow.execute(reconcileWorkflow, {
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      workflowId,
      args: [{ idPrefix: stack.config.WORKFLOW_ID_PREFIX }],
    });
    expect(totals.started).toBeGreaterThanOrEqual(1);
    const done = await waitForStatus(stack, task.id, ['Succeeded', 'Failed']);
    expect(done.status).toBe('Succeeded');
    await expectOneRunPerTask(stack.jobs, [task]);
  });

  it('dispatches rows inserted while no worker runs once one starts', async () => {
    await worker!.stop();
    worker = null;
    const waiting = [await add({}), await add({})];
    const workflowId = `${stack.config.WORKFLOW_ID_PREFIX}dispatch-offline`;
    workflowIds.add(workflowId);
    // The Schedule would start this with no worker around; it waits in the task queue.
    const handle = await stack.client.workflow.start(dispatchWorkflow, {
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      workflowId,
      args: [{ idPrefix: stack.config.WORKFLOW_ID_PREFIX }],
    });
    await new Promise((r) => setTimeout(r, 1_000));
    for (const t of waiting) expect((await stack.prisma.task.findUniqueOrThrow({ where: { id: t.id } })).status).toBe('Normal');
    worker = await startWorker(stack);
    await handle.result();
    for (const t of waiting) expect((await waitForStatus(stack, t.id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
    await expectOneRunPerTask(stack.jobs, waiting);
  });

  it('leaves histories that replay without nondeterminism', async () => {
    const histories = await Promise.all(
      [...workflowIds].map(async (workflowId) => ({ workflowId, history: await stack.client.workflow.getHandle(workflowId).fetchHistory() })),
    );
    expect(histories.length).toBeGreaterThan(10);
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle: { codePath: stack.config.WORKFLOW_BUNDLE_PATH! } }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${String(result.error)}`);
    }
    expect(failures).toEqual([]);
  });
});
