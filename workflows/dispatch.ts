// dispatchWorkflow (the poller), started by the Schedule "nightwatch-dispatch": pages the
// submitted (Normal) rows oldest first and starts task-<id> for each row from an activity, with the
// client, as the API does. No workflow history serialises the starts (child starts cost the parent
// two events each and ran at ~5 a second on the dev server, partitioned or not; README, "Scale"),
// and the dispatcher's own history grows by three events per page. Starting is idempotent, so
// overlapping with the API's immediate start or another tick is harmless.
import { continueAsNew, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities, TaskRef } from '../activities/index.ts';
import { TaskStatus } from '../src/task-status.ts';
import { startTaskWorkflow } from './start-task.ts';

/**
 * Runs from before started every task as their own child (scanPages); their histories carry no
 * marker for this patch and replay that way (test/histories/v1-polling).
 */
const START_BY_ACTIVITY_PATCH = 'dispatch-start-by-activity';
/** A run hands out this many pages before continuing as new, keeping its history short however many rows wait. */
export const PAGES_PER_RUN = 200;

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
/** A page of starts takes about a second; Temporal being away is retried for as long as it lasts. */
const starter = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
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
  /** Pages one dispatcher run starts before continuing as new (default PAGES_PER_RUN). */
  pagesPerRun?: number;
}
export interface PageScanTotals {
  started: number;
  alreadyRunning: number;
}

export async function dispatchWorkflow(input: PageScanInput = {}): Promise<PageScanTotals> {
  const page = (afterId: string, limit: number) => db.listTasksInStatus({ statuses: [TaskStatus.Normal], afterId, limit });
  if (!patched(START_BY_ACTIVITY_PATCH)) return scanPages(input, page);

  const idPrefix = input.idPrefix ?? '';
  const pageSize = Math.min(input.pageSize ?? DEFAULT_PAGE_SIZE, MAX_CHILDREN_PER_RUN);
  const totals = { ...(input.totals ?? { started: 0, alreadyRunning: 0 }) };
  let afterId = input.afterId ?? '0';
  for (let pages = 1; ; pages++) {
    const rows = await page(afterId, pageSize);
    if (rows.length > 0) {
      const started = await starter.startTaskWorkflows({ tasks: rows, idPrefix });
      totals.started += started.started;
      totals.alreadyRunning += started.alreadyRunning;
    }
    if (rows.length < pageSize) return totals;
    afterId = rows[rows.length - 1]!.id;
    if (pages >= (input.pagesPerRun ?? PAGES_PER_RUN) || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof dispatchWorkflow>({ ...input, afterId, totals });
    }
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
