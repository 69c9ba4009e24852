import type { WatcherFactory } from './watcher.ts';

/**
 * Every RETENTION_INTERVAL, remove (or archive) rows final for longer than RETENTION_AFTER. The
 * Schedule always exists and the run asks the worker for its settings: with RETENTION_AFTER unset
 * it ends at once. Workers create missing Schedules but never change or delete one, so a Schedule
 * made only when retention is on would go on deleting, with the age and mode it was created with,
 * after the operator turned retention off or changed it; this way RETENTION_* is the one switch.
 */
export const retentionWatcher: WatcherFactory = (config) => ({
  id: 'nightwatch-retention',
  description: 'removes or archives tasks final for longer than RETENTION_AFTER (does nothing when it is unset)',
  spec: { intervals: [{ every: config.RETENTION_INTERVAL }] },
  overlap: 'SKIP',
  workflowType: 'retentionWorkflow',
  args: [{}],
});
