// Temporal activities: starting task workflows for the dispatcher, and what reconcile needs to
// know about other workflows.
import { Context } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { dispatchBatchRows, dispatchBatches, dispatchRows } from '../src/metrics.ts';
import { workflowIsRunning } from '../src/temporal.ts';
import { taskWorkflowId, taskWorkflowStart } from '../workflows/ids.ts';
import type { TaskRef } from './database.ts';

/** Starts in flight at once: the server answers each in milliseconds; more only queue there. */
const START_CONCURRENCY = 20;

export interface StartPolicy {
  /**
   * Of a page of rows, those that may start now (the per-user cap, activities/admission.ts); the
   * others wait Normal. Applied here rather than by the dispatcher workflow so the rows cross its
   * history once: a page of 1,000 refs is ~100 KB, and each extra activity round trip doubles it.
   */
  startable?: (tasks: TaskRef[]) => Promise<TaskRef[]>;
}

export function createTemporalActivities(client: Client, policy: StartPolicy = {}) {
  return {
    /**
     * Start task-<id> for each row, on this worker's task queue. A run already open for a task is
     * its owner and is left alone; a closed one (an earlier attempt) gives way to a new run.
     * Eager start hands the new workflow's first task straight to a worker in this process when
     * one has room, skipping a round through the task queue.
     */
    async startTaskWorkflows(input: { tasks: TaskRef[]; idPrefix: string }): Promise<{ started: number; alreadyRunning: number; held?: number }> {
      const { taskQueue } = Context.current().info;
      const tasks = policy.startable ? await policy.startable(input.tasks) : input.tasks;
      let started = 0;
      let alreadyRunning = 0;
      for (let i = 0; i < tasks.length; i += START_CONCURRENCY) {
        await Promise.all(
          tasks.slice(i, i + START_CONCURRENCY).map(async (task) => {
            try {
              await client.workflow.start('taskWorkflow', {
                ...taskWorkflowStart(task, input.idPrefix),
                taskQueue,
                workflowIdConflictPolicy: 'FAIL',
                requestEagerStart: true,
              });
              started++;
            } catch (err) {
              if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
              alreadyRunning++;
            }
          }),
        );
      }
      const held = input.tasks.length - tasks.length;
      dispatchBatches.inc();
      dispatchBatchRows.observe(input.tasks.length);
      dispatchRows.labels({ result: 'started' }).inc(started);
      dispatchRows.labels({ result: 'already_running' }).inc(alreadyRunning);
      dispatchRows.labels({ result: 'held' }).inc(held);
      return { started, alreadyRunning, held };
    },

    /** The ids among `taskIds` whose task workflow is not running (never started, finished, or terminated). */
    async tasksWithoutRunningWorkflow(input: { taskIds: string[]; idPrefix: string }): Promise<string[]> {
      const running = await Promise.all(
        input.taskIds.map((id) => workflowIsRunning(client, taskWorkflowId(id, input.idPrefix))),
      );
      return input.taskIds.filter((_, i) => !running[i]);
    },
  };
}
