// The worker's workflow bundle: every workflow type nightwatch runs.
export { taskWorkflow, cancelSignal } from './task.ts';
export { dispatchWorkflow } from './dispatch.ts';
export { reconcileWorkflow } from './reconcile.ts';
export { retentionWorkflow } from './retention.ts';
export { recurringRunWorkflow } from './recurring.ts';
export { fixedDelayWorkflow } from './fixed-delay.ts';
