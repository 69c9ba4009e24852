// reconcileWorkflow, started by the Schedule "nightwatch-reconcile": finds rows that are in
// progress (Pending/Running) but have no running task workflow — left by the classic Go
// nightwatch, or by a workflow that was terminated — and starts one, which adopts the Job.
import { patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { TaskStatus } from '../src/task-status.ts';
import { scanPages, type PageScanInput, type PageScanTotals } from './dispatch.ts';

/**
 * A task that finished between the page being read and its workflow being looked up looks
 * orphaned; the scale benchmark caught reconcile starting hundreds of needless runs so. Such rows
 * are read again and only those still in progress are adopted. Runs from before replay without it.
 */
const RECHECK_PATCH = 'reconcile-recheck-rows';

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

export async function reconcileWorkflow(input: PageScanInput = {}): Promise<PageScanTotals> {
  return scanPages(
    input,
    (afterId, limit) => acts.listTasksInStatus({ statuses: [TaskStatus.Pending, TaskStatus.Running], afterId, limit }),
    async (rows) => {
      if (rows.length === 0) return rows;
      let orphaned = await acts.tasksWithoutRunningWorkflow({ taskIds: rows.map((r) => r.id), idPrefix: input.idPrefix ?? '' });
      if (orphaned.length > 0 && patched(RECHECK_PATCH)) {
        orphaned = await acts.tasksStillInStatus({ taskIds: orphaned, statuses: [TaskStatus.Pending, TaskStatus.Running] });
      }
      const adopt = new Set(orphaned);
      return rows.filter((r) => adopt.has(r.id));
    },
  );
}
