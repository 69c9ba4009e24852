// The HTTP API over real HTTP, on the real stack: a real worker on this run's task queue runs the
// workflows, Jobs run in the file's own namespace, rows live in its own database. No Schedule is ever
// created here, so a Job that appears proves the API started the workflow itself.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { V1Job } from '@kubernetes/client-node';
import { ScheduleNotFoundError } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, MAX_BODY_BYTES } from '../../src/api/app.ts';
import { scheduleId } from '../../src/schedules.ts';
import { MAX_ENTRY_CHARS, MAX_INFO_BYTES, MAX_LIST_ENTRIES } from '../../src/task/info.ts';
import { ATTEMPT_LABEL, TASK_ID_LABEL } from '../../src/task/job.ts';
import { workflowUrl } from '../../src/temporal.ts';
import { dispatchWatcher } from '../../src/watchers/dispatch.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { expectNoJob, expectOneRunPerAttempt, expectOneRunPerTask } from '../support/job-ledger.ts';
import { connectStack, startWorker, testConfig, waitFor, waitForRunClosed, type RunningWorker, type Stack } from '../support/stack.ts';

const tag = randomBytes(3).toString('hex');
const ALICE = { user: `alice-${tag}`, token: `alice-token-${tag}` };
const BOB = { user: `bob-${tag}`, token: `bob-token-${tag}` };
let stack: Stack;
/** The file's own namespace, the only one its API allows. */
let NAMESPACE: string;
let worker: RunningWorker;
let app: FastifyInstance;
let baseUrl: string;

beforeAll(async () => {
  stack = await connectStack(testConfig({ API_TOKENS: `${ALICE.token}:${ALICE.user},${BOB.token}:${BOB.user}` }));
  NAMESPACE = stack.namespace;
  worker = await startWorker(stack);
  app = buildApp(stack);
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  await worker?.stop();
  await stack?.close();
});

const taskName = (label: string) => `api-${label}-${tag}-${randomBytes(2).toString('hex')}`;

interface Call {
  token?: string | null;
  body?: unknown;
  /** Sent as is, with Content-Type: application/json unless `contentType` says otherwise. */
  raw?: string;
  contentType?: string;
}

async function call(method: string, path: string, options: Call = {}): Promise<{ status: number; body: any }> {
  const token = options.token === undefined ? ALICE.token : options.token;
  const text = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (text !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const response = await fetch(`${baseUrl}${path}`, { method, headers, ...(text !== undefined ? { body: text } : {}) });
  return { status: response.status, body: await response.json() };
}

const submit = (body: unknown, token?: string) => call('POST', '/tasks', { body, ...(token ? { token } : {}) });
const row = (id: string) => stack.prisma.task.findUniqueOrThrow({ where: { id: BigInt(id) } });
const readJob = (name: string) => stack.kube.batch.readNamespacedJob({ name, namespace: NAMESPACE });
const podsOf = async (name: string) =>
  (await stack.kube.core.listNamespacedPod({ namespace: NAMESPACE, labelSelector: `job-name=${name}` })).items;
const ourRowCount = () => stack.prisma.task.count({ where: { userId: { in: [ALICE.user, BOB.user] } } });

function waitForStatus(id: string, status: string, timeoutMs = 60_000) {
  return waitFor(`task ${id} to be ${status}`, async () => {
    const r = await row(id);
    return r.status === status ? r : undefined;
  }, timeoutMs);
}

/** A row written straight to the database, for reads that need no workflow. */
function insertRow(userId: string, status: string, name = taskName('row')) {
  return stack.prisma.task.create({ data: { name, namespace: NAMESPACE, info: '{"image":"alpine:3.20"}', status, userId } });
}

describe('POST /tasks', () => {
  it('stores the task, starts its workflow at once (no schedule exists), and the task ends Succeeded', async () => {
    const { config } = stack;
    await expect(stack.client.schedule.getHandle(scheduleId(config, dispatchWatcher(config))).describe()).rejects.toBeInstanceOf(
      ScheduleNotFoundError,
    );
    const name = taskName('ok');
    const info = { image: 'alpine:3.20', command: ['sh', '-c'], args: ['echo hello'], env: { GREETING: 'hi' }, timeoutSeconds: 600 };

    const created = await submit({ name, namespace: NAMESPACE, info });

    expect(created.status).toBe(201);
    const id: string = created.body.id;
    expect(id).toMatch(/^\d+$/);
    expect(created.body).toMatchObject({ name, namespace: NAMESPACE, status: 'Normal', attempt: 1, userId: ALICE.user, info });
    const workflowId = taskWorkflowId(id, config.WORKFLOW_ID_PREFIX);
    expect(created.body.workflowUrl).toBe(workflowUrl(config, workflowId));
    expect(JSON.parse((await row(id)).info)).toEqual(info);

    // The dispatcher would take DISPATCH_INTERVAL (30 s) and is not even scheduled here.
    const job = await waitFor('the Job to exist', () => readJob(name), 10_000, 100);
    expect(job.metadata?.labels?.[TASK_ID_LABEL]).toBe(id);
    expect(job.spec?.template.spec?.containers[0]).toMatchObject({ image: 'alpine:3.20', command: ['sh', '-c'], args: ['echo hello'] });

    const done = await waitForStatus(id, 'Succeeded');
    expect(done.finishedAt).not.toBeNull();
    const shown = await call('GET', `/tasks/${id}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ id, status: 'Succeeded', reason: null, attempt: 1, info, workflowId });
    expect(shown.body.finishedAt).toBe(done.finishedAt!.toISOString());
    await waitForRunClosed(stack.client, workflowId);
    await expectOneRunPerTask(stack.jobs, [done]);
  });

  it('answers 409 for a name already taken in the namespace, storing nothing more', async () => {
    const name = taskName('dup');
    expect((await submit({ name, namespace: NAMESPACE, info: { image: 'alpine:3.20' } })).status).toBe(201);
    const before = await ourRowCount();

    const again = await submit({ name, namespace: NAMESPACE, info: { image: 'busybox' } }, BOB.token);

    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('task_exists');
    expect(again.body.error.message).toContain(`a task named '${name}' already exists in namespace '${NAMESPACE}'`);
    expect(again.body.error.fields).toEqual([{ field: 'name', message: expect.stringContaining('choose another name') }]);
    expect(await ourRowCount()).toBe(before);
  });

  const valid = () => ({ name: taskName('bad'), namespace: NAMESPACE, info: { image: 'alpine:3.20' } as Record<string, unknown> });
  const withInfo = (info: Record<string, unknown>) => ({ ...valid(), info: { image: 'alpine:3.20', ...info } });
  const cases: { what: string; request: () => Call; status: number; code: string; message: RegExp; field?: string }[] = [
    {
      what: 'invalid JSON',
      request: () => ({ raw: '{"name": "x", "namespace": ' }),
      status: 400,
      code: 'invalid_json',
      message: /^the request body is not valid JSON \(.+\): fix the syntax$/,
    },
    {
      what: 'a body that is not JSON',
      request: () => ({ raw: 'name=x', contentType: 'application/x-www-form-urlencoded' }),
      status: 415,
      code: 'unsupported_media_type',
      message: /must be JSON: send it with the header Content-Type: application\/json/,
    },
    {
      what: 'an unknown top-level field',
      request: () => ({ body: { ...valid(), priority: 5 } }),
      status: 400,
      code: 'validation_failed',
      field: 'priority',
      message: /priority is not a known field: remove it; the body accepts name, namespace, info/,
    },
    {
      what: 'a flat body (info fields at the top)',
      request: () => ({ body: { name: taskName('flat'), namespace: NAMESPACE, image: 'alpine:3.20' } }),
      status: 400,
      code: 'validation_failed',
      field: 'image',
      message: /did you mean info\.image\?/,
    },
    {
      what: 'an unknown info field',
      request: () => ({ body: withInfo({ cmd: ['true'] }) }),
      status: 400,
      code: 'validation_failed',
      field: 'info.cmd',
      message: /info\.cmd is not a known field \(did you mean info\.command\?\)/,
    },
    {
      what: 'a missing image',
      request: () => ({ body: { ...valid(), info: { args: ['x'] } } }),
      status: 400,
      code: 'validation_failed',
      field: 'info.image',
      message: /info\.image is required/,
    },
    {
      what: 'a task name that is not a Kubernetes name',
      request: () => ({ body: { ...valid(), name: 'Nightly_Report' } }),
      status: 400,
      code: 'validation_failed',
      field: 'name',
      message: /task name "Nightly_Report" is not valid: it becomes the Kubernetes Job name.*for example "nightly-report"/,
    },
    {
      what: 'too many args',
      request: () => ({ body: withInfo({ args: Array.from({ length: MAX_LIST_ENTRIES + 1 }, (_, i) => `a${i}`) }) }),
      status: 400,
      code: 'validation_failed',
      field: 'info.args',
      message: new RegExp(`info\\.args has ${MAX_LIST_ENTRIES + 1} entries; at most ${MAX_LIST_ENTRIES} are allowed`),
    },
    {
      what: 'an arg that is too long',
      request: () => ({ body: withInfo({ args: ['ok', 'x'.repeat(MAX_ENTRY_CHARS + 1)] }) }),
      status: 400,
      code: 'validation_failed',
      field: 'info.args[1]',
      message: new RegExp(`info\\.args\\[1\\] is ${MAX_ENTRY_CHARS + 1} characters long; at most ${MAX_ENTRY_CHARS} are allowed`),
    },
    {
      what: 'an info larger than MAX_INFO_BYTES in a body within the limit',
      // 17 args of 4,000 characters: about 66 KiB of info, inside the 68 KiB body limit.
      request: () => ({ body: withInfo({ args: Array.from({ length: 17 }, () => 'x'.repeat(4_000)) }) }),
      status: 413,
      code: 'info_too_large',
      field: 'info',
      message: /info is 66\.\d KiB; at most 64 KiB is allowed/,
    },
    {
      what: 'a body over the body limit',
      request: () => ({ body: withInfo({ env: { BIG: 'x'.repeat(MAX_BODY_BYTES) } }) }),
      status: 413,
      code: 'body_too_large',
      message: /the request body is larger than 68 KiB, the most this API accepts/,
    },
    {
      what: 'a namespace outside ALLOWED_NAMESPACES',
      request: () => ({ body: { ...valid(), namespace: 'kube-system' } }),
      status: 403,
      code: 'namespace_not_allowed',
      field: 'namespace',
      message: /namespace 'kube-system' is not open to tasks on this server: use one of nw-test-\w+-1 \(the operator/,
    },
    {
      what: 'no token',
      request: () => ({ body: valid(), token: null }),
      status: 401,
      code: 'unauthenticated',
      message: /no API token: send the header Authorization: Bearer <token>/,
    },
    {
      what: 'a wrong token',
      request: () => ({ body: valid(), token: `not-${ALICE.token}` }),
      status: 401,
      code: 'unauthenticated',
      message: /the API token is not valid/,
    },
  ];

  it.each(cases)('rejects $what with $status and stores nothing', async ({ request, status, code, message, field }) => {
    expect(MAX_INFO_BYTES).toBe(64 * 1024); // the sizes in the cases above assume it
    const before = await ourRowCount();

    const response = await call('POST', '/tasks', request());

    expect(response.status).toBe(status);
    expect(response.body.error.code).toBe(code);
    expect(response.body.error.message).toMatch(message);
    if (field) expect(response.body.error.fields).toContainEqual({ field, message: expect.stringMatching(message) });
    expect(await ourRowCount()).toBe(before);
  });
});

describe('GET /tasks', () => {
  it("lists only the user's own tasks, newest first, a page at a time, filtered by status and namespace", async () => {
    const older = await insertRow(BOB.user, 'Succeeded');
    const middle = await insertRow(BOB.user, 'Failed');
    const newest = await insertRow(BOB.user, 'Succeeded');
    const alices = await insertRow(ALICE.user, 'Succeeded');

    const first = await call('GET', '/tasks?limit=2', { token: BOB.token });
    expect(first.status).toBe(200);
    expect(first.body.tasks.map((t: { id: string }) => t.id)).toEqual([newest.id.toString(), middle.id.toString()]);
    expect(first.body.tasks[0]).not.toHaveProperty('info');
    expect(first.body.nextCursor).toBe(middle.id.toString());

    const second = await call('GET', `/tasks?limit=2&cursor=${first.body.nextCursor}`, { token: BOB.token });
    expect(second.body.tasks.map((t: { id: string }) => t.id)).toEqual([older.id.toString()]);
    expect(second.body.nextCursor).toBeNull();

    const failed = await call('GET', '/tasks?status=Failed', { token: BOB.token });
    expect(failed.body.tasks.map((t: { id: string }) => t.id)).toEqual([middle.id.toString()]);
    expect((await call('GET', '/tasks?namespace=demo', { token: BOB.token })).body.tasks).toEqual([]);

    const alicesList = await call('GET', '/tasks?limit=200');
    const alicesIds = alicesList.body.tasks.map((t: { id: string }) => t.id);
    expect(alicesIds).toContain(alices.id.toString());
    expect(alicesIds).not.toContain(newest.id.toString());
  });

  it('rejects an unknown status with a message listing the valid ones', async () => {
    const response = await call('GET', '/tasks?status=Done');
    expect(response.status).toBe(400);
    expect(response.body.error.fields).toEqual([
      { field: 'status', message: 'status must be one of Normal, Pending, Running, Succeeded, Failed, Cancelled, not "Done"' },
    ]);
  });
});

describe('POST /tasks/:id/cancel', () => {
  it('cancels a running task: its Job is deleted and the row says Cancelled with the reason', async () => {
    const name = taskName('cancel');
    const created = await submit({
      name,
      namespace: NAMESPACE,
      info: { image: 'alpine:3.20', annotations: { 'nightwatch.io/kwok-run-duration': '60s' } },
    });
    const id: string = created.body.id;
    await waitForStatus(id, 'Running');
    await readJob(name);

    const notFinal = await call('POST', `/tasks/${id}/retry`);
    expect(notFinal.status).toBe(409);
    expect(notFinal.body.error.message).toBe(
      `task ${id} is Running, not finished: only a finished task (Succeeded, Failed, Cancelled) can be retried; cancel it first to stop it`,
    );

    const cancelled = await call('POST', `/tasks/${id}/cancel`, { body: { reason: 'no longer needed' } });
    expect(cancelled.status).toBe(202);
    expect(cancelled.body).toMatchObject({ id, name });

    const done = await waitForStatus(id, 'Cancelled', 20_000);
    expect(done.reason).toBe('no longer needed');
    // The workflow deletes the Job before it writes Cancelled; with background propagation nothing
    // holds the Job back, and the garbage collector then removes its pod, so the work stops.
    await expect(readJob(name)).rejects.toMatchObject({ code: 404 });
    await waitFor('the pods of the cancelled Job to be deleted', async () => ((await podsOf(name)).length === 0 ? true : undefined), 20_000);

    const again = await call('POST', `/tasks/${id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error.message).toBe(`task ${id} is already Cancelled, so there is nothing to cancel; retry it to run it again`);
    await expectOneRunPerTask(stack.jobs, [done]);
  });
});

describe('POST /tasks/:id/retry', () => {
  it("runs a failed task again as attempt 2, replacing attempt 1's Job", async () => {
    const name = taskName('retry');
    const created = await submit({
      name,
      namespace: NAMESPACE,
      info: { image: 'alpine:3.20', annotations: { 'nightwatch.io/kwok-outcome': 'fail' } },
    });
    const id: string = created.body.id;
    const failed = await waitForStatus(id, 'Failed');
    expect(failed.attempt).toBe(1);
    const firstJob = await readJob(name);
    expect(firstJob.metadata?.labels?.[ATTEMPT_LABEL]).toBe('1');

    // Straight after the row turned Failed, while attempt 1's run may still be closing.
    const retried = await call('POST', `/tasks/${id}/retry`);

    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ id, status: 'Normal', attempt: 2, reason: null, startedAt: null, finishedAt: null });
    const secondJob = await waitFor<V1Job>('attempt 2 Job', async () => {
      const job = await readJob(name);
      return job.metadata?.labels?.[ATTEMPT_LABEL] === '2' ? job : undefined;
    }, 20_000, 100);
    expect(secondJob.metadata?.uid).not.toBe(firstJob.metadata?.uid);
    // Attempt 1's Job went with its pod: only attempt 2's pods remain.
    await waitFor('only attempt 2 pods to remain', async () => {
      const pods = await podsOf(name);
      return pods.length > 0 && pods.every((p) => p.metadata?.labels?.[ATTEMPT_LABEL] === '2') ? true : undefined;
    }, 20_000);
    // The info is unchanged, so attempt 2 fails too.
    const again = await waitFor('attempt 2 to fail', async () => {
      const r = await row(id);
      return r.attempt === 2 && r.status === 'Failed' ? r : undefined;
    });
    expect(again.reason).toBeTruthy();
    await expectOneRunPerAttempt(stack.jobs, again, [1, 2]);
  });

  it("waits for the previous attempt's run to close before starting the new attempt", async () => {
    const name = taskName('closing');
    const task = await insertRow(ALICE.user, 'Failed', name);
    const id = task.id.toString();
    const workflowId = taskWorkflowId(id, stack.config.WORKFLOW_ID_PREFIX);
    // Stands in for attempt 1's run in its last moments: open, on a queue no worker polls.
    const closing = await stack.client.workflow.start('taskWorkflow', {
      workflowId,
      taskQueue: `${stack.config.TEMPORAL_TASK_QUEUE}-nobody`,
      args: [{ taskId: id }],
    });
    setTimeout(() => void closing.terminate('attempt 1 run closes'), 1_000);

    const retried = await call('POST', `/tasks/${id}/retry`);

    expect(retried.status).toBe(202);
    // Attached to the closing run instead, attempt 2 would never start: no schedule runs here.
    const job = await waitFor('the attempt 2 Job', () => readJob(name), 15_000, 100);
    expect(job.metadata?.labels?.[ATTEMPT_LABEL]).toBe('2');
    const done = await waitForStatus(id, 'Succeeded');
    // Attempt 1 never ran here (the row was inserted Failed): attempt 2's is the only Job.
    await expectOneRunPerAttempt(stack.jobs, done, [2]);
  });
});

describe('other users', () => {
  it("cannot see, cancel or retry another user's task: 404, as if it did not exist", async () => {
    const finished = await insertRow(ALICE.user, 'Failed');
    const submitted = await insertRow(ALICE.user, 'Normal');
    const missing = `task ${finished.id} not found among your tasks; list them with GET /tasks`;

    const read = await call('GET', `/tasks/${finished.id}`, { token: BOB.token });
    const retry = await call('POST', `/tasks/${finished.id}/retry`, { token: BOB.token });
    const cancel = await call('POST', `/tasks/${submitted.id}/cancel`, { token: BOB.token });

    expect([read.status, retry.status, cancel.status]).toEqual([404, 404, 404]);
    expect(read.body.error).toEqual({ code: 'task_not_found', message: missing });
    expect(await row(finished.id.toString())).toMatchObject({ status: 'Failed', attempt: 1 });
    expect(await row(submitted.id.toString())).toMatchObject({ status: 'Normal', attempt: 1 });
    await expect(stack.client.workflow.getHandle(taskWorkflowId(submitted.id.toString(), stack.config.WORKFLOW_ID_PREFIX)).describe()).rejects.toThrow(
      /not found/i,
    );
    await expectNoJob(stack.jobs, submitted);
    // The owner sees it.
    expect((await call('GET', `/tasks/${finished.id}`)).status).toBe(200);
  });
});

describe('health', () => {
  it('answers liveness and readiness without a token', async () => {
    expect(await call('GET', '/healthz', { token: null })).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await call('GET', '/readyz', { token: null })).toEqual({
      status: 200,
      body: { status: 'ready', checks: { database: 'ok', temporal: 'ok' } },
    });
  });
});
