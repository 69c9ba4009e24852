// Signals task workflows receive from outside. A pure module: the worker's Job watch
// (src/job-watch.ts) sends `jobChanged` by name, without loading workflow code.
import { defineSignal } from '@temporalio/workflow';
import type { JobObservation } from '../src/task/job-status.ts';

export const JOB_CHANGED_SIGNAL = 'jobChanged';
/** What a task's Job now means for it, sent by every worker's Job watch when that changes. */
export const jobChangedSignal = defineSignal<[JobObservation]>(JOB_CHANGED_SIGNAL);
