// The per-user cap on tasks in progress (MAX_TASKS_IN_PROGRESS_PER_USER) on the real stack: rows
// inserted directly wait Normal, saying why, and never more than the cap of one user's tasks are
// in progress at once, however they were started (dispatcher, the API's immediate start, several
// at once); other users are not held up; the API answers 429 with Retry-After.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import type { Task } from '../../src/db/client.ts';
import { dispatchWorkflow } from '../../workflows/index.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { taskWorkflow } from '../../workflows/task.ts';
import { expectOneRunPerTask } from '../support/job-ledger.ts';
import { connectStack, startWorker, testConfig, waitFor, type RunningWorker, type Stack } from '../support/stack.ts';
import { insertTask, runFor, uniqueName } from '../support/tasks.ts';

const CAP = 2;
let stack: Stack;
let worker: RunningWorker;
let app: FastifyInstance;
let baseUrl: string;
let dispatches = 0;
const TOKEN = `cap-token-${Date.now()}`;
const API_USER = 'api-capped';

beforeAll(async () => {
  stack = await connectStack(testConfig({ MAX_TASKS_IN_PROGRESS_PER_USER: String(CAP), API_TOKENS: `${TOKEN}:${API_USER}` }));
  worker = await startWorker(stack);
  await worker.watch.ready;
  app = buildApp(stack);
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await stack?.close();
});

function dispatch() {
  return stack.client.workflow.execute(dispatchWorkflow, {
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    workflowId: `${stack.config.WORKFLOW_ID_PREFIX}dispatch-cap-${++dispatches}`,
    args: [{ idPrefix: stack.config.WORKFLOW_ID_PREFIX, pageSize: 4 }],
  });
}

const inProgress = (userId: string) => stack.prisma.task.count({ where: { userId, status: { in: ['Pending', 'Running'] } } });

describe('the per-user cap', () => {
  it('lets no more than the cap of a user’s directly inserted tasks run at once; the rest wait Normal, saying why', async () => {
    const capped = `capped-${Date.now()}`;
    const rows: Task[] = [];
    for (let i = 0; i < 5; i++) rows.push(await insertTask(stack, { userId: capped, info: { image: 'alpine', ...runFor('3s') } }));
    const other = await insertTask(stack, { userId: 'someone-else', info: { image: 'alpine', ...runFor('1s') } });
    // Start every workflow at once too, as racing API calls would: admission, not the dispatcher, holds the line.
    await Promise.all(
      [...rows, other].map((t) =>
        stack.client.workflow.start(taskWorkflow, {
          taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
          workflowId: taskWorkflowId(t.id.toString(), stack.config.WORKFLOW_ID_PREFIX),
          args: [{ taskId: t.id.toString() }],
        }),
      ),
    );
    let most = 0;
    let heldReason: string | null = null;
    const ids = rows.map((r) => r.id);
    await waitFor(
      'all capped tasks to succeed',
      async () => {
        most = Math.max(most, await inProgress(capped));
        const now = await stack.prisma.task.findMany({ where: { id: { in: ids } } });
        heldReason ??= now.find((r) => r.status === 'Normal' && r.reason)?.reason ?? null;
        if (now.some((r) => r.status === 'Normal')) await dispatch();
        return now.every((r) => r.status === 'Succeeded') ? true : undefined;
      },
      120_000,
      150,
    );
    expect(most).toBe(CAP);
    expect(heldReason).toBe(
      `waiting: user '${capped}' has ${CAP} tasks in progress, the most allowed at once (MAX_TASKS_IN_PROGRESS_PER_USER=${CAP}); this task starts when one of them finishes`,
    );
    expect((await stack.prisma.task.findUniqueOrThrow({ where: { id: other.id } })).status).toBe('Succeeded');
    await expectOneRunPerTask(stack.jobs, rows);
  }, 180_000);

  it('answers 429 with Retry-After once a user has the cap of unfinished tasks, and accepts again when one finishes', async () => {
    const post = (name: string) =>
      fetch(`${baseUrl}/tasks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, namespace: stack.namespace, info: { image: 'alpine', ...runFor('2s') } }),
      });
    const accepted: string[] = [];
    for (let i = 0; i < CAP; i++) {
      const res = await post(uniqueName('capped-api'));
      expect(res.status).toBe(201);
      accepted.push(((await res.json()) as { id: string }).id);
    }
    const refused = await post(uniqueName('capped-api'));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('too_many_tasks_in_progress');
    expect(body.error.message).toMatch(new RegExp(`you have ${CAP} unfinished tasks, the most allowed at once`));
    await waitFor('an accepted task to finish', async () => {
      const n = await stack.prisma.task.count({ where: { id: { in: accepted.map(BigInt) }, status: 'Succeeded' } });
      return n > 0 ? true : undefined;
    }, 60_000);
    expect((await post(uniqueName('capped-api'))).status).toBe(201);
  }, 120_000);
});
