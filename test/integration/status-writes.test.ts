// Stale writers against the real database: the conditional status writes of activities/database.ts
// (`WHERE id = ? AND attempt = ? AND status IN (…)`) on MariaDB, called as the task workflow calls
// them. An old attempt, a replayed step and a second replica must never move a row backwards; a row
// the user deleted must take its Job with it and never get a new one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabaseActivities } from '../../activities/database.ts';
import { policyFromConfig } from '../../src/policy.ts';
import { createPrisma, type PrismaClient, type Task } from '../../src/db/client.ts';
import { TaskStatus } from '../../src/task-status.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { taskWorkflow } from '../../workflows/task.ts';
import { connectStack, startWorker, waitFor, type Stack } from '../support/stack.ts';
import { insertTask, runFor, waitForStatus } from '../support/tasks.ts';

let stack: Stack;
/** A second process's connection pool: the other replica in a race. */
let otherReplica: PrismaClient;

beforeAll(async () => {
  stack = await connectStack();
  otherReplica = createPrisma(stack.config.DATABASE_URL, 2);
});
afterAll(async () => {
  await otherReplica?.$disconnect();
  await stack?.close();
});

const activitiesOf = (prisma: PrismaClient) => createDatabaseActivities(prisma, policyFromConfig(stack.config));
const db = () => activitiesOf(stack.prisma);
const rowOf = (task: Pick<Task, 'id'>) => stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });

/** A row as a workflow would have left it: in `status`, at `attempt`. */
async function rowIn(status: TaskStatus, attempt = 1, reason: string | null = null): Promise<Task> {
  const task = await insertTask(stack, {});
  return stack.prisma.task.update({
    where: { id: task.id },
    data: {
      status,
      attempt,
      reason,
      ...(status === TaskStatus.Running || status === TaskStatus.Succeeded ? { startedAt: new Date('2026-01-01T00:00:01Z') } : {}),
      ...(status === TaskStatus.Succeeded || status === TaskStatus.Failed ? { finishedAt: new Date('2026-01-01T00:00:02Z') } : {}),
    },
  });
}

describe('an old attempt writing after a retry', () => {
  // Attempt 1's workflow was slow to notice its Job ended; the user retried meanwhile.
  it.each([
    { now: TaskStatus.Normal, late: TaskStatus.Pending, story: "attempt 1 records its Job as created after the retry reset the row" },
    { now: TaskStatus.Pending, late: TaskStatus.Running, story: "attempt 1's pod started late" },
    { now: TaskStatus.Running, late: TaskStatus.Failed, story: "attempt 1's Job failed late" },
    { now: TaskStatus.Running, late: TaskStatus.Succeeded, story: "attempt 1's Job succeeded late" },
    { now: TaskStatus.Pending, late: TaskStatus.Cancelled, story: 'a cancel of attempt 1 lands late' },
  ])('leaves attempt 2 $now when $story', async ({ now, late }) => {
    const task = await rowIn(now, 2);

    const result = await db().markStatus({ taskId: task.id.toString(), attempt: 1, to: late, reason: 'from attempt 1' });

    expect(result).toEqual({ updated: false, current: { status: now, attempt: 2 } });
    expect(await rowOf(task)).toEqual(task);
  });
});

describe('a replayed step', () => {
  it('applies the same move once: the second identical write changes nothing, not even started_at', async () => {
    const task = await rowIn(TaskStatus.Pending);
    const write = { taskId: task.id.toString(), attempt: 1, to: TaskStatus.Running } as const;

    expect(await db().markStatus(write)).toEqual({ updated: true });
    const running = await rowOf(task);
    expect(running.status).toBe('Running');
    await new Promise((r) => setTimeout(r, 20)); // a second write would stamp a later started_at
    expect(await db().markStatus(write)).toEqual({ updated: false, current: { status: 'Running', attempt: 1 } });

    expect(await rowOf(task)).toEqual(running);
  });

  it.each([
    { now: TaskStatus.Succeeded, stale: TaskStatus.Running },
    { now: TaskStatus.Succeeded, stale: TaskStatus.Pending },
    { now: TaskStatus.Running, stale: TaskStatus.Pending },
    { now: TaskStatus.Failed, stale: TaskStatus.Running },
    { now: TaskStatus.Cancelled, stale: TaskStatus.Pending },
    // A final status is final: a second outcome does not replace the first.
    { now: TaskStatus.Succeeded, stale: TaskStatus.Failed },
    { now: TaskStatus.Failed, stale: TaskStatus.Cancelled },
  ])('does not move a $now row back to $stale', async ({ now, stale }) => {
    const task = await rowIn(now, 1, now === TaskStatus.Failed ? 'BackoffLimitExceeded: the pod failed' : null);

    const result = await db().markStatus({ taskId: task.id.toString(), attempt: 1, to: stale, reason: 'replayed' });

    expect(result).toEqual({ updated: false, current: { status: now, attempt: 1 } });
    expect(await rowOf(task)).toEqual(task);
  });

  it('walks the whole lifecycle forward, then refuses every step of it again', async () => {
    const task = await insertTask(stack, {});
    const taskId = task.id.toString();
    const steps = [TaskStatus.Pending, TaskStatus.Running, TaskStatus.Succeeded];
    for (const to of steps) expect(await db().markStatus({ taskId, attempt: 1, to }), `move to ${to}`).toEqual({ updated: true });
    const done = await rowOf(task);
    expect(done).toMatchObject({ status: 'Succeeded', reason: null });
    expect(done.startedAt).not.toBeNull();
    expect(done.finishedAt).not.toBeNull();

    for (const to of steps) {
      expect(await db().markStatus({ taskId, attempt: 1, to }), `replayed move to ${to}`).toEqual({
        updated: false,
        current: { status: 'Succeeded', attempt: 1 },
      });
    }
    expect(await rowOf(task)).toEqual(done);
  });
});

describe('two replicas racing the same transition', () => {
  // Each replica has its own connection pool, as two worker processes would.
  it('lets exactly one of them move each row to Running', async () => {
    const tasks = await Promise.all(Array.from({ length: 10 }, () => rowIn(TaskStatus.Pending)));
    for (const task of tasks) {
      const write = { taskId: task.id.toString(), attempt: 1, to: TaskStatus.Running } as const;
      const results = await Promise.all([activitiesOf(stack.prisma).markStatus(write), activitiesOf(otherReplica).markStatus(write)]);
      expect(results.filter((r) => r.updated), `task ${task.id}: ${JSON.stringify(results)}`).toHaveLength(1);
      expect(results).toContainEqual({ updated: false, current: { status: 'Running', attempt: 1 } });
    }
  });

  it('keeps the first of two different outcomes, and tells the loser what won', async () => {
    const tasks = await Promise.all(Array.from({ length: 10 }, () => rowIn(TaskStatus.Running)));
    for (const task of tasks) {
      const taskId = task.id.toString();
      const [succeeded, failed] = await Promise.all([
        activitiesOf(stack.prisma).markStatus({ taskId, attempt: 1, to: TaskStatus.Succeeded }),
        activitiesOf(otherReplica).markStatus({ taskId, attempt: 1, to: TaskStatus.Failed, reason: 'DeadlineExceeded' }),
      ]);
      expect([succeeded.updated, failed.updated].filter(Boolean), `task ${taskId}: ${JSON.stringify([succeeded, failed])}`).toHaveLength(1);
      const winner = succeeded.updated ? TaskStatus.Succeeded : TaskStatus.Failed;
      const loser = succeeded.updated ? failed : succeeded;
      expect(loser).toEqual({ updated: false, current: { status: winner, attempt: 1 } });
      expect(await rowOf(task)).toMatchObject({ status: winner, reason: winner === TaskStatus.Failed ? 'DeadlineExceeded' : null });
    }
  });
});

describe('recordReason', () => {
  it('from an old attempt changes nothing on the new attempt', async () => {
    const task = await rowIn(TaskStatus.Running, 2);

    await db().recordReason({ taskId: task.id.toString(), attempt: 1, reason: 'reading the Job failed: ECONNREFUSED; retrying in 2 s' });

    expect(await rowOf(task)).toEqual(task);
  });

  it.each([TaskStatus.Succeeded, TaskStatus.Failed, TaskStatus.Cancelled])('changes nothing on a %s row', async (status) => {
    const task = await rowIn(status, 1, status === TaskStatus.Succeeded ? null : 'why it ended');

    await db().recordReason({ taskId: task.id.toString(), attempt: 1, reason: 'deleting the Job failed: timeout; retrying in 4 s' });
    await db().recordReason({ taskId: task.id.toString(), attempt: 1, reason: null });

    expect(await rowOf(task)).toEqual(task);
  });

  it('shows and clears the error on the row of the current attempt in progress', async () => {
    // The positive case, so the two above cannot pass because recordReason writes nothing at all.
    const task = await rowIn(TaskStatus.Running, 2);
    const taskId = task.id.toString();
    await db().recordReason({ taskId, attempt: 2, reason: 'reading the Job failed: ECONNREFUSED; retrying in 2 s' });
    expect(await rowOf(task)).toMatchObject({ status: 'Running', reason: 'reading the Job failed: ECONNREFUSED; retrying in 2 s' });
    await db().recordReason({ taskId, attempt: 2, reason: null });
    expect(await rowOf(task)).toMatchObject({ status: 'Running', reason: null });
  });
});

describe('a row deleted while its task runs', () => {
  it('has its running Job deleted, and no Job is ever made for it again', async () => {
    const worker = await startWorker(stack);
    try {
      const task = await insertTask(stack, { info: { image: 'alpine', ...runFor('1h') } });
      const handle = await stack.client.workflow.start(taskWorkflow, {
        taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
        workflowId: taskWorkflowId(task.id.toString(), stack.config.WORKFLOW_ID_PREFIX),
        // A long Job writes nothing for the workflow to trip over: it notices the deletion on its
        // first quiet look (a minute by default, shortened here).
        args: [{ taskId: task.id.toString(), fallbackAfterMs: 2_000 }],
      });
      await waitForStatus(stack, task.id, ['Running']);
      await stack.jobs.sync();
      const [job] = stack.jobs.runsOf(task);
      expect(job, 'the running Job in the ledger').toBeDefined();

      await stack.prisma.task.delete({ where: { id: task.id } });

      await waitFor(
        `Job ${task.namespace}/${task.name} (uid ${job!.uid}) of the deleted row to be deleted`,
        async () => (stack.jobs.runsOf(task).find((r) => r.uid === job!.uid)?.deleted ? true : undefined),
        30_000,
        500,
      );
      expect(await handle.result()).toEqual({ status: 'Deleted' });
      // The workflow has ended, and nothing else runs tasks here: whatever the ledger holds now is all
      // the row ever had. One Job, the one that ran (one pod), now deleted.
      await stack.jobs.sync();
      expect(stack.jobs.runsOf(task).map((r) => ({ uid: r.uid, pods: r.pods.size, deleted: r.deleted }))).toEqual([
        { uid: job!.uid, pods: 1, deleted: true },
      ]);
    } finally {
      await worker.stop();
    }
  }, 90_000);
});
