// A task's Kubernetes Job, built from its validated `info`. The labels tie every Job (and its pods)
// back to its row, so a Job found in the cluster can always be traced to the task that made it.
// Pure module: the client is imported for its types only.
import type { V1Container, V1Job } from '@kubernetes/client-node';
import type { TaskInfo } from './info.ts';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'nightwatch';
export const TASK_ID_LABEL = 'nightwatch.io/task-id';
/** Which attempt made the Job, so a retry can tell its own Job from an earlier attempt's. */
export const ATTEMPT_LABEL = 'nightwatch.io/attempt';
export const CONTAINER_NAME = 'task';

export type JobTask = { id: bigint | string; name: string; namespace: string; attempt: number };

/** How the operator runs every task's pod (src/policy.ts, podOptions). */
export interface PodOptions {
  /** Added to the pod's annotations after `info.annotations`, winning over them. */
  annotations?: Record<string, string>;
  /** IMAGE_PULL_POLICY; unset leaves Kubernetes' default (Always for `:latest` or no tag, else IfNotPresent). */
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /**
   * POD_RUN_AS_NON_ROOT: run as this uid (and gid) with `runAsNonRoot: true`, which Pod Security
   * `restricted` requires. The uid is set, not left to the image, because a kubelet can only check
   * an image's USER when it runs it, and most images run as root.
   */
  runAsUser?: number;
}

/** Seccomp's default profile of the container runtime: what Pod Security `baseline` allows and `restricted` asks for. */
const RUNTIME_DEFAULT_SECCOMP = { type: 'RuntimeDefault' } as const;

/**
 * The Job for one attempt of a task: named after the task, in the task's namespace. Its pod is
 * hardened whatever the task says: no privilege escalation, every capability dropped, the
 * runtime's default seccomp profile, no service links and no service-account token; with
 * `options.runAsUser`, not root either. A pod like this passes Pod Security `baseline`, and with
 * runAsUser `restricted`.
 */
export function buildJob(task: JobTask, info: TaskInfo, options: PodOptions = {}): V1Job {
  const labels = {
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [TASK_ID_LABEL]: String(task.id),
    [ATTEMPT_LABEL]: String(task.attempt),
  };
  const podAnnotations = { ...info.annotations, ...options.annotations };
  const hasAnnotations = Object.keys(podAnnotations).length > 0;
  const runAs = options.runAsUser !== undefined && { runAsNonRoot: true, runAsUser: options.runAsUser, runAsGroup: options.runAsUser };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: task.name, namespace: task.namespace, labels },
    spec: {
      backoffLimit: info.backoffLimit,
      ...(info.timeoutSeconds !== undefined && { activeDeadlineSeconds: info.timeoutSeconds }),
      ...(info.ttlSecondsAfterFinished !== undefined && { ttlSecondsAfterFinished: info.ttlSecondsAfterFinished }),
      template: {
        metadata: { labels: { ...labels }, ...(hasAnnotations && { annotations: podAnnotations }) },
        spec: {
          // The Job controller, not the kubelet, retries a failed pod, so backoffLimit counts every failure.
          restartPolicy: 'Never',
          // User-submitted code gets no Kubernetes API credentials by default.
          automountServiceAccountToken: false,
          // Nor the addresses of every service in the namespace in its environment.
          enableServiceLinks: false,
          securityContext: { ...runAs, seccompProfile: { ...RUNTIME_DEFAULT_SECCOMP } },
          containers: [container(info, options)],
        },
      },
    },
  };
}

function container(info: TaskInfo, options: PodOptions): V1Container {
  const requests = info.resources?.requests;
  const limits = info.resources?.limits;
  const hasRequests = requests !== undefined && Object.keys(requests).length > 0;
  const hasLimits = limits !== undefined && Object.keys(limits).length > 0;
  return {
    name: CONTAINER_NAME,
    image: info.image,
    ...(options.imagePullPolicy !== undefined && { imagePullPolicy: options.imagePullPolicy }),
    ...(info.command !== undefined && { command: [...info.command] }),
    ...(info.args !== undefined && { args: [...info.args] }),
    ...(info.env !== undefined && { env: Object.entries(info.env).map(([name, value]) => ({ name, value })) }),
    ...((hasRequests || hasLimits) && {
      resources: {
        ...(hasRequests && { requests: { ...requests } }),
        ...(hasLimits && { limits: { ...limits } }),
      },
    }),
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { ...RUNTIME_DEFAULT_SECCOMP },
    },
  };
}

/** True if nightwatch made `job` for this task (any attempt); false for a stranger's Job of the same name. */
export function isOwnedByTask(job: V1Job, taskId: bigint | string): boolean {
  const labels = job.metadata?.labels;
  return labels?.[MANAGED_BY_LABEL] === MANAGED_BY && labels[TASK_ID_LABEL] === String(taskId);
}

/** The attempt that made `job`, or null if it carries no readable attempt label (e.g. a classic nightwatch Job). */
export function jobAttempt(job: V1Job): number | null {
  const value = job.metadata?.labels?.[ATTEMPT_LABEL];
  return value !== undefined && /^[1-9]\d{0,8}$/.test(value) ? Number(value) : null;
}
