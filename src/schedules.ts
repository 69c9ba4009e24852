// On start-up each worker creates the Schedules that are missing and leaves existing ones
// alone, so a cadence changed with `temporal schedule update` survives restarts, and any
// number of replicas can start at once (the loser of a create race sees "already exists").
import { ScheduleAlreadyRunning, type Client } from '@temporalio/client';
import type { Config } from './config.ts';
import { allWatchers, type Watcher } from './watchers/index.ts';

export function scheduleId(config: Config, watcher: Watcher): string {
  return `${config.WORKFLOW_ID_PREFIX}${watcher.id}`;
}

export async function ensureSchedules(
  client: Client,
  config: Config,
  watchers: Watcher[] = allWatchers(config),
): Promise<{ created: string[]; existing: string[] }> {
  const created: string[] = [];
  const existing: string[] = [];
  for (const w of watchers) {
    const id = scheduleId(config, w);
    try {
      await client.schedule.create({
        scheduleId: id,
        spec: w.spec,
        policies: { overlap: w.overlap, catchupWindow: '1m' },
        action: {
          type: 'startWorkflow',
          workflowType: w.workflowType,
          workflowId: id,
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          args: w.args,
        },
        memo: { description: w.description },
      });
      created.push(id);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      existing.push(id);
    }
  }
  return { created, existing };
}
