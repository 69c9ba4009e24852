// recurringRunWorkflow: one run of a cron, calendar or fixed-rate recurring task (issue 9), started by
// its Schedule `recurring-<id>` at each scheduled time (and by trigger and backfill). It writes the
// run's `task` row from the template, named after the scheduled time, and runs it as the ordinary
// task workflow task-<taskId>, as a child, waiting until the row is final. So the Schedule's overlap
// policy sees "the previous run" exactly while its task is not final:
//   SKIP            a time that comes while the previous run's task is not final is skipped
//   BUFFER_ONE/ALL  it waits for that task to end, then runs
//   ALLOW_ALL       runs side by side
//   CANCEL_OTHER    the previous run is cancelled (this workflow cancels its task: Job deleted,
//                   row Cancelled), and the new one starts once that is done
//   TERMINATE_OTHER the previous run's workflow is terminated; its task (an abandoned child) is
//                   cancelled by the new run before it starts its own
import {
  CancellationScope,
  ChildWorkflowCancellationType,
  ChildWorkflowFailure,
  isCancellation,
  ParentClosePolicy,
  proxyActivities,
  proxyLocalActivities,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities, TaskRef } from '../activities/index.ts';
import { isFinal } from '../src/task-status.ts';
import { taskWorkflowStart } from './ids.ts';
import { taskWorkflow } from './task.ts';

/** The Schedule `recurring-<id>` and the fixed-delay workflow of recurring task `<id>` share this id. */
export function recurringWorkflowId(recurringTaskId: string, prefix = ''): string {
  return `${prefix}recurring-${recurringTaskId}`;
}

// Short steps (a row insert, a describe, signals): a worker that dies in one is replaced within 10 s.
const acts = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

// The run's row is written by a local activity, in the run's first workflow task: no round trip
// through the task queue between the scheduled time and the row (it is idempotent on the unique
// (name, namespace) key, so a retry after a crash writes nothing twice).
const local = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

export interface RecurringRunInput {
  recurringTaskId: string;
  /** WORKFLOW_ID_PREFIX, for the task workflow's id. */
  idPrefix?: string;
}

export interface RecurringRunResult {
  /** The run's task, or null when the recurring task was deleted before the run. */
  taskId: string | null;
  /** The task's final status ('Deleted' when its row was deleted). */
  status: string;
}

const SCHEDULED_START = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);
const SCHEDULED_BY = defineSearchAttributeKey('TemporalScheduledById', SearchAttributeType.KEYWORD);

export async function recurringRunWorkflow(input: RecurringRunInput): Promise<RecurringRunResult> {
  const info = workflowInfo();
  // The time the Schedule meant this run for (without jitter; for a trigger, when it was asked),
  // recorded in the start event, so the row's name is the same however often this is replayed.
  const scheduledAt = info.typedSearchAttributes.get(SCHEDULED_START) ?? info.startTime;
  const scheduleId = info.typedSearchAttributes.get(SCHEDULED_BY) ?? null;
  const idPrefix = input.idPrefix ?? '';
  const run = await local.createRecurringRun({ recurringTaskId: input.recurringTaskId, scheduledAt: scheduledAt.toISOString(), scheduleId });
  if (run === null) return { taskId: null, status: 'RecurringTaskDeleted' };
  if (run.overlap === 'TERMINATE_OTHER' || run.overlap === 'CANCEL_OTHER') {
    // A terminated run could not cancel its own task; the task is an abandoned child and would run on.
    const earlier = await acts.unfinishedEarlierRuns({ recurringTaskId: input.recurringTaskId, beforeTaskId: run.task.id });
    if (earlier.length > 0) {
      await acts.cancelRunTasks({ taskIds: earlier, idPrefix, reason: `replaced by the newer run ${run.task.name} (overlap policy ${run.overlap})` });
      for (const id of earlier) await waitUntilFinal(id);
    }
  }
  const status = await runTask(run.task, idPrefix, `cancelled with its recurring run (overlap policy, or the run's workflow was cancelled)`);
  return { taskId: run.task.id, status };
}

/**
 * Run a task as the child task-<id> and wait until its row is final. Cancelling this workflow (the
 * CANCEL_OTHER policy, `temporal workflow cancel`) cancels the task and waits for it to end.
 */
export async function runTask(task: TaskRef, idPrefix: string, cancelReason: string): Promise<string> {
  try {
    return await followTask(task, idPrefix);
  } catch (err) {
    if (!isCancellation(err)) throw err;
    await CancellationScope.nonCancellable(async () => {
      await acts.cancelRunTasks({ taskIds: [task.id], idPrefix, reason: cancelReason });
      await waitUntilFinal(task.id);
    });
    throw err;
  }
}

async function followTask(task: TaskRef, idPrefix: string): Promise<string> {
  if (isFinal(task.status)) return task.status;
  try {
    const child = await startChild(taskWorkflow, {
      ...taskWorkflowStart(task, idPrefix),
      // The task outlives this workflow (terminated by TERMINATE_OTHER, or a Schedule deleted):
      // it is cancelled explicitly, through its `cancel` signal, never left half-done.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      cancellationType: ChildWorkflowCancellationType.ABANDON,
    });
    const result = await child.result();
    if (result.status === 'Deleted' || isFinal(result.status)) return result.status;
  } catch (err) {
    // Already running (a repeated run of the same time), or ended without a final row (held by the
    // per-user cap, failed): the row says when the task is over.
    if (!(err instanceof WorkflowExecutionAlreadyStartedError || err instanceof ChildWorkflowFailure)) throw err;
  }
  return waitUntilFinal(task.id);
}

/** Poll the row until it is final (or deleted): for tasks this workflow does not own the run of. */
async function waitUntilFinal(taskId: string): Promise<string> {
  let delay = 2_000;
  for (;;) {
    const state = await acts.taskState(taskId);
    if (state === null) return 'Deleted';
    if (isFinal(state.status)) return state.status;
    await sleep(delay);
    delay = Math.min(delay * 2, 30_000);
  }
}
