// `npm run worker` as real processes: killed mid-batch (20 tasks, and 1,000) and replaced, and
// restarted after the cadence was changed through the Temporal CLI.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.ts';
import type { Task } from '../../src/db/client.ts';
import { policyFromConfig } from '../../src/policy.ts';
import { isFinal } from '../../src/task-status.ts';
import { expectOneRunPerTask } from '../support/job-ledger.ts';
import { connectStack, waitFor, type Stack } from '../support/stack.ts';
import { insertTask, runFor, spawnWorker, uniqueName, type WorkerProcess } from '../support/tasks.ts';

/** The batch: large enough that the kill lands with hundreds of tasks in every state. */
const BATCH = 1_000;

const run = promisify(execFile);
let stack: Stack;
const workers: WorkerProcess[] = [];
const tasks: Task[] = [];

beforeAll(async () => {
  stack = await connectStack();
});
afterAll(async () => {
  for (const w of workers) w.child.kill('SIGKILL');
  await stack?.close();
});

function worker(env: Record<string, string> = {}): WorkerProcess {
  const w = spawnWorker(stack.config, { DISPATCH_INTERVAL: '2s', RECONCILE_INTERVAL: '1h', ...env });
  workers.push(w);
  return w;
}

describe('worker processes', () => {
  // A worker killed mid-batch leaves some task between its two launch steps: the Job created, the
  // row not yet Pending. The new worker runs that launch again (a local activity's result is only
  // recorded when its workflow task completes), and it must take the Job it finds as its own. In a
  // real kill only the few tasks inside that window take this path, so it is checked here directly,
  // on the real activities, before any worker runs in this file.
  it('a launch run again after its worker died between creating the Job and writing Pending adopts that Job: no second Job', async () => {
    const activities = createActivities({ prisma: stack.prisma, policy: policyFromConfig(stack.config), kube: stack.kube, temporal: stack.client });
    const task = await insertTask(stack, { info: { image: 'alpine', ...runFor('2s') } });
    const loaded = await activities.loadTask(task.id.toString());
    if (!loaded?.valid) throw new Error(`the task should load as valid: ${JSON.stringify(loaded)}`);
    expect(await activities.createJob({ task: loaded, info: loaded.info })).toBe('created');

    const again = await activities.launchTask(task.id.toString());
    expect(again).toMatchObject({ outcome: 'launched', write: { updated: true } });
    expect((await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } })).status).toBe('Pending');
    // The Job's pod too: a Job replaced after its pod started would show as a second run.
    await waitFor('the Job to get its pod', async () => (stack.jobs.runsOf(task)[0]?.pods.size ? true : undefined), 60_000);
    await expectOneRunPerTask(stack.jobs, [task]);
  });

  it('loses nothing when a worker is SIGKILLed mid-batch: every task ends final with exactly one Job', async () => {
    const first = worker();
    await first.ready;
    for (let i = 0; i < 20; i++) tasks.push(await insertTask(stack, { info: { image: 'alpine', ...runFor('4s') } }));
    await waitFor(
      'some tasks to be under way',
      async () => {
        const moving = await stack.prisma.task.count({ where: { id: { in: tasks.map((t) => t.id) }, status: { in: ['Pending', 'Running'] } } });
        return moving >= 5 ? moving : undefined;
      },
      60_000,
    );
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();

    const second = worker();
    await second.ready;
    await waitFor(
      'all 20 tasks to be final',
      async () => {
        const rows = await stack.prisma.task.findMany({ where: { id: { in: tasks.map((t) => t.id) } } });
        return rows.every((r) => ['Succeeded', 'Failed', 'Cancelled'].includes(r.status)) ? rows : undefined;
      },
      150_000,
      500,
    ).then((rows) => expect(rows.map((r) => r.status)).toEqual(Array(20).fill('Succeeded')));
    // Neither the killed worker nor its replacement ran a task twice (a Job deleted and made again).
    await expectOneRunPerTask(stack.jobs, tasks);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 240_000);

  it('loses nothing when a worker is SIGKILLed during a 1,000-task batch: every task Succeeded with exactly one Job', async () => {
    const first = worker();
    await first.ready;
    // One INSERT, as a batch lands from SQL; names from one random prefix cannot collide.
    const prefix = uniqueName('kill');
    const info = JSON.stringify({ image: 'alpine', ...runFor('2s') });
    const names = Array.from({ length: BATCH }, (_, i) => `${prefix}-${i}`);
    await stack.prisma.task.createMany({ data: names.map((name) => ({ name, namespace: stack.namespace, info, userId: 'tester' })) });
    const batch = await stack.prisma.task.findMany({ where: { namespace: stack.namespace, name: { in: names } } });
    expect(batch).toHaveLength(BATCH);
    const ids = batch.map((t) => t.id);
    const byStatus = async () => {
      const groups = await stack.prisma.task.groupBy({ by: ['status'], where: { id: { in: ids } }, _count: { _all: true } });
      return Object.fromEntries(groups.map((g) => [g.status, g._count._all])) as Record<string, number>;
    };
    // Killed with the batch well under way: Jobs created and running, rows still waiting for theirs.
    const atKill = await waitFor(
      'a fifth of the batch to be under way',
      async () => {
        const counts = await byStatus();
        return (counts.Pending ?? 0) + (counts.Running ?? 0) >= BATCH / 5 ? counts : undefined;
      },
      300_000,
      250,
    );
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();
    expect(atKill.Normal ?? 0, `rows still waiting for their Job when the worker was killed: ${JSON.stringify(atKill)}`).toBeGreaterThan(0);

    const second = worker();
    await second.ready;
    const final = await waitFor(
      `all ${BATCH} tasks to be final`,
      async () => {
        const counts = await byStatus();
        return Object.keys(counts).every(isFinal) ? counts : undefined;
      },
      15 * 60_000,
      2_000,
    );
    expect(final).toEqual({ Succeeded: BATCH });
    await expectOneRunPerTask(stack.jobs, batch);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 25 * 60_000);

  it('keeps a cadence changed with `temporal schedule update` across a worker restart', async () => {
    const cli = process.env.NIGHTWATCH_TEMPORAL_CLI;
    if (!cli) throw new Error('NIGHTWATCH_TEMPORAL_CLI is not set; export the stack settings: eval "$(npm run -s stack env)"');
    const first = worker();
    await first.ready;
    const id = `${stack.config.WORKFLOW_ID_PREFIX}nightwatch-dispatch`;
    const before = await stack.client.schedule.getHandle(id).describe();
    expect(before.spec.intervals?.[0]?.every).toBe(2_000);

    // The README's command. `schedule update` replaces the whole schedule, so the action is restated.
    await run(cli, [
      'schedule', 'update', '--address', stack.config.TEMPORAL_ADDRESS, '--namespace', stack.config.TEMPORAL_NAMESPACE,
      '--schedule-id', id, '--interval', '45s', '--overlap-policy', 'Skip',
      '--workflow-id', id, '--task-queue', stack.config.TEMPORAL_TASK_QUEUE, '--type', 'dispatchWorkflow',
      '--input', JSON.stringify({ idPrefix: stack.config.WORKFLOW_ID_PREFIX, pageSize: stack.config.DISPATCH_PAGE_SIZE }),
    ]);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = worker();
    await second.ready;
    expect(second.output()).toContain(`kept: ${id}`);
    const after = await stack.client.schedule.getHandle(id).describe();
    expect(after.spec.intervals?.[0]?.every).toBe(45_000);
    expect(after.policies.overlap).toBe('SKIP');
    expect(after.action).toMatchObject({ type: 'startWorkflow', workflowType: 'dispatchWorkflow' });
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
