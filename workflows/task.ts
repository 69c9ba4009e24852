// taskWorkflow (workflow id task-<id>): owns one task row from submission until it is final.
//   loadTask → (invalid info: Failed) → createJob → Pending → observe the Job with backoff,
//   writing each forward change → Succeeded | Failed | Cancelled.
// Rows already Pending/Running (reconcile, the classic Go nightwatch) skip creation and
// adopt the Job that exists. A `cancel` signal deletes the Job and ends Cancelled.
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  continueAsNew,
  defineSignal,
  log,
  proxyLocalActivities,
  setHandler,
  sleep,
  TemporalFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, JobObservation, TaskRef } from '../activities/index.ts';
import { isFinal, statusesBefore, TaskStatus } from '../src/task-status.ts';

/**
 * Polls start at 1 s and grow by half each time nothing changed, so a Job is seen finishing
 * within about a third of its age (a 3 s Job at ~4 s), and a long one costs one poll per 30 s.
 */
const POLL_INITIAL_MS = 1_000;
const POLL_GROWTH = 1.5;
const POLL_MAX_MS = 30_000;
/** Cluster or network outages: retried forever, the row showing the error, at most every 5 minutes. */
const RETRY_INITIAL_MS = 2_000;
const RETRY_MAX_MS = 5 * 60_000;
/** Continue as new well before the 51,200-event cap, so replaying a long-running task stays cheap. */
const HISTORY_EVENTS_BEFORE_CONTINUE = 5_000;
/** An earlier attempt's Job is being deleted before this attempt's can be created. */
const REPLACE_WAIT_MS = 1_000;

// Every step is one short, idempotent call (a conditional UPDATE, a GET or an idempotent
// create), so they run as local activities: recorded as one marker event instead of three
// and never queued through the server, which halves the history and server load per poll.
// The database is retried until it answers: nothing can be recorded without it.
const db = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m' },
});
// Kubernetes calls retry a few times quickly; past that the workflow shows the error on the row
// and keeps trying with a longer, capped backoff (see `persist`).
const kube = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 3 },
});

export interface CancelRequest {
  reason?: string;
}
export const cancelSignal = defineSignal<[CancelRequest?]>('cancel');

export interface TaskWorkflowInput {
  taskId: string;
  /** Set when the workflow continues as new while observing a Job. */
  observing?: { task: TaskRef; pollMs: number };
  /** History length at which an observing workflow continues as new (default HISTORY_EVENTS_BEFORE_CONTINUE). */
  continueAfterEvents?: number;
}

export interface TaskWorkflowResult {
  /** The row's status when the workflow ended; `Deleted` when the row was deleted. */
  status: string;
  reason?: string | null;
}

export async function taskWorkflow(input: TaskWorkflowInput): Promise<TaskWorkflowResult> {
  let cancelReason: string | null = null;
  setHandler(cancelSignal, (req) => {
    cancelReason ??= req?.reason?.trim() || 'cancelled on request';
  });

  let task: TaskRef;
  if (input.observing) {
    task = input.observing.task;
  } else {
    const loaded = await db.loadTask(input.taskId);
    if (!loaded) return { status: 'Deleted' };
    if (isFinal(loaded.status)) return { status: loaded.status, reason: 'already final' };
    const { valid: _valid, ...ref } = loaded;
    task = ref;
    if (loaded.status === TaskStatus.Normal) {
      if (cancelReason !== null) return finish(task, TaskStatus.Cancelled, cancelReason);
      if (!loaded.valid) return finish(task, TaskStatus.Failed, loaded.reason);
      const info = loaded.info;
      for (;;) {
        const outcome = await persist(task, 'creating the Job', () => kube.createJob({ task, info }));
        if (!outcome.ok) return finish(task, TaskStatus.Failed, outcome.reason);
        if (outcome.value !== 'replacing') break;
        await sleep(REPLACE_WAIT_MS);
      }
      const moved = await writeStatus(task, TaskStatus.Pending, null);
      if (moved) return moved;
      task = { ...task, status: TaskStatus.Pending };
    }
  }
  return observe(task, input.observing?.pollMs ?? POLL_INITIAL_MS);

  async function observe(task: TaskRef, pollMs: number): Promise<TaskWorkflowResult> {
    const ref = jobRef(task);
    for (;;) {
      if (cancelReason !== null) return cancel(task, cancelReason);
      const seen = await persist(task, 'reading the Job', () => kube.observeJob(ref));
      if (!seen.ok) return finish(task, TaskStatus.Failed, seen.reason);
      const problem = observationProblem(task, seen.value);
      if (problem) return finish(task, TaskStatus.Failed, problem);
      const job = seen.value as Extract<JobObservation, { owned: true }>;
      if (job.status !== task.status && statusesBefore(job.status).includes(task.status as TaskStatus)) {
        const moved = await writeStatus(task, job.status, job.reason ?? null);
        if (moved) return moved;
        task = { ...task, status: job.status };
        if (isFinal(task.status)) return { status: task.status, reason: job.reason ?? null };
        pollMs = POLL_INITIAL_MS;
      } else {
        pollMs = Math.min(Math.round(pollMs * POLL_GROWTH), POLL_MAX_MS);
      }
      await condition(() => cancelReason !== null, pollMs);
      const info = workflowInfo();
      const limit = input.continueAfterEvents ?? HISTORY_EVENTS_BEFORE_CONTINUE;
      if (cancelReason === null && (info.continueAsNewSuggested || info.historyLength > limit)) {
        await continueAsNew<typeof taskWorkflow>({ ...input, taskId: task.id, observing: { task, pollMs } });
      }
    }
  }

  async function cancel(task: TaskRef, reason: string): Promise<TaskWorkflowResult> {
    const deleted = await persist(task, 'deleting the Job', () => kube.deleteJob(jobRef(task)));
    if (!deleted.ok) log.warn('could not delete the Job of a cancelled task', { taskId: task.id, reason: deleted.reason });
    return finish(task, TaskStatus.Cancelled, reason);
  }

  /** Move the row; when it had moved on without us, say why the workflow stops. */
  async function writeStatus(task: TaskRef, to: TaskStatus, reason: string | null): Promise<TaskWorkflowResult | null> {
    const result = await db.markStatus({ taskId: task.id, attempt: task.attempt, to, reason });
    if (result.updated) return null;
    if (result.current === null) {
      // The user deleted the row: its Job must not outlive it, and nothing is re-created.
      await persist(task, 'deleting the Job of a deleted task', () => kube.deleteJob(jobRef(task)));
      return { status: 'Deleted' };
    }
    log.info('task row moved on without this workflow; stopping', { taskId: task.id, current: result.current });
    return { status: result.current.status, reason: 'row changed elsewhere' };
  }

  async function finish(task: TaskRef, to: TaskStatus, reason: string | null): Promise<TaskWorkflowResult> {
    return (await writeStatus(task, to, reason)) ?? { status: to, reason };
  }

  /**
   * Run a Kubernetes step until it succeeds or fails for a reason that is the task's own.
   * Transient failures are shown on the row and retried with capped backoff; the workflow
   * never gives up on a healthy task because the cluster was away.
   */
  async function persist<T>(
    task: TaskRef,
    what: string,
    step: () => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false; reason: string }> {
    let delay = RETRY_INITIAL_MS;
    let showingError = false;
    for (;;) {
      try {
        const value = await step();
        if (showingError) await db.recordReason({ taskId: task.id, attempt: task.attempt, reason: null });
        return { ok: true, value };
      } catch (err) {
        const rejected = taskRejection(err);
        if (rejected !== null) return { ok: false, reason: rejected };
        const reason = `${what} failed: ${failureMessage(err)}; retrying in ${Math.round(delay / 1000)} s`;
        log.warn(reason, { taskId: task.id });
        await db.recordReason({ taskId: task.id, attempt: task.attempt, reason });
        showingError = true;
        await sleep(delay);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }
}

/** A task's Job: named after the task, in its namespace. */
function jobRef(task: TaskRef) {
  return { taskId: task.id, name: task.name, namespace: task.namespace };
}

/** Why an observed Job means the task cannot go on, or null when it is this attempt's Job. */
function observationProblem(task: TaskRef, job: JobObservation): string | null {
  const where = `Job ${task.namespace}/${task.name}`;
  if (!job.exists) return `the ${where} disappeared before it finished (deleted outside nightwatch?); retry the task to run it again`;
  if (!job.owned) return `the ${where} belongs to another task; rename this task or remove that Job`;
  if (job.attempt !== null && job.attempt !== task.attempt) {
    return `the ${where} is from attempt ${job.attempt}, not this attempt (${task.attempt}); retry the task to run it again`;
  }
  return null;
}

/**
 * The reason of a non-retryable failure (the task's own fault), or null for a transient one.
 * A failed activity surfaces as an ActivityFailure wrapping its cause, or (local activities)
 * as the cause itself; anything else is a bug in the workflow and fails the workflow task.
 */
function taskRejection(err: unknown): string | null {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure && cause.nonRetryable) return cause.message;
  if (err instanceof TemporalFailure) return null;
  throw err;
}

function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure ? (err.cause ?? err) : err;
  return cause instanceof Error ? cause.message : String(cause);
}
