// The worker's workflow bundle: every workflow type nightwatch runs.
export { taskWorkflow, cancelSignal } from './task.ts';
export { dispatchWorkflow } from './dispatch.ts';
export { reconcileWorkflow } from './reconcile.ts';
