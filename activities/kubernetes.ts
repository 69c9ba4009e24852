// Kubernetes activities: thin adapters over the batch API. Creating is idempotent
// (a Job carrying this task's label counts as already created) and errors are
// classified once here: the task's own fault fails it at once (non-retryable), the
// cluster's or network's is retryable and the workflow keeps trying with backoff.
import { ApiException, type V1Job } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import type { KubeClients } from '../src/kubernetes.ts';
import { kubernetesErrors } from '../src/metrics.ts';
import { classifyKubernetesError, readKubernetesStatus, type ClassifiedKubernetesError } from '../src/task/errors.ts';
import type { TaskInfo } from '../src/task/info.ts';
import { adoptionLabels, CLASSIC_ATTEMPT, classicJobMismatch } from '../src/task/classic-job.ts';
import { buildJob, isOwnedByTask, jobAttempt, type PodOptions } from '../src/task/job.ts';
import { observeJobObject, type JobObservation, type JobSurroundings } from '../src/task/job-status.ts';
import type { TaskRef } from './database.ts';

export type { JobObservation };

/**
 * The worker's Job watch (src/job-watch.ts), as the activities see it: a Job it can vouch for
 * (its watch is connected and current), or undefined when the API server must be asked.
 */
export interface JobLookup {
  cached(namespace: string, name: string): V1Job | undefined;
  /** The Job's pods and pod-creation failures, when the watch is current for its namespace. */
  surroundings(job: V1Job): JobSurroundings | undefined;
}

/** Failure types the workflows react to (ApplicationFailure.type). */
const FailureType = {
  /** The task itself is wrong (invalid spec, unknown namespace, name taken): fail it, do not retry. */
  TaskRejected: 'TaskRejected',
  /** The cluster or the network failed: retry with backoff while the row shows the error. */
  KubernetesUnavailable: 'KubernetesUnavailable',
} as const;

export type CreateJobResult =
  /** A new Job was created for this attempt. */
  | 'created'
  /** This attempt's Job already existed (a retried activity, a restarted workflow, a classic-nightwatch Job). */
  | 'adopted'
  /** An earlier attempt's Job is in the way; it is being deleted and the create must be tried again. */
  | 'replacing';

export interface JobRef {
  taskId: string;
  name: string;
  namespace: string;
  /** The attempt the caller expects; a cached Job of another attempt is checked with the API server. */
  attempt?: number;
  /** Skip the watch's cache and ask the API server (e.g. to confirm a deletion the watch reported). */
  fresh?: boolean;
}

const isNotFound = (err: unknown) => err instanceof ApiException && err.code === 404;

/** Classify a failed call and count it in nightwatch_kubernetes_errors_total. */
function classifyAndCount(err: unknown): ClassifiedKubernetesError {
  const c = classifyKubernetesError(err);
  kubernetesErrors.labels({ kind: c.kind, code: String(readKubernetesStatus(err)?.code ?? 'network') }).inc();
  return c;
}

function toFailure(taskId: string, err: unknown): ApplicationFailure {
  return failureOf(taskId, classifyAndCount(err));
}

function failureOf(taskId: string, c: ClassifiedKubernetesError): ApplicationFailure {
  return c.kind === 'transient'
    ? ApplicationFailure.retryable(c.reason, FailureType.KubernetesUnavailable)
    : ApplicationFailure.nonRetryable(`task ${taskId}: ${c.reason}`, FailureType.TaskRejected);
}

/** Whether a Job's status alone settles what it means (finished, or a pod ready): no need to look around it. */
function settledByJob(job: V1Job): boolean {
  const finished = (job.status?.conditions ?? []).some((c) => c.status === 'True' && ['Complete', 'Failed', 'SuccessCriteriaMet', 'FailureTarget'].includes(c.type));
  return finished || (job.status?.ready ?? 0) > 0;
}

export interface KubernetesHooks {
  /** This attempt's Job was just created (for the time since the row was submitted). */
  onJobCreated?: (taskId: string) => void;
  /**
   * The row's `info` as stored, or null when the row is gone: lets a Job the classic Go nightwatch
   * made for the row be recognised and adopted (src/task/classic-job.ts). Without it a Job without
   * nightwatch's labels is never this task's.
   */
  classicTaskInfo?: (taskId: string) => Promise<string | null>;
}

export function createKubernetesActivities(
  { batch, core }: Pick<KubeClients, 'batch' | 'core'>,
  jobs?: JobLookup,
  pod: PodOptions = {},
  hooks: KubernetesHooks = {},
) {
  /**
   * What the API server says around a Job that is not settled: its pods and, with none, the Job
   * controller's pod-creation failures. Two reads, made only on the slow path (no current watch).
   * If they are refused (an account without pod or event read rights), the Job alone decides.
   */
  async function readSurroundings(job: V1Job, taskId: string): Promise<JobSurroundings> {
    const uid = job.metadata?.uid;
    const namespace = job.metadata?.namespace;
    if (!uid || !namespace || settledByJob(job)) return {};
    try {
      const pods = (await core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/controller-uid=${uid}` })).items;
      if (pods.length > 0 || (job.status?.active ?? 0) > 0) return { pods };
      const events = (await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.uid=${uid},reason=FailedCreate` })).items;
      const newest = events
        .map((e) => ({ at: new Date(e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? 0).getTime(), message: e.message }))
        .sort((a, b) => b.at - a.at)[0];
      return { pods, ...(newest?.message && { createFailure: newest.message }) };
    } catch (err) {
      if (err instanceof ApiException && (err.code === 403 || err.code === 401)) return {};
      throw toFailure(taskId, err);
    }
  }

  async function readJob(ref: JobRef): Promise<V1Job | null> {
    try {
      return await batch.readNamespacedJob({ name: ref.name, namespace: ref.namespace });
    } catch (err) {
      if (isNotFound(err)) return null;
      throw toFailure(ref.taskId, err);
    }
  }

  async function deleteJobObject(job: V1Job, ref: JobRef): Promise<void> {
    try {
      // Background propagation: the garbage collector removes the pods too. The uid
      // precondition makes sure only the Job we looked at is deleted, never a newer one.
      // Both go in the body: with a body present the API server ignores the query parameter,
      // and a Job's default policy orphans its pods.
      await batch.deleteNamespacedJob({
        name: ref.name,
        namespace: ref.namespace,
        body: { propagationPolicy: 'Background', preconditions: { uid: job.metadata?.uid } },
      });
    } catch (err) {
      if (isNotFound(err) || (err instanceof ApiException && err.code === 409)) return;
      throw toFailure(ref.taskId, err);
    }
  }

  /** Whether `job`, which carries no nightwatch label of this task, is the Job the classic nightwatch made for the row. */
  async function isClassicJobOf(job: V1Job, ref: JobRef): Promise<boolean> {
    if (!hooks.classicTaskInfo || isOwnedByTask(job, ref.taskId)) return false;
    const info = await hooks.classicTaskInfo(ref.taskId);
    return info !== null && classicJobMismatch(job, { name: ref.name, namespace: ref.namespace, info }) === null;
  }

  /**
   * Adopt a classic nightwatch Job as this task's first attempt: label it as nightwatch labels its
   * own (a JSON patch that applies only to the very object that was matched: same uid and
   * resourceVersion), so the worker's Job watch follows it from then on. Without the right to
   * patch Jobs the labels are added in memory only and the task's workflow follows the Job by
   * reading it. Returns the Job as this task's, or null when it is not the classic Job of this row.
   */
  async function adoptClassicJob(job: V1Job, ref: JobRef): Promise<V1Job | null> {
    if ((ref.attempt ?? CLASSIC_ATTEMPT) !== CLASSIC_ATTEMPT || !(await isClassicJobOf(job, ref))) return null;
    const labels = adoptionLabels(job, ref.taskId);
    try {
      return await batch.patchNamespacedJob({
        name: ref.name,
        namespace: ref.namespace,
        body: [
          { op: 'test', path: '/metadata/uid', value: job.metadata?.uid },
          { op: 'test', path: '/metadata/resourceVersion', value: job.metadata?.resourceVersion },
          { op: 'add', path: '/metadata/labels', value: labels },
        ],
      });
    } catch (err) {
      const code = err instanceof ApiException ? err.code : undefined;
      if (code === 403) return { ...job, metadata: { ...job.metadata, labels } };
      if (code === 404 || code === 409 || code === 422) {
        // Changed or gone since it was read (a failed `test`): look again rather than label another object.
        throw ApplicationFailure.retryable(
          `the classic nightwatch Job ${ref.namespace}/${ref.name} changed while it was being adopted; reading it again`,
          FailureType.KubernetesUnavailable,
        );
      }
      throw toFailure(ref.taskId, err);
    }
  }

  return {
    async createJob(input: { task: TaskRef; info: TaskInfo }): Promise<CreateJobResult> {
      const { task, info } = input;
      const ref = { taskId: task.id, name: task.name, namespace: task.namespace };
      try {
        await batch.createNamespacedJob({ namespace: task.namespace, body: buildJob(task, info, pod) });
        hooks.onJobCreated?.(task.id);
        return 'created';
      } catch (err) {
        const c = classifyAndCount(err);
        if (c.kind !== 'conflict') throw failureOf(task.id, c);
      }
      const existing = await readJob(ref);
      if (!existing) {
        throw ApplicationFailure.retryable(
          `Job ${task.namespace}/${task.name} was deleted while it was being created; trying again`,
          FailureType.KubernetesUnavailable,
        );
      }
      if (!isOwnedByTask(existing, task.id) && (await isClassicJobOf(existing, ref))) {
        // The classic nightwatch created this row's Job (and stopped before it marked the row Pending):
        // it is the first attempt's; a later attempt replaces it as it would its own.
        if (task.attempt === CLASSIC_ATTEMPT && (await adoptClassicJob(existing, { ...ref, attempt: task.attempt }))) return 'adopted';
        if (!existing.metadata?.deletionTimestamp) await deleteJobObject(existing, ref);
        return 'replacing';
      }
      if (!isOwnedByTask(existing, task.id)) {
        throw ApplicationFailure.nonRetryable(
          `task ${task.id}: a Job named '${task.name}' already exists in namespace '${task.namespace}' and does not belong to this task; ` +
            `rename the task or remove that Job (nightwatch left it untouched)`,
          FailureType.TaskRejected,
        );
      }
      if (jobAttempt(existing) === task.attempt) return 'adopted';
      if (!existing.metadata?.deletionTimestamp) await deleteJobObject(existing, ref);
      return 'replacing';
    },

    /**
     * What the task's Job looks like now. The watch's cache answers when it holds this attempt's Job
     * (no request to the API server); absence or another attempt's Job in the cache is never
     * trusted, since the watch may not have caught up with a create or a replacement yet.
     */
    async observeJob(ref: JobRef): Promise<JobObservation> {
      if (!ref.fresh) {
        const cached = jobs?.cached(ref.namespace, ref.name);
        if (cached && isOwnedByTask(cached, ref.taskId) && (ref.attempt === undefined || jobAttempt(cached) === ref.attempt)) {
          return observeJobObject(cached, ref.taskId, jobs?.surroundings(cached) ?? (await readSurroundings(cached, ref.taskId)));
        }
      }
      const read = await readJob(ref);
      // A row the classic nightwatch left in progress: its Job becomes this task's (attempt 1).
      const job = read && !isOwnedByTask(read, ref.taskId) ? ((await adoptClassicJob(read, ref)) ?? read) : read;
      return observeJobObject(job, ref.taskId, job && isOwnedByTask(job, ref.taskId) ? await readSurroundings(job, ref.taskId) : {});
    },

    /** Delete this task's Job and its pods; a Job that is gone or not this task's is left alone. */
    async deleteJob(ref: JobRef): Promise<'deleted' | 'absent' | 'not-owned'> {
      const job = await readJob(ref);
      if (!job) return 'absent';
      if (!isOwnedByTask(job, ref.taskId) && !(await isClassicJobOf(job, ref))) return 'not-owned';
      await deleteJobObject(job, ref);
      return 'deleted';
    },
  };
}
