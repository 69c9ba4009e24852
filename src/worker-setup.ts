// The one place a worker is configured (Dittofeed's buildWorker): connections, activities,
// workflow code, concurrency and shutdown grace all come from Config.
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../activities/index.ts';
import type { Config } from './config.ts';
import type { PrismaClient } from './db/client.ts';
import type { KubeClients } from './kubernetes.ts';
import { temporalConnectionOptions } from './temporal.ts';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface WorkerDeps {
  config: Config;
  prisma: PrismaClient;
  kube: Pick<KubeClients, 'batch'>;
  client: Client;
  connection: NativeConnection;
}

export function workflowSource(config: Config): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  return config.WORKFLOW_BUNDLE_PATH
    ? { workflowBundle: { codePath: config.WORKFLOW_BUNDLE_PATH } }
    : { workflowsPath: WORKFLOWS_PATH };
}

export async function buildWorker(deps: WorkerDeps, overrides: Partial<WorkerOptions> = {}): Promise<Worker> {
  const { config } = deps;
  return Worker.create({
    connection: deps.connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    activities: createActivities({
      prisma: deps.prisma,
      kube: deps.kube,
      temporal: deps.client,
      allowedNamespaces: config.ALLOWED_NAMESPACES,
    }),
    ...workflowSource(config),
    shutdownGraceTime: config.WORKER_SHUTDOWN_GRACE,
    maxConcurrentActivityTaskExecutions: config.WORKER_MAX_CONCURRENT_ACTIVITIES,
    maxConcurrentWorkflowTaskExecutions: config.WORKER_MAX_CONCURRENT_WORKFLOW_TASKS,
    ...overrides,
  });
}

export async function connectWorker(config: Config): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(config));
}
