// The task lifecycle (ARCHITECTURE.md): Normal → Pending → Running → Succeeded | Failed | Cancelled.
// Statuses are stored as strings so a database written by the classic Go nightwatch reads as is.
// Pure module: workflows import it too.

export const TaskStatus = {
  Normal: 'Normal',
  Pending: 'Pending',
  Running: 'Running',
  Succeeded: 'Succeeded',
  Failed: 'Failed',
  Cancelled: 'Cancelled',
} as const;
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];

export const FINAL_STATUSES: readonly TaskStatus[] = [TaskStatus.Succeeded, TaskStatus.Failed, TaskStatus.Cancelled];

export function isFinal(status: string): boolean {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}

/** The statuses a row may be in for a move to `to` to be allowed: status only moves forward. */
export function statusesBefore(to: TaskStatus): TaskStatus[] {
  switch (to) {
    case TaskStatus.Normal:
      return [];
    case TaskStatus.Pending:
      return [TaskStatus.Normal];
    case TaskStatus.Running:
      return [TaskStatus.Normal, TaskStatus.Pending];
    case TaskStatus.Succeeded:
    case TaskStatus.Failed:
    case TaskStatus.Cancelled:
      return [TaskStatus.Normal, TaskStatus.Pending, TaskStatus.Running];
  }
}
