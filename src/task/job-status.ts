// What a Job's status means for its task. Kubernetes reports a Job's outcome as conditions:
//   Complete / SuccessCriteriaMet   the Job succeeded (SuccessCriteriaMet comes first, while pods wind down)
//   Failed / FailureTarget          the Job failed (FailureTarget comes first, while pods wind down)
//   Suspended                       the Job is paused and runs no pods
// Only conditions with status "True" count. Pure module: the client is imported for its types only.
import type { V1Job, V1JobCondition, V1Pod } from '@kubernetes/client-node';
import { TaskStatus } from '../task-status.ts';
import { isOwnedByTask, jobAttempt } from './job.ts';

export type JobTaskStatus = {
  status: Extract<TaskStatus, 'Pending' | 'Running' | 'Succeeded' | 'Failed'>;
  /** Why, when there is something to say: the failure, or why a Job is not running. */
  reason?: string;
  /**
   * Set on a Pending Job whose pods the cluster refuses to create for a reason that waiting cannot
   * fix (an admission webhook, a policy, Pod Security, a LimitRange): the task fails at once.
   */
  refused?: true;
};

/**
 * What the cluster says around a Job, beyond the Job itself: its pods (why they are not running)
 * and the Job controller's last failure to create one (a FailedCreate event: admission, quota).
 * Undefined fields were not looked at; the status then rests on the Job alone.
 */
export interface JobSurroundings {
  /** The Job's own pods (owner uid = the Job's uid). */
  pods?: readonly V1Pod[];
  /** The message of the newest FailedCreate event about this Job (this uid). */
  createFailure?: string;
}

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

export function observeJobObject(job: V1Job | null | undefined, taskId: string, around: JobSurroundings = {}): JobObservation {
  if (!job) return { exists: false };
  if (!isOwnedByTask(job, taskId)) return { exists: true, owned: false };
  return { exists: true, owned: true, attempt: jobAttempt(job), ...jobStatusToTaskStatus(job, around) };
}

/**
 * The task status a Job's status stands for. A terminal condition wins over pod counts (pods may
 * still be terminating), and the final conditions (Complete, Failed) win over the early ones.
 */
export function jobStatusToTaskStatus(job: V1Job, around: JobSurroundings = {}): JobTaskStatus {
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
  if (isRunning(job, around.pods)) return { status: TaskStatus.Running };
  return waiting(job, around);
}

/**
 * Running means a pod of the Job is running, not merely that one exists: a Job's `active` also
 * counts pods that wait for a node or an image. The Job's `ready` count (Kubernetes 1.24+) says so,
 * and so does a pod seen running; only a cluster too old to report `ready`, with no pods looked at,
 * falls back to `active`.
 */
function isRunning(job: V1Job, pods: readonly V1Pod[] | undefined): boolean {
  if ((job.status?.ready ?? 0) > 0) return true;
  if (pods?.some(podRuns)) return true;
  return job.status?.ready === undefined && pods === undefined && (job.status?.active ?? 0) > 0;
}

const podRuns = (pod: V1Pod) =>
  !pod.metadata?.deletionTimestamp &&
  pod.status?.phase === 'Running' &&
  (pod.status.containerStatuses ?? []).some((c) => c.state?.running !== undefined);

// Container waiting reasons that mean the pod cannot start by itself (kubelet's, for the images
// and for the container); ContainerCreating and PodInitializing are the normal way to Running.
const IMAGE_PROBLEMS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'RegistryUnavailable', 'SignatureValidationFailed']);
const CONTAINER_PROBLEMS = new Set(['CreateContainerConfigError', 'CreateContainerError', 'RunContainerError', 'PreCreateHookError', 'PreStartHookError', 'CrashLoopBackOff']);

/** Pending, with what the cluster says about why no pod runs, when it says anything. */
function waiting(job: V1Job, around: JobSurroundings): JobTaskStatus {
  const pods = (around.pods ?? []).filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
  for (const pod of pods) {
    for (const c of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
      const w = c.state?.waiting;
      if (!w?.reason) continue;
      const said = detail(w.reason, w.message);
      if (IMAGE_PROBLEMS.has(w.reason)) {
        return { status: TaskStatus.Pending, reason: `waiting: the image cannot be pulled (${said}); check info.image and that the registry is reachable and allows the pull` };
      }
      if (CONTAINER_PROBLEMS.has(w.reason)) {
        return { status: TaskStatus.Pending, reason: `waiting: the container cannot start (${said})` };
      }
    }
    const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (scheduled?.status === 'False' && scheduled.reason) {
      const said = detail(scheduled.reason, scheduled.message);
      return {
        status: TaskStatus.Pending,
        reason:
          scheduled.reason === 'Unschedulable'
            ? `waiting: no node can run the pod (${said}); lower info.resources or ask the operator for capacity`
            : `waiting: the pod is not scheduled yet (${said})`,
      };
    }
  }
  // A pod exists (or is counted): it is on its way. Otherwise the Job controller may be failing to create one.
  if (pods.length > 0 || (job.status?.active ?? 0) > 0 || !around.createFailure) return { status: TaskStatus.Pending };
  return createFailureStatus(around.createFailure);
}

function detail(reason: string, message: string | undefined): string {
  const text = message?.replace(/\s+/g, ' ').trim().replace(/\.$/, '');
  return text ? `${reason}: ${text.length > 500 ? `${text.slice(0, 500)}…` : text}` : reason;
}

/**
 * What a FailedCreate event ("Error creating: pods "x" is forbidden: …") means for the task. Quota
 * frees up and a webhook or service account may come back, so those wait; a refusal by policy
 * (Pod Security, an admission webhook's or ValidatingAdmissionPolicy's denial, a LimitRange, a
 * quota that demands limits the task does not set) will not change by waiting, so the task fails.
 */
export function createFailureStatus(event: string): JobTaskStatus {
  const message = event.replace(/\s+/g, ' ').trim().replace(/^Error creating: /, '');
  const said = message.length > 1000 ? `${message.slice(0, 1000)}…` : message;
  if (/exceeded quota|status unknown for quota/i.test(message)) {
    return { status: TaskStatus.Pending, reason: `waiting: the namespace's ResourceQuota is used up (${said}); the pod is created once quota frees up` };
  }
  if (/failed calling webhook|error looking up service account|Internal error occurred|timeout|unavailable/i.test(message)) {
    return { status: TaskStatus.Pending, reason: `waiting: the cluster could not create the pod yet (${said}); it keeps trying` };
  }
  if (/is forbidden|denied the request|denied request|violates PodSecurity|is invalid/i.test(message)) {
    return { status: TaskStatus.Pending, refused: true, reason: `the cluster refused to create the task's pod: ${said}` };
  }
  return { status: TaskStatus.Pending, reason: `waiting: the pod could not be created yet (${said}); the Job controller keeps trying` };
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
