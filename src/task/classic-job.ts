// Jobs made by the classic Go nightwatch (jianghushinian/blog-go-example, nightwatch/internal/watcher/task/
// task.go, toJob): named after the task, in its namespace, with no labels of their own; backoffLimit 1;
// a pod template labelled app=task-job, restartPolicy Never and one container `task` running the
// row's info.image with info.command and info.args. They carry none of nightwatch's labels, so
// `isOwnedByTask` cannot tie them to their row; `classicJobMismatch` does, conservatively, when a row
// left in progress by the classic system is taken over. Pure module: the client is imported for its types only.
import type { V1Job } from '@kubernetes/client-node';
import { ATTEMPT_LABEL, CONTAINER_NAME, MANAGED_BY, MANAGED_BY_LABEL, TASK_ID_LABEL } from './job.ts';

/** The classic system's pod-template label. */
export const CLASSIC_POD_LABEL = { name: 'app', value: 'task-job' } as const;
/** The classic system's backoffLimit. */
export const CLASSIC_BACKOFF_LIMIT = 1;
/** Only the first attempt can be the classic run: a retried row makes its own Job. */
export const CLASSIC_ATTEMPT = 1;
/** Labels the Job controller adds to every pod template itself. */
const CONTROLLER_LABELS = new Set(['controller-uid', 'job-name', 'batch.kubernetes.io/controller-uid', 'batch.kubernetes.io/job-name']);

export interface ClassicTask {
  name: string;
  namespace: string;
  /** The row's `info` column as stored (the classic system's JSON: {"image", "command", "args"}). */
  info: string;
}

/**
 * Why `job` is not the Job the classic nightwatch made for `task`, or null when it is. Matched: the
 * name and namespace; none of nightwatch's labels and no owner (not a CronJob's or another
 * controller's); backoffLimit 1; pod template labels exactly app=task-job (plus the Job controller's
 * own); restartPolicy Never; no init containers; exactly one container, named `task`, with no env,
 * whose image, command and args equal the row's info.image, info.command and info.args.
 * Not looked at: annotations (the Job's and the pod's), resources and status.
 */
export function classicJobMismatch(job: V1Job, task: ClassicTask): string | null {
  const meta = job.metadata ?? {};
  if (meta.name !== task.name || meta.namespace !== task.namespace) return 'another name or namespace';
  const labels = meta.labels ?? {};
  const ours = [MANAGED_BY_LABEL, TASK_ID_LABEL, ATTEMPT_LABEL].filter((l) => l in labels);
  if (ours.length > 0) return `it carries nightwatch's label ${ours.join(', ')}`;
  if ((meta.ownerReferences ?? []).length > 0) return `it is owned by ${meta.ownerReferences!.map((o) => `${o.kind}/${o.name}`).join(', ')}`;
  const spec = job.spec;
  if (spec?.backoffLimit !== CLASSIC_BACKOFF_LIMIT) return `its backoffLimit is ${spec?.backoffLimit}, not ${CLASSIC_BACKOFF_LIMIT}`;
  const template = spec.template;
  const podLabels = Object.entries(template.metadata?.labels ?? {}).filter(([k]) => !CONTROLLER_LABELS.has(k));
  if (podLabels.length !== 1 || podLabels[0]![0] !== CLASSIC_POD_LABEL.name || podLabels[0]![1] !== CLASSIC_POD_LABEL.value) {
    return `its pod labels are ${JSON.stringify(Object.fromEntries(podLabels))}, not ${CLASSIC_POD_LABEL.name}=${CLASSIC_POD_LABEL.value}`;
  }
  const pod = template.spec;
  if (pod?.restartPolicy !== 'Never') return `its restartPolicy is ${pod?.restartPolicy}, not Never`;
  if ((pod.initContainers ?? []).length > 0) return 'it has init containers';
  if (pod.containers.length !== 1) return `it has ${pod.containers.length} containers, not 1`;
  const container = pod.containers[0]!;
  if (container.name !== CONTAINER_NAME) return `its container is named ${container.name}, not ${CONTAINER_NAME}`;
  if ((container.env ?? []).length > 0) return 'its container has environment variables';

  let info: { image?: unknown; command?: unknown; args?: unknown };
  try {
    info = JSON.parse(task.info) as typeof info;
  } catch {
    return "the row's info is not JSON";
  }
  if (typeof info !== 'object' || info === null) return "the row's info is not an object";
  if (container.image !== info.image) return `its image ${container.image} is not the row's ${String(info.image)}`;
  // Go's encoding/json leaves a nil slice out, so an absent list and an empty one are alike.
  if (!sameList(container.command, info.command)) return "its command is not the row's info.command";
  if (!sameList(container.args, info.args)) return "its args are not the row's info.args";
  return null;
}

function sameList(actual: string[] | undefined, expected: unknown): boolean {
  const want = expected === undefined || expected === null ? [] : expected;
  if (!Array.isArray(want)) return false;
  const have = actual ?? [];
  return have.length === want.length && have.every((v, i) => v === want[i]);
}

/** The labels that make an adopted classic Job nightwatch's: this task's, attempt 1 (added to the Job's own). */
export function adoptionLabels(job: V1Job, taskId: string): Record<string, string> {
  return {
    ...(job.metadata?.labels ?? {}),
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [TASK_ID_LABEL]: taskId,
    [ATTEMPT_LABEL]: String(CLASSIC_ATTEMPT),
  };
}
