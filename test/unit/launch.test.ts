// launchTask (activities/launch.ts): which rows it takes all the way to Pending, and what it hands
// back to the workflow's step-by-step path otherwise. The steps are injected (the worker injects
// the real activities), so each outcome is driven here by what a step answers.
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { LoadedTask } from '../../activities/database.ts';
import { createLaunchActivities, type LaunchSteps } from '../../activities/launch.ts';
import type { CreateJobResult } from '../../activities/kubernetes.ts';

const row = (extra: Partial<LoadedTask> = {}): LoadedTask =>
  ({ id: '7', name: 'task-7', namespace: 'default', userId: 'u1', status: 'Normal', attempt: 2, valid: true, info: { image: 'alpine' }, ...extra }) as LoadedTask;

function launcher(loaded: LoadedTask | null, create: () => Promise<CreateJobResult> = async () => 'created') {
  const calls: string[] = [];
  const steps: LaunchSteps = {
    async loadTask() {
      calls.push('loadTask');
      return loaded;
    },
    async createJob({ task }) {
      calls.push(`createJob:${task.id}:${task.attempt}`);
      return create();
    },
    async markStatus({ to, attempt }) {
      calls.push(`markStatus:${to}:${attempt}`);
      return { updated: true };
    },
  };
  return { calls, launchTask: createLaunchActivities(steps).launchTask };
}

describe('launchTask', () => {
  it('loads a plain new task, creates its Job and marks it Pending, in that order', async () => {
    const { calls, launchTask } = launcher(row());
    expect(await launchTask('7')).toEqual({
      outcome: 'launched',
      task: { id: '7', name: 'task-7', namespace: 'default', userId: 'u1', status: 'Normal', attempt: 2 },
      write: { updated: true },
    });
    expect(calls).toEqual(['loadTask', 'createJob:7:2', 'markStatus:Pending:2']);
  });

  it('marks Pending when the Job already exists for this attempt (a retried launch)', async () => {
    const { calls, launchTask } = launcher(row(), async () => 'adopted');
    expect((await launchTask('7')).outcome).toBe('launched');
    expect(calls).toEqual(['loadTask', 'createJob:7:2', 'markStatus:Pending:2']);
  });

  it('says when the row is gone', async () => {
    const { calls, launchTask } = launcher(null);
    expect(await launchTask('7')).toEqual({ outcome: 'gone' });
    expect(calls).toEqual(['loadTask']);
  });

  it.each([
    ['in progress already', row({ status: 'Running' })],
    ['invalid', { ...row(), valid: false, reason: 'info.image is required' } as LoadedTask],
    ['under a per-user cap', row({ capped: true })],
  ])('hands a row that is %s back as loaded, without creating a Job', async (_, loaded) => {
    const { calls, launchTask } = launcher(loaded);
    expect(await launchTask('7')).toEqual({ outcome: 'loaded', loaded });
    expect(calls).toEqual(['loadTask']);
  });

  it('hands the row back when an earlier attempt\'s Job is still being replaced', async () => {
    const { calls, launchTask } = launcher(row(), async () => 'replacing');
    expect((await launchTask('7')).outcome).toBe('loaded');
    expect(calls).toEqual(['loadTask', 'createJob:7:2']);
  });

  it('hands the row back on a transient failure, for the workflow to retry with the error shown', async () => {
    const { calls, launchTask } = launcher(row(), async () => {
      throw ApplicationFailure.retryable('connect ECONNREFUSED 127.0.0.1:6443', 'KubernetesUnavailable');
    });
    expect(await launchTask('7')).toEqual({ outcome: 'loaded', loaded: row() });
    expect(calls).toEqual(['loadTask', 'createJob:7:2']);
  });

  it('returns the reason when the cluster refuses the Job as the task\'s own fault', async () => {
    const { calls, launchTask } = launcher(row(), async () => {
      throw ApplicationFailure.nonRetryable("task 7: namespace 'nope' does not exist", 'TaskRejected');
    });
    expect(await launchTask('7')).toMatchObject({ outcome: 'rejected', task: { id: '7', attempt: 2 }, reason: "task 7: namespace 'nope' does not exist" });
    expect(calls).toEqual(['loadTask', 'createJob:7:2']);
  });

  it('fails (to be retried) when the database fails after the Job was created', async () => {
    const steps = createLaunchActivities({
      loadTask: async () => row(),
      createJob: async () => 'created',
      markStatus: async () => {
        throw new Error('Connection lost');
      },
    });
    await expect(steps.launchTask('7')).rejects.toThrow('Connection lost');
  });
});
