// Workflow ids, readable in the Temporal Web UI. The optional prefix lets two nightwatch
// deployments (or test runs) share one Temporal namespace without their ids colliding.
export function taskWorkflowId(taskId: string, prefix = ''): string {
  return `${prefix}task-${taskId}`;
}

interface TaskLabel {
  name: string;
  namespace: string;
  userId: string;
}

/** What the Temporal Web UI shows for a task workflow (memo), set by whoever starts it. */
export function taskMemo(task: TaskLabel) {
  return { taskName: task.name, namespace: task.namespace, userId: task.userId };
}
/** The one-line summary the Web UI shows in the workflow list. */
export function taskSummary(task: TaskLabel): string {
  return `${task.namespace}/${task.name} (user ${task.userId})`;
}
