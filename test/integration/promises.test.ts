// Promises README.md makes that no other test held it to, each on the real stack:
//  - SIGTERM gives an in-flight activity WORKER_SHUTDOWN_GRACE, then the worker exits 0;
//  - an invalid setting stops the process with an error naming the variable;
//  - POST /tasks while Temporal is down still answers 201, and the dispatcher runs the row later;
//  - cancelling a task whose workflow has not started ends it Cancelled without ever a Job;
//  - info.timeoutSeconds ends a long Job, and the row says why;
//  - 401, 403 and 429 from the Kubernetes API are retried with the error on the row, then the task succeeds.
// Faults come from a proxy in front of the real API server (test/support/fault-proxy.ts).
import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import type { Config } from '../../src/config.ts';
import type { Task } from '../../src/db/client.ts';
import { createKubeClients } from '../../src/kubernetes.ts';
import { taskWorkflowStart } from '../../workflows/ids.ts';
import { kubernetesStatus, startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { expectNoJob, expectOneRunPerTask } from '../support/job-ledger.ts';
import { connectStack, removeTemporalLeftovers, separateDeployment, startWorker, waitFor, type RunningWorker, type Stack } from '../support/stack.ts';
import { insertTask, jobsOfTask, runFor, spawnWorker, uniqueName, WORKER_START_LINE, waitForStatus, type WorkerProcess } from '../support/tasks.ts';

let stack: Stack;
let proxy: FaultProxy;
const processes: WorkerProcess[] = [];
const workers: RunningWorker[] = [];
const deployments: Config[] = [];

beforeAll(async () => {
  stack = await connectStack();
  proxy = await startFaultProxy(stack.config.KUBECONFIG!);
});
afterAll(async () => {
  for (const p of processes) p.child.kill('SIGKILL');
  for (const w of workers) await w.stop();
  await proxy?.close();
  for (const config of deployments) await removeTemporalLeftovers(stack.client, config);
  await stack?.close();
});

/** A deployment of this file's own (separateDeployment), cleaned up at the end. */
function deployment(): Config {
  const config = separateDeployment(stack.config);
  deployments.push(config);
  return config;
}

const addTask = (row: Parameters<typeof insertTask>[1]) => insertTask(stack, row);

function startTask(config: Config, task: Task) {
  return stack.client.workflow.start('taskWorkflow', {
    ...taskWorkflowStart({ ...task, id: task.id.toString() }, config.WORKFLOW_ID_PREFIX),
    taskQueue: config.TEMPORAL_TASK_QUEUE,
  });
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe('worker shutdown', () => {
  it('SIGTERM with a Job create in flight: the create finishes, the worker exits 0 within WORKER_SHUTDOWN_GRACE', async () => {
    // No Schedule fires during the test: the workflow is started directly.
    const config = deployment();
    const worker = spawnWorker(config, { KUBECONFIG: proxy.kubeconfigPath, WORKER_SHUTDOWN_GRACE: '20s', DISPATCH_INTERVAL: '1h', RECONCILE_INTERVAL: '1h' });
    processes.push(worker);
    await worker.ready;
    const task = await addTask({ info: { image: 'alpine', ...runFor('1s') } });
    // The API server takes 3 s to answer this task's create.
    proxy.rule = (req) => (req.createsJob === task.name ? { delayMs: 3_000 } : undefined);
    await startTask(config, task);
    await waitFor('the Job create to reach the API server', async () => (proxy.arrivals.some((r) => r.createsJob === task.name) ? true : undefined));

    const signalledAt = Date.now();
    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.output()).toBe(0);
    const exitedAt = Date.now();
    proxy.rule = () => undefined;

    const create = proxy.events.find((e) => e.createsJob === task.name);
    expect(create?.outcome, 'what became of the in-flight create').toBe('passed 201');
    expect(create!.at, 'the create was answered before the worker exited').toBeLessThanOrEqual(exitedAt);
    expect(exitedAt - signalledAt, 'ms from SIGTERM to exit (grace 20 s)').toBeLessThan(20_000);

    // What the stopped worker left unfinished, a replica finishes, on the Job that was created.
    workers.push(await startWorker({ ...stack, config }));
    expect((await waitForStatus(stack, task.id, ['Succeeded', 'Failed'], 90_000)).status).toBe('Succeeded');
    await expectOneRunPerTask(stack.jobs, [task]);
  }, 150_000);

  // Every step of a task workflow is a local activity. The SDK does not stop one at the end of
  // shutdownGraceTime, so a Kubernetes call that hangs would hold the worker past its grace.
  it('an activity longer than the grace does not hold the worker: it exits, and a replica runs the task', async () => {
    const config = deployment();
    const worker = spawnWorker(config, { KUBECONFIG: proxy.kubeconfigPath, WORKER_SHUTDOWN_GRACE: '1s', DISPATCH_INTERVAL: '1h', RECONCILE_INTERVAL: '1h' });
    processes.push(worker);
    await worker.ready;
    const task = await addTask({ info: { image: 'alpine', ...runFor('1s') } });
    proxy.rule = (req) => (req.createsJob === task.name ? { delayMs: 25_000 } : undefined);
    await startTask(config, task);
    await waitFor('the Job create to reach the API server', async () => (proxy.arrivals.some((r) => r.createsJob === task.name) ? true : undefined));

    worker.child.kill('SIGTERM');
    // Ample for a 1 s grace plus start-up noise on a busy machine; the held create lasts 25 s.
    const code = await Promise.race([worker.exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 15_000))]);
    expect(code, `worker 15 s after SIGTERM with WORKER_SHUTDOWN_GRACE=1s:\n${worker.output()}`).not.toBe('still running');
    expect(code, 'the worker exited on its own, not by a signal').not.toBeNull();
    expect(proxy.events.find((e) => e.createsJob === task.name)?.outcome ?? 'not answered yet', 'the held create when the worker had exited').not.toMatch(/^passed/);
    proxy.rule = () => undefined;

    workers.push(await startWorker({ ...stack, config }));
    expect((await waitForStatus(stack, task.id, ['Succeeded', 'Failed'], 90_000)).status).toBe('Succeeded');
    await expectOneRunPerTask(stack.jobs, [task]);
  }, 150_000);
});

describe('invalid configuration', () => {
  const API_ENTRY = fileURLToPath(new URL('../../src/api/server.ts', import.meta.url));

  /** Run `npm run api` (node running the TypeScript itself) to its exit. */
  function runApi(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
    const child = spawn(process.execPath, [API_ENTRY], {
      env: { ...process.env, DATABASE_URL: stack.config.DATABASE_URL, API_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    return new Promise((resolve) =>
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, output });
      }),
    );
  }

  it.each([
    ['DISPATCH_PAGE_SIZE', 'lots'],
    ['WORKER_SHUTDOWN_GRACE', 'soon'],
    ['TEMPORAL_TLS', 'maybe'],
    ['DATABASE_URL', 'not a url'],
    ['WORKFLOW_ID_PREFIX', 'has spaces'],
    ['WORKER_HEAP_GROWTH_PERCENT', 'lots'],
    ['WORKER_MALLOC', '/nonexistent/libmalloc.so'],
    ['WORKER_SEMI_SPACE_MB', 'lots'],
    ['WORKER_SEMI_SPACE_MB', '4096'],
  ])('`npm run worker` with %s=%s stops with an error naming the variable', async (variable, value) => {
    const worker = spawnWorker(stack.config, { [variable]: value });
    processes.push(worker);
    worker.ready.catch(() => undefined);
    const code = await worker.exited;
    expect(code, worker.output()).not.toBe(0);
    expect(code, 'the process ended on its own, not by a signal').not.toBeNull();
    expect(worker.output()).toContain(variable);
    expect(worker.output()).not.toContain(WORKER_START_LINE);
  });

  it('`npm run worker` with only one half of the TLS client certificate names both variables', async () => {
    const worker = spawnWorker(stack.config, { TEMPORAL_TLS_CERT_PATH: '/nonexistent/cert.pem' });
    processes.push(worker);
    worker.ready.catch(() => undefined);
    expect(await worker.exited, worker.output()).toBe(1);
    expect(worker.output()).toMatch(/TEMPORAL_TLS_CERT_PATH and TEMPORAL_TLS_KEY_PATH/);
  });

  it.each(['auto', 'system'])('`npm run worker` with WORKER_MALLOC=%s runs on the malloc it says it runs on', async (choice) => {
    // What `auto` picks (scripts/worker.sh): mimalloc, else jemalloc, else glibc's.
    const dirs = ['/usr/local/lib', `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`, '/usr/lib64', '/usr/lib'];
    const found = ['libmimalloc.so.2', 'libjemalloc.so.2'].flatMap((name) => dirs.map((d) => `${d}/${name}`)).find((f) => existsSync(f));
    const expected = choice === 'auto' ? found : undefined;
    // A deployment of its own: its dispatcher and reconcile Schedules must not touch this file's rows.
    const config = deployment();
    const worker = spawnWorker(config, { WORKER_MALLOC: choice, LD_PRELOAD: '' });
    processes.push(worker);
    await worker.ready;
    const maps = await readFile(`/proc/${worker.child.pid}/maps`, 'utf8');
    const mapped = /\/\S*lib(?:mimalloc|jemalloc)\.so[.\d]*/.exec(maps)?.[0];
    if (expected) expect(realpathSync(mapped ?? ''), maps).toBe(realpathSync(expected));
    else expect(mapped, 'no other malloc mapped').toBeUndefined();
    expect(worker.startLine()).toMatchObject({ malloc: expected ?? "the system's", heapGrowthPercent: 30 });
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    await removeTemporalLeftovers(stack.client, config);
  });

  it.each([
    ['unset', undefined, 8],
    ['2', '2', 2],
    ['0', '0', undefined],
  ])('`npm run worker` with WORKER_SEMI_SPACE_MB %s runs with the young generation it says', async (_label, value, expected) => {
    const config = deployment();
    const worker = spawnWorker(config, value === undefined ? {} : { WORKER_SEMI_SPACE_MB: value });
    processes.push(worker);
    await worker.ready;
    // V8 reads the flag from node's command line for every heap of the process, the workflow threads' too.
    const argv = (await readFile(`/proc/${worker.child.pid}/cmdline`, 'utf8')).split('\0');
    const flags = argv.filter((a) => a.startsWith('--max-semi-space-size'));
    expect(flags, argv.join(' ')).toEqual(expected === undefined ? [] : [`--max-semi-space-size=${expected}`]);
    expect(worker.startLine()).toMatchObject({ semiSpaceMb: expected ?? "V8's own" });
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    await removeTemporalLeftovers(stack.client, config);
  });

  it('`npm run api` with API_PORT=99999 stops with an error naming the variable', async () => {
    const { code, output } = await runApi({ API_PORT: '99999' });
    expect(code, output).toBe(1);
    expect(output).toContain('API_PORT');
  });
});

describe('the API when Temporal is down, and cancelling before the start', () => {
  const token = `tok-${uniqueName('promise')}`;
  const user = uniqueName('user');
  let down: { app: FastifyInstance; url: string; client: Client };
  let up: { app: FastifyInstance; url: string };

  beforeAll(async () => {
    const config: Config = { ...stack.config, API_TOKENS: `${token}:${user}` };
    // Nothing listens there: every Temporal call of this API fails (connection refused).
    const address = `127.0.0.1:${await closedPort()}`;
    const client = new Client({ connection: Connection.lazy({ address }), namespace: config.TEMPORAL_NAMESPACE });
    const downApp = buildApp({ config: { ...config, TEMPORAL_ADDRESS: address }, prisma: stack.prisma, client });
    await downApp.listen({ host: '127.0.0.1', port: 0 });
    down = { app: downApp, client, url: `http://127.0.0.1:${(downApp.server.address() as AddressInfo).port}` };
    const upApp = buildApp({ config, prisma: stack.prisma, client: stack.client });
    await upApp.listen({ host: '127.0.0.1', port: 0 });
    up = { app: upApp, url: `http://127.0.0.1:${(upApp.server.address() as AddressInfo).port}` };
    workers.push(await startWorker(stack));
  });
  afterAll(async () => {
    await down?.app.close();
    await down?.client.connection.close();
    await up?.app.close();
  });

  async function post(url: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: await response.json() };
  }

  async function submitWhileTemporalIsDown(label: string, info: unknown) {
    const name = uniqueName(label);
    const created = await post(down.url, '/tasks', { name, namespace: stack.namespace, info });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.status).toBe('Normal');
    const id = BigInt(created.body.id);
    const workflowId = taskWorkflowStart({ id: created.body.id, name, namespace: stack.namespace, userId: user }, stack.config.WORKFLOW_ID_PREFIX).workflowId;
    // The fast path failed, so no workflow exists for the row yet.
    await expect(stack.client.workflow.getHandle(workflowId).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    return { id, name, namespace: stack.namespace, workflowId };
  }

  it('POST /tasks answers 201 while Temporal is down; the row stays Normal until a dispatcher run picks it up', async () => {
    const task = await submitWhileTemporalIsDown('fallback', { image: 'alpine', ...runFor('1s') });
    // A worker is running on the queue: only a started workflow could move the row.
    await new Promise((r) => setTimeout(r, 3_000));
    const waiting = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
    expect(waiting).toMatchObject({ status: 'Normal', reason: null });
    await expectNoJob(stack.jobs, task);

    const totals = (await stack.client.workflow.execute('dispatchWorkflow', {
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      workflowId: `${stack.config.WORKFLOW_ID_PREFIX}dispatch-fallback`,
      args: [{ idPrefix: stack.config.WORKFLOW_ID_PREFIX, pageSize: 50 }],
    })) as { started: number };
    expect(totals.started).toBeGreaterThanOrEqual(1);
    const done = await waitForStatus(stack, task.id, ['Succeeded', 'Failed', 'Cancelled']);
    expect(done).toMatchObject({ status: 'Succeeded', reason: null });
    await expectOneRunPerTask(stack.jobs, [done]);
  }, 90_000);

  it('cancelling a task whose workflow has not started ends it Cancelled, and no Job is ever created', async () => {
    const task = await submitWhileTemporalIsDown('cancel-early', { image: 'alpine', ...runFor('30s') });
    const cancelled = await post(up.url, `/tasks/${task.id}/cancel`, { reason: 'changed my mind' });
    expect(cancelled.status, JSON.stringify(cancelled.body)).toBe(202);
    const result = await stack.client.workflow.getHandle(task.workflowId).result();
    expect(result).toMatchObject({ status: 'Cancelled' });
    const row = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
    expect(row).toMatchObject({ status: 'Cancelled', reason: 'changed my mind' });
    expect(row.startedAt).toBeNull();
    await expectNoJob(stack.jobs, task);
  }, 60_000);
});

describe('timeouts and refusals from the Kubernetes API', () => {
  it('info.timeoutSeconds ends a Job that runs too long: Failed, with the deadline as reason', async () => {
    const config = deployment();
    workers.push(await startWorker({ ...stack, config }));
    const task = await addTask({ info: { image: 'alpine', timeoutSeconds: 3, ...runFor('120s') } });
    await startTask(config, task);
    const done = await waitForStatus(stack, task.id, ['Succeeded', 'Failed', 'Cancelled'], 60_000);
    expect(done.status).toBe('Failed');
    expect(done.reason).toMatch(/longer than info\.timeoutSeconds \(3s\)/);
    const [job] = await jobsOfTask(stack, task);
    expect(job?.spec?.activeDeadlineSeconds).toBe(3);
    // The cluster, not nightwatch, ended it: the Job controller's own verdict.
    expect(job?.status?.conditions?.map((c) => c.reason)).toContain('DeadlineExceeded');
  }, 90_000);

  const refusals = [
    { code: 401, body: kubernetesStatus(401, 'Unauthorized', 'Unauthorized') },
    {
      code: 403,
      // RBAC's refusal, as the API server words it (no admission webhook or policy involved).
      body: {
        ...kubernetesStatus(403, 'Forbidden', 'jobs.batch is forbidden: User "system:serviceaccount:nightwatch:worker" cannot create resource "jobs" in API group "batch" in the namespace "tasks"'),
        details: { group: 'batch', kind: 'jobs' },
      },
    },
    { code: 429, body: kubernetesStatus(429, 'TooManyRequests', 'too many requests, please try again later') },
  ];

  it.each(refusals)('Job creates refused with $code: the row shows the error while retrying, then the task succeeds with one Job', async ({ code, body }) => {
    const config = deployment();
    workers.push(await startWorker({ ...stack, config, kube: createKubeClients(proxy.kubeconfigPath) }));
    const task = await addTask({ info: { image: 'alpine', ...runFor('1s') } });
    let refusing = true;
    proxy.rule = (req) => (refusing && req.createsJob === task.name ? { status: code, body } : undefined);
    try {
      await startTask(config, task);
      const waiting = await waitFor('the row to show the refusal', async () => {
        const row = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
        return row.reason ? row : undefined;
      });
      expect(waiting.status).toBe('Normal');
      expect(waiting.reason).toContain(`${code} ${body.reason}`);
      expect(waiting.reason).toMatch(/^creating the Job failed: .*retrying in \d+ s$/);
      expect(proxy.events.filter((e) => e.createsJob === task.name && e.outcome === `refused ${code}`).length).toBeGreaterThanOrEqual(1);
    } finally {
      refusing = false;
    }
    const done = await waitForStatus(stack, task.id, ['Succeeded', 'Failed', 'Cancelled'], 90_000);
    expect(done).toMatchObject({ status: 'Succeeded', reason: null });
    await expectOneRunPerTask(stack.jobs, [task]);
    expect(proxy.events.filter((e) => e.createsJob === task.name && e.outcome.startsWith('passed'))).toHaveLength(1);
  }, 120_000);
});
