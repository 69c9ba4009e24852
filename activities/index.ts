// All activities, built from the clients they need (dependency injection, as in Temporal's
// activities-dependency-injection sample), so tests can build them against any stack.
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../src/db/client.ts';
import type { KubeClients } from '../src/kubernetes.ts';
import { podOptions, type Policy } from '../src/policy.ts';
import { createAdmissionActivities, loadTaskWithCap, startableWithinUserCaps } from './admission.ts';
import { createDatabaseActivities } from './database.ts';
import { createKubernetesActivities, type JobLookup } from './kubernetes.ts';
import { createLaunchActivities } from './launch.ts';
import { createRecurringActivities } from './recurring.ts';
import { createRetentionActivities, RETENTION_OFF, type RetentionSettings } from './retention.ts';
import { createTemporalActivities } from './temporal.ts';
import { countDatabaseError, jobEndToRow, jobEndTime, observeSince, submissionToJob } from '../src/metrics.ts';

export interface ActivityDeps {
  prisma: PrismaClient;
  /** The operator's policy (src/policy.ts): what tasks may ask for, their defaults, how their pods run. */
  policy: Policy;
  kube: Pick<KubeClients, 'batch' | 'core'>;
  temporal: Client;
  /** The worker's Job watch; without it every observation reads the API server. */
  jobs?: JobLookup;
  /** MAX_TASKS_IN_PROGRESS_PER_USER; 0 or unset means no cap. */
  maxTasksInProgressPerUser?: number;
  /** RETENTION_* (activities/retention.ts); unset means retention is off. */
  retention?: RetentionSettings;
}

export function createActivities(deps: ActivityDeps) {
  const admission = { maxTasksInProgressPerUser: deps.maxTasksInProgressPerUser ?? 0 };
  const measure = measurements(deps);
  const database = createDatabaseActivities(deps.prisma, deps.policy, measure);
  const loadTask = loadTaskWithCap(database.loadTask, admission);
  const kubernetes = createKubernetesActivities(deps.kube, deps.jobs, podOptions(deps.policy), { ...measure, classicTaskInfo: classicTaskInfo(deps.prisma) });
  return {
    ...database,
    loadTask,
    ...kubernetes,
    ...createLaunchActivities({ loadTask, createJob: kubernetes.createJob, markStatus: database.markStatus }),
    ...createTemporalActivities(deps.temporal, { startable: startableWithinUserCaps(deps.prisma, admission) }),
    ...createRecurringActivities(deps.prisma, deps.temporal),
    ...createAdmissionActivities(deps.prisma, admission),
    ...createRetentionActivities(deps.prisma, deps.retention ?? RETENTION_OFF),
  };
}

export type Activities = ReturnType<typeof createActivities>;

/**
 * The row's `info` as stored, to recognise the Job the classic Go nightwatch made for it
 * (src/task/classic-job.ts). Read only when a Job without this task's labels holds the task's name.
 */
function classicTaskInfo(prisma: PrismaClient) {
  return async (taskId: string) => (await prisma.task.findUnique({ where: { id: BigInt(taskId) }, select: { info: true } }))?.info ?? null;
}

/**
 * The two latencies that need a read besides the activity's own (one primary-key lookup each, made
 * after the activity's work and never failing it): submission → Job, and Job end → final row.
 */
function measurements(deps: Pick<ActivityDeps, 'prisma' | 'jobs'>) {
  const row = (taskId: string) =>
    deps.prisma.task.findUnique({ where: { id: BigInt(taskId) }, select: { createdAt: true, name: true, namespace: true } });
  const quietly = (p: Promise<unknown>) => void p.catch(countDatabaseError);
  return {
    onJobCreated(taskId: string) {
      quietly(row(taskId).then((r) => r && observeSince(submissionToJob, r.createdAt)));
    },
    onFinal(taskId: string, at: Date) {
      // The Job as the worker's watch holds it; without a watch, or once the Job is gone, nothing is measured.
      if (!deps.jobs) return;
      const jobs = deps.jobs;
      quietly(
        row(taskId).then((r) => {
          const job = r && jobs.cached(r.namespace, r.name);
          const ended = job && jobEndTime(job);
          if (ended) observeSince(jobEndToRow, ended, at);
        }),
      );
    },
  };
}

// The types workflows need; they import nothing else from here.
export type { TaskRef } from './database.ts';
export type { JobObservation } from './kubernetes.ts';
export type { RetentionPlan } from './retention.ts';
