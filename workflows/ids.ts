// Workflow ids, readable in the Temporal Web UI. The optional prefix lets two nightwatch
// deployments (or test runs) share one Temporal namespace without their ids colliding.
export function taskWorkflowId(taskId: string, prefix = ''): string {
  return `${prefix}task-${taskId}`;
}

interface TaskLabel {
  id: string;
  name: string;
  namespace: string;
  userId: string;
}

/**
 * How every starter (dispatcher, reconcile, the API) starts task-<id>: its id, its input, and
 * what the Temporal Web UI shows for it (memo, and a one-line summary in the workflow list).
 */
export function taskWorkflowStart(task: TaskLabel, idPrefix: string) {
  return {
    workflowId: taskWorkflowId(task.id, idPrefix),
    args: [{ taskId: task.id }] as [{ taskId: string }],
    memo: { taskName: task.name, namespace: task.namespace, userId: task.userId },
    staticSummary: `${task.namespace}/${task.name} (user ${task.userId})`,
  };
}
