// Task rows, their Jobs and worker processes, for the integration tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { V1Job } from '@kubernetes/client-node';
import type { Config } from '../../src/config.ts';
import type { Task } from '../../src/db/client.ts';
import { TASK_ID_LABEL } from '../../src/task/job.ts';
import type { Stack } from './stack.ts';
import { waitFor } from './stack.ts';

export const uniqueName = (base: string) => `${base}-${randomBytes(3).toString('hex')}`;

/** KWOK knobs (scripts/stack/kwok-stages.yaml): how long the pod runs, and whether it fails. */
export const runFor = (duration: string, outcome?: 'fail') => ({
  annotations: { 'nightwatch.io/kwok-run-duration': duration, ...(outcome ? { 'nightwatch.io/kwok-outcome': outcome } : {}) },
});

export async function insertTask(
  stack: Stack,
  row: { name?: string; namespace?: string; info?: unknown; rawInfo?: string; userId?: string; status?: string },
): Promise<Task> {
  return stack.prisma.task.create({
    data: {
      name: row.name ?? uniqueName('task'),
      namespace: row.namespace ?? stack.namespace,
      info: row.rawInfo ?? JSON.stringify(row.info ?? { image: 'alpine', command: ['true'], ...runFor('1s') }),
      userId: row.userId ?? 'tester',
      ...(row.status ? { status: row.status } : {}),
    },
  });
}

export async function waitForStatus(stack: Stack, id: bigint, statuses: string[], timeoutMs = 60_000): Promise<Task> {
  return waitFor(
    `task ${id} to reach ${statuses.join(' or ')}`,
    async () => {
      const row = await stack.prisma.task.findUniqueOrThrow({ where: { id } });
      return statuses.includes(row.status) ? row : undefined;
    },
    timeoutMs,
  );
}

/**
 * The Jobs labelled with the task's id in its namespace right now (whatever their names). Only a
 * snapshot: a Job deleted and created again looks like one. To prove a task ran once, use the
 * stack's Job ledger (job-ledger.ts).
 */
export async function jobsOfTask(stack: Stack, task: Pick<Task, 'id' | 'namespace'>): Promise<V1Job[]> {
  const list = await stack.kube.batch.listNamespacedJob({ namespace: task.namespace, labelSelector: `${TASK_ID_LABEL}=${task.id}` });
  return list.items;
}

/** Delete the Jobs of these tasks, pods included. */
export async function deleteJobsOf(stack: Stack, tasks: Pick<Task, 'namespace' | 'name'>[]): Promise<void> {
  await Promise.all(
    tasks.map((t) =>
      stack.kube.batch
        .deleteNamespacedJob({ name: t.name, namespace: t.namespace, propagationPolicy: 'Background' })
        .catch(() => undefined),
    ),
  );
}

/** What `npm run worker` runs: it picks the malloc and becomes node running src/worker.ts. */
const WORKER_SCRIPT = fileURLToPath(new URL('../../scripts/worker.sh', import.meta.url));

/** What the worker's start-up line (src/worker.ts) says once it runs. */
export const WORKER_START_LINE = 'nightwatch worker: task queue';

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves once the worker has printed its start-up line. */
  ready: Promise<void>;
  /** The fields of that JSON line (malloc, heap growth, young generation…); call after `ready`. */
  startLine: () => Record<string, unknown>;
  exited: Promise<number | null>;
}

/**
 * `npm run worker` as a real separate process: its script becomes node (exec), which runs the
 * TypeScript itself, so the child's pid is the worker's and a signal reaches it.
 */
export function spawnWorker(config: Config, env: Record<string, string> = {}): WorkerProcess {
  const child = spawn('bash', [WORKER_SCRIPT], {
    env: {
      ...process.env,
      NODE: process.execPath,
      DATABASE_URL: config.DATABASE_URL,
      TEMPORAL_ADDRESS: config.TEMPORAL_ADDRESS,
      TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
      WORKFLOW_ID_PREFIX: config.WORKFLOW_ID_PREFIX,
      WORKFLOW_BUNDLE_PATH: config.WORKFLOW_BUNDLE_PATH ?? '',
      KUBECONFIG: config.KUBECONFIG ?? '',
      ALLOWED_NAMESPACES: config.ALLOWED_NAMESPACES.join(','),
      POD_ANNOTATIONS_ALLOWED: config.POD_ANNOTATIONS_ALLOWED.join(','),
      // Many workers run at once in tests: no metrics ports unless a test asks for them.
      WORKER_METRICS_PORT: '0',
      TEMPORAL_METRICS_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes(WORKER_START_LINE)) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`worker exited with ${code} before it was ready:\n${out}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const startLine = () => JSON.parse(out.split('\n').find((l) => l.includes(WORKER_START_LINE))!) as Record<string, unknown>;
  return { child, output: () => out, ready, startLine, exited };
}
