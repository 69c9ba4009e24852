import type { WatcherFactory } from './watcher.ts';

/** Every DISPATCH_INTERVAL, start a task workflow for each submitted row; skip a tick while one runs. */
export const dispatchWatcher: WatcherFactory = (config) => ({
  id: 'nightwatch-dispatch',
  description: 'starts a task workflow for every submitted (Normal) task',
  spec: { intervals: [{ every: config.DISPATCH_INTERVAL }] },
  overlap: 'SKIP',
  workflowType: 'dispatchWorkflow',
  args: [{ idPrefix: config.WORKFLOW_ID_PREFIX, pageSize: config.DISPATCH_PAGE_SIZE }],
});
