// taskWorkflow (workflow id task-<id>): owns one task row from submission until it is final.
//   loadTask → (invalid info: Failed) → createJob → Pending (one local activity, launchTask, for
//   a plain new task) → follow the Job: wait for the worker's Job watch to signal a change (or read
//   it after a quiet spell), writing each forward change → Succeeded | Failed | Cancelled.
// Rows already Pending/Running (reconcile, the classic Go nightwatch) skip creation and
// adopt the Job that exists. A `cancel` signal deletes the Job and ends Cancelled.
import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  continueAsNew,
  defineSignal,
  log,
  patched,
  proxyLocalActivities,
  setHandler,
  sleep,
  TemporalFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, JobObservation, TaskRef } from '../activities/index.ts';
import { isFinal, statusesBefore, TaskStatus } from '../src/task-status.ts';
import { jobChangedSignal } from './signals.ts';

/**
 * Runs started before the Job watch existed polled the Job instead (test/histories/v1-polling).
 * Their histories carry no marker for this patch and replay through `observeByPolling`; every new
 * run records it and follows the Job through the watch. Remove the polling path (and make this
 * `deprecatePatch`) once no run of the old code can still be open.
 */
const JOB_WATCH_PATCH = 'job-watch';
/**
 * Runs from before pod-level status: they ignore a waiting reason and a refused pod creation
 * (test/histories/v2-job-watch). Every new run writes why its task waits, fails at once when the
 * cluster refuses its pods by policy, and names the last waiting reason when it never started.
 */
const POD_STATUS_PATCH = 'pod-status';
/**
 * Runs from before the per-user cap created their Job without asking for a slot. New runs are
 * admitted first (activities/admission.ts): at the cap the row stays Normal with the reason and
 * the run ends; the dispatcher starts it again once the user has room.
 */
const USER_CAP_PATCH = 'per-user-cap';
/**
 * Runs from before the launch step loaded the row, created the Job and wrote Pending as three
 * local activities (three markers, three round trips to the workflow thread). New runs take them as
 * one (activities/launch.ts), falling back to the steps one by one whenever the row is not the
 * plain case. The launch implies the Job watch, so a new run records this marker instead of
 * JOB_WATCH_PATCH's, not beside it; runs with JOB_WATCH_PATCH's marker replay as before.
 */
const LAUNCH_PATCH = 'launch';
/**
 * With no signal from the Job watch for this long, the workflow looks at the Job itself (from the
 * watch's cache, so no request to the API server): a lost signal costs time, never the task.
 * The first look comes after a minute; each quiet wait is then four times the last, up to 15
 * minutes, whether or not a signal came meanwhile. Each wake of a parked workflow that its worker
 * has evicted from its cache is a replay, so a long Job is followed with few of them: Running,
 * 1, 5 and 20 minutes, then every 15 minutes, and the end. A signal that ends the task is resent by
 * the watch every minute until the workflow has ended (src/job-watch.ts), so while any replica's
 * watch runs, a lost one still costs about a minute. Only durations changed here (timers are
 * replayed by sequence, not duration), so runs begun with the earlier 1, 2, 4, 5… minutes replay.
 */
const FALLBACK_INITIAL_MS = 60_000;
const FALLBACK_GROWTH = 4;
const FALLBACK_MAX_MS = 15 * 60_000;
/** Runs that predate the watch: polls from 1 s, growing by half per quiet poll up to 30 s. */
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
  /**
   * Set when the workflow continues as new while following a Job; `pollMs` is the current quiet
   * wait, `waiting` the last reason the task was shown for not running yet.
   */
  observing?: { task: TaskRef; pollMs: number; waiting?: string | null };
  /** History length at which an observing workflow continues as new (default HISTORY_EVENTS_BEFORE_CONTINUE). */
  continueAfterEvents?: number;
  /** First quiet wait before the workflow reads the Job itself (default FALLBACK_INITIAL_MS). */
  fallbackAfterMs?: number;
}

export interface TaskWorkflowResult {
  /** The row's status when the workflow ended; `Deleted` when the row was deleted. */
  status: string;
  reason?: string | null;
}

/** How far along a Job is, to keep the most advanced of several signals that arrive together. */
const progress = (o: JobObservation) => (!o.exists ? 3 : !o.owned ? 3 : o.status === 'Pending' ? 0 : o.status === 'Running' ? 1 : 2);

export async function taskWorkflow(input: TaskWorkflowInput): Promise<TaskWorkflowResult> {
  let cancelReason: string | null = null;
  setHandler(cancelSignal, (req) => {
    cancelReason ??= req?.reason?.trim() || 'cancelled on request';
  });
  /** The attempt this run works for, once known: the watch also reports other attempts' Jobs. */
  let attempt: number | null = input.observing?.task.attempt ?? null;
  let signalled: JobObservation | null = null;
  /** Whether a change the watch reported is about this attempt's Job (an unknown attempt might be). */
  const aboutThisAttempt = (seen: JobObservation) => {
    const seenAttempt = seen.exists ? (seen.owned ? seen.attempt : null) : (seen.attempt ?? null);
    return attempt === null || seenAttempt === null || seenAttempt === attempt;
  };
  setHandler(jobChangedSignal, (seen) => {
    if (!aboutThisAttempt(seen)) return;
    // Replicas' signals may cross: a late Running must not hide a Succeeded that came first.
    if (signalled === null || progress(seen) >= progress(signalled)) signalled = seen;
  });
  // A cancel taken in with the start (or a continued run) has nothing to launch.
  const launching = !input.observing && cancelReason === null && patched(LAUNCH_PATCH);
  const watched = launching || patched(JOB_WATCH_PATCH);
  const fallbackMs = input.fallbackAfterMs ?? FALLBACK_INITIAL_MS;
  /**
   * Asked only when an observation says more than a status (a waiting reason, a refusal), so the
   * patch marker (two history events) is recorded by the tasks that need it, not by every task.
   */
  let podStatusOn: boolean | undefined;
  const podStatus = () => (podStatusOn ??= watched && patched(POD_STATUS_PATCH));
  /** The waiting reason the row shows (written by this run or carried over), and the last one that was not empty. */
  let waitingShown: string | null = input.observing?.waiting ?? null;
  let lastWaiting: string | null = waitingShown;

  let task: TaskRef;
  let created = false;
  if (input.observing) {
    task = input.observing.task;
  } else {
    const launched = launching ? await db.launchTask(input.taskId) : null;
    if (launched?.outcome === 'launched' || launched?.outcome === 'rejected') {
      task = launched.task;
      attempt = task.attempt;
      if (launched.outcome === 'rejected') return finish(task, TaskStatus.Failed, launched.reason);
      if (!launched.write.updated) return stopFor(task, launched.write.current);
      return follow({ ...task, status: TaskStatus.Pending }, true, fallbackMs);
    }
    const loaded = launched ? (launched.outcome === 'gone' ? null : launched.loaded) : await db.loadTask(input.taskId);
    if (!loaded) return { status: 'Deleted' };
    if (isFinal(loaded.status)) return { status: loaded.status, reason: 'already final' };
    const { valid: _valid, ...ref } = loaded;
    task = ref;
    attempt = task.attempt;
    if (loaded.status === TaskStatus.Normal) {
      if (cancelReason !== null) return finish(task, TaskStatus.Cancelled, cancelReason);
      if (!loaded.valid) return finish(task, TaskStatus.Failed, loaded.reason);
      const info = loaded.info;
      let admitted = false;
      // Only a capped deployment asks (and records the patch): the rest skip the step altogether.
      if (loaded.capped && patched(USER_CAP_PATCH)) {
        const admission = await db.admitTask({ taskId: task.id, attempt: task.attempt, userId: task.userId });
        if (admission.outcome === 'held') return { status: TaskStatus.Normal, reason: admission.reason };
        if (admission.outcome === 'moved') return stopFor(task, admission.current);
        admitted = admission.outcome === 'admitted';
        if (admitted) task = { ...task, status: TaskStatus.Pending };
      }
      for (;;) {
        const outcome = await persist(task, 'creating the Job', () => kube.createJob({ task, info }));
        if (!outcome.ok) return finish(task, TaskStatus.Failed, outcome.reason);
        if (outcome.value !== 'replacing') break;
        await sleep(REPLACE_WAIT_MS);
      }
      // An admitted row is Pending already.
      if (!admitted) {
        const moved = await writeStatus(task, TaskStatus.Pending, null);
        if (moved) return moved;
        task = { ...task, status: TaskStatus.Pending };
      }
      created = true;
    }
  }
  if (!watched) return observeByPolling(task, input.observing?.pollMs ?? POLL_INITIAL_MS);
  return follow(task, created, input.observing?.pollMs ?? fallbackMs);

  /**
   * Follow the Job until the task is final. A Job this run just created is Pending, as the row
   * now says, so the first look waits for the watch; an adopted Job is looked at at once.
   * One quiet timer runs at a time and a signal does not cancel it (each cancel and restart would
   * cost two events): when it fires, the Job is looked at only if nothing was heard meanwhile.
   */
  async function follow(task: TaskRef, justCreated: boolean, quietMs: number): Promise<TaskWorkflowResult> {
    let seen: JobObservation | null = null;
    if (!justCreated) {
      const read = await look(task, false);
      if (!read.ok) return finish(task, TaskStatus.Failed, read.reason);
      seen = read.value;
    }
    let fired = false;
    let heard = false;
    const arm = (ms: number) => {
      fired = false;
      heard = false;
      void sleep(ms).then(() => {
        fired = true;
      });
    };
    arm(quietMs);
    for (;;) {
      if (cancelReason !== null) return cancel(task, cancelReason);
      if (seen) {
        const step = await apply(task, seen);
        if ('done' in step) return step.done;
        task = step.task;
        seen = null;
      }
      await condition(() => cancelReason !== null || signalled !== null || fired);
      if (cancelReason !== null) continue;
      if (signalled !== null) {
        // A signal taken in before this run knew its attempt may be another attempt's.
        const change: JobObservation | null = aboutThisAttempt(signalled) ? signalled : null;
        signalled = null;
        heard = true;
        // The watch saw this task's Job deleted: make sure with the API server (the watch may be
        // reporting a replaced Job late) before the task fails for it.
        const read = change?.exists === false ? await look(task, true) : null;
        if (read && !read.ok) return finish(task, TaskStatus.Failed, read.reason);
        seen = read ? read.value : change;
      } else if (heard) {
        // Signals came during the wait: the Job is being followed, nothing to look at.
        quietMs = Math.min(quietMs * FALLBACK_GROWTH, FALLBACK_MAX_MS);
        arm(quietMs);
      } else {
        // Quiet for too long: make sure the row is still this run's (a row deleted or retried
        // while a long Job runs writes nothing that would tell), then look at the Job (in the
        // watch's cache when it has it).
        const gone = await rowMovedOn(task);
        if (gone) return gone;
        const read = await look(task, false);
        if (!read.ok) return finish(task, TaskStatus.Failed, read.reason);
        seen = read.value;
        quietMs = Math.min(quietMs * FALLBACK_GROWTH, FALLBACK_MAX_MS);
        arm(quietMs);
      }
      // What was just seen is applied by the next run's first look.
      if (signalled === null) await continueIfLong(task, quietMs);
    }
  }

  /** Why this run must stop when its row was deleted (its Job is deleted too) or moved on; null while it is still ours. */
  async function rowMovedOn(task: TaskRef): Promise<TaskWorkflowResult | null> {
    const current = await db.taskState(task.id);
    if (current && current.attempt === task.attempt && !isFinal(current.status)) return null;
    return stopFor(task, current);
  }

  /** Continue as new (keeping the current wait) once the history is long, unless a cancel is pending. */
  async function continueIfLong(task: TaskRef, pollMs: number): Promise<void> {
    const info = workflowInfo();
    const limit = input.continueAfterEvents ?? HISTORY_EVENTS_BEFORE_CONTINUE;
    if (cancelReason === null && (info.continueAsNewSuggested || info.historyLength > limit)) {
      const observing = { task, pollMs, ...(waitingShown !== null && { waiting: waitingShown }) };
      await continueAsNew<typeof taskWorkflow>({ ...input, taskId: task.id, observing });
    }
  }

  function look(task: TaskRef, fresh: boolean) {
    return persist(task, 'reading the Job', () => kube.observeJob({ ...jobRef(task), ...(fresh ? { fresh } : {}) }));
  }

  /** Write what an observation means for the task: a forward status move, or the end of the task. */
  async function apply(task: TaskRef, seen: JobObservation): Promise<{ done: TaskWorkflowResult } | { task: TaskRef; moved: boolean }> {
    const problem = observationProblem(task, seen);
    if (problem) return { done: await finish(task, TaskStatus.Failed, problem) };
    const job = seen as Extract<JobObservation, { owned: true }>;
    const saysMore = job.refused === true || (job.status === TaskStatus.Pending && (job.reason !== undefined || waitingShown !== null));
    if (saysMore && podStatus()) {
      const step = await applyPodStatus(task, job);
      if (step) return step;
    }
    if (job.status === task.status || !statusesBefore(job.status).includes(task.status as TaskStatus)) return { task, moved: false };
    let reason = job.reason ?? null;
    // lastWaiting is only ever set with the patch on.
    if (job.status === TaskStatus.Failed && task.status === TaskStatus.Pending && lastWaiting !== null) {
      // It ended without ever running: why it never ran is the news (the Job's own deadline
      // message would say the task "ran longer" than its timeout).
      const why = lastWaiting.replace(/^waiting: /, '');
      reason = reason?.startsWith('DeadlineExceeded')
        ? `the task never started before its deadline (info.timeoutSeconds): ${why}`
        : `${reason ?? 'the Job failed'}; the task never started: ${why}`;
    }
    const moved = await writeStatus(task, job.status, reason);
    if (moved) return { done: moved };
    const next = { ...task, status: job.status };
    if (isFinal(next.status)) return { done: { status: next.status, reason: job.reason ?? null } };
    return { task: next, moved: true };
  }

  /**
   * What a Job that is not running yet means beyond its status: a pod creation refused by policy
   * ends the task at once (its Job is deleted, so a later change of policy cannot start it behind
   * the row's back); a reason for waiting is shown on the row while it is Pending.
   */
  async function applyPodStatus(task: TaskRef, job: Extract<JobObservation, { owned: true }>): Promise<{ done: TaskWorkflowResult } | null> {
    if (job.refused && !isFinal(task.status)) {
      const deleted = await persist(task, 'deleting the refused Job', () => kube.deleteJob(jobRef(task)));
      if (!deleted.ok) log.warn('could not delete a refused Job', { taskId: task.id, reason: deleted.reason });
      return { done: await finish(task, TaskStatus.Failed, job.reason ?? 'the cluster refused to create the task\'s pod') };
    }
    const reason = job.status === TaskStatus.Pending ? (job.reason ?? null) : null;
    if (task.status === TaskStatus.Pending && job.status === TaskStatus.Pending && reason !== waitingShown) {
      await db.recordReason({ taskId: task.id, attempt: task.attempt, reason });
      waitingShown = reason;
    }
    if (reason !== null) lastWaiting = reason;
    return null;
  }

  /** How runs that predate the Job watch follow their Job (see JOB_WATCH_PATCH); kept so they replay. */
  async function observeByPolling(task: TaskRef, pollMs: number): Promise<TaskWorkflowResult> {
    for (;;) {
      if (cancelReason !== null) return cancel(task, cancelReason);
      const seen = await look(task, false);
      if (!seen.ok) return finish(task, TaskStatus.Failed, seen.reason);
      const step = await apply(task, seen.value);
      if ('done' in step) return step.done;
      task = step.task;
      pollMs = step.moved ? POLL_INITIAL_MS : Math.min(Math.round(pollMs * POLL_GROWTH), POLL_MAX_MS);
      await condition(() => cancelReason !== null, pollMs);
      await continueIfLong(task, pollMs);
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
    return stopFor(task, result.current);
  }

  async function stopFor(task: TaskRef, current: { status: string; attempt: number } | null): Promise<TaskWorkflowResult> {
    if (current === null) {
      // The user deleted the row: its Job must not outlive it, and nothing is re-created.
      await persist(task, 'deleting the Job of a deleted task', () => kube.deleteJob(jobRef(task)));
      return { status: 'Deleted' };
    }
    log.info('task row moved on without this workflow; stopping', { taskId: task.id, current });
    return { status: current.status, reason: 'row changed elsewhere' };
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

/** A task's Job: named after the task, in its namespace, made by this attempt. */
function jobRef(task: TaskRef) {
  return { taskId: task.id, name: task.name, namespace: task.namespace, attempt: task.attempt };
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
