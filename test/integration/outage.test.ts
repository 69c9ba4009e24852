// A real Kubernetes outage, as a worker sees it: its kubeconfig points at a port where nothing
// listens (connection refused). The task waits, its row showing the error, and finishes once a
// worker that reaches the cluster takes over.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClients } from '../../src/kubernetes.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { taskWorkflow } from '../../workflows/task.ts';
import { expectNoJob, expectOneRunPerTask } from '../support/job-ledger.ts';
import { connectStack, startWorker, waitFor, type RunningWorker, type Stack } from '../support/stack.ts';
import { insertTask, waitForStatus } from '../support/tasks.ts';
import { closedPort } from '../support/net.ts';

let stack: Stack;
let deadKubeconfig: string;
const workers: RunningWorker[] = [];

beforeAll(async () => {
  stack = await connectStack();
  const kubeconfig = await readFile(stack.config.KUBECONFIG!, 'utf8');
  deadKubeconfig = join(tmpdir(), `nightwatch-dead-${process.pid}.kubeconfig`);
  await writeFile(deadKubeconfig, kubeconfig.replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${await closedPort()}`));
});
afterAll(async () => {
  for (const w of workers) await w.stop();
  await rm(deadKubeconfig, { force: true });
  await stack?.close();
});

describe('Kubernetes outage', () => {
  it('keeps the task waiting with the error on its row, then finishes it when the cluster is reachable again', async () => {
    const cutOff = await startWorker({ ...stack, kube: createKubeClients(deadKubeconfig) });
    workers.push(cutOff);
    const task = await insertTask(stack, {});
    await stack.client.workflow.start(taskWorkflow, {
      taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
      workflowId: taskWorkflowId(task.id.toString(), stack.config.WORKFLOW_ID_PREFIX),
      args: [{ taskId: task.id.toString() }],
    });
    const waiting = await waitFor('the row to show the outage', async () => {
      const row = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
      return row.reason ? row : undefined;
    });
    expect(waiting.status).toBe('Normal');
    expect(waiting.reason).toMatch(/^creating the Job failed: Kubernetes API unreachable \(connect ECONNREFUSED 127\.0\.0\.1:\d+\).*retrying in \d+ s$/);
    await expectNoJob(stack.jobs, task);

    // The cluster "comes back": the cut-off worker leaves, one that reaches it takes over.
    await cutOff.stop();
    workers.push(await startWorker(stack));
    const done = await waitForStatus(stack, task.id, ['Succeeded', 'Failed'], 90_000);
    expect(done).toMatchObject({ status: 'Succeeded', reason: null });
    await expectOneRunPerTask(stack.jobs, [task]);
  }, 120_000);
});
