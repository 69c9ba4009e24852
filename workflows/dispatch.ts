// dispatchWorkflow (the poller), started by the Schedule "nightwatch-dispatch": pages the
// submitted (Normal) rows oldest first and starts task-<id> for each. Starting is idempotent,
// so overlapping with the API's immediate start or another tick is harmless.
import { continueAsNew, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities, TaskRef } from '../activities/index.ts';
import { TaskStatus } from '../src/task-status.ts';
import { startTaskWorkflow } from './start-task.ts';

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
}
export interface PageScanTotals {
  started: number;
  alreadyRunning: number;
}

export async function dispatchWorkflow(input: PageScanInput = {}): Promise<PageScanTotals> {
  return scanPages(input, (afterId, limit) =>
    db.listTasksInStatus({ statuses: [TaskStatus.Normal], afterId, limit }),
  );
}

/**
 * The page loop shared by dispatch and reconcile: fetch a page, start the tasks it selects,
 * and continue as new before the run holds too many children or too long a history.
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
