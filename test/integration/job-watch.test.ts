// The worker's Job watch on the real stack: task workflows follow their Jobs through its signals
// (no read of a Job), fall back to reading when it is gone, resend a lost signal that ends a task,
// survive a silent stall (the watchdog restarts it) and a restart of the Kubernetes API server, and a change to a task whose workflow
// has ended is dropped harmlessly.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '../../src/db/client.ts';
import type { KubeClients } from '../../src/kubernetes.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { taskWorkflow } from '../../workflows/task.ts';
import { connectStack, startWorker, waitFor, waitForRunClosed, type RunningWorker, type Stack } from '../support/stack.ts';
import { deleteJobsOf, insertTask, runFor, waitForStatus } from '../support/tasks.ts';

const run = promisify(execFile);

/** Gone, or a zombie nobody has reaped yet (stack.sh treats that as stopped too). */
function exited(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
  } catch {
    return true;
  }
}
const repo = fileURLToPath(new URL('../..', import.meta.url));
let stack: Stack;
let worker: RunningWorker | null = null;
const tasks: Task[] = [];
/** Calls the worker made through the Job API client, by method. */
const calls = new Map<string, number>();

/** The stack's Job API client, counting each call by method name (each is one request). */
function countedKube(): Pick<KubeClients, 'batch' | 'core' | 'kubeconfig'> {
  const counted = <T extends object>(api: T): T =>
    new Proxy(api, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  return { batch: counted(stack.kube.batch), core: counted(stack.kube.core), kubeconfig: stack.kube.kubeconfig };
}

beforeAll(async () => {
  stack = await connectStack();
});
afterEach(async () => {
  await worker?.stop();
  worker = null;
  calls.clear();
});
afterAll(async () => {
  await deleteJobsOf(stack, tasks);
  await stack.close();
});

async function startTask(info: unknown, extra: { fallbackAfterMs?: number } = {}): Promise<Task> {
  const task = await insertTask(stack, { info });
  tasks.push(task);
  await stack.client.workflow.start(taskWorkflow, {
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    workflowId: taskWorkflowId(task.id.toString(), stack.config.WORKFLOW_ID_PREFIX),
    args: [{ taskId: task.id.toString(), ...extra }],
  });
  return task;
}

async function signalsReceived(task: Task): Promise<number> {
  const history = await stack.client.workflow.getHandle(taskWorkflowId(task.id.toString(), stack.config.WORKFLOW_ID_PREFIX)).fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'jobChanged').length;
}

describe('the Job watch', () => {
  it('carries every task to Succeeded through its signals: one request (the create) per task, no read of a Job', async () => {
    worker = await startWorker({ ...stack, kube: countedKube() });
    await worker.watch.ready;
    const batch = await Promise.all(Array.from({ length: 5 }, () => startTask({ image: 'alpine', ...runFor('1s') })));
    for (const t of batch) {
      expect((await waitForStatus(stack, t.id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
      expect(await signalsReceived(t)).toBeGreaterThanOrEqual(1);
    }
    expect(calls.get('createNamespacedJob')).toBe(5);
    expect(calls.get('readNamespacedJob') ?? 0).toBe(0);
    // Pods and pod-creation failures come from the watch too: only its own lists (one per namespace), no reads per task.
    expect(calls.get('listNamespacedPod') ?? 0).toBeLessThanOrEqual(stack.namespaces.length);
    expect(calls.get('listNamespacedEvent') ?? 0).toBeLessThanOrEqual(stack.namespaces.length);
    expect(worker.watch.stats.signalErrors).toBe(0);
  });

  it('keeps of each Job and pod only what is read: no managedFields, no pod spec', async () => {
    worker = await startWorker(stack);
    await worker.watch.ready;
    const task = await startTask({ image: 'alpine', ...runFor('3s') });
    await waitForStatus(stack, task.id, ['Running']);
    const job = worker.watch.cached(task.namespace, task.name);
    expect(job?.metadata?.labels).toBeDefined();
    expect(job?.spec?.template).toBeDefined();
    expect(job?.metadata?.managedFields).toBeUndefined();
    const pods = worker.watch.surroundings(job!)?.pods ?? [];
    expect(pods.length).toBe(1);
    expect(pods[0]!.status?.phase).toBe('Running');
    expect(pods[0]!.metadata?.managedFields).toBeUndefined();
    expect(pods[0]!.spec).toBeUndefined();
    // The API server does send them; the watch drops them.
    const fromServer = await stack.kube.core.listNamespacedPod({ namespace: task.namespace, labelSelector: `job-name=${task.name}` });
    expect(fromServer.items[0]?.metadata?.managedFields?.length).toBeGreaterThan(0);
    expect(fromServer.items[0]?.spec?.containers.length).toBe(1);
    expect((await waitForStatus(stack, task.id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
  });

  it('finishes a task by reading its Job when the watch has stopped', async () => {
    worker = await startWorker({ ...stack, kube: countedKube() });
    await worker.watch.ready;
    await worker.watch.stop();
    const task = await startTask({ image: 'alpine', ...runFor('1s') }, { fallbackAfterMs: 1_000 });
    expect((await waitForStatus(stack, task.id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
    expect(await signalsReceived(task)).toBe(0);
    expect(calls.get('readNamespacedJob') ?? 0).toBeGreaterThanOrEqual(1);
  });

  it('sends again a signal that ends a task when it was lost on the way, and stops once the workflow has ended', async () => {
    worker = await startWorker({ ...stack, kube: countedKube() }, { resendEveryMs: 1_000 });
    await worker.watch.ready;
    worker.watch.simulateLostSignals(1);
    // The workflow's own look would come only after ten minutes: the resend must end the task.
    const task = await startTask({ image: 'alpine', ...runFor('1s') }, { fallbackAfterMs: 10 * 60_000 });
    expect((await waitForStatus(stack, task.id, ['Succeeded', 'Failed'], 30_000)).status).toBe('Succeeded');
    const watch = worker.watch;
    expect(watch.stats.signalsResent).toBeGreaterThanOrEqual(1);
    expect(calls.get('readNamespacedJob') ?? 0).toBe(0);
    // The workflow has ended (wait for the run to close, a moment after its final row): the next
    // resend hears "not found" and the change is forgotten.
    await waitForRunClosed(stack.client, taskWorkflowId(task.id.toString(), stack.config.WORKFLOW_ID_PREFIX));
    const resent = watch.stats.signalsResent;
    await new Promise((r) => setTimeout(r, 3_000));
    expect(watch.stats.signalsResent).toBeLessThanOrEqual(resent + 1);
    const settled = watch.stats.signalsResent;
    await new Promise((r) => setTimeout(r, 3_000));
    expect(watch.stats.signalsResent).toBe(settled);
    expect(watch.stats.signalErrors).toBe(0);
  });

  it('restarts a watch that went silent, and tasks keep finishing through its signals', async () => {
    worker = await startWorker({ ...stack, kube: countedKube() }, { stallAfterMs: 3_000, watchdogEveryMs: 500 });
    await worker.watch.ready;
    await worker.watch.simulateSilentStall();
    const watch = worker.watch;
    await waitFor('the watchdog to restart the watch', async () => (watch.stats.restarts >= 1 && watch.healthy() ? true : undefined), 20_000);
    const task = await startTask({ image: 'alpine', ...runFor('1s') });
    expect((await waitForStatus(stack, task.id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
    expect(await signalsReceived(task)).toBeGreaterThanOrEqual(1);
    expect(calls.get('readNamespacedJob') ?? 0).toBe(0);
  });

  it('drops a change to a task whose workflow has ended, leaving its row alone', async () => {
    worker = await startWorker(stack);
    await worker.watch.ready;
    const task = await startTask({ image: 'alpine', ...runFor('500ms') });
    const done = await waitForStatus(stack, task.id, ['Succeeded', 'Failed']);
    expect(done.status).toBe('Succeeded');
    const before = worker.watch.stats.signalsToNoWorkflow;
    await stack.kube.batch.deleteNamespacedJob({ name: task.name, namespace: task.namespace, body: { propagationPolicy: 'Background' } });
    const watch = worker.watch;
    await waitFor('the deletion to be signalled and dropped', async () => (watch.stats.signalsToNoWorkflow > before ? true : undefined), 20_000);
    const after = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
    expect(after).toMatchObject({ status: 'Succeeded', reason: null, updatedAt: done.updatedAt });
    expect(watch.stats.signalErrors).toBe(0);
  });

  it('resumes after the Kubernetes API server restarts mid-batch', async () => {
    worker = await startWorker(stack);
    await worker.watch.ready;
    const batch = await Promise.all(Array.from({ length: 6 }, () => startTask({ image: 'alpine', ...runFor('6s') })));
    await waitFor('the batch to be under way', async () => {
      const n = await stack.prisma.task.count({ where: { id: { in: batch.map((t) => t.id) }, status: { in: ['Running'] } } });
      return n >= 1 ? n : undefined;
    });
    const stackDir = process.env.NW_STACK_DIR || join(repo, '.stack');
    const pid = Number(await readFile(join(stackDir, 'run', 'kube-apiserver.pid'), 'utf8'));
    let crash: unknown = null;
    try {
      // A crash, not a clean stop: the watch's connection breaks without a goodbye.
      process.kill(-pid, 'SIGKILL');
      await waitFor('the API server to be gone', async () => (exited(pid) ? true : undefined), 30_000);
    } catch (err) {
      crash = err;
    }
    // Whatever happened above, the rest of the suite needs the API server back; when that fails
    // too, both errors are reported (a plain finally would report only the restart's).
    try {
      await run('bash', [join(repo, 'scripts/stack/stack.sh'), 'start'], { timeout: 120_000 });
    } catch (err) {
      throw crash === null ? err : new AggregateError([crash, err], `crashing the API server (pid ${pid}) failed, then restarting it failed`);
    }
    if (crash !== null) throw crash;
    for (const t of batch) expect((await waitForStatus(stack, t.id, ['Succeeded', 'Failed'], 90_000)).status).toBe('Succeeded');
    expect(worker.watch.stats.restarts).toBeGreaterThanOrEqual(1);
    expect(worker.watch.healthy()).toBe(true);
  }, 240_000);
});
