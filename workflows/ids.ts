// Workflow ids, readable in the Temporal Web UI. The optional prefix lets two nightwatch
// deployments (or test runs) share one Temporal namespace without their ids colliding.
export function taskWorkflowId(taskId: string, prefix = ''): string {
  return `${prefix}task-${taskId}`;
}

export const TASK_QUEUE_DEFAULT = 'nightwatch';
