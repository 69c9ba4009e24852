// Metrics and structured logs on the real stack (issue 10, parts 1 and 2): a real `npm run worker`
// process with both metrics ports, the API in this process, one task that succeeds and one that
// fails. Both endpoints are scraped and their counts checked; the worker's and the API's output
// must be JSON lines naming the task, and never carry a token or anything of a task's `info`.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import { loggerOptions } from '../../src/log.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { closedPort } from '../support/net.ts';
import { connectStack, testConfig, waitFor, type Stack } from '../support/stack.ts';
import { runFor, spawnWorker, waitForStatus, type WorkerProcess } from '../support/tasks.ts';

const tag = randomBytes(3).toString('hex');
const TOKEN = `metrics-token-${tag}-${randomBytes(8).toString('hex')}`;
const SECRET = `info-secret-${randomBytes(8).toString('hex')}`;
let stack: Stack;
let worker: WorkerProcess;
let app: FastifyInstance;
let baseUrl: string;
let workerMetricsPort: number;
let sdkMetricsPort: number;
let apiLog = '';
const ids: { ok?: string; failed?: string } = {};

beforeAll(async () => {
  stack = await connectStack(testConfig({ API_TOKENS: `${TOKEN}:metrics-user-${tag}` }));
  workerMetricsPort = await closedPort();
  sdkMetricsPort = await closedPort();
  worker = spawnWorker(stack.config, {
    WORKER_METRICS_PORT: String(workerMetricsPort),
    TEMPORAL_METRICS_PORT: String(sdkMetricsPort),
    METRICS_HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
  });
  await worker.ready;
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      apiLog += chunk.toString();
      done();
    },
  });
  app = buildApp(stack, { logger: { ...loggerOptions('info', 'nightwatch-api'), stream } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const submit = async (name: string, outcome?: 'fail') => {
    const info = { image: 'alpine:3.20', command: ['true'], env: { SECRET_VALUE: SECRET }, ...runFor('1s', outcome) };
    const response = await fetch(`${baseUrl}/tasks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, namespace: stack.namespace, info }),
    });
    expect(response.status).toBe(201);
    return ((await response.json()) as { id: string }).id;
  };
  ids.ok = await submit(`metrics-ok-${tag}`);
  ids.failed = await submit(`metrics-fail-${tag}`, 'fail');
  await waitForStatus(stack, BigInt(ids.ok), ['Succeeded'], 90_000);
  await waitForStatus(stack, BigInt(ids.failed), ['Failed'], 90_000);
  const read = await fetch(`${baseUrl}/tasks/${ids.ok}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(read.status).toBe(200);
}, 180_000);

afterAll(async () => {
  await app?.close();
  if (worker && worker.child.exitCode === null) {
    worker.child.kill('SIGTERM');
    await worker.exited;
  }
  await stack?.close();
});

/** The samples of an exposition: `name{labels} value` → value, keyed by the line's name and labels as written. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function scrape(url: string): Promise<{ text: string; values: Map<string, number> }> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  const text = await response.text();
  return { text, values: samples(text) };
}

describe('metrics', () => {
  it("the worker's endpoint counts the tasks' transitions, latencies and dispatch", async () => {
    // The two latencies are observed just after the activity's write: wait for them.
    const { values } = await waitFor(
      'the job-end-to-row latency of both tasks',
      async () => {
        const s = await scrape(`http://127.0.0.1:${workerMetricsPort}/metrics`);
        return s.values.get('nightwatch_task_job_end_to_row_seconds_count') === 2 ? s : undefined;
      },
      30_000,
    );
    expect(values.get('nightwatch_task_transitions_total{to="Pending"}')).toBe(2);
    expect(values.get('nightwatch_task_transitions_total{to="Succeeded"}')).toBe(1);
    expect(values.get('nightwatch_task_transitions_total{to="Failed"}')).toBe(1);
    expect(values.get('nightwatch_task_submission_to_job_seconds_count')).toBe(2);
    expect(values.get('nightwatch_task_submission_to_job_seconds_sum')).toBeLessThan(60);
    expect(values.get('nightwatch_task_job_end_to_row_seconds_sum')).toBeLessThan(30);
    expect(values.get('nightwatch_job_watch_signals_total{result="sent"}')).toBeGreaterThanOrEqual(2);
    expect(values.get('nightwatch_job_watch_restarts_total')).toBe(0);
    expect(values.get('nightwatch_job_watch_healthy')).toBe(1);
    // The API started both workflows itself; a dispatcher page found nothing left to start.
    expect(values.get('nightwatch_dispatch_rows_total{result="started"}') ?? 0).toBe(0);
    expect(values.get('nightwatch_tasks{status="Running"}')).toBe(0);
    expect(values.get('nightwatch_tasks{status="Pending"}')).toBe(0);
    expect(values.get('nightwatch_oldest_task_age_seconds{status="Normal"}')).toBe(0);
    expect(values.has('nightwatch_process_cpu_user_seconds_total')).toBe(true);
    // The SDK's workflow thread, caught as it was created (src/workflow-threads.ts), is measured.
    expect(values.get('nightwatch_workflow_thread_heap_bytes{kind="used"}')).toBeGreaterThan(0);
    expect(values.get('nightwatch_workflow_thread_heap_bytes{kind="limit"}')).toBeGreaterThan(values.get('nightwatch_workflow_thread_heap_bytes{kind="used"}')!);
  });

  it("the SDK's own worker metrics are on TEMPORAL_METRICS_PORT", async () => {
    const { text } = await scrape(`http://127.0.0.1:${sdkMetricsPort}/metrics`);
    expect(text).toMatch(/^temporal_\w+/m);
    expect(text).toContain(stack.config.TEMPORAL_TASK_QUEUE);
  });

  it("the API's endpoint counts requests by route pattern and status, with no token", async () => {
    const { values } = await scrape(`${baseUrl}/metrics`);
    expect(values.get('nightwatch_api_requests_total{method="POST",route="/tasks",status="201"}')).toBe(2);
    expect(values.get('nightwatch_api_requests_total{method="GET",route="/tasks/:id",status="200"}')).toBe(1);
    expect(values.get('nightwatch_api_request_duration_seconds_count{method="POST",route="/tasks"}')).toBe(2);
    // Route patterns only: never an id.
    expect([...values.keys()].some((k) => k.includes(`/tasks/${ids.ok}`))).toBe(false);
    expect(values.get('nightwatch_tasks{status="Running"}')).toBe(0);
  });
});

describe('structured logs', () => {
  const jsonLines = (text: string) =>
    text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          throw new Error(`not a JSON line: ${l}`);
        }
      });

  it('the worker writes one JSON line per event, naming the task, its workflow and attempt', () => {
    const lines = jsonLines(worker.output());
    for (const line of lines) {
      expect(typeof line.level).toBe('string');
      expect(typeof line.time).toBe('string');
      expect(line.service).toBe('nightwatch-worker');
      expect(typeof line.msg).toBe('string');
    }
    const workflowId = taskWorkflowId(ids.ok!, stack.config.WORKFLOW_ID_PREFIX);
    const ofTask = lines.filter((l) => l.taskId === ids.ok);
    expect(ofTask.length).toBeGreaterThan(0);
    expect(ofTask.every((l) => l.workflowId === workflowId)).toBe(true);
    // An activity's line names the row's attempt; a workflow's its run.
    expect(ofTask.some((l) => typeof l.taskAttempt === 'number' && l.activityType === 'markStatus')).toBe(true);
    expect(ofTask.some((l) => typeof l.runId === 'string' && l.workflowType === 'taskWorkflow')).toBe(true);
  });

  it('no token and nothing of a task info reaches a log, worker or API', () => {
    for (const text of [worker.output(), apiLog]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain('alpine:3.20');
    }
    const api = jsonLines(apiLog);
    expect(api.length).toBeGreaterThan(0);
    expect(api.every((l) => l.service === 'nightwatch-api')).toBe(true);
    expect(api.some((l) => (l.req as { url?: string } | undefined)?.url === '/tasks')).toBe(true);
  });
});
