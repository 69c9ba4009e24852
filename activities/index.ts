// All activities, built from the clients they need (dependency injection, as in Temporal's
// activities-dependency-injection sample), so tests can build them against any stack.
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../src/db/client.ts';
import type { KubeClients } from '../src/kubernetes.ts';
import { createDatabaseActivities } from './database.ts';
import { createKubernetesActivities, type JobLookup } from './kubernetes.ts';
import { createTemporalActivities } from './temporal.ts';

export interface ActivityDeps {
  prisma: PrismaClient;
  /** ALLOWED_NAMESPACES */
  allowedNamespaces: readonly string[];
  kube: Pick<KubeClients, 'batch'>;
  temporal: Client;
  /** The worker's Job watch; without it every observation reads the API server. */
  jobs?: JobLookup;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createDatabaseActivities(deps.prisma, deps),
    ...createKubernetesActivities(deps.kube, deps.jobs),
    ...createTemporalActivities(deps.temporal),
  };
}

export type Activities = ReturnType<typeof createActivities>;
// The types workflows need; they import nothing else from here.
export type { TaskRef } from './database.ts';
export type { JobObservation } from './kubernetes.ts';
