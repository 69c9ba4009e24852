import type { WatcherFactory } from './watcher.ts';

/** Every RECONCILE_INTERVAL, adopt in-progress rows that no task workflow owns. */
export const reconcileWatcher: WatcherFactory = (config) => ({
  id: 'nightwatch-reconcile',
  description: 'starts a task workflow for Pending/Running tasks that have none',
  spec: { intervals: [{ every: config.RECONCILE_INTERVAL }] },
  overlap: 'SKIP',
  workflowType: 'reconcileWorkflow',
  args: [{ idPrefix: config.WORKFLOW_ID_PREFIX, pageSize: config.DISPATCH_PAGE_SIZE }],
});
