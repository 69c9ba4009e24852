// Starting a task workflow from the dispatcher or reconcile: one child per task, id task-<id>.
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ParentClosePolicy, startChild } from '@temporalio/workflow';
import type { TaskRef } from '../activities/index.ts';
import { taskWorkflowStart } from './ids.ts';
import { taskWorkflow } from './task.ts';

/**
 * Start task-<id> as an abandoned child: it outlives the dispatcher run that started it
 * (the dispatcher continues as new and is started afresh by its Schedule). A workflow
 * already running for the task is that task's owner, and is left to it.
 */
export async function startTaskWorkflow(task: TaskRef, idPrefix: string): Promise<'started' | 'already-running'> {
  try {
    await startChild(taskWorkflow, { ...taskWorkflowStart(task, idPrefix), parentClosePolicy: ParentClosePolicy.ABANDON });
    return 'started';
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return 'already-running';
    throw err;
  }
}
