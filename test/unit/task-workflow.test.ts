// taskWorkflow on a real Temporal dev server with stub activities: an in-memory row and a
// scripted cluster, so faults (outages, rejections, a deleted row) can be injected on purpose.
// The test plays the worker's Job watch too, sending `jobChanged` signals as the Job "changes".
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities, JobObservation, TaskRef } from '../../activities/index.ts';
import { statusesBefore, type TaskStatus } from '../../src/task-status.ts';
import { jobChangedSignal } from '../../workflows/signals.ts';
import { cancelSignal, taskWorkflow } from '../../workflows/task.ts';
import { startStubWorker, type StubWorker } from '../support/stub-worker.ts';

/** One task's world: its row, the Job the stub cluster reports, and every call made. */
class World {
  row: (TaskRef & { reason: string | null; info: string }) | null;
  observations: JobObservation[] = [];
  createFailures: ApplicationFailure[] = [];
  calls: string[] = [];
  reasons: (string | null)[] = [];
  /** What the per-user cap says when the workflow asks for a slot. */
  admission: 'uncapped' | 'admitted' | 'held' = 'uncapped';
  constructor(id: string, info = '{"image":"alpine"}') {
    this.row = { id, name: `task-${id}`, namespace: 'default', userId: 'u1', status: 'Normal', attempt: 1, reason: null, info };
  }
}
const worlds = new Map<string, World>();
const world = (id: string) => worlds.get(id)!;

const running = (status: 'Pending' | 'Running' | 'Succeeded' | 'Failed', reason?: string, attempt = 1): JobObservation => ({
  exists: true,
  owned: true,
  attempt,
  status,
  ...(reason ? { reason } : {}),
});

const stubs: Partial<Activities> = {
  async loadTask(id) {
    const w = world(id);
    w.calls.push('loadTask');
    if (!w.row) return null;
    const { info, reason: _r, ...ref } = w.row;
    try {
      const parsed = JSON.parse(info) as { image?: string };
      const capped = w.admission === 'uncapped' ? {} : { capped: true as const };
      if (!parsed.image) return { ...ref, ...capped, valid: false, reason: 'info.image is required' };
      return { ...ref, ...capped, valid: true, info: { image: parsed.image } as never };
    } catch {
      return { ...ref, valid: false, reason: 'info is not valid JSON' };
    }
  },
  async markStatus({ taskId, attempt, to, reason }) {
    const w = world(taskId);
    w.calls.push(`markStatus:${to}`);
    if (!w.row) return { updated: false, current: null };
    if (w.row.attempt !== attempt || !statusesBefore(to).includes(w.row.status as TaskStatus)) {
      return { updated: false, current: { status: w.row.status, attempt: w.row.attempt } };
    }
    w.row.status = to;
    w.row.reason = reason ?? null;
    return { updated: true };
  },
  async taskState(taskId) {
    const row = world(taskId).row;
    return row && { status: row.status, attempt: row.attempt };
  },
  async recordReason({ taskId, reason }) {
    const w = world(taskId);
    w.reasons.push(reason);
    if (w.row) w.row.reason = reason;
  },
  async admitTask({ taskId }) {
    const w = world(taskId);
    w.calls.push(`admitTask:${w.admission}`);
    if (w.admission === 'held') {
      w.row!.reason = 'waiting: at the cap';
      return { outcome: 'held', reason: 'waiting: at the cap', inProgress: 2 };
    }
    if (w.admission === 'admitted') w.row!.status = 'Pending';
    return { outcome: w.admission };
  },
  async createJob({ task }) {
    const w = world(task.id);
    w.calls.push('createJob');
    const failure = w.createFailures.shift();
    if (failure) throw failure;
    return 'created';
  },
  async observeJob({ taskId, fresh }) {
    const w = world(taskId);
    w.calls.push(fresh ? 'observeJob:fresh' : 'observeJob');
    return w.observations.length > 1 ? w.observations.shift()! : w.observations[0]!;
  },
  async deleteJob({ taskId }) {
    world(taskId).calls.push('deleteJob');
    return 'deleted';
  },
};

let stub: StubWorker;
let client: Client;
let taskQueue: string;

beforeAll(async () => {
  stub = await startStubWorker('task-workflow-unit', stubs);
  ({ client, taskQueue } = stub);
});
afterAll(() => stub?.close());

let next = 0;
function newTask(info?: string): World {
  const id = `${Date.now()}${next++}`;
  const w = new World(id, info);
  worlds.set(id, w);
  return w;
}
const start = (w: World, extra: { fallbackAfterMs?: number; continueAfterEvents?: number } = {}) =>
  client.workflow.start(taskWorkflow, { taskQueue, workflowId: `unit-task-${w.row!.id}`, args: [{ taskId: w.row!.id, ...extra }] });
const reads = (w: World) => w.calls.filter((c) => c.startsWith('observeJob'));
const untilStatus = (w: World, status: string) => expect.poll(() => w.row?.status, { timeout: 10_000 }).toBe(status);

describe('taskWorkflow', () => {
  it('creates the Job, then follows it forward to Succeeded through the watch, without reading the Job', async () => {
    const w = newTask();
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    await handle.signal(jobChangedSignal, running('Running'));
    await untilStatus(w, 'Running');
    await handle.signal(jobChangedSignal, running('Succeeded'));
    expect((await handle.result()).status).toBe('Succeeded');
    expect(w.row!.status).toBe('Succeeded');
    expect(w.calls.filter((c) => c.startsWith('markStatus'))).toEqual(['markStatus:Pending', 'markStatus:Running', 'markStatus:Succeeded']);
    expect(w.calls.filter((c) => c === 'createJob')).toHaveLength(1);
    expect(reads(w)).toEqual([]);
    // Uncapped, with nothing to say but statuses: no admission step, and only the launch patch recorded.
    expect(w.calls.some((c) => c.startsWith('admitTask'))).toBe(false);
    const { events } = await handle.fetchHistory();
    const markers = (name: string) => (events ?? []).filter((e) => e.markerRecordedEventAttributes?.markerName === name);
    const patches = markers('core_patch');
    const patchData = patches.map((e) => Buffer.from(e.markerRecordedEventAttributes!.details!['patch-data']!.payloads![0]!.data!).toString());
    expect(patchData).toEqual([expect.stringContaining('"launch"')]);
    // Load, create and Pending as one local activity, then one for Running and one for Succeeded.
    expect(markers('core_local_activity')).toHaveLength(3);
    expect(events!.length).toBeLessThanOrEqual(19);
  });

  it('reads the Job itself when the watch stays silent, so a lost signal costs only time', async () => {
    const w = newTask();
    w.observations = [running('Running'), running('Succeeded')];
    const result = await (await start(w, { fallbackAfterMs: 300 })).result();
    expect(result.status).toBe('Succeeded');
    expect(w.calls.filter((c) => c.startsWith('markStatus'))).toEqual(['markStatus:Pending', 'markStatus:Running', 'markStatus:Succeeded']);
    expect(reads(w).length).toBeGreaterThanOrEqual(2);
  });

  it('ignores what the watch says about another attempt\'s Job', async () => {
    const w = newTask();
    w.row!.attempt = 2;
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    // The first attempt's Job, failing and then deleted while it is replaced.
    await handle.signal(jobChangedSignal, running('Failed', 'BackoffLimitExceeded', 1));
    await handle.signal(jobChangedSignal, { exists: false, attempt: 1 });
    await handle.signal(jobChangedSignal, running('Succeeded', undefined, 2));
    expect((await handle.result()).status).toBe('Succeeded');
    expect(w.row).toMatchObject({ status: 'Succeeded', attempt: 2, reason: null });
    expect(reads(w)).toEqual([]);
  });

  it('fails an invalid task with its reason and never creates a Job', async () => {
    const w = newTask('{"command":["true"]}');
    const result = await (await start(w)).result();
    expect(result).toMatchObject({ status: 'Failed', reason: 'info.image is required' });
    expect(w.row).toMatchObject({ status: 'Failed', reason: 'info.image is required' });
    expect(w.calls).not.toContain('createJob');
  });

  it('fails at once when the cluster rejects the task as its own fault', async () => {
    const w = newTask();
    w.createFailures = [ApplicationFailure.nonRetryable("task 1: namespace 'nope' does not exist", 'TaskRejected')];
    const result = await (await start(w)).result();
    expect(result.status).toBe('Failed');
    expect(w.row!.reason).toContain("namespace 'nope' does not exist");
    expect(w.calls.filter((c) => c === 'createJob')).toHaveLength(1);
  });

  it('keeps retrying through an outage, showing the error on the row, then clears it', async () => {
    const w = newTask();
    const outage = () => ApplicationFailure.retryable('connect ECONNREFUSED 127.0.0.1:6443', 'KubernetesUnavailable');
    // The launch's create fails, then three attempts of the createJob step (its own quick
    // retries), then the workflow's backoff takes over.
    w.createFailures = [outage(), outage(), outage(), outage()];
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    await handle.signal(jobChangedSignal, running('Succeeded'));
    expect((await handle.result()).status).toBe('Succeeded');
    expect(w.reasons[0]).toMatch(/^creating the Job failed: connect ECONNREFUSED 127\.0\.0\.1:6443; retrying in 2 s$/);
    expect(w.reasons.at(-1)).toBeNull();
    expect(w.calls.filter((c) => c === 'createJob')).toHaveLength(5);
  }, 30_000);

  it('on cancel deletes the Job and ends Cancelled with the reason given', async () => {
    const w = newTask();
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    await handle.signal(jobChangedSignal, running('Running'));
    await untilStatus(w, 'Running');
    await handle.signal(cancelSignal, { reason: 'no longer needed' });
    expect(await handle.result()).toMatchObject({ status: 'Cancelled', reason: 'no longer needed' });
    expect(w.calls).toContain('deleteJob');
    expect(w.row).toMatchObject({ status: 'Cancelled', reason: 'no longer needed' });
  });

  it('fails the task when its Job disappears before finishing, after making sure with the API server', async () => {
    const w = newTask();
    w.observations = [{ exists: false }];
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    await handle.signal(jobChangedSignal, running('Running'));
    await untilStatus(w, 'Running');
    await handle.signal(jobChangedSignal, { exists: false, attempt: 1 });
    expect((await handle.result()).status).toBe('Failed');
    expect(w.row!.reason).toMatch(/Job default\/task-\d+ disappeared before it finished/);
    expect(reads(w)).toEqual(['observeJob:fresh']);
  });

  it('stops, deleting the Job, when the row is deleted mid-run', async () => {
    const w = newTask();
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    w.row = null;
    await handle.signal(jobChangedSignal, running('Running'));
    expect(await handle.result()).toEqual({ status: 'Deleted' });
    expect(w.calls).toContain('deleteJob');
  });

  it('notices on a quiet look that its row was deleted while the Job runs on, and deletes the Job', async () => {
    const w = newTask();
    w.observations = [running('Running')];
    const handle = await start(w, { fallbackAfterMs: 300 });
    await untilStatus(w, 'Pending');
    w.row = null;
    expect(await handle.result()).toEqual({ status: 'Deleted' });
    expect(w.calls).toContain('deleteJob');
    expect(w.calls).not.toContain('markStatus:Running');
  });

  it('never moves a row that moved on elsewhere (a newer attempt) backwards', async () => {
    const w = newTask();
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    w.row!.attempt = 2;
    w.row!.status = 'Normal';
    await handle.signal(jobChangedSignal, running('Succeeded'));
    const result = await handle.result();
    expect(result.status).toBe('Normal');
    expect(w.row).toMatchObject({ status: 'Normal', attempt: 2 });
  });

  it('continues as new while following a long Job, and still ends with its outcome', async () => {
    const w = newTask();
    w.observations = [running('Running')];
    const handle = await start(w, { continueAfterEvents: 10 });
    await untilStatus(w, 'Pending');
    const first = client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
    await handle.signal(jobChangedSignal, running('Running'));
    // Every signal wakes the workflow; past 10 events it continues as new.
    for (let i = 0; (await first.describe()).status.name === 'RUNNING'; i++) {
      expect(i).toBeLessThan(20);
      await handle.signal(jobChangedSignal, running('Running', `still running ${i}`));
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await first.describe()).status.name).toBe('CONTINUED_AS_NEW');
    await handle.signal(jobChangedSignal, running('Succeeded'));
    expect((await handle.result()).status).toBe('Succeeded');
    expect(w.calls.filter((c) => c === 'loadTask')).toHaveLength(1);
    expect(w.calls.filter((c) => c === 'createJob')).toHaveLength(1);
  }, 30_000);

  it('adopts the Job of a row already Running instead of creating one', async () => {
    const w = newTask();
    w.row!.status = 'Running';
    w.observations = [running('Running')];
    const handle = await start(w);
    await expect.poll(() => reads(w).length, { timeout: 10_000 }).toBe(1);
    await handle.signal(jobChangedSignal, running('Succeeded'));
    expect((await handle.result()).status).toBe('Succeeded');
    expect(w.calls).not.toContain('createJob');
  });
});

describe('taskWorkflow: the per-user cap', () => {
  it('ends without a Job when the user is at the cap, leaving the row Normal with the reason', async () => {
    const w = newTask();
    w.admission = 'held';
    const result = await (await start(w)).result();
    expect(result).toEqual({ status: 'Normal', reason: 'waiting: at the cap' });
    expect(w.row!.status).toBe('Normal');
    expect(w.calls).not.toContain('createJob');
  });

  it('creates the Job of an admitted task without writing Pending again (admission did)', async () => {
    const w = newTask();
    w.admission = 'admitted';
    const handle = await start(w);
    await expect.poll(() => w.calls.includes('createJob'), { timeout: 10_000 }).toBe(true);
    await handle.signal(jobChangedSignal, running('Running'));
    // Two signals sent back to back may arrive in one activation, where the newest observation
    // wins and Running is rightly never written: wait for it before the Job finishes.
    await untilStatus(w, 'Running');
    await handle.signal(jobChangedSignal, running('Succeeded'));
    expect((await handle.result()).status).toBe('Succeeded');
    expect(w.calls.filter((c) => c.startsWith('markStatus'))).toEqual(['markStatus:Running', 'markStatus:Succeeded']);
  });
});

describe('taskWorkflow: what the cluster says while a task waits', () => {
  it('shows each new waiting reason once while Pending, and names the last one when the task never started', async () => {
    const w = newTask();
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    const pull = 'waiting: the image cannot be pulled (ImagePullBackOff: Back-off pulling image "x")';
    await handle.signal(jobChangedSignal, running('Pending', pull));
    await handle.signal(jobChangedSignal, running('Pending', pull));
    await expect.poll(() => w.row!.reason, { timeout: 10_000 }).toBe(pull);
    await handle.signal(jobChangedSignal, running('Failed', 'DeadlineExceeded: Job was active longer than specified deadline'));
    const result = await handle.result();
    expect(result.status).toBe('Failed');
    expect(w.row!.reason).toBe(
      'the task never started before its deadline (info.timeoutSeconds): the image cannot be pulled (ImagePullBackOff: Back-off pulling image "x")',
    );
    expect(w.reasons).toEqual([pull]);
  });

  it('fails at once, deleting the Job, when the cluster refuses its pod by policy', async () => {
    const w = newTask();
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    const refusal = 'the cluster refused to create the task\'s pod: pods "x" is forbidden: violates PodSecurity "restricted:latest"';
    await handle.signal(jobChangedSignal, { ...running('Pending', refusal), refused: true } as JobObservation);
    expect((await handle.result()).status).toBe('Failed');
    expect(w.row!.reason).toBe(refusal);
    expect(w.calls).toContain('deleteJob');
  });

  it('clears the waiting reason when the pod runs', async () => {
    const w = newTask();
    const handle = await start(w);
    await untilStatus(w, 'Pending');
    await handle.signal(jobChangedSignal, running('Pending', 'waiting: no node can run the pod (Unschedulable: 0/1 nodes)'));
    await expect.poll(() => w.row!.reason, { timeout: 10_000 }).toMatch(/^waiting: no node/);
    await handle.signal(jobChangedSignal, running('Running'));
    await untilStatus(w, 'Running');
    expect(w.row!.reason).toBeNull();
    await handle.signal(jobChangedSignal, running('Succeeded'));
    expect((await handle.result()).status).toBe('Succeeded');
  });
});
