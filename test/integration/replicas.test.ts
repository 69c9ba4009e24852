// Several replicas for real: `npm run worker` processes on one task queue, some SIGKILLed in the
// middle of a batch; reconcile running beside live task workflows; workers racing to create the
// Schedules. The promise under test (README, ARCHITECTURE.md): any number of replicas, no lock,
// killing one loses nothing, every task ends final with exactly one Job and its row never moves back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import type { Task } from '../../src/db/client.ts';
import { ensureSchedules, scheduleId } from '../../src/schedules.ts';
import { connectTemporalClient } from '../../src/temporal.ts';
import { allWatchers } from '../../src/watchers/index.ts';
import { taskWorkflowStart } from '../../workflows/ids.ts';
import { expectOneRunPerTask } from '../support/job-ledger.ts';
import { connectStack, removeTemporalLeftovers, separateDeployment, startWorker, waitFor, type Stack } from '../support/stack.ts';
import { insertTask, jobsOfTask, runFor, spawnWorker, type WorkerProcess } from '../support/tasks.ts';

let stack: Stack;
const processes: WorkerProcess[] = [];
/** Configurations of this file's own deployments (task queue, prefix), cleaned up at the end. */
const deployments: Config[] = [];

beforeAll(async () => {
  stack = await connectStack();
});
afterAll(async () => {
  for (const p of processes) p.child.kill('SIGKILL');
  for (const config of deployments) await removeTemporalLeftovers(stack.client, config);
  await stack?.close();
});

/** A deployment of this file's own (separateDeployment), cleaned up at the end. */
function deployment(): Config {
  const config = separateDeployment(stack.config);
  deployments.push(config);
  return config;
}

const RANK: Record<string, number> = { Normal: 0, Pending: 1, Running: 2, Succeeded: 3, Failed: 3, Cancelled: 3 };
const isFinal = (status: string) => RANK[status] === 3;

/**
 * Every status each row shows until `stop`, read every 100 ms. A poll can miss a
 * short-lived status but never invents one, so any step back it sees is real.
 */
function recordStatuses(ids: bigint[]): { history: Map<string, string[]>; stop: () => Promise<void> } {
  const history = new Map<string, string[]>(ids.map((id) => [String(id), []]));
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const row of await stack.prisma.task.findMany({ where: { id: { in: ids } }, select: { id: true, status: true } })) {
        const seen = history.get(String(row.id))!;
        if (seen.at(-1) !== row.status) seen.push(row.status);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    history,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

function expectOnlyForward(history: Map<string, string[]>): void {
  for (const [id, seen] of history) {
    for (let i = 1; i < seen.length; i++) {
      expect(RANK[seen[i]!]! >= RANK[seen[i - 1]!]!, `task ${id} moved backwards: ${seen.join(' → ')}`).toBe(true);
    }
  }
}

describe('worker replicas', () => {
  it.each([
    { replicas: 2, killed: 1 },
    { replicas: 3, killed: 2 },
  ])(
    '$replicas workers, $killed SIGKILLed mid-batch: every task final, one Job each, no row moves backwards',
    async ({ replicas, killed }) => {
      const config = deployment();
      const workers = Array.from({ length: replicas }, () => {
        const w = spawnWorker(config, { DISPATCH_INTERVAL: '2s', RECONCILE_INTERVAL: '1h' });
        processes.push(w);
        return w;
      });
      await Promise.all(workers.map((w) => w.ready));

      const batch: Task[] = [];
      for (let i = 0; i < 24; i++) batch.push(await insertTask(stack, { info: { image: 'alpine', ...runFor('3s') } }));
      const ids = batch.map((t) => t.id);
      const statuses = recordStatuses(ids);
      try {
        await waitFor('some tasks to be under way', async () => {
          const moving = await stack.prisma.task.count({ where: { id: { in: ids }, status: { in: ['Pending', 'Running'] } } });
          return moving >= 4 ? moving : undefined;
        });
        for (const w of workers.slice(0, killed)) {
          w.child.kill('SIGKILL');
          expect(await w.exited).toBeNull();
        }
        const rows = await waitFor(
          `all ${batch.length} tasks to be final with ${replicas - killed} worker(s) left`,
          async () => {
            const rows = await stack.prisma.task.findMany({ where: { id: { in: ids } }, orderBy: { id: 'asc' } });
            return rows.every((r) => isFinal(r.status)) ? rows : undefined;
          },
          180_000,
          500,
        );
        expect(rows.map((r) => `${r.id} ${r.status} ${r.reason ?? ''}`.trim())).toEqual(rows.map((r) => `${r.id} Succeeded`));
      } finally {
        await statuses.stop();
      }
      expectOnlyForward(statuses.history);
      await expectOneRunPerTask(stack.jobs, batch);
      for (const t of batch) expect(await jobsOfTask(stack, t), `Jobs of task ${t.id} now`).toHaveLength(1);
      for (const w of workers.slice(killed)) {
        w.child.kill('SIGTERM');
        expect(await w.exited).toBe(0);
      }
    },
    300_000,
  );

  it('reconcile beside running task workflows starts no second owner, and adopts only a real orphan', async () => {
    const config = deployment();
    const worker = await startWorker({ ...stack, config });
    try {
      const batch: Task[] = [];
      for (let i = 0; i < 6; i++) batch.push(await insertTask(stack, { info: { image: 'alpine', ...runFor('25s') } }));
      const firstRuns = new Map<bigint, string>();
      for (const t of batch) {
        const handle = await stack.client.workflow.start('taskWorkflow', {
          ...taskWorkflowStart({ ...t, id: t.id.toString() }, config.WORKFLOW_ID_PREFIX),
          taskQueue: config.TEMPORAL_TASK_QUEUE,
        });
        firstRuns.set(t.id, handle.firstExecutionRunId);
      }
      const ids = batch.map((t) => t.id);
      const statuses = recordStatuses(ids);

      // Reconcile over and over while the rows go Normal → Pending → Running under their owners.
      let reconciles = 0;
      let startedBeside = 0;
      const reconcile = () =>
        stack.client.workflow.execute('reconcileWorkflow', {
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          workflowId: `${config.WORKFLOW_ID_PREFIX}reconcile-${++reconciles}`,
          // Small pages, so one run pages through the batch.
          args: [{ idPrefix: config.WORKFLOW_ID_PREFIX, pageSize: 2 }],
        }) as Promise<{ started: number; alreadyRunning: number }>;
      for (;;) {
        const [a, b] = await Promise.all([reconcile(), reconcile()]);
        startedBeside += a.started + b.started;
        const running = await stack.prisma.task.count({ where: { id: { in: ids }, status: 'Running' } });
        if (running === batch.length && reconciles >= 4) break;
        expect(reconciles, 'rows still not Running after 30 reconcile runs').toBeLessThan(60);
      }
      expect(startedBeside, `task workflows started by ${reconciles} reconcile runs beside live owners`).toBe(0);

      // The control: an owner that really is gone (terminated) is replaced, by exactly one run.
      const orphan = batch[0]!;
      const orphanId = taskWorkflowStart({ ...orphan, id: orphan.id.toString() }, config.WORKFLOW_ID_PREFIX).workflowId;
      await stack.client.workflow.getHandle(orphanId).terminate('replicas test: the owner is gone');
      const [a, b] = await Promise.all([reconcile(), reconcile()]);
      expect(a.started + b.started, 'runs started for the orphan by two concurrent reconciles').toBe(1);

      const rows = await waitFor(
        'the batch to be final',
        async () => {
          const rows = await stack.prisma.task.findMany({ where: { id: { in: ids } }, orderBy: { id: 'asc' } });
          return rows.every((r) => isFinal(r.status)) ? rows : undefined;
        },
        120_000,
        500,
      );
      await statuses.stop();
      expect(rows.map((r) => r.status)).toEqual(Array(batch.length).fill('Succeeded'));
      expectOnlyForward(statuses.history);
      for (const t of batch) {
        const id = taskWorkflowStart({ ...t, id: t.id.toString() }, config.WORKFLOW_ID_PREFIX).workflowId;
        const latest = (await stack.client.workflow.getHandle(id).describe()).runId;
        if (t === orphan) expect(latest, `${id} was adopted by a new run`).not.toBe(firstRuns.get(t.id));
        else expect(latest, `${id} still has only the run that started it`).toBe(firstRuns.get(t.id));
      }
      // Adopting means taking over the Job that exists, never creating another.
      await expectOneRunPerTask(stack.jobs, batch);
    } finally {
      await worker.stop();
    }
  }, 240_000);

  it('workers racing to create the Schedules all start, and each Schedule is created exactly once', async () => {
    const racers = 3;
    const clients = await Promise.all(Array.from({ length: racers }, () => connectTemporalClient(stack.config)));
    try {
      // Several rounds on fresh ids make a real overlap of the create calls near certain.
      for (let round = 0; round < 5; round++) {
        const config = deployment();
        const results = await Promise.allSettled(clients.map((c) => ensureSchedules(c, config)));
        const failed = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
        expect(failed, `round ${round}: ensureSchedules failures`).toEqual([]);
        const outcomes = results.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof ensureSchedules>>>).value);
        for (const watcher of allWatchers(config)) {
          const id = scheduleId(config, watcher);
          expect(outcomes.filter((o) => o.created.includes(id)), `round ${round}: racers that created ${id}`).toHaveLength(1);
          expect(outcomes.filter((o) => o.existing.includes(id)), `round ${round}: racers that found ${id}`).toHaveLength(racers - 1);
          const schedule = await stack.client.schedule.getHandle(id).describe();
          expect(schedule.action).toMatchObject({ workflowType: watcher.workflowType, taskQueue: config.TEMPORAL_TASK_QUEUE });
        }
      }
    } finally {
      for (const c of clients) await c.connection.close();
    }
  });
});
