// All activities, built from the clients they need (dependency injection, as in Temporal's
// activities-dependency-injection sample), so tests can build them against any stack.
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../src/db/client.ts';
import type { KubeClients } from '../src/kubernetes.ts';
import { podOptions, type Policy } from '../src/policy.ts';
import { createAdmissionActivities, startableWithinUserCaps } from './admission.ts';
import { createDatabaseActivities } from './database.ts';
import { createKubernetesActivities, type JobLookup } from './kubernetes.ts';
import { createRecurringActivities } from './recurring.ts';
import { createRetentionActivities, RETENTION_OFF, type RetentionSettings } from './retention.ts';
import { createTemporalActivities } from './temporal.ts';

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
  return {
    ...createDatabaseActivities(deps.prisma, deps.policy),
    ...createKubernetesActivities(deps.kube, deps.jobs, podOptions(deps.policy)),
    ...createTemporalActivities(deps.temporal, { startable: startableWithinUserCaps(deps.prisma, admission) }),
    ...createRecurringActivities(deps.prisma, deps.temporal),
    ...createAdmissionActivities(deps.prisma, admission),
    ...createRetentionActivities(deps.prisma, deps.retention ?? RETENTION_OFF),
  };
}

export type Activities = ReturnType<typeof createActivities>;
// The types workflows need; they import nothing else from here.
export type { TaskRef } from './database.ts';
export type { JobObservation } from './kubernetes.ts';
export type { RetentionPlan } from './retention.ts';
