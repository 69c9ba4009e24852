// reconcileWorkflow, started by the Schedule "nightwatch-reconcile": finds rows that are in
// progress (Pending/Running) but have no running task workflow — left by the classic Go
// nightwatch, or by a workflow that was terminated — and starts one, which adopts the Job.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import { TaskStatus } from '../src/task-status.ts';
import { scanPages, type PageScanInput, type PageScanTotals } from './dispatch.ts';

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
      const orphaned = new Set(
        await acts.tasksWithoutRunningWorkflow({ taskIds: rows.map((r) => r.id), idPrefix: input.idPrefix ?? '' }),
      );
      return rows.filter((r) => orphaned.has(r.id));
    },
  );
}
