// launchTask: a new task's first three steps — load and check its row, create its Job, mark the row
// Pending — as one local activity instead of three (workflows/task.ts, LAUNCH_PATCH). Each local
// activity is a marker in the history and a round trip between the worker's core and its workflow
// thread; every task takes these steps, so one activity instead of three is two events and two
// activations fewer per task. The steps are the same activities the workflow calls one by one, and
// each is idempotent (a read, a create that recognises its own Job, a conditional UPDATE), so a
// retried launch repeats them harmlessly.
//
// Only the plain case goes all the way. A create the cluster refused as the task's own fault
// comes back as that reason, for the workflow to fail the task with. Anything else (the row
// already in progress, an invalid task, a per-user cap to ask, an earlier attempt's Job still being
// deleted, a create that failed for a transient reason) returns the row as loaded, and the workflow
// takes the step-by-step path from there, which shows errors on the row and retries the create
// with its own backoff.
import { ApplicationFailure } from '@temporalio/common';
import { TaskStatus } from '../src/task-status.ts';
import type { LoadedTask, StatusWrite, StatusWriteResult, TaskRef } from './database.ts';
import type { CreateJobResult } from './kubernetes.ts';
import type { TaskInfo } from '../src/task/info.ts';

export type LaunchResult =
  /** The row no longer exists. */
  | { outcome: 'gone' }
  /** The row as loadTask returns it; the workflow goes on step by step. */
  | { outcome: 'loaded'; loaded: LoadedTask }
  /** The cluster refused the Job for a reason that is the task's own (activities/kubernetes.ts). */
  | { outcome: 'rejected'; task: TaskRef; reason: string }
  /** The Job exists (created or this attempt's already) and the row was written Pending, or why not. */
  | { outcome: 'launched'; task: TaskRef; write: StatusWriteResult };

export interface LaunchSteps {
  loadTask(taskId: string): Promise<LoadedTask | null>;
  createJob(input: { task: TaskRef; info: TaskInfo }): Promise<CreateJobResult>;
  markStatus(write: StatusWrite): Promise<StatusWriteResult>;
}

export function createLaunchActivities(steps: LaunchSteps) {
  return {
    async launchTask(taskId: string): Promise<LaunchResult> {
      const loaded = await steps.loadTask(taskId);
      if (!loaded) return { outcome: 'gone' };
      if (loaded.status !== TaskStatus.Normal || !loaded.valid || loaded.capped) return { outcome: 'loaded', loaded };
      const { valid: _valid, info, capped: _capped, ...task } = loaded;
      let created: CreateJobResult;
      try {
        created = await steps.createJob({ task, info });
      } catch (err) {
        if (err instanceof ApplicationFailure && err.nonRetryable) return { outcome: 'rejected', task, reason: err.message };
        // A transient failure: the workflow's own createJob step tries again, showing the error on
        // the row while it lasts (persist in workflows/task.ts).
        return { outcome: 'loaded', loaded };
      }
      if (created === 'replacing') return { outcome: 'loaded', loaded };
      const write = await steps.markStatus({ taskId, attempt: task.attempt, to: TaskStatus.Pending, reason: null });
      return { outcome: 'launched', task, write };
    },
  };
}
