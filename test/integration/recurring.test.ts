// Recurring tasks (issue 9) on the real stack: the API creates Schedules `recurring-<id>` (or the
// fixed-delay workflow), a real worker runs each run as an ordinary task, Jobs run on KWOK. Times are
// read from the runs' names (<name>-<yyyymmdd>-<hhmmss>, the scheduled time in UTC).
import { randomBytes } from 'node:crypto';
import { ScheduleNotFoundError, WorkflowNotFoundError } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import type { Config } from '../../src/config.ts';
import type { Task } from '../../src/db/client.ts';
import { isFinal } from '../../src/task-status.ts';
import { recurringWorkflowId } from '../../workflows/recurring.ts';
import { expectOneRunPerTask } from '../support/job-ledger.ts';
import { connectStack, removeTemporalLeftovers, separateDeployment, startWorker, testConfig, waitFor, type RunningWorker, type Stack } from '../support/stack.ts';
import { runFor, spawnWorker, type WorkerProcess } from '../support/tasks.ts';

const tag = randomBytes(3).toString('hex');
const ALICE = { user: `alice-${tag}`, token: `alice-token-${tag}` };
const BOB = { user: `bob-${tag}`, token: `bob-token-${tag}` };
let stack: Stack;
let worker: RunningWorker;
let app: FastifyInstance;
const apps: FastifyInstance[] = [];
const processes: WorkerProcess[] = [];
const configs: Config[] = [];

beforeAll(async () => {
  stack = await connectStack(testConfig({ API_TOKENS: `${ALICE.token}:${ALICE.user},${BOB.token}:${BOB.user}` }));
  worker = await startWorker(stack);
  app = buildApp(stack);
  apps.push(app);
  configs.push(stack.config);
});

afterAll(async () => {
  for (const p of processes) p.child.kill('SIGKILL');
  for (const config of configs) {
    for await (const s of stack.client.schedule.list()) {
      if (s.scheduleId.startsWith(`${config.WORKFLOW_ID_PREFIX}recurring-`)) await stack.client.schedule.getHandle(s.scheduleId).delete().catch(() => undefined);
    }
    if (config !== stack.config) await removeTemporalLeftovers(stack.client, config);
  }
  for (const a of apps) await a.close();
  await worker?.stop();
  await stack?.close();
});

type Reply = { status: number; body: any };
async function call(method: string, url: string, body?: unknown, token = ALICE.token, on = app): Promise<Reply> {
  const response = await on.inject({
    method: method as 'GET',
    url,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  });
  return { status: response.statusCode, body: response.body ? response.json() : undefined };
}

const name = (label: string) => `${label}-${randomBytes(2).toString('hex')}`;
async function create(body: Record<string, unknown>, on = app, config = stack.config): Promise<any> {
  const reply = await call('POST', '/recurring-tasks', { name: name('rec'), namespace: stack.namespace, info: { image: 'alpine', ...runFor('1s') }, ...body }, ALICE.token, on);
  expect(reply.status, JSON.stringify(reply.body)).toBe(201);
  return { ...reply.body, temporalId: recurringWorkflowId(reply.body.id, config.WORKFLOW_ID_PREFIX) };
}

const runsOf = (id: string) => stack.prisma.task.findMany({ where: { recurringTaskId: BigInt(id) }, orderBy: { id: 'asc' } });
/** The time a run was scheduled for, from its name. */
function scheduledAt(run: Pick<Task, 'name'>): Date {
  const m = /-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})$/.exec(run.name)!;
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
}
function waitForRuns(id: string, count: number, timeoutMs = 60_000, final = false): Promise<Task[]> {
  return waitFor(`${count} runs of recurring task ${id}${final ? ', final' : ''}`, async () => {
    const runs = await runsOf(id);
    if (runs.length < count) return undefined;
    return !final || runs.slice(0, count).every((r) => isFinal(r.status)) ? runs : undefined;
  }, timeoutMs, 200);
}
/** No two runs were in progress at once: each started after the one before had ended. */
function expectNoOverlap(runs: Task[]) {
  for (let i = 1; i < runs.length; i++) {
    expect(runs[i - 1]!.finishedAt, `run ${runs[i - 1]!.name} ended`).not.toBeNull();
    expect(runs[i]!.createdAt.getTime(), `${runs[i]!.name} created after ${runs[i - 1]!.name} ended`).toBeGreaterThanOrEqual(runs[i - 1]!.finishedAt!.getTime());
  }
}
const remove = async (id: string) => expect((await call('DELETE', `/recurring-tasks/${id}`)).status).toBe(204);

describe('validation', () => {
  it('answers 400 naming the field', async () => {
    const bad = async (body: Record<string, unknown>) => {
      const reply = await call('POST', '/recurring-tasks', { name: name('bad'), namespace: stack.namespace, info: { image: 'alpine' }, ...body });
      expect(reply.status, JSON.stringify(reply.body)).toBe(400);
      return reply.body.error.fields.map((f: { field: string }) => f.field);
    };
    expect(await bad({ cron: '0 25 * * *' })).toEqual(['cron']);
    expect(await bad({ cron: '*/10 * * * * * * *' })).toEqual(['cron']);
    expect(await bad({ cron: '0 9 * * *', timeZone: 'Europe/Atlantis' })).toEqual(['timeZone']);
    expect(await bad({ every: '500ms' })).toEqual(['every']);
    expect(await bad({ delay: '0s' })).toEqual(['delay']);
    expect(await bad({ every: '1m', startAt: '2031-01-02T00:00:00Z', endAt: '2031-01-01T00:00:00Z' })).toEqual(['endAt']);
    expect(await bad({ calendar: { hour: 24 } })).toEqual(['calendar.hour']);
    expect(await bad({})).toEqual(['cron']);
    const closed = await call('POST', '/recurring-tasks', { name: name('ns'), namespace: 'kube-system', info: { image: 'alpine' }, every: '1m' });
    expect(closed.status).toBe(403);
    expect(closed.body.error.fields[0].field).toBe('namespace');
    expect(await stack.prisma.recurringTask.count()).toBe(0);
  });
});

describe('schedules', () => {
  it('runs a cron with seconds on time, each run an ordinary task; deleting it leaves no Schedule and keeps the runs', async () => {
    const rec = await create({ cron: '*/4 * * * * *', overlap: 'allowAll' });
    expect(rec.live.nextRunTimes.length).toBeGreaterThan(0);
    for (const t of rec.live.nextRunTimes) expect(new Date(t).getUTCSeconds() % 4).toBe(0);
    const runs = await waitForRuns(rec.id, 3, 60_000, true);
    for (const run of runs.slice(0, 3)) {
      const at = scheduledAt(run);
      expect(at.getUTCSeconds() % 4).toBe(0);
      // Written at its tick, never before it and before the next one is due (4 s later). Not a
      // tighter bound: on a loaded 2-core CI machine the Schedule's action plus the first workflow
      // task took 1.1 s once, and a latency target is the benchmarks' business, not a test's.
      expect(run.createdAt.getTime() - at.getTime(), `${run.name} created at ${run.createdAt.toISOString()}`).toBeGreaterThanOrEqual(0);
      expect(run.createdAt.getTime() - at.getTime(), `${run.name} created at ${run.createdAt.toISOString()}`).toBeLessThan(4_000);
      expect(run).toMatchObject({ status: 'Succeeded', userId: ALICE.user, namespace: stack.namespace });
    }
    await expectOneRunPerTask(stack.jobs, runs.slice(0, 3));
    const got = await call('GET', `/recurring-tasks/${rec.id}`);
    expect(got.body.recentRuns.length).toBeGreaterThanOrEqual(3);
    expect(got.body.live.runsTaken).toBeGreaterThanOrEqual(3);
    // Bob sees nothing of Alice's.
    expect((await call('GET', `/recurring-tasks/${rec.id}`, undefined, BOB.token)).status).toBe(404);
    expect((await call('GET', '/recurring-tasks', undefined, BOB.token)).body.recurringTasks).toEqual([]);

    await remove(rec.id);
    await expect(stack.client.schedule.getHandle(rec.temporalId).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    expect((await runsOf(rec.id)).length).toBeGreaterThanOrEqual(3);
    expect((await call('GET', `/recurring-tasks/${rec.id}`)).status).toBe(404);
  }, 90_000);

  it('resolves a calendar and a cron in their time zones', async () => {
    const ny = await create({ calendar: { hour: 9, minute: 30 }, timeZone: 'America/New_York' });
    expect(ny.live.nextRunTimes.length).toBeGreaterThan(1);
    const local = new Intl.DateTimeFormat('en-GB', { timeZone: 'America/New_York', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    for (const t of ny.live.nextRunTimes) {
      expect(local.format(new Date(t))).toBe('09:30');
      expect([13, 14]).toContain(new Date(t).getUTCHours()); // EDT or EST
    }
    const kolkata = await create({ cron: '0 0 10 * * *', timeZone: 'Asia/Kolkata' });
    for (const t of kolkata.live.nextRunTimes) expect(new Date(t).toISOString()).toMatch(/T04:30:00\.000Z$/);
    await remove(ny.id);
    await remove(kolkata.id);
  });

  it('skip skips while the previous run is in progress', async () => {
    const rec = await create({ cron: '*/2 * * * * *', overlap: 'skip', info: { image: 'alpine', ...runFor('7s') } });
    const [first] = await waitForRuns(rec.id, 1);
    await new Promise((r) => setTimeout(r, 5_000));
    const during = await runsOf(rec.id);
    expect(isFinal((await stack.prisma.task.findUniqueOrThrow({ where: { id: first!.id } })).status)).toBe(false);
    expect(during.length).toBe(1);
    const runs = await waitForRuns(rec.id, 2, 60_000);
    expect((await stack.client.schedule.getHandle(rec.temporalId).describe()).info.numActionsSkippedOverlap).toBeGreaterThan(0);
    await remove(rec.id);
    const final = await waitForRuns(rec.id, runs.length, 60_000, true);
    expectNoOverlap(final);
  }, 90_000);

  it('buffer-one runs one later, once the previous run has ended', async () => {
    const rec = await create({ cron: '*/3 * * * * *', overlap: 'bufferOne', info: { image: 'alpine', ...runFor('7s') } });
    await waitForRuns(rec.id, 2, 60_000);
    expect((await call('POST', `/recurring-tasks/${rec.id}/pause`)).status).toBe(200);
    const runs = await waitForRuns(rec.id, 2, 60_000, true);
    const [first, second] = runs;
    // The second was meant for the next tick, 3 s after the first, but ran only after the first ended.
    expect(scheduledAt(second!).getTime() - scheduledAt(first!).getTime()).toBe(3_000);
    expect(second!.createdAt.getTime()).toBeGreaterThan(scheduledAt(second!).getTime() + 2_000);
    expectNoOverlap(runs.filter((r) => isFinal(r.status)));
    await remove(rec.id);
  }, 90_000);

  it('pauses, resumes and triggers; a pause through Temporal itself shows and is kept', async () => {
    const rec = await create({ cron: '0 0 0 1 1 *' }); // once a year: nothing runs unless triggered
    const paused = await call('POST', `/recurring-tasks/${rec.id}/pause`);
    expect(paused.status, JSON.stringify(paused.body)).toBe(200);
    expect(paused.body.live.paused).toBe(true);
    expect(paused.body.settings.paused).toBe(true);
    const triggered = await call('POST', `/recurring-tasks/${rec.id}/trigger`);
    expect(triggered.status, JSON.stringify(triggered.body)).toBe(202);
    const [run] = await waitForRuns(rec.id, 1, 30_000, true);
    expect(run!.status).toBe('Succeeded');
    const resumed = await call('POST', `/recurring-tasks/${rec.id}/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body.live.paused).toBe(false);

    // `temporal schedule pause` (the client's equivalent): the API shows it and a PATCH keeps it.
    await stack.client.schedule.getHandle(rec.temporalId).pause('maintenance');
    const patched = await call('PATCH', `/recurring-tasks/${rec.id}`, { overlap: 'allowAll', info: { image: 'alpine', ...runFor('2s') } });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(patched.body.live).toMatchObject({ paused: true, note: 'maintenance', overlap: 'ALLOW_ALL' });
    expect(patched.body.info).toEqual({ image: 'alpine', ...runFor('2s') });
    await remove(rec.id);
  }, 60_000);

  it('cancelOther and terminateOther replace the run in progress: its task ends Cancelled and its Job is deleted', async () => {
    const long = { image: 'alpine', ...runFor('60s') };
    const cancel = await create({ cron: '*/6 * * * * *', overlap: 'cancelOther', info: long });
    const terminate = await create({ cron: '*/6 * * * * *', overlap: 'terminateOther', info: long });
    for (const rec of [cancel, terminate]) {
      const runs = await waitForRuns(rec.id, 2, 60_000);
      expect((await call('POST', `/recurring-tasks/${rec.id}/pause`)).status).toBe(200);
      const first = await waitFor(`the first run of ${rec.id} to be cancelled`, async () => {
        const row = await stack.prisma.task.findUniqueOrThrow({ where: { id: runs[0]!.id } });
        return isFinal(row.status) ? row : undefined;
      }, 30_000);
      expect(first.status).toBe('Cancelled');
      expect(first.reason).toMatch(rec === cancel ? /cancelled with its recurring run/ : /replaced by the newer run/);
      // Its Job is gone, and the run that replaced it had not started before it ended.
      await waitFor(`the Job of ${first.name} to be deleted`, async () => {
        const jobs = await stack.kube.batch.listNamespacedJob({ namespace: stack.namespace, fieldSelector: `metadata.name=${first.name}` });
        return jobs.items.length === 0 ? true : undefined;
      }, 30_000);
      if (rec === cancel) expect(runs[1]!.createdAt.getTime()).toBeGreaterThanOrEqual(first.finishedAt!.getTime());
      await remove(rec.id);
      // Deleting keeps the runs; the one in progress is cancelled like any task.
      for (const run of await runsOf(rec.id)) if (!isFinal(run.status)) await call('POST', `/tasks/${run.id}/cancel`, {});
    }
  }, 150_000);

  it('PATCH changes only what it names, refuses a change of kind, and re-creates a Schedule deleted in Temporal', async () => {
    const rec = await create({ every: '1h', paused: true });
    const changed = await call('PATCH', `/recurring-tasks/${rec.id}`, { every: '30m', offset: '10m', maxRuns: 5 });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(changed.body.live.spec.intervals).toEqual([{ every: 1_800_000, offset: 600_000 }]);
    expect(changed.body.live).toMatchObject({ paused: true, remainingRuns: 5 });
    expect(changed.body.settings).toMatchObject({ every: '30m', offset: '10m', maxRuns: 5, paused: true });
    for (const t of changed.body.live.nextRunTimes) expect((new Date(t).getTime() - 600_000) % 1_800_000).toBe(0);

    const toDelay = await call('PATCH', `/recurring-tasks/${rec.id}`, { delay: '1m' });
    expect(toDelay.status).toBe(400);
    expect(toDelay.body.error.fields[0].field).toBe('delay');
    const badCron = await call('PATCH', `/recurring-tasks/${rec.id}`, { cron: '* * *' });
    expect(badCron.body.error.fields.map((f: { field: string }) => f.field)).toEqual(['cron']);

    await stack.client.schedule.getHandle(rec.temporalId).delete();
    expect((await call('GET', `/recurring-tasks/${rec.id}`)).body.live.missing).toBe(true);
    const again = await call('PATCH', `/recurring-tasks/${rec.id}`, { jitter: '1s' });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.live).toMatchObject({ paused: true, spec: { intervals: [{ every: 1_800_000, offset: 600_000 }] } });
    expect((await call('PATCH', `/recurring-tasks/${rec.id}`, { name: 'x' }, BOB.token)).status).toBe(404);
    await remove(rec.id);
  });

  it('backfills a past range with exactly the runs it should have had', async () => {
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    // Every minute, but ended already: only the backfill makes runs.
    const rec = await create({ every: '1m', endAt: new Date(minute - 5_000).toISOString() });
    const reply = await call('POST', `/recurring-tasks/${rec.id}/backfill`, {
      startAt: new Date(minute - 4 * 60_000 - 30_000).toISOString(),
      endAt: new Date(minute - 30_000).toISOString(),
    });
    expect(reply.status, JSON.stringify(reply.body)).toBe(202);
    const runs = await waitForRuns(rec.id, 4, 90_000, true);
    await new Promise((r) => setTimeout(r, 2_000));
    const all = await runsOf(rec.id);
    expect(all.map((r) => scheduledAt(r).getTime()).sort()).toEqual([4, 3, 2, 1].map((m) => minute - m * 60_000));
    expect(all.map((r) => r.status)).toEqual(Array(4).fill('Succeeded'));
    expectNoOverlap(runs);
    await remove(rec.id);
  }, 120_000);
});

describe('fixed delay', () => {
  it('waits the delay after each run ends; pause, resume and trigger', async () => {
    const rec = await create({ delay: '3s', info: { image: 'alpine', ...runFor('3s') } });
    const runs = await waitForRuns(rec.id, 2, 60_000);
    const first = await stack.prisma.task.findUniqueOrThrow({ where: { id: runs[0]!.id } });
    expect(first.finishedAt).not.toBeNull();
    expect(runs[1]!.createdAt.getTime() - first.finishedAt!.getTime()).toBeGreaterThanOrEqual(2_900);

    const paused = await call('POST', `/recurring-tasks/${rec.id}/pause`);
    expect(paused.status, JSON.stringify(paused.body)).toBe(200);
    expect(paused.body.live.paused).toBe(true);
    await waitFor('runs to settle', async () => ((await runsOf(rec.id)).every((r) => isFinal(r.status)) ? true : undefined), 60_000);
    const settled = (await runsOf(rec.id)).length;
    await new Promise((r) => setTimeout(r, 5_000));
    expect((await runsOf(rec.id)).length).toBe(settled);

    // Trigger runs once even while paused; resume starts the cadence again.
    expect((await call('POST', `/recurring-tasks/${rec.id}/trigger`)).status).toBe(202);
    await waitForRuns(rec.id, settled + 1, 30_000);
    const resumed = await call('POST', `/recurring-tasks/${rec.id}/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body.live.paused).toBe(false);
    await waitForRuns(rec.id, settled + 2, 60_000);
    const all = await waitForRuns(rec.id, settled + 2, 60_000, true);
    expectNoOverlap(all.filter((r) => isFinal(r.status)));

    await remove(rec.id);
    await waitFor('the fixed-delay workflow to end', async () => {
      const d = await stack.client.workflow.getHandle(rec.temporalId).describe().catch((err) => (err instanceof WorkflowNotFoundError ? null : Promise.reject(err)));
      return d === null || d.status.name !== 'RUNNING' ? true : undefined;
    });
  }, 150_000);
});

describe('worker killed at a firing', () => {
  it('makes no duplicate run and loses none', async () => {
    const config = separateDeployment(stack.config);
    configs.push(config);
    const other = buildApp({ ...stack, config });
    apps.push(other);
    const first = spawnWorker(config);
    processes.push(first);
    await first.ready;
    const rec = await create({ cron: '*/5 * * * * *', overlap: 'allowAll', info: { image: 'alpine', ...runFor('2s') } }, other, config);
    await waitForRuns(rec.id, 1, 30_000);
    // Kill the worker just as the next run fires.
    const next = Math.ceil(Date.now() / 5_000) * 5_000;
    await new Promise((r) => setTimeout(r, next - Date.now() + 30));
    first.child.kill('SIGKILL');
    await first.exited;
    const second = spawnWorker(config);
    processes.push(second);
    await second.ready;
    // The firing the worker died at gets its run (once the killed worker's step has timed out).
    await waitFor('the run of the firing the worker died at', async () => ((await runsOf(rec.id)).some((r) => scheduledAt(r).getTime() === next) ? true : undefined), 60_000);
    expect((await call('POST', `/recurring-tasks/${rec.id}/pause`, undefined, ALICE.token, other)).status).toBe(200);
    const runs = await waitFor('every run to be final', async () => {
      const all = await runsOf(rec.id);
      return all.every((r) => isFinal(r.status)) ? all : undefined;
    }, 90_000);
    const times = runs.map((r) => scheduledAt(r).getTime()).sort();
    expect(new Set(times).size).toBe(times.length);
    // Every tick from the first to the last has exactly one run.
    for (let t = times[0]!; t <= times[times.length - 1]!; t += 5_000) expect(times).toContain(t);
    expect(runs.map((r) => r.status)).toEqual(Array(runs.length).fill('Succeeded'));
    await expectOneRunPerTask(stack.jobs, runs);
    expect((await call('DELETE', `/recurring-tasks/${rec.id}`, undefined, ALICE.token, other)).status).toBe(204);
    second.child.kill('SIGTERM');
    await second.exited;
  }, 180_000);
});
