// dispatchWorkflow (the poller), started by the Schedule "nightwatch-dispatch": pages the
// submitted (Normal) rows oldest first and hands each page to a partition workflow
// (dispatch-partition.ts), which starts task-<id> for each row as its child. A bounded window of
// partitions runs at once, so no one history serialises every start, and the dispatcher's own
// history grows by a few events per page. Starting is idempotent, so overlapping with the API's
// immediate start or another tick is harmless.
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { continueAsNew, ParentClosePolicy, patched, proxyActivities, startChild, workflowInfo } from '@temporalio/workflow';
import type { Activities, TaskRef } from '../activities/index.ts';
import { TaskStatus } from '../src/task-status.ts';
import { dispatchPartitionWorkflow, type PartitionTotals } from './dispatch-partition.ts';
import { startTaskWorkflow } from './start-task.ts';

/**
 * Runs started before partitions existed started every task as their own child (scanPages); their
 * histories carry no marker for this patch and replay that way (test/histories/v1-polling).
 */
const PARTITIONS_PATCH = 'dispatch-partitions';
/** Partitions running at once: enough to keep the server busy, few enough not to swamp the cluster at once. */
export const PARTITIONS_IN_FLIGHT = 8;
/** A run hands out this many pages before continuing as new, keeping its history short however many rows wait. */
export const PARTITIONS_PER_RUN = 200;

/**
 * A run starts at most this many children before continuing as new: Temporal allows 2,000
 * pending children per workflow, and abandoned children count until this run closes.
 */
export const MAX_CHILDREN_PER_RUN = 1_000;
const DEFAULT_PAGE_SIZE = 100;

const db = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

export interface PageScanInput {
  /** Prefix of task workflow ids (WORKFLOW_ID_PREFIX). */
  idPrefix?: string;
  pageSize?: number;
  /** Where a continued run resumes. */
  afterId?: string;
  /** Totals carried across continue-as-new. */
  totals?: PageScanTotals;
  /** Children one run may start before continuing as new (default and maximum MAX_CHILDREN_PER_RUN). */
  maxChildrenPerRun?: number;
  /** Pages one dispatcher run hands to partitions before continuing as new (default PARTITIONS_PER_RUN). */
  partitionsPerRun?: number;
}
export interface PageScanTotals {
  started: number;
  alreadyRunning: number;
}

export async function dispatchWorkflow(input: PageScanInput = {}): Promise<PageScanTotals> {
  const page = (afterId: string, limit: number) => db.listTasksInStatus({ statuses: [TaskStatus.Normal], afterId, limit });
  if (!patched(PARTITIONS_PATCH)) return scanPages(input, page);

  const idPrefix = input.idPrefix ?? '';
  const pageSize = Math.min(input.pageSize ?? DEFAULT_PAGE_SIZE, MAX_CHILDREN_PER_RUN);
  const perRun = input.partitionsPerRun ?? PARTITIONS_PER_RUN;
  const totals = { ...(input.totals ?? { started: 0, alreadyRunning: 0 }) };
  const running = new Set<Promise<void>>();
  const { workflowId } = workflowInfo();
  let afterId = input.afterId ?? '0';
  for (let handedOut = 0; ; ) {
    const rows = await page(afterId, pageSize);
    if (rows.length > 0) {
      const done = runPartition(`${workflowId}-p${rows[0]!.id}`, rows, idPrefix).then((t) => {
        totals.started += t.started;
        totals.alreadyRunning += t.alreadyRunning;
        running.delete(done);
      });
      running.add(done);
      handedOut++;
    }
    if (rows.length < pageSize) {
      await Promise.all(running);
      return totals;
    }
    afterId = rows[rows.length - 1]!.id;
    if (running.size >= PARTITIONS_IN_FLIGHT) await Promise.race(running);
    if (handedOut >= perRun || workflowInfo().continueAsNewSuggested) {
      await Promise.all(running);
      await continueAsNew<typeof dispatchWorkflow>({ ...input, afterId, totals });
    }
  }
}

/**
 * One page's partition, awaited so the dispatcher knows when its rows are started. A partition
 * of the same id still running (an earlier tick's, still starting these rows) is left to finish.
 */
async function runPartition(workflowId: string, tasks: TaskRef[], idPrefix: string): Promise<PartitionTotals> {
  try {
    const child = await startChild(dispatchPartitionWorkflow, {
      workflowId,
      args: [{ tasks, idPrefix }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
    return await child.result();
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return { started: 0, alreadyRunning: tasks.length };
    throw err;
  }
}

/**
 * The page loop of reconcile (and of dispatcher runs from before partitions): fetch a page, start
 * the tasks it selects as children, and continue as new before the run holds too many children or
 * too long a history.
 */
export async function scanPages(
  input: PageScanInput,
  page: (afterId: string, limit: number) => Promise<TaskRef[]>,
  select: (tasks: TaskRef[]) => Promise<TaskRef[]> = async (t) => t,
): Promise<PageScanTotals> {
  const idPrefix = input.idPrefix ?? '';
  const maxChildren = Math.min(input.maxChildrenPerRun ?? MAX_CHILDREN_PER_RUN, MAX_CHILDREN_PER_RUN);
  const pageSize = Math.min(input.pageSize ?? DEFAULT_PAGE_SIZE, maxChildren);
  const totals = { ...(input.totals ?? { started: 0, alreadyRunning: 0 }) };
  let afterId = input.afterId ?? '0';
  let startedThisRun = 0;
  for (;;) {
    const rows = await page(afterId, pageSize);
    const chosen = await select(rows);
    // All starts of a page go out in one workflow task.
    const results = await Promise.all(chosen.map((task) => startTaskWorkflow(task, idPrefix)));
    for (const r of results) totals[r === 'started' ? 'started' : 'alreadyRunning'] += 1;
    startedThisRun += results.length;
    if (rows.length < pageSize) return totals;
    afterId = rows[rows.length - 1]!.id;
    if (startedThisRun + pageSize > maxChildren || workflowInfo().continueAsNewSuggested) {
      // Continues the calling workflow (dispatch or reconcile): both take a PageScanInput.
      await continueAsNew<(input: PageScanInput) => Promise<PageScanTotals>>({ ...input, afterId, totals });
    }
  }
}
