// Admission activities: the per-user cap on tasks in progress (src/db/user-cap.ts). The task
// workflow asks for a slot before it creates a Job; the dispatcher's start activity skips rows
// whose users are at the cap, so it does not start workflows only to have them wait.
import type { PrismaClient } from '../src/db/client.ts';
import { admit, withinCaps, type Admission } from '../src/db/user-cap.ts';
import type { LoadedTask, TaskRef } from './database.ts';

export interface AdmissionPolicy {
  /** MAX_TASKS_IN_PROGRESS_PER_USER; 0 means no cap. */
  maxTasksInProgressPerUser: number;
}

export type AdmitResult = Admission | { outcome: 'uncapped' };

export function createAdmissionActivities(prisma: PrismaClient, policy: AdmissionPolicy) {
  const cap = policy.maxTasksInProgressPerUser;
  return {
    /** Take a slot for this attempt of the task; `uncapped` (nothing written) when there is no cap. */
    async admitTask(input: { taskId: string; attempt: number; userId: string }): Promise<AdmitResult> {
      if (cap <= 0) return { outcome: 'uncapped' };
      return admit(prisma, { id: input.taskId, attempt: input.attempt, userId: input.userId }, cap);
    },

  };
}

/**
 * The rows of a dispatcher page whose users have room (the others are shown why they wait), for
 * startTaskWorkflows; undefined when there is no cap.
 */
export function startableWithinUserCaps(prisma: PrismaClient, policy: AdmissionPolicy): ((tasks: TaskRef[]) => Promise<TaskRef[]>) | undefined {
  const cap = policy.maxTasksInProgressPerUser;
  return cap > 0 ? (tasks) => withinCaps(prisma, tasks, cap) : undefined;
}

/**
 * loadTask, telling the workflow whether the per-user cap applies, so an uncapped deployment's
 * tasks skip admission entirely (no admitTask step, no patch marker: 3 history events a task).
 */
export function loadTaskWithCap(
  loadTask: (taskId: string) => Promise<LoadedTask | null>,
  policy: AdmissionPolicy,
): (taskId: string) => Promise<LoadedTask | null> {
  if (policy.maxTasksInProgressPerUser <= 0) return loadTask;
  return async (taskId) => {
    const task = await loadTask(taskId);
    return task && { ...task, capped: true };
  };
}
