// retentionWorkflow, started by the Schedule "nightwatch-retention" (src/watchers/retention.ts):
// removes (or archives) rows final for longer than RETENTION_AFTER, one small batch per activity with
// a pause between batches, until a batch comes back short. The settings are the worker's, read by
// the first activity, so RETENTION_* take effect on a worker restart and the Schedule never carries
// a stale age or mode; with RETENTION_AFTER unset the run ends at once having done nothing.
// A run continues as new every `batchesPerRun` batches, so its history stays a few hundred events
// however many rows wait; the cutoff is carried over, so one run chain works to one cutoff.
import { continueAsNew, log, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities, RetentionPlan } from '../activities/index.ts';

/** Batches one run removes before continuing as new: about 8 history events a batch. */
export const RETENTION_BATCHES_PER_RUN = 100;

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '1m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10 },
});

export interface RetentionInput {
  /** Set by continue-as-new: the plan the chain started with. */
  plan?: RetentionPlan;
  /** Totals carried across continue-as-new. */
  totals?: { removed: number; batches: number };
  /** Batches before continuing as new (default RETENTION_BATCHES_PER_RUN). */
  batchesPerRun?: number;
}

export interface RetentionResult {
  /** False when the worker has no RETENTION_AFTER: nothing was looked at. */
  enabled: boolean;
  mode?: RetentionPlan['mode'];
  dryRun?: boolean;
  cutoff?: string;
  /** Dry run: the rows that would go. */
  wouldRemove?: number;
  /** Rows removed (or archived) by the whole chain. */
  removed: number;
  batches: number;
}

export async function retentionWorkflow(input: RetentionInput = {}): Promise<RetentionResult> {
  const plan = input.plan ?? (await acts.retentionPlan());
  if (!plan) return { enabled: false, removed: 0, batches: 0 };
  const about = { enabled: true, mode: plan.mode, dryRun: plan.dryRun, cutoff: plan.cutoff };
  if (plan.dryRun) {
    const wouldRemove = await acts.countRetainable({ cutoff: plan.cutoff });
    return { ...about, wouldRemove, removed: 0, batches: 0 };
  }
  let { removed, batches } = input.totals ?? { removed: 0, batches: 0 };
  const perRun = Math.max(1, input.batchesPerRun ?? RETENTION_BATCHES_PER_RUN);
  for (let thisRun = 1; ; thisRun++) {
    const batch = await acts.removeRetainable({ cutoff: plan.cutoff, mode: plan.mode, batchSize: plan.batchSize });
    if (batch.picked > 0) batches += 1;
    removed += batch.removed;
    if (batch.picked < plan.batchSize) {
      if (removed > 0) log.info(`retention: ${plan.mode === 'delete' ? 'deleted' : 'archived'} ${removed} rows finished before ${plan.cutoff}`);
      return { ...about, removed, batches };
    }
    if (thisRun >= perRun || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof retentionWorkflow>({ ...input, plan, totals: { removed, batches } });
    }
    await sleep(plan.pauseMs);
  }
}
