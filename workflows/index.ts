// The worker's workflow bundle: every workflow type nightwatch runs.
export { taskWorkflow, cancelSignal } from './task.ts';
export { dispatchWorkflow } from './dispatch.ts';
export { dispatchPartitionWorkflow } from './dispatch-partition.ts';
export { reconcileWorkflow } from './reconcile.ts';
