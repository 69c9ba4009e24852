// Workflow stack traces (the Web UI's "Stack Trace" tab, the `__stack_trace` query) are off by
// default (WORKER_WORKFLOW_STACK_TRACES=false): the SDK captures and source-maps a stack trace for
// every promise created in workflow code, a quarter of the worker's CPU at 1,000 tasks.
// patches/@temporalio+worker+*.patch adds the switch. These tests run a real worker with the options
// the worker builds from its configuration (sandboxOptions) and ask a waiting workflow for its
// stack, so they fail if the patch stops applying or the setting stops reaching the sandbox.
import type { Client } from '@temporalio/client';
import { afterAll, describe, expect, it } from 'vitest';
import type { Activities } from '../../activities/index.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { sandboxOptions } from '../../src/worker-setup.ts';
import { taskWorkflow } from '../../workflows/task.ts';
import { startStubWorker, type StubWorker } from '../support/stub-worker.ts';

// A task whose Job is created and then never changes: its workflow waits in `follow`.
const stubs: Partial<Activities> = {
  async loadTask(id) {
    return { id, name: `task-${id}`, namespace: 'default', userId: 'u1', status: 'Normal', attempt: 1, valid: true, info: { image: 'alpine' } as never };
  },
  async createJob() {
    return 'created';
  },
  async markStatus() {
    return { updated: true };
  },
};

const workers: StubWorker[] = [];
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()));
});

/** The answer to `__stack_trace` from a waiting task workflow on a worker configured with `env`. */
async function stackOfWaitingWorkflow(env: Record<string, string>): Promise<string> {
  const config = loadConfig(env, '/nonexistent');
  const worker = await startStubWorker('stack-traces', stubs, undefined, sandboxOptions(config));
  workers.push(worker);
  const client: Client = worker.client;
  const handle = await client.workflow.start(taskWorkflow, {
    taskQueue: worker.taskQueue,
    workflowId: `${worker.taskQueue}-task`,
    args: [{ taskId: `${Date.now()}` }],
  });
  try {
    // Wait until the run has taken its first workflow task (it then waits for the Job watch).
    await expect.poll(async () => (await handle.fetchHistory()).events?.length ?? 0, { timeout: 10_000 }).toBeGreaterThan(4);
    return await handle.query<string>('__stack_trace');
  } finally {
    await handle.terminate('test over');
  }
}

describe('workflow stack traces', () => {
  it('are off by default: the stack trace query says so', async () => {
    expect(loadConfig({}, '/nonexistent').WORKER_WORKFLOW_STACK_TRACES).toBe(false);
    await expect(stackOfWaitingWorkflow({})).rejects.toThrow(/stack traces are not enabled/);
  });

  it('show where the workflow waits when turned on', async () => {
    const stack = await stackOfWaitingWorkflow({ WORKER_WORKFLOW_STACK_TRACES: 'true' });
    expect(stack).toMatch(/\bfollow\b/);
    expect(stack).toContain('workflows/task.ts');
  });

  it('refuses a value that is not a boolean, naming the variable', () => {
    expect(() => loadConfig({ WORKER_WORKFLOW_STACK_TRACES: 'sometimes' }, '/nonexistent')).toThrow(ConfigError);
    expect(() => loadConfig({ WORKER_WORKFLOW_STACK_TRACES: 'sometimes' }, '/nonexistent')).toThrow(/WORKER_WORKFLOW_STACK_TRACES/);
  });
});
