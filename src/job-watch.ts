// The worker's Job watch (ARCHITECTURE.md: "one shared informer on nightwatch's Jobs"). Each
// worker replica keeps one informer per allowed namespace (or one for the whole cluster when
// ALLOWED_NAMESPACES is `*`) on Jobs labelled managed-by=nightwatch, and signals `jobChanged` to
// task-<id> whenever what a Job means for its task changes. Task workflows wait for that signal,
// with a slow fallback read, so a missed event costs latency, never correctness.
//
// Several replicas all signal the same change; each signal carries a request id derived from the
// change itself, so the Temporal server records it once (it drops a signal whose request id the run
// has already seen). The informer's cache also answers the workflows' fallback reads, so following
// a Job costs no request to the API server however long it runs.
import { createHash } from 'node:crypto';
import {
  ListWatch,
  Watch,
  type CoreV1Event,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ObjectCache,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';
import { isGrpcServiceError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { JobLookup } from '../activities/kubernetes.ts';
import { jobAttempt, MANAGED_BY, MANAGED_BY_LABEL, TASK_ID_LABEL } from './task/job.ts';
import { observeJobObject, type JobObservation, type JobSurroundings } from './task/job-status.ts';
import { isFinal } from './task-status.ts';
import type { KubeClients } from './kubernetes.ts';
import { taskWorkflowId } from '../workflows/ids.ts';
import { JOB_CHANGED_SIGNAL } from '../workflows/signals.ts';

/** A watch that has shown no sign of life (event, reconnect) for this long is restarted. */
const STALL_AFTER_MS = 90_000;
/** How often the watchdog looks. The client library's own watch times out after 30 s of silence and reconnects. */
const WATCHDOG_EVERY_MS = 15_000;
/** An informer that stopped on an error is restarted after this, doubling up to the maximum. */
const RESTART_INITIAL_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** Signals in flight at once; more waiting changes queue up (only the newest per task is kept). */
const SIGNAL_CONCURRENCY = 32;
/** A signal that failed for a reason other than "no such workflow" is tried again after this. */
const SIGNAL_RETRY_MS = 2_000;
const GRPC_NOT_FOUND = 5;
/**
 * A change that ends a task (the Job finished, was refused, or is gone) is sent again this often
 * while its workflow still runs (asked with a describe), for at most RESEND_FOR_MS: a signal lost
 * on the way then costs a minute, while a workflow that already has it is not woken (the same
 * change has the same request id, and the server drops a request id it has seen). Most workflows
 * have ended by the first resend, so it costs about one describe per task. This is what lets the
 * task workflows' own quiet looks be rare (workflows/task.ts).
 */
const RESEND_EVERY_MS = 60_000;
const RESEND_FOR_MS = 60 * 60_000;

export interface JobWatchOptions {
  kubeconfig: KubeConfig;
  batch: KubeClients['batch'];
  core: KubeClients['core'];
  client: Client;
  /** ALLOWED_NAMESPACES: one informer each, or one for the cluster when it contains `*`. */
  namespaces: readonly string[];
  /** WORKFLOW_ID_PREFIX */
  idPrefix: string;
  log?: (message: string) => void;
  /** Overrides of STALL_AFTER_MS, WATCHDOG_EVERY_MS (tests of the watchdog) and RESEND_EVERY_MS. */
  stallAfterMs?: number;
  watchdogEveryMs?: number;
  resendEveryMs?: number;
}

export interface JobWatchStats {
  /** Signals sent to task workflows (each replica counts its own). */
  signalsSent: number;
  /** Signals whose workflow was not running (finished, or never ours). */
  signalsToNoWorkflow: number;
  signalErrors: number;
  /** Final changes sent again (RESEND_EVERY_MS; the server drops those it already has). */
  signalsResent: number;
  /** Informer restarts after an error or a stall. */
  restarts: number;
}

export interface JobWatch extends JobLookup {
  /** Resolves once every informer has listed its objects (or failed to; it then keeps retrying). */
  ready: Promise<void>;
  stats: JobWatchStats;
  /** Whether every informer is connected and current. */
  healthy(): boolean;
  stop(): Promise<void>;
  /** Stop every informer as if it had died, without telling the watchdog (for tests of its recovery). */
  simulateSilentStall(): Promise<void>;
  /** Lose the next `count` signals that end a task, as if lost on the way (for tests of the resend). */
  simulateLostSignals(count: number): void;
}

const SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
/** The Job controller's events for a pod it could not create (admission, quota, policy). */
const CREATE_FAILURES = 'involvedObject.kind=Job,reason=FailedCreate';

/**
 * What each replica watches, per allowed namespace (or cluster-wide): nightwatch's Jobs (status),
 * their pods (whether one really runs, and why not: image pulls, scheduling) and the Job
 * controller's FailedCreate events (pods refused by admission or quota). Pods and events only
 * add reasons; a Job's outcome comes from the Job.
 */
type Kind = 'jobs' | 'pods' | 'events';

interface Watched {
  kind: Kind;
  namespace: string | null;
  /** Replaced on every restart; a stopped informer's late events and errors are ignored by generation. */
  informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  generation: number;
  /** Listed and watching since the last (re)start, with no error since. */
  live: boolean;
  lastSignOfLife: number;
  restartDelay: number;
  restartTimer?: NodeJS.Timeout;
}

export function startJobWatch(options: JobWatchOptions): JobWatch {
  const log = options.log ?? ((m: string) => console.warn(`nightwatch job watch: ${m}`));
  const stats: JobWatchStats = { signalsSent: 0, signalsToNoWorkflow: 0, signalErrors: 0, signalsResent: 0, restarts: 0 };
  const clusterWide = options.namespaces.includes('*');
  let stopped = false;
  const signals = createSignalPump(options, stats, log);
  /** Per Job uid: its pods by pod uid, and the newest FailedCreate event. */
  const podsOf = new Map<string, Map<string, V1Pod>>();
  const createFailureOf = new Map<string, { eventUid: string; namespace: string; at: number; message: string }>();

  function listWatch(kind: Kind, namespace: string | null) {
    const ns = namespace ?? undefined;
    const { batch, core } = options;
    const spec = {
      jobs: {
        path: ns ? `/apis/batch/v1/namespaces/${ns}/jobs` : '/apis/batch/v1/jobs',
        // The list function must apply the selectors itself; the watch gets them from ListWatch.
        list: () => (ns ? batch.listNamespacedJob({ namespace: ns, labelSelector: SELECTOR }) : batch.listJobForAllNamespaces({ labelSelector: SELECTOR })),
        label: SELECTOR,
        field: undefined,
      },
      pods: {
        path: ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods',
        list: () => (ns ? core.listNamespacedPod({ namespace: ns, labelSelector: SELECTOR }) : core.listPodForAllNamespaces({ labelSelector: SELECTOR })),
        label: SELECTOR,
        field: undefined,
      },
      events: {
        path: ns ? `/api/v1/namespaces/${ns}/events` : '/api/v1/events',
        list: () =>
          ns ? core.listNamespacedEvent({ namespace: ns, fieldSelector: CREATE_FAILURES }) : core.listEventForAllNamespaces({ fieldSelector: CREATE_FAILURES }),
        label: undefined,
        field: CREATE_FAILURES,
      },
    }[kind];
    return new ListWatch<KubernetesObject>(spec.path, new Watch(options.kubeconfig), spec.list as never, false, spec.label, spec.field);
  }

  function jobByUid(namespace: string | undefined, name: string | undefined, uid: string | undefined): V1Job | undefined {
    if (!namespace || !name || !uid) return undefined;
    const job = covering('jobs', namespace)?.informer.get(name, namespace) as V1Job | undefined;
    return job?.metadata?.uid === uid ? job : undefined;
  }

  function surroundingsOf(job: V1Job): JobSurroundings {
    const uid = job.metadata?.uid ?? '';
    const failure = createFailureOf.get(uid);
    return { pods: [...(podsOf.get(uid)?.values() ?? [])], ...(failure && { createFailure: failure.message }) };
  }

  function onJob(job: V1Job, deleted: boolean): void {
    const uid = job.metadata?.uid;
    if (deleted && uid) {
      podsOf.delete(uid);
      createFailureOf.delete(uid);
    }
    signals.offer(job, deleted, deleted ? {} : surroundingsOf(job));
  }

  function onPod(pod: V1Pod, deleted: boolean): void {
    const owner = pod.metadata?.ownerReferences?.find((o) => o.kind === 'Job' && o.controller);
    const podUid = pod.metadata?.uid;
    if (!owner || !podUid) return;
    let pods = podsOf.get(owner.uid);
    if (deleted) pods?.delete(podUid);
    else {
      if (!pods) podsOf.set(owner.uid, (pods = new Map()));
      pods.set(podUid, pod);
    }
    if (pods?.size === 0) podsOf.delete(owner.uid);
    const job = jobByUid(pod.metadata?.namespace, owner.name, owner.uid);
    if (job) signals.offer(job, false, surroundingsOf(job));
  }

  function onEvent(event: CoreV1Event, deleted: boolean): void {
    const about = event.involvedObject;
    const eventUid = event.metadata?.uid;
    if (!about?.uid || !eventUid) return;
    const known = createFailureOf.get(about.uid);
    if (deleted) {
      if (known?.eventUid === eventUid) createFailureOf.delete(about.uid);
      return;
    }
    const at = new Date(event.lastTimestamp ?? event.eventTime ?? event.metadata?.creationTimestamp ?? 0).getTime();
    if (known && known.at > at) return;
    const namespace = about.namespace ?? event.metadata?.namespace ?? '';
    createFailureOf.set(about.uid, { eventUid, namespace, at, message: event.message ?? 'the Job controller could not create a pod' });
    const job = jobByUid(namespace, about.name, about.uid);
    if (job) signals.offer(job, false, surroundingsOf(job));
  }

  const handlers: Record<Kind, (o: never, deleted: boolean) => void> = { jobs: onJob, pods: onPod, events: onEvent };

  /**
   * The informer keeps the very object it hands to its callbacks, one per Job and pod in flight, so
   * what nothing reads is dropped from it here: every object's managedFields (server-side apply's
   * bookkeeping, often the largest part) and a pod's spec (only its metadata and status are read:
   * src/task/job-status.ts). A Job keeps its spec (its deadline, and its template for adoption).
   */
  function trim(kind: Kind, object: KubernetesObject): void {
    if (object.metadata) delete object.metadata.managedFields;
    if (kind === 'pods') delete (object as V1Pod).spec;
  }

  function makeFor(w: Pick<Watched, 'kind' | 'namespace'> & Partial<Watched>, generation: number) {
    const informer = listWatch(w.kind, w.namespace);
    const current = () => !stopped && w.generation === generation;
    const alive = () => {
      if (current()) w.lastSignOfLife = Date.now();
    };
    const changed = (deleted: boolean) => (object: KubernetesObject) => {
      trim(w.kind, object);
      if (!current()) return;
      alive();
      handlers[w.kind](object as never, deleted);
    };
    informer.on('add', changed(false));
    informer.on('update', changed(false));
    informer.on('delete', changed(true));
    informer.on('connect', alive);
    informer.on('error', (err: unknown) => {
      if (!current() || w.restartTimer) return;
      const self = w as Watched;
      self.live = false;
      log(`watch of ${where(self)} stopped: ${describe(err)}; restarting in ${self.restartDelay / 1000} s`);
      self.restartTimer = setTimeout(() => {
        self.restartTimer = undefined;
        if (!current()) return;
        self.restartDelay = Math.min(self.restartDelay * 2, RESTART_MAX_MS);
        void restart(self);
      }, self.restartDelay);
    });
    return informer;
  }

  const scopes = clusterWide ? [null] : [...new Set(options.namespaces)];
  const watched: Watched[] = (['jobs', 'pods', 'events'] as const).flatMap((kind) =>
    scopes.map((namespace) => {
      const w = { kind, namespace, generation: 0, live: false, lastSignOfLife: Date.now(), restartDelay: RESTART_INITIAL_MS } as Watched;
      w.informer = makeFor(w, 0);
      return w;
    }),
  );

  async function begin(w: Watched): Promise<void> {
    const { generation, informer } = w;
    if (stopped) return;
    await informer.start();
    // start() returns once the list is in and the watch is requested; an error on the way has
    // already scheduled a restart.
    if (!stopped && generation === w.generation && !w.restartTimer) {
      w.live = true;
      w.restartDelay = RESTART_INITIAL_MS;
      w.lastSignOfLife = Date.now();
    }
  }

  /** A fresh informer (a full relist); the old one is stopped and whatever it still says is ignored. */
  async function restart(w: Watched): Promise<void> {
    stats.restarts++;
    // The fresh informer lists what exists now; forget what the old one said about its scope, or a
    // pod or event deleted while it was down would linger.
    const inScope = (namespace: string | undefined) => w.namespace === null || namespace === w.namespace;
    if (w.kind === 'pods') {
      for (const [uid, pods] of podsOf) if ([...pods.values()].some((p) => inScope(p.metadata?.namespace))) podsOf.delete(uid);
    } else if (w.kind === 'events') {
      for (const [uid, failure] of createFailureOf) if (inScope(failure.namespace)) createFailureOf.delete(uid);
    }
    const old = w.informer;
    w.generation++;
    w.live = false;
    w.informer = makeFor(w, w.generation);
    await old.stop();
    await begin(w);
  }

  // All at once: a pod or event that arrives after its Job re-offers the Job with it.
  const ready = Promise.all(watched.map(begin)).then(() => undefined);
  const stallAfterMs = options.stallAfterMs ?? STALL_AFTER_MS;
  const watchdog = setInterval(() => {
    for (const w of watched) {
      // Events about failed pod creations are rare: a quiet events watch is not a stalled one
      // (the client library reconnects it every 30 s anyway, which counts as a sign of life).
      if (!w.restartTimer && Date.now() - w.lastSignOfLife > stallAfterMs) {
        log(`watch of ${where(w)} showed no sign of life for ${stallAfterMs / 1000} s; restarting it`);
        void restart(w);
      }
    }
  }, options.watchdogEveryMs ?? WATCHDOG_EVERY_MS);
  watchdog.unref();

  const covering = (kind: Kind, namespace: string) => watched.find((w) => w.kind === kind && (w.namespace === null || w.namespace === namespace));
  const liveFor = (kind: Kind, namespace: string) => covering(kind, namespace)?.live === true;

  return {
    ready,
    stats,
    healthy: () => watched.every((w) => w.live),
    cached(namespace, name) {
      const w = covering('jobs', namespace);
      return w?.live ? (w.informer.get(name, namespace) as V1Job | undefined) : undefined;
    },
    surroundings(job) {
      const namespace = job.metadata?.namespace ?? '';
      return liveFor('pods', namespace) && liveFor('events', namespace) ? surroundingsOf(job) : undefined;
    },
    async stop() {
      stopped = true;
      clearInterval(watchdog);
      for (const w of watched) {
        clearTimeout(w.restartTimer);
        w.generation++;
        w.live = false;
        await w.informer.stop();
      }
      await signals.drain();
    },
    async simulateSilentStall() {
      for (const w of watched) {
        w.generation++;
        await w.informer.stop();
      }
    },
    simulateLostSignals(count) {
      signals.lose(count);
    },
  };
}

function where(w: Watched): string {
  const what = { jobs: 'Jobs', pods: 'pods', events: 'FailedCreate events' }[w.kind];
  return w.namespace === null ? `${what} in all namespaces` : `${what} in namespace '${w.namespace}'`;
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

interface Signal {
  workflowId: string;
  uid: string;
  key: string;
  observation: JobObservation;
  /** The change ends the task: kept and sent again until the workflow has ended. */
  ends: boolean;
  resend?: boolean;
}

/**
 * Turns Job changes into `jobChanged` signals: only changes that mean something to the task (its
 * status or reason, or the Job's deletion), at most one pending signal per task (the newest), a
 * bounded number in flight, and each change signalled once per replica.
 */
function createSignalPump(options: JobWatchOptions, stats: JobWatchStats, log: (m: string) => void) {
  /** Per Job uid, the key of the last change signalled, so a relist or a no-op update sends nothing. */
  const lastSent = new Map<string, string>();
  const queue = new Map<string, Signal>();
  /** Per Job uid, the change that ends its task, sent and kept for resending until the workflow has ended. */
  const finals = new Map<string, { signal: Signal; firstSentAt: number; lastSentAt: number }>();
  let inFlight = 0;
  let idle: (() => void) | null = null;
  let toLose = 0;
  const resendEveryMs = options.resendEveryMs ?? RESEND_EVERY_MS;
  const resender = setInterval(() => {
    const now = Date.now();
    for (const [uid, f] of finals) {
      if (now - f.firstSentAt > RESEND_FOR_MS) finals.delete(uid);
      else if (now - f.lastSentAt >= resendEveryMs && !queue.has(f.signal.workflowId)) queue.set(f.signal.workflowId, { ...f.signal, resend: true });
    }
    pump();
  }, Math.max(1, Math.floor(resendEveryMs / 4)));
  resender.unref();

  function offer(job: V1Job, deleted: boolean, around: JobSurroundings): void {
    const taskId = job.metadata?.labels?.[TASK_ID_LABEL];
    const uid = job.metadata?.uid;
    if (!taskId || !uid || !/^\d+$/.test(taskId)) return;
    const observation: JobObservation = deleted ? { exists: false, attempt: jobAttempt(job) } : observeJobObject(job, taskId, around);
    // A Job just created is Pending, which the workflow wrote itself: nothing to tell it, unless
    // it was told a reason for waiting before (the reason has gone, e.g. the image now pulls).
    if (observation.exists && observation.owned && observation.status === 'Pending' && !observation.reason && !lastSent.has(uid)) return;
    const key = JSON.stringify(observation);
    if (lastSent.get(uid) === key) return;
    if (deleted) lastSent.delete(uid);
    else lastSent.set(uid, key);
    const workflowId = taskWorkflowId(taskId, options.idPrefix);
    const ends = !observation.exists || (observation.owned && (isFinal(observation.status) || observation.refused === true));
    // A newer change replaces the one kept for resending (a Job deleted after it finished, say).
    if (!ends) finals.delete(uid);
    queue.set(workflowId, { workflowId, uid, key, observation, ends });
    pump();
  }

  function pump(): void {
    while (inFlight < SIGNAL_CONCURRENCY && queue.size > 0) {
      const [workflowId, item] = queue.entries().next().value!;
      queue.delete(workflowId);
      inFlight++;
      void send(item).finally(() => {
        inFlight--;
        pump();
        if (inFlight === 0 && queue.size === 0) idle?.();
      });
    }
  }

  async function send(item: Signal): Promise<void> {
    try {
      // The server accepts a request id it has seen even once the run has ended, so a resend asks
      // first whether the workflow still runs (a read: it wakes nothing).
      if (item.resend && !(await stillRunning(item.workflowId))) {
        if (finals.get(item.uid)?.signal.key === item.key) finals.delete(item.uid);
        return;
      }
      if (item.ends && !item.resend && toLose > 0) toLose--;
      else {
        await options.client.workflowService.signalWorkflowExecution({
          namespace: options.client.options.namespace,
          workflowExecution: { workflowId: item.workflowId },
          signalName: JOB_CHANGED_SIGNAL,
          input: { payloads: [defaultPayloadConverter.toPayload(item.observation)] },
          identity: options.client.options.identity,
          // The same change gets the same id on every replica: the server keeps the first only.
          requestId: createHash('sha256').update(`${item.workflowId}\n${item.uid}\n${item.key}`).digest('hex').slice(0, 36),
        });
      }
      if (item.resend) stats.signalsResent++;
      else stats.signalsSent++;
      if (item.ends) {
        const kept = finals.get(item.uid);
        // Unless a newer change took its place meanwhile.
        if (!kept || kept.signal.key === item.key) finals.set(item.uid, { signal: { ...item, resend: false }, firstSentAt: kept?.firstSentAt ?? Date.now(), lastSentAt: Date.now() });
      }
    } catch (err) {
      if (isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND) {
        if (finals.get(item.uid)?.signal.key === item.key) finals.delete(item.uid);
        if (!item.resend) stats.signalsToNoWorkflow++;
        return;
      }
      stats.signalErrors++;
      log(`signalling ${item.workflowId} failed: ${describe(err)}; trying again in ${SIGNAL_RETRY_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, SIGNAL_RETRY_MS));
      // A newer change for the task may have arrived meanwhile; it supersedes this one.
      if (!queue.has(item.workflowId)) queue.set(item.workflowId, item);
    }
  }

  async function stillRunning(workflowId: string): Promise<boolean> {
    try {
      return (await options.client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  }

  return {
    offer,
    lose(count: number) {
      toLose += count;
    },
    /** Wait for the signals in flight (queued ones are dropped: the workflows' fallback reads cover them). */
    drain(): Promise<void> {
      clearInterval(resender);
      queue.clear();
      finals.clear();
      if (inFlight === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        idle = resolve;
      });
    },
  };
}
