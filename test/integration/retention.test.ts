// Retention on the real stack: the Schedule, the workflow and its activities on a real worker, rows
// in MariaDB. Rows final for longer than RETENTION_AFTER go (deleted, or moved to task_archive column
// for column); recent final rows and rows in progress stay, whatever their age; a second run finds
// nothing; a dry run counts and changes nothing; with RETENTION_AFTER unset a run does nothing.
import { randomBytes } from 'node:crypto';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import type { Task } from '../../src/db/client.ts';
import { scheduleId, ensureSchedules } from '../../src/schedules.ts';
import { TaskStatus } from '../../src/task-status.ts';
import { retentionWatcher } from '../../src/watchers/retention.ts';
import { buildWorker, connectWorker } from '../../src/worker-setup.ts';
import type { RetentionResult } from '../../workflows/retention.ts';
import { connectStack, removeTemporalLeftovers, separateDeployment, testConfig, waitFor, type Stack } from '../support/stack.ts';

const DAY = 86_400_000;
const tag = randomBytes(3).toString('hex');
let stack: Stack;
const deployments: Config[] = [];

beforeAll(async () => {
  stack = await connectStack(testConfig());
});

afterAll(async () => {
  for (const config of deployments) await removeTemporalLeftovers(stack.client, config).catch(() => undefined);
  await stack?.close();
});

/** A deployment of its own with these retention settings (small batches, so a run has several). */
function deployment(retention: Partial<Config>): Config {
  const config: Config = { ...separateDeployment(stack.config), RETENTION_BATCH_SIZE: 7, RETENTION_BATCH_PAUSE: 10, ...retention };
  deployments.push(config);
  return config;
}

/** Run one retentionWorkflow chain on a worker of `config`; two batches a run, so a long one continues as new. */
async function runRetention(config: Config): Promise<RetentionResult> {
  const connection = await connectWorker(config);
  try {
    const worker: Worker = await buildWorker({ config, prisma: stack.prisma, kube: stack.kube, connection }, { shutdownGraceTime: '1s' });
    return await worker.runUntil(
      stack.client.workflow.execute('retentionWorkflow', {
        args: [{ batchesPerRun: 2 }],
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        workflowId: `${config.WORKFLOW_ID_PREFIX}retention-${randomBytes(3).toString('hex')}`,
      }) as Promise<RetentionResult>,
    );
  } finally {
    await connection.close();
  }
}

interface Seeded {
  /** Final (each final status) and finished 100 days ago: these go. */
  old: bigint[];
  /** Everything else: final but recent, in progress (however old), final with no finished_at. */
  kept: bigint[];
}

/** Rows of every kind, named after `label`. */
async function seed(label: string): Promise<Seeded> {
  const now = Date.now();
  const rows: { status: TaskStatus; finishedAt: Date | null; createdAt: Date; goes: boolean }[] = [];
  const finals = [TaskStatus.Succeeded, TaskStatus.Failed, TaskStatus.Cancelled];
  // 24 old final rows: batches of 7 make 4 batches, two runs of the chain.
  for (let i = 0; i < 24; i++) rows.push({ status: finals[i % 3]!, finishedAt: new Date(now - 100 * DAY - i * 1000), createdAt: new Date(now - 101 * DAY), goes: true });
  // Final, but only for a day, or for 89 days: younger than RETENTION_AFTER (90d).
  for (const status of finals) rows.push({ status, finishedAt: new Date(now - DAY), createdAt: new Date(now - 2 * DAY), goes: false });
  rows.push({ status: TaskStatus.Failed, finishedAt: new Date(now - 89 * DAY), createdAt: new Date(now - 89 * DAY), goes: false });
  // In progress for 200 days: never removed, however old.
  for (const status of [TaskStatus.Normal, TaskStatus.Pending, TaskStatus.Running]) {
    rows.push({ status, finishedAt: null, createdAt: new Date(now - 200 * DAY), goes: false });
  }
  // In progress with an old finished_at (written by hand): the status decides.
  rows.push({ status: TaskStatus.Running, finishedAt: new Date(now - 150 * DAY), createdAt: new Date(now - 200 * DAY), goes: false });
  // Final without finished_at (a row from before the column existed): kept; README says so.
  rows.push({ status: TaskStatus.Succeeded, finishedAt: null, createdAt: new Date(now - 300 * DAY), goes: false });

  const seeded: Seeded = { old: [], kept: [] };
  for (const [i, row] of rows.entries()) {
    const task = await stack.prisma.task.create({
      data: {
        name: `ret-${label}-${tag}-${i}`,
        namespace: stack.namespace,
        info: JSON.stringify({ image: 'alpine:3.20', args: [label, String(i)] }),
        status: row.status,
        userId: `user-${i % 4}`,
        reason: row.status === TaskStatus.Failed ? `failed ${i}` : null,
        attempt: 1 + (i % 3),
        createdAt: row.createdAt,
        startedAt: row.finishedAt ? new Date(row.finishedAt.getTime() - 60_000) : null,
        finishedAt: row.finishedAt,
      },
    });
    (row.goes ? seeded.old : seeded.kept).push(task.id);
  }
  return seeded;
}

const allTasks = () => stack.prisma.task.findMany({ orderBy: { id: 'asc' } });
const archived = () => stack.prisma.taskArchive.findMany({ orderBy: { id: 'asc' } });
const ids = (rows: { id: bigint }[]) => rows.map((r) => r.id).sort((a, b) => (a < b ? -1 : 1));
const sorted = (list: bigint[]) => [...list].sort((a, b) => (a < b ? -1 : 1));

describe('retention', () => {
  let first: Seeded;
  let before: Task[];

  beforeAll(async () => {
    first = await seed('a');
    before = await allTasks();
  });

  it('is off by default: the Schedule exists, and its run (triggered here) changes nothing', async () => {
    const config = deployment({});
    expect(config.RETENTION_AFTER).toBeUndefined();
    await ensureSchedules(stack.client, config, [retentionWatcher(config)]);
    const handle = stack.client.schedule.getHandle(scheduleId(config, retentionWatcher(config)));
    const description = await handle.describe();
    expect(description.action).toMatchObject({ workflowType: 'retentionWorkflow', taskQueue: config.TEMPORAL_TASK_QUEUE });
    expect(description.spec.intervals?.[0]?.every).toBe(config.RETENTION_INTERVAL);

    const connection = await connectWorker(config);
    try {
      const worker = await buildWorker({ config, prisma: stack.prisma, kube: stack.kube, connection }, { shutdownGraceTime: '1s' });
      const result = await worker.runUntil(async () => {
        await handle.trigger();
        const run = await waitFor('the triggered retention run', async () => (await handle.describe()).info.recentActions[0]?.action);
        return (await stack.client.workflow.getHandle(run.workflow.workflowId, run.workflow.firstExecutionRunId).result()) as RetentionResult;
      });
      expect(result).toEqual({ enabled: false, removed: 0, batches: 0 });
    } finally {
      await connection.close();
    }
    expect(await allTasks()).toEqual(before);
  });

  it('a dry run reports how many rows would go and changes nothing', async () => {
    const result = await runRetention(deployment({ RETENTION_AFTER: 90 * DAY, RETENTION_DRY_RUN: true, RETENTION_MODE: 'delete' }));
    expect(result).toMatchObject({ enabled: true, dryRun: true, mode: 'delete', wouldRemove: first.old.length, removed: 0 });
    expect(await allTasks()).toEqual(before);
    expect(await archived()).toEqual([]);
  });

  it('archive mode moves old final rows to task_archive column for column, keeps the rest; a second run is a no-op', async () => {
    const config = deployment({ RETENTION_AFTER: 90 * DAY, RETENTION_MODE: 'archive' });
    const result = await runRetention(config);
    expect(result).toMatchObject({ enabled: true, dryRun: false, mode: 'archive', removed: first.old.length, batches: 4 });

    expect(ids(await allTasks())).toEqual(sorted(first.kept));
    const moved = await archived();
    expect(ids(moved)).toEqual(sorted(first.old));
    const original = new Map(before.map((t) => [t.id, t]));
    for (const { archivedAt, ...row } of moved) {
      expect(row).toEqual(original.get(row.id));
      expect(Math.abs(archivedAt.getTime() - Date.now())).toBeLessThan(5 * 60_000);
    }

    const tasksAfter = await allTasks();
    expect(await runRetention(config)).toMatchObject({ enabled: true, removed: 0, batches: 0 });
    expect(await allTasks()).toEqual(tasksAfter);
    expect(await archived()).toEqual(moved);
  });

  it('delete mode deletes old final rows, keeps the rest and touches no archive; a second run is a no-op', async () => {
    const second = await seed('b');
    const archiveBefore = await archived();
    const config = deployment({ RETENTION_AFTER: 90 * DAY, RETENTION_MODE: 'delete' });
    expect(await runRetention(config)).toMatchObject({ enabled: true, mode: 'delete', removed: second.old.length, batches: 4 });
    expect(ids(await allTasks())).toEqual(sorted([...first.kept, ...second.kept]));
    expect(await archived()).toEqual(archiveBefore);

    const tasksAfter = await allTasks();
    expect(await runRetention(config)).toMatchObject({ removed: 0, batches: 0 });
    expect(await allTasks()).toEqual(tasksAfter);
  });

  it('task_archive has every column of task, of the same type (archiving copies them all by name)', async () => {
    const columns = await stack.prisma.$queryRaw<{ t: string; c: string; type: string; nullable: string }[]>`
      SELECT table_name AS t, column_name AS c, column_type AS type, is_nullable AS nullable FROM information_schema.columns
      WHERE table_schema = DATABASE() AND table_name IN ('task', 'task_archive')`;
    const of = (table: string) => new Map(columns.filter((r) => r.t === table).map((r) => [r.c, `${r.type} ${r.nullable}`]));
    const archive = of('task_archive');
    const missing = [...of('task')].filter(([column, type]) => archive.get(column)?.replace(/ (NO|YES)$/, '') !== type.replace(/ (NO|YES)$/, ''));
    expect(missing, 'columns of task that task_archive lacks or types differently').toEqual([]);
  });

  it('a run never touches Kubernetes', () => {
    expect(stack.jobs.problems).toEqual([]);
    expect(stack.jobs.all()).toEqual([]);
  });
});
