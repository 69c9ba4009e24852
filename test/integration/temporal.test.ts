// The Temporal part of the local stack: a real worker runs a workflow on the dev server.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Worker } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { connectWorker } from '../../src/worker-setup.ts';
import { connectStack, testConfig } from '../support/stack.ts';

describe('Temporal dev server', () => {
  it('runs a workflow with an activity and a timer on a real worker', async () => {
    const config = testConfig();
    const stack = await connectStack(config);
    const connection = await connectWorker(config);
    const taskQueue = `greeting-${randomBytes(3).toString('hex')}`;
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowsPath: fileURLToPath(new URL('../support/workflows/greeting.ts', import.meta.url)),
      activities: { greet: async (name: string) => `hello, ${name}` },
    });
    try {
      const result = await worker.runUntil(
        stack.client.workflow.execute('greetingWorkflow', { taskQueue, workflowId: `greeting-${taskQueue}`, args: ['nightwatch'] }),
      );
      expect(result).toBe('hello, nightwatch');
      const history = await stack.client.workflow.getHandle(`greeting-${taskQueue}`).fetchHistory();
      const types = history.events!.map((e) => e.eventType);
      expect(types).toContain(10 /* ActivityTaskScheduled */);
      expect(types).toContain(17 /* TimerStarted */);
    } finally {
      await connection.close();
      await stack.close();
    }
  });
});
