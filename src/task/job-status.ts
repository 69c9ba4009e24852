// What a Job's status means for its task. Kubernetes reports a Job's outcome as conditions:
//   Complete / SuccessCriteriaMet   the Job succeeded (SuccessCriteriaMet comes first, while pods wind down)
//   Failed / FailureTarget          the Job failed (FailureTarget comes first, while pods wind down)
//   Suspended                       the Job is paused and runs no pods
// Only conditions with status "True" count. Pure module: the client is imported for its types only.
import type { V1Job, V1JobCondition } from '@kubernetes/client-node';
import { TaskStatus } from '../task-status.ts';
import { isOwnedByTask, jobAttempt } from './job.ts';

export type JobTaskStatus = {
  status: Extract<TaskStatus, 'Pending' | 'Running' | 'Succeeded' | 'Failed'>;
  /** Why, when there is something to say: the failure, or why a Job is not running. */
  reason?: string;
};

/**
 * What a task's workflow learns from looking at the Job named after it: nothing there, a stranger's
 * Job, or its own Job (of some attempt) and the status that stands for. The same value comes from a
 * read (`observeJob`) and from the worker's Job watch (the `jobChanged` signal), so the workflow
 * treats both alike.
 */
export type JobObservation =
  /** `attempt`, when known, is that of the Job seen deleted (watch), so another attempt's deletion is ignored. */
  | { exists: false; attempt?: number | null }
  | { exists: true; owned: false }
  | ({ exists: true; owned: true; attempt: number | null } & JobTaskStatus);

export function observeJobObject(job: V1Job | null | undefined, taskId: string): JobObservation {
  if (!job) return { exists: false };
  if (!isOwnedByTask(job, taskId)) return { exists: true, owned: false };
  return { exists: true, owned: true, attempt: jobAttempt(job), ...jobStatusToTaskStatus(job) };
}

/**
 * The task status a Job's status stands for. A terminal condition wins over pod counts (pods may
 * still be terminating), and the final conditions (Complete, Failed) win over the early ones.
 */
export function jobStatusToTaskStatus(job: V1Job): JobTaskStatus {
  const holding = (job.status?.conditions ?? []).filter((c) => c.status === 'True');
  const find = (type: string) => holding.find((c) => c.type === type);

  const failed = find('Failed');
  if (failed) return { status: TaskStatus.Failed, reason: failureReason(job, failed) };
  if (find('Complete')) return { status: TaskStatus.Succeeded };
  const failing = find('FailureTarget');
  if (failing) return { status: TaskStatus.Failed, reason: failureReason(job, failing) };
  if (find('SuccessCriteriaMet')) return { status: TaskStatus.Succeeded };

  const suspended = find('Suspended');
  if (suspended) {
    return { status: TaskStatus.Pending, reason: 'the Job is suspended, so no pod runs until it is resumed' };
  }
  if ((job.status?.active ?? 0) > 0 || (job.status?.ready ?? 0) > 0) return { status: TaskStatus.Running };
  return { status: TaskStatus.Pending };
}

function failureReason(job: V1Job, condition: V1JobCondition): string {
  const message = condition.message?.trim().replace(/\.$/, '');
  const what = [condition.reason, message].filter(Boolean).join(': ') || `the Job reports ${condition.type} without a reason`;
  const hint = failureHint(job, condition.reason);
  return hint ? `${what}; ${hint}` : what;
}

function failureHint(job: V1Job, reason: string | undefined): string | undefined {
  switch (reason) {
    case 'BackoffLimitExceeded': {
      const failures = job.status?.failed;
      const tries = failures === undefined ? '' : ` (${failures} failed ${failures === 1 ? 'pod' : 'pods'})`;
      return `the container exited with an error on every try${tries}; check its logs and exit code, or raise info.backoffLimit`;
    }
    case 'DeadlineExceeded': {
      const limit = job.spec?.activeDeadlineSeconds;
      const timeout = limit === undefined ? 'its timeout' : `info.timeoutSeconds (${limit}s)`;
      return `the task ran longer than ${timeout}; raise info.timeoutSeconds or make the task faster`;
    }
    default:
      return undefined;
  }
}
