// dispatchWorkflow on a real Temporal dev server with stub database activities: paging, task
// workflows started from the real start activity, bounded runs (continue-as-new), idempotent starts.
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activities, TaskRef } from '../../activities/index.ts';
import { createTemporalActivities } from '../../activities/temporal.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { cancelSignal, dispatchWorkflow, taskWorkflow } from '../../workflows/index.ts';
import { startStubWorker, type StubWorker } from '../support/stub-worker.ts';

const idPrefix = `u${randomBytes(3).toString('hex')}-`;

const rows: TaskRef[] = Array.from({ length: 25 }, (_, i) => ({
  id: String(1000 + i),
  name: `t${i}`,
  namespace: 'default',
  userId: 'u',
  status: 'Normal',
  attempt: 1,
}));
/** The one task whose workflow stays up (its Job "runs" until cancelled). */
const busyId = rows[0]!.id;
const pagesRead: string[] = [];

const stubs: Partial<Activities> = {
  async listTasksInStatus({ afterId, limit }) {
    pagesRead.push(afterId);
    return rows.filter((r) => BigInt(r.id) > BigInt(afterId)).slice(0, limit);
  },
  // Every dispatched task but the busy one finds its row gone and ends at once.
  async loadTask(id) {
    return id === busyId ? { ...rows[0]!, status: 'Running', valid: false, reason: 'unused' } : null;
  },
  async observeJob() {
    return { exists: true, owned: true, attempt: 1, status: 'Running' };
  },
  async deleteJob() {
    return 'deleted';
  },
  async markStatus() {
    return { updated: true };
  },
  async recordReason() {},
};

let stub: StubWorker;
let client: Client;
let taskQueue: string;

beforeAll(async () => {
  // Starting task workflows is the real activity, on the stub worker's own client and task queue.
  stub = await startStubWorker('dispatch-unit', stubs, (client) => ({ startTaskWorkflows: createTemporalActivities(client).startTaskWorkflows }));
  ({ client, taskQueue } = stub);
});
afterAll(() => stub?.close());

describe('dispatchWorkflow', () => {
  it('starts one task workflow per row across pages, continuing as new after a few pages, and skips a task already running', async () => {
    const busy = await client.workflow.start(taskWorkflow, {
      taskQueue,
      workflowId: taskWorkflowId(busyId, idPrefix),
      args: [{ taskId: busyId }],
    });
    const workflowId = `${idPrefix}dispatch`;
    const handle = await client.workflow.start(dispatchWorkflow, {
      taskQueue,
      workflowId,
      args: [{ idPrefix, pageSize: 5, pagesPerRun: 2 }],
    });
    const totals = await handle.result();
    expect(totals).toEqual({ started: 24, alreadyRunning: 1 });
    // Pages resume where the previous run stopped: every row read once, oldest first.
    expect(pagesRead).toEqual(['0', '1004', '1009', '1014', '1019', '1024']);

    // The first run continued as new after two pages.
    const first = await client.workflow.getHandle(workflowId, handle.firstExecutionRunId).describe();
    expect(first.status.name).toBe('CONTINUED_AS_NEW');
    const runs = [];
    for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runs.push(wf);
    expect(runs.length).toBeGreaterThanOrEqual(3);

    for (const row of rows.slice(1)) {
      const d = await client.workflow.getHandle(taskWorkflowId(row.id, idPrefix)).describe();
      expect(d.memo).toMatchObject({ taskName: row.name, namespace: 'default', userId: 'u' });
      expect(d.taskQueue).toBe(taskQueue);
    }
    await busy.signal(cancelSignal);
    expect((await busy.result()).status).toBe('Cancelled');
  });
});

describe('dispatchWorkflow with 100,000 waiting rows', () => {
  const WAITING = 100_000;
  const PAGE = 1_000;
  const PAGES_PER_RUN = 25;
  const handedOut: string[][] = [];
  let big: StubWorker;

  beforeAll(async () => {
    big = await startStubWorker('dispatch-100k', {
      // Ids 1..100,000 in pages, as the real query returns them; nothing is stored.
      async listTasksInStatus({ afterId, limit }) {
        const from = Number(afterId) + 1;
        return Array.from({ length: Math.max(0, Math.min(limit, WAITING - from + 1)) }, (_, i) => ({
          ...rows[0]!,
          id: String(from + i),
          name: `t${from + i}`,
        }));
      },
      async startTaskWorkflows({ tasks }) {
        handedOut.push(tasks.map((t) => t.id));
        return { started: tasks.length, alreadyRunning: 0 };
      },
    });
  });
  afterAll(() => big?.close());

  it('hands every row out once, oldest first, in runs whose histories stay short', async () => {
    const workflowId = `${idPrefix}dispatch-100k`;
    const handle = await big.client.workflow.start(dispatchWorkflow, {
      taskQueue: big.taskQueue,
      workflowId,
      args: [{ idPrefix, pageSize: PAGE, pagesPerRun: PAGES_PER_RUN }],
    });
    expect(await handle.result()).toEqual({ started: WAITING, alreadyRunning: 0 });
    const ids = handedOut.flat();
    expect(ids).toHaveLength(WAITING);
    expect(ids.every((id, i) => id === String(i + 1))).toBe(true);

    const runs = [];
    for await (const wf of big.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runs.push(wf);
    // 100 full pages, then the empty page that ends it: 101 pages, 25 a run.
    expect(runs).toHaveLength(Math.ceil((WAITING / PAGE + 1) / PAGES_PER_RUN));
    // Each run: 25 pages of two activities (3 events each, plus workflow tasks), far below the 51,200 cap.
    for (const run of runs) expect(run.historyLength).toBeLessThan(1_000);
  }, 120_000);
});
