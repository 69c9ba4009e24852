// Every Job, and every pod of every Job, that ever existed in a test file's namespaces, recorded
// through the Kubernetes watch API from before the file inserts its first task. Counting a task's
// Jobs at the end only catches zero: a Job deleted and created again (the task ran twice) leaves one
// Job behind and passes. The ledger keeps every uid it ever saw, so it catches that too.
import { BatchV1Api, CoreV1Api, KubeConfig, Watch, type V1Job, type V1ObjectMeta, type V1Pod } from '@kubernetes/client-node';
import { expect } from 'vitest';
import type { Task } from '../../src/db/client.ts';
import { parseTaskInfo } from '../../src/task/info.ts';
import { ATTEMPT_LABEL, TASK_ID_LABEL } from '../../src/task/job.ts';

/** One Job as the ledger saw it: a run of a task (one attempt, one uid). */
export interface JobRun {
  uid: string;
  namespace: string;
  name: string;
  /** The `nightwatch.io/task-id` label; undefined on a Job nightwatch did not make. */
  taskId: string | undefined;
  attempt: string | undefined;
  /** Every pod uid the Job ever had. */
  pods: ReadonlySet<string>;
  /** The watch reported the Job deleted. */
  deleted: boolean;
}

type TaskLike = Pick<Task, 'id' | 'name' | 'namespace' | 'info'>;

/**
 * The apiserver ends each watch after this long, and sends a bookmark (the latest resourceVersion)
 * 2 s before, so a reconnect always starts from a version its watch cache still holds. It must stay
 * under the client's 30 s inactivity timeout, which would otherwise abort a quiet watch.
 */
const WATCH_SECONDS = 20;
const RECONNECT_DELAY_MS = 500;
const SYNC_TIMEOUT_MS = 30_000;
/** Marks the ledger's own barrier objects (see `sync`), which are not runs of any task. */
const BARRIER_LABEL = 'nightwatch.io/test-ledger-barrier';

export class JobLedger {
  private readonly runs = new Map<string, { meta: V1ObjectMeta; deleted: boolean }>();
  private readonly podsByJob = new Map<string, Set<string>>();
  private readonly streams: ResourceStream[] = [];
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  /** Anything that may have made the record incomplete; every assertion fails while this is not empty. */
  readonly problems: string[] = [];

  readonly namespaces: readonly string[];

  private constructor(kubeconfig: KubeConfig, namespaces: readonly string[]) {
    this.namespaces = namespaces;
    this.batch = kubeconfig.makeApiClient(BatchV1Api);
    this.core = kubeconfig.makeApiClient(CoreV1Api);
  }

  /** Lists, then watches from the list's resourceVersion, so nothing between the two is missed. */
  static async start(kubeconfig: KubeConfig, namespaces: readonly string[]): Promise<JobLedger> {
    const ledger = new JobLedger(kubeconfig, namespaces);
    for (const namespace of namespaces) {
      ledger.streams.push(
        new ResourceStream({
          kubeconfig,
          kind: 'jobs',
          namespace,
          path: `/apis/batch/v1/namespaces/${namespace}/jobs`,
          list: async () => {
            const list = await ledger.batch.listNamespacedJob({ namespace });
            return { items: list.items, resourceVersion: list.metadata!.resourceVersion! };
          },
          onObject: (type, job: V1Job) => ledger.recordJob(type, job),
          problems: ledger.problems,
        }),
        new ResourceStream({
          kubeconfig,
          kind: 'pods',
          namespace,
          path: `/api/v1/namespaces/${namespace}/pods`,
          list: async () => {
            const list = await ledger.core.listNamespacedPod({ namespace });
            return { items: list.items, resourceVersion: list.metadata!.resourceVersion! };
          },
          onObject: (_type, pod: V1Pod) => ledger.recordPod(pod),
          problems: ledger.problems,
        }),
      );
    }
    await Promise.all(ledger.streams.map((s) => s.start()));
    return ledger;
  }

  private recordJob(type: string, job: V1Job): void {
    const meta = job.metadata!;
    if (meta.labels?.[BARRIER_LABEL]) return;
    const seen = this.runs.get(meta.uid!);
    this.runs.set(meta.uid!, { meta: seen?.meta ?? meta, deleted: (seen?.deleted ?? false) || type === 'DELETED' });
  }

  private recordPod(pod: V1Pod): void {
    const meta = pod.metadata!;
    if (meta.labels?.[BARRIER_LABEL]) return;
    // The Job controller names the owning Job in the pod's controller reference; the two watches
    // are separate streams, so a pod may arrive before its Job and is kept by the Job's uid.
    const owner = meta.ownerReferences?.find((r) => r.controller && r.kind === 'Job');
    const key = owner?.uid ?? `no owner: ${meta.namespace}/${meta.name}`;
    let pods = this.podsByJob.get(key);
    if (!pods) this.podsByJob.set(key, (pods = new Set()));
    pods.add(meta.uid!);
  }

  /** Every Job ever seen in these namespaces. */
  all(): JobRun[] {
    return [...this.runs.entries()].map(([uid, { meta, deleted }]) => ({
      uid,
      namespace: meta.namespace!,
      name: meta.name!,
      taskId: meta.labels?.[TASK_ID_LABEL],
      attempt: meta.labels?.[ATTEMPT_LABEL],
      pods: this.podsByJob.get(uid) ?? new Set(),
      deleted,
    }));
  }

  /** Every Job ever labelled with this task's id in its namespace, whatever its name. */
  runsOf(task: Pick<Task, 'id' | 'namespace'>): JobRun[] {
    return this.all().filter((r) => r.taskId === task.id.toString() && r.namespace === task.namespace);
  }

  /** Every Job ever named `name` in `namespace`, nightwatch's or not. */
  runsNamed(namespace: string, name: string): JobRun[] {
    return this.all().filter((r) => r.namespace === namespace && r.name === name);
  }

  watches(namespace: string): boolean {
    return this.namespaces.includes(namespace);
  }

  /**
   * Wait until the ledger has seen everything that happened before this call. Events of one watch
   * arrive in order, so once a Job (and a pod) created now shows up, every earlier Job and pod
   * event in that namespace has arrived too. The barrier objects never run: the Job is suspended,
   * the pod held back by a scheduling gate.
   */
  async sync(): Promise<void> {
    await Promise.all(
      this.namespaces.map(async (namespace) => {
        const name = `ledger-barrier-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
        const metadata = { name, labels: { [BARRIER_LABEL]: 'true' } };
        const container = { name: 'barrier', image: 'barrier' };
        const job = await this.batch.createNamespacedJob({
          namespace,
          body: { metadata, spec: { suspend: true, template: { spec: { restartPolicy: 'Never', containers: [container] } } } },
        });
        const pod = await this.core.createNamespacedPod({
          namespace,
          body: {
            metadata,
            spec: { schedulingGates: [{ name: BARRIER_LABEL }], automountServiceAccountToken: false, containers: [container] },
          },
        });
        await Promise.all([this.stream('jobs', namespace).seen(job.metadata!.uid!), this.stream('pods', namespace).seen(pod.metadata!.uid!)]);
        await Promise.all([
          this.batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' }),
          this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 }),
        ]);
      }),
    );
    expect(this.problems, 'the Job ledger may have missed events').toEqual([]);
  }

  private stream(kind: 'jobs' | 'pods', namespace: string): ResourceStream {
    return this.streams.find((s) => s.spec.kind === kind && s.spec.namespace === namespace)!;
  }

  async stop(): Promise<void> {
    await Promise.all(this.streams.map((s) => s.stop()));
  }

  /** For failure messages: what the ledger holds for a task. */
  describe(runs: JobRun[]): string {
    if (runs.length === 0) return 'no Job';
    return runs
      .map((r) => `${r.namespace}/${r.name} uid ${r.uid} attempt ${r.attempt ?? '-'}, ${r.pods.size} pod(s)${r.deleted ? ', deleted' : ''}`)
      .join('; ');
  }
}

interface StreamSpec {
  kubeconfig: KubeConfig;
  kind: 'jobs' | 'pods';
  namespace: string;
  /** The watch's URL path. */
  path: string;
  list: () => Promise<{ items: { metadata?: V1ObjectMeta }[]; resourceVersion: string }>;
  onObject: (type: string, obj: any) => void;
  /** The ledger's problems, shared by its streams. */
  problems: string[];
}

/** One list+watch of one kind of object in one namespace, reconnecting from the last version seen. */
class ResourceStream {
  private resourceVersion = '';
  private abort: AbortController | undefined;
  private stopped = false;
  private expired = false;
  private reconnecting: Promise<void> | undefined;
  private readonly seenUids = new Set<string>();
  private readonly waiters = new Map<string, () => void>();

  readonly spec: StreamSpec;

  constructor(spec: StreamSpec) {
    this.spec = spec;
  }

  async start(): Promise<void> {
    const { items, resourceVersion } = await this.spec.list();
    for (const item of items) this.deliver('ADDED', item);
    this.resourceVersion = resourceVersion;
    await this.connect();
  }

  /** Resolves once an object with this uid has come through the watch. */
  seen(uid: string): Promise<void> {
    if (this.seenUids.has(uid)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(uid);
        reject(new Error(`the ${this.spec.kind} watch in namespace ${this.spec.namespace} did not deliver object ${uid} within ${SYNC_TIMEOUT_MS} ms`));
      }, SYNC_TIMEOUT_MS);
      this.waiters.set(uid, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.reconnecting;
  }

  private deliver(type: string, obj: { metadata?: V1ObjectMeta }): void {
    const uid = obj.metadata?.uid;
    if (!uid) return;
    this.spec.onObject(type, obj);
    if (obj.metadata?.labels?.[BARRIER_LABEL]) {
      this.seenUids.add(uid);
      this.waiters.get(uid)?.();
      this.waiters.delete(uid);
    }
  }

  private async connect(): Promise<void> {
    const watch = new Watch(this.spec.kubeconfig);
    this.abort = await watch.watch(
      this.spec.path,
      { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: WATCH_SECONDS },
      (type, obj) => {
        if (type === 'ERROR') {
          // 410 Gone: the version we asked for left the apiserver's window; events may be lost.
          if (obj?.code === 410) this.expired = true;
          else this.spec.problems.push(`${this.spec.kind} watch in ${this.spec.namespace}: ${obj?.message ?? JSON.stringify(obj)}`);
          return;
        }
        this.resourceVersion = obj?.metadata?.resourceVersion ?? this.resourceVersion;
        if (type !== 'BOOKMARK') this.deliver(type, obj);
      },
      (err) => {
        if (this.stopped) return;
        this.reconnecting = this.reconnect(err);
      },
    );
  }

  private async reconnect(err: unknown): Promise<void> {
    if (err) await new Promise((r) => setTimeout(r, RECONNECT_DELAY_MS));
    if (this.stopped) return;
    try {
      if (this.expired || (err as { statusCode?: number } | null)?.statusCode === 410) {
        this.spec.problems.push(`${this.spec.kind} watch in ${this.spec.namespace} expired (410 Gone) at ${new Date().toISOString()}; relisted, but objects created and deleted meanwhile are unknown`);
        this.expired = false;
        await this.start();
      } else {
        await this.connect();
      }
    } catch (e) {
      if (this.stopped) return;
      this.reconnecting = this.reconnect(e);
    }
  }
}

/** The Job ledger of the test's own namespaces, started before any task exists. */
export const startJobLedger = (kubeconfig: KubeConfig, namespaces: readonly string[]) => JobLedger.start(kubeconfig, namespaces);

const backoffLimitOf = (task: Pick<Task, 'info'>) => {
  const parsed = parseTaskInfo(task.info);
  return parsed.ok ? parsed.info.backoffLimit : undefined;
};

/**
 * Each task ran exactly once: one Job uid ever (never deleted and created again), and for a Job that
 * retries nothing (backoffLimit 0) exactly one pod.
 */
export async function expectOneRunPerTask(ledger: JobLedger, tasks: TaskLike[]): Promise<void> {
  await ledger.sync();
  for (const task of tasks) {
    const runs = ledger.runsOf(task);
    const what = `task ${task.id} (${task.namespace}/${task.name}): ${ledger.describe(runs)}`;
    expect(runs.length, `Jobs ever created for ${what}`).toBe(1);
    expect(runs[0]!.name, what).toBe(task.name);
    if (backoffLimitOf(task) === 0) expect(runs[0]!.pods.size, `pods of the one Job of ${what}`).toBe(1);
  }
}

/**
 * Each of these attempts ran exactly once (one Job uid labelled with that attempt), and no other
 * attempt made a Job: a retry replaces the Job, it never runs an attempt twice.
 */
export async function expectOneRunPerAttempt(ledger: JobLedger, task: TaskLike, attempts: number[]): Promise<void> {
  await ledger.sync();
  const runs = ledger.runsOf(task);
  const what = `task ${task.id} (${task.namespace}/${task.name}): ${ledger.describe(runs)}`;
  const labels = runs.map((r) => r.attempt).sort();
  expect(labels, `attempt labels of every Job ever created for ${what}`).toEqual(attempts.map(String).sort());
  if (backoffLimitOf(task) === 0) {
    for (const r of runs) expect(r.pods.size, `pods of attempt ${r.attempt}'s Job of ${what}`).toBe(1);
  }
}

/** Nightwatch never created a Job for this task, not even for a moment. */
export async function expectNoJob(ledger: JobLedger, task: Pick<Task, 'id' | 'name' | 'namespace'>): Promise<void> {
  if (!ledger.watches(task.namespace)) {
    throw new Error(
      `task ${task.id} targets namespace '${task.namespace}', which this test file's Job ledger does not watch (it watches ${ledger.namespaces.join(', ')}); ` +
        'check that namespace another way',
    );
  }
  await ledger.sync();
  const runs = ledger.runsOf(task);
  expect(runs, `Jobs ever created for task ${task.id} (${task.namespace}/${task.name}): ${ledger.describe(runs)}`).toEqual([]);
}
