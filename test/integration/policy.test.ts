// The operator's policy and hardened pods on the real stack: the API refuses what the policy forbids
// (status, code and the field named), the worker fails rows inserted straight into the table with
// the same words and makes no Job, the Job gets the policy's defaults, and the real API server's
// Pod Security admission admits the hardened pods: `baseline` always, `restricted` with the
// non-root switch on, and refuses them in `restricted` without it.
import { randomBytes } from 'node:crypto';
import { ApiException, type V1Pod } from '@kubernetes/client-node';
import { Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.ts';
import { startTaskWorkflow } from '../../src/api/dispatch.ts';
import type { Config } from '../../src/config.ts';
import type { Task } from '../../src/db/client.ts';
import { podOptions, policyFromConfig } from '../../src/policy.ts';
import { parseTaskInfo } from '../../src/task/info.ts';
import { buildJob, TASK_ID_LABEL } from '../../src/task/job.ts';
import { buildWorker, connectWorker } from '../../src/worker-setup.ts';
import { expectNoJob } from '../support/job-ledger.ts';
import {
  connectStack,
  removeTemporalLeftovers,
  separateDeployment,
  startWorker,
  testConfig,
  waitFor,
  type RunningWorker,
  type Stack,
} from '../support/stack.ts';
import { insertTask, jobsOfTask, runFor, uniqueName, waitForStatus } from '../support/tasks.ts';

const tag = randomBytes(3).toString('hex');
const USER = { id: `policy-${tag}`, token: `policy-token-${tag}` };
const PSA_LABEL = 'pod-security.kubernetes.io/enforce';

let stack: Stack;
/** The file's deployment: the policy below, pods run as the image's user. */
let config: Config;
/** The same policy with POD_RUN_AS_NON_ROOT=true, on a task queue of its own. */
let nonRoot: Config;
let plain: string;
let baseline: string;
let restricted: string;
/** Stands in for the namespace nightwatch runs in (NIGHTWATCH_NAMESPACE); listed in ALLOWED_NAMESPACES all the same. */
let own: string;
let worker: RunningWorker;
let nonRootWorker: RunningWorker;
let app: FastifyInstance;

beforeAll(async () => {
  stack = await connectStack(
    testConfig({
      API_TOKENS: `${USER.token}:${USER.id}`,
      POD_ANNOTATIONS_ALLOWED: 'nightwatch.io/kwok-*,example.com/',
      IMAGES_ALLOWED: 'docker.io/library/,ghcr.io/acme/',
      TASK_DEFAULT_TIMEOUT: '10m',
      TASK_MAX_TIMEOUT: '1h',
      TASK_MAX_RESOURCES: 'cpu=2,memory=4Gi',
    }),
    { namespaces: 2 },
  );
  [plain, own] = stack.namespaces as [string, string];
  // Namespaces of the file's own beside the harness's: its Job ledger creates barrier pods that
  // `restricted` would refuse, so it does not watch these two.
  baseline = await createPsaNamespace('baseline');
  restricted = await createPsaNamespace('restricted');
  config = { ...stack.config, ALLOWED_NAMESPACES: [...stack.config.ALLOWED_NAMESPACES, baseline, restricted], NIGHTWATCH_NAMESPACE: own };
  nonRoot = separateDeployment({ ...config, POD_RUN_AS_NON_ROOT: true });
  worker = await startWorker({ ...stack, config });
  nonRootWorker = await startWorker({ ...stack, config: nonRoot });
  app = buildApp({ config, prisma: stack.prisma, client: stack.client });
});

afterAll(async () => {
  await app?.close();
  await Promise.all([worker?.stop(), nonRootWorker?.stop()]);
  if (nonRoot) await removeTemporalLeftovers(stack.client, nonRoot);
  for (const name of psaNamespaces) await stack.kube.core.deleteNamespace({ name, propagationPolicy: 'Background' }).catch(() => undefined);
  await stack?.close();
});

const psaNamespaces: string[] = [];

/** A namespace whose pods Pod Security admission holds to `level`, ready for pods (its default service account exists). */
async function createPsaNamespace(level: 'baseline' | 'restricted'): Promise<string> {
  const name = `${stack.namespaces[0]}-${level}`;
  await stack.kube.core.createNamespace({
    body: { metadata: { name, labels: { 'nightwatch.io/test': 'true', [PSA_LABEL]: level, [`${PSA_LABEL}-version`]: 'latest' } } },
  });
  psaNamespaces.push(name);
  await waitFor(`namespace ${name} to get its default service account`, () =>
    stack.kube.core.readNamespacedServiceAccount({ name: 'default', namespace: name }).then(() => true),
  );
  return name;
}

async function submit(body: unknown, on: FastifyInstance = app): Promise<{ status: number; body: any }> {
  const response = await on.inject({
    method: 'POST',
    url: '/tasks',
    headers: { authorization: `Bearer ${USER.token}`, 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  });
  return { status: response.statusCode, body: response.json() };
}

/** A row inserted by SQL, its workflow started at once on `deployment` (as the dispatcher would). */
async function insertAndStart(row: Parameters<typeof insertTask>[1], deployment: Config = config): Promise<Task> {
  const task = await insertTask(stack, { userId: USER.id, ...row });
  await startTaskWorkflow({ config: deployment, client: stack.client }, task);
  return task;
}

const quick = runFor('300ms');

async function podsOfTask(task: Pick<Task, 'id' | 'namespace'>): Promise<V1Pod[]> {
  return (await stack.kube.core.listNamespacedPod({ namespace: task.namespace, labelSelector: `${TASK_ID_LABEL}=${task.id}` })).items;
}

describe('pod annotations', () => {
  // One of each family a submitter must not reach: security, cloud identity, service mesh,
  // scheduling and eviction, secret injection, extra networks; and a key the allow-list does not name.
  const forbidden: [string, string][] = [
    ['container.apparmor.security.beta.kubernetes.io/task', 'unconfined'],
    ['seccomp.security.alpha.kubernetes.io/pod', 'unconfined'],
    ['iam.amazonaws.com/role', 'arn:aws:iam::123456789012:role/admin'],
    ['eks.amazonaws.com/role-arn', 'arn:aws:iam::123456789012:role/admin'],
    ['sidecar.istio.io/inject', 'false'],
    ['cluster-autoscaler.kubernetes.io/safe-to-evict', 'false'],
    ['vault.hashicorp.com/agent-inject', 'true'],
    ['k8s.v1.cni.cncf.io/networks', 'host-net'],
    ['pod-complete.stage.kwok.x-k8s.io/delay', '1s'],
    ['other.example.org/owner', 'me'],
  ];

  it.each(forbidden)('the API refuses %s with 403, naming the field, and writes no row', async (key, value) => {
    const name = uniqueName('ann');
    const { status, body } = await submit({ name, namespace: plain, info: { image: 'alpine:3.20', annotations: { ...quick.annotations, [key]: value } } });
    expect(status).toBe(403);
    expect(body.error.code).toBe('policy_violation');
    const field = `info.annotations[${JSON.stringify(key)}]`;
    expect(body.error.fields).toEqual([{ field, message: expect.stringContaining(`${field} is not allowed`) }]);
    expect(body.error.message).toMatch(/^task not created: /);
    expect(await stack.prisma.task.count({ where: { name } })).toBe(0);
  });

  it('fails every such row inserted by SQL with the reason, and makes no Job for it', async () => {
    const tasks = [];
    for (const [key, value] of forbidden) {
      tasks.push({ key, task: await insertAndStart({ info: { image: 'alpine', annotations: { ...quick.annotations, [key]: value } } }) });
    }
    for (const { key, task } of tasks) {
      const done = await waitForStatus(stack, task.id, ['Failed', 'Succeeded', 'Running']);
      expect(done.status, key).toBe('Failed');
      expect(done.reason, key).toContain(`info.annotations[${JSON.stringify(key)}] is not allowed: `);
      expect(done.reason, key).toMatch(key.startsWith('other.') ? /POD_ANNOTATIONS_ALLOWED\)/ : /is a system domain/);
      await expectNoJob(stack.jobs, task);
    }
  });

  it('accepts the allowed ones, through the API and by SQL, and puts them on the pod', async () => {
    const annotations = { ...quick.annotations, 'example.com/team': 'data' };
    const viaApi = await submit({ name: uniqueName('ann-ok'), namespace: plain, info: { image: 'alpine:3.20', annotations } });
    expect(viaApi.status).toBe(201);
    const bySql = await insertAndStart({ info: { image: 'alpine', annotations } });
    for (const id of [BigInt(viaApi.body.id), bySql.id]) {
      expect((await waitForStatus(stack, id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
      const job = (await jobsOfTask(stack, { id, namespace: plain }))[0]!;
      expect(job.spec?.template.metadata?.annotations).toEqual(annotations);
    }
  });
});

describe('images', () => {
  it('the API refuses an image from outside IMAGES_ALLOWED, naming info.image', async () => {
    for (const image of ['quay.io/evil/miner:1', 'ghcr.io/acmeevil/app', 'evil/alpine']) {
      const { status, body } = await submit({ name: uniqueName('img'), namespace: plain, info: { image } });
      expect(status, image).toBe(403);
      expect(body.error.code).toBe('policy_violation');
      expect(body.error.fields).toEqual([
        { field: 'info.image', message: expect.stringMatching(/^info\.image is not allowed: .* \(IMAGES_ALLOWED is docker\.io\/library\/, ghcr\.io\/acme\/\)/) },
      ]);
    }
    expect((await submit({ name: uniqueName('img-ok'), namespace: plain, info: { image: 'ghcr.io/acme/report:1.4', ...quick } })).status).toBe(201);
  });

  it('fails such a row inserted by SQL, and makes no Job', async () => {
    const task = await insertAndStart({ info: { image: 'quay.io/evil/miner:1', ...quick } });
    const done = await waitForStatus(stack, task.id, ['Failed', 'Succeeded']);
    expect(done).toMatchObject({ status: 'Failed', reason: expect.stringMatching(/^info\.image is not allowed: "quay\.io\/evil\/miner:1"/) });
    await expectNoJob(stack.jobs, task);
  });
});

describe('run time', () => {
  it('the API refuses a timeout over TASK_MAX_TIMEOUT, naming info.timeoutSeconds', async () => {
    const { status, body } = await submit({ name: uniqueName('long'), namespace: plain, info: { image: 'alpine', timeoutSeconds: 3601 } });
    expect(status).toBe(403);
    expect(body.error.fields).toEqual([
      { field: 'info.timeoutSeconds', message: 'info.timeoutSeconds (3601) is more than this server allows, 3600 (1h, TASK_MAX_TIMEOUT): lower it, or split the work into shorter tasks' },
    ]);
  });

  it('fails such a row inserted by SQL, and makes no Job', async () => {
    const task = await insertAndStart({ info: { image: 'alpine', timeoutSeconds: 7200, ...quick } });
    const done = await waitForStatus(stack, task.id, ['Failed', 'Succeeded']);
    expect(done).toMatchObject({ status: 'Failed', reason: expect.stringMatching(/^info\.timeoutSeconds \(7200\) is more than this server allows/) });
    await expectNoJob(stack.jobs, task);
  });

  it("gives the Job the default timeout and TTL, and keeps a task's own", async () => {
    const silent = await insertAndStart({ info: { image: 'alpine', ...quick } });
    const own = await insertAndStart({ info: { image: 'alpine', timeoutSeconds: 3600, ttlSecondsAfterFinished: 600, ...quick } });
    for (const t of [silent, own]) expect((await waitForStatus(stack, t.id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
    const [silentJob] = await jobsOfTask(stack, silent);
    const [ownJob] = await jobsOfTask(stack, own);
    expect(silentJob?.spec).toMatchObject({ activeDeadlineSeconds: 600, ttlSecondsAfterFinished: 86_400 });
    expect(ownJob?.spec).toMatchObject({ activeDeadlineSeconds: 3600, ttlSecondsAfterFinished: 600 });
    // The row keeps what was written: defaults belong to the Job, not to the task.
    expect(JSON.parse(silent.info)).not.toHaveProperty('timeoutSeconds');
  });
});

describe('resources', () => {
  it('the API refuses requests and limits over TASK_MAX_RESOURCES, naming each field', async () => {
    const { status, body } = await submit({
      name: uniqueName('big'),
      namespace: plain,
      info: { image: 'alpine', resources: { requests: { cpu: '3' }, limits: { memory: '5Gi' } } },
    });
    expect(status).toBe(403);
    expect(body.error.fields.map((f: { field: string }) => f.field)).toEqual(['info.resources.requests.cpu', 'info.resources.limits.memory']);
    expect(body.error.fields[1].message).toBe('info.resources.limits.memory ("5Gi") is more than this server allows per task, "4Gi" (TASK_MAX_RESOURCES): lower it');
  });

  it('fails such a row inserted by SQL, and makes no Job', async () => {
    const task = await insertAndStart({ info: { image: 'alpine', resources: { limits: { cpu: '2500m' } }, ...quick } });
    const done = await waitForStatus(stack, task.id, ['Failed', 'Succeeded']);
    expect(done).toMatchObject({ status: 'Failed', reason: expect.stringMatching(/^info\.resources\.limits\.cpu \("2500m"\) is more than this server allows per task/) });
    await expectNoJob(stack.jobs, task);
  });

  it("gives the container the default requests and limits, without contradicting the task's own", async () => {
    const silent = await insertAndStart({ info: { image: 'alpine', ...quick } });
    const small = await insertAndStart({ info: { image: 'alpine', resources: { limits: { memory: '64Mi' } }, ...quick } });
    for (const t of [silent, small]) expect((await waitForStatus(stack, t.id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
    const resources = async (t: Task) => (await jobsOfTask(stack, t))[0]?.spec?.template.spec?.containers[0]?.resources;
    expect(await resources(silent)).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '1Gi' } });
    expect(await resources(small)).toEqual({ requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '64Mi' } });
  });
});

describe('namespaces', () => {
  /** The same policy with ALLOWED_NAMESPACES=*, on a task queue of its own. */
  let open: Config;
  let openApp: FastifyInstance;
  let openWorker: Worker | undefined;
  let openRun: Promise<void> | undefined;
  let closeConnection: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    open = separateDeployment({ ...config, ALLOWED_NAMESPACES: ['*'] });
    openApp = buildApp({ config: open, prisma: stack.prisma, client: stack.client });
    // A worker without a Job watch (with `*` it would watch every namespace of the shared cluster):
    // these tasks fail before any Job exists.
    const connection = await connectWorker(open);
    closeConnection = () => connection.close();
    openWorker = await buildWorker({ config: open, prisma: stack.prisma, kube: stack.kube, connection }, { shutdownGraceTime: '2s' });
    openRun = openWorker.run();
  });

  afterAll(async () => {
    await openApp?.close();
    if (openWorker?.getState() === 'RUNNING') openWorker.shutdown();
    await openRun;
    await closeConnection?.();
    if (open) await removeTemporalLeftovers(stack.client, open);
  });

  it('the API keeps kube-* and its own namespace closed, with ALLOWED_NAMESPACES=* and when listed', async () => {
    const cases: [FastifyInstance, string, RegExp][] = [
      [openApp, 'kube-system', /^namespace 'kube-system' is never open to tasks: kube-\* namespaces belong to the cluster itself/],
      [openApp, 'kube-public', /^namespace 'kube-public' is never open to tasks/],
      [openApp, own, /is never open to tasks: nightwatch itself runs there \(NIGHTWATCH_NAMESPACE\)/],
      [app, own, /is never open to tasks: nightwatch itself runs there/],
    ];
    for (const [on, namespace, message] of cases) {
      const name = uniqueName('ns');
      const { status, body } = await submit({ name, namespace, info: { image: 'alpine' } }, on);
      expect(status, namespace).toBe(403);
      expect(body.error).toMatchObject({ code: 'namespace_not_allowed', fields: [{ field: 'namespace', message: expect.stringMatching(message) }] });
      expect(await stack.prisma.task.count({ where: { name } })).toBe(0);
    }
    // `*` opens the rest.
    expect((await submit({ name: uniqueName('ns-ok'), namespace: plain, info: { image: 'alpine', ...quick } }, openApp)).status).toBe(201);
  });

  it('the worker fails rows inserted by SQL for kube-system or its own namespace, with ALLOWED_NAMESPACES=*, and makes no Job', async () => {
    const kube = await insertAndStart({ namespace: 'kube-system', info: { image: 'alpine', ...quick } }, open);
    const mine = await insertAndStart({ namespace: own, info: { image: 'alpine', ...quick } }, open);
    const listed = await insertAndStart({ namespace: own, info: { image: 'alpine', ...quick } }, config);
    expect(await waitForStatus(stack, kube.id, ['Failed', 'Succeeded'])).toMatchObject({
      status: 'Failed',
      reason: expect.stringMatching(/^namespace 'kube-system' is never open to tasks: kube-\* namespaces belong to the cluster itself \(even with ALLOWED_NAMESPACES=\*\)/),
    });
    for (const t of [mine, listed]) {
      expect(await waitForStatus(stack, t.id, ['Failed', 'Succeeded'])).toMatchObject({
        status: 'Failed',
        reason: expect.stringMatching(/is never open to tasks: nightwatch itself runs there \(NIGHTWATCH_NAMESPACE\)/),
      });
    }
    expect(await jobsOfTask(stack, kube)).toEqual([]);
    await expectNoJob(stack.jobs, mine);
    await expectNoJob(stack.jobs, listed);
  });
});

describe('Pod Security admission on the real API server', () => {
  /** The pod of a task's Job as nightwatch builds it, sent alone with dryRun: admission runs, nothing is stored. */
  async function admitPod(namespace: string, deployment: Config): Promise<string | null> {
    const info = parseTaskInfo(JSON.stringify({ image: 'alpine' }));
    if (!info.ok) throw new Error(info.reason);
    const job = buildJob({ id: '1', name: 'probe', namespace, attempt: 1 }, info.info, podOptions(policyFromConfig(deployment)));
    try {
      await stack.kube.core.createNamespacedPod({
        namespace,
        dryRun: 'All',
        body: { metadata: { name: uniqueName('probe'), labels: job.spec!.template.metadata!.labels! }, spec: job.spec!.template.spec! },
      });
      return null;
    } catch (err) {
      if (err instanceof ApiException && err.code === 403) return String(err.body);
      throw err;
    }
  }

  it('enforces the labels: the API server refuses a pod that adds a capability in baseline', async () => {
    await expect(
      stack.kube.core.createNamespacedPod({
        namespace: baseline,
        dryRun: 'All',
        body: {
          metadata: { name: uniqueName('sys-admin') },
          spec: { containers: [{ name: 'c', image: 'alpine', securityContext: { capabilities: { add: ['SYS_ADMIN'] } } }] },
        },
      }),
    ).rejects.toThrow(/violates PodSecurity \\*"baseline:latest\\*": non-default capabilities/);
  });

  it("admits nightwatch's pod in baseline; in restricted only with the non-root switch, and then nothing else is missing", async () => {
    expect(await admitPod(baseline, config)).toBeNull();
    expect(await admitPod(baseline, nonRoot)).toBeNull();
    expect(await admitPod(restricted, nonRoot)).toBeNull();
    const refused = await admitPod(restricted, config);
    expect(refused).toMatch(/violates PodSecurity \\?"restricted:latest\\?": runAsNonRoot != true/);
    // Only the user is missing: escalation, capabilities and seccomp are already what restricted asks.
    expect(refused).not.toMatch(/allowPrivilegeEscalation|capabilities|seccompProfile/);
  });

  it("runs every task to Succeeded in a baseline namespace, each with its pod created", async () => {
    const infos = [
      { image: 'alpine', ...quick },
      { image: 'alpine:3.20', command: ['sh', '-c'], args: ['echo hi'], env: { A: 'b' }, annotations: { ...quick.annotations, 'example.com/team': 'x' } },
      { image: 'ghcr.io/acme/report:1.4', resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '4Gi' } }, timeoutSeconds: 3600, backoffLimit: 2, ...quick },
    ];
    const tasks = [];
    for (const info of infos) tasks.push(await insertAndStart({ namespace: baseline, info }));
    const viaApi = await submit({ name: uniqueName('psa-api'), namespace: baseline, info: { image: 'alpine', ...quick } });
    expect(viaApi.status).toBe(201);
    tasks.push(await stack.prisma.task.findUniqueOrThrow({ where: { id: BigInt(viaApi.body.id) } }));
    for (const t of tasks) {
      expect((await waitForStatus(stack, t.id, ['Succeeded', 'Failed'])).status, t.info).toBe('Succeeded');
      const pods = await podsOfTask(t);
      expect(pods.length, `pods of ${t.name}`).toBeGreaterThanOrEqual(1);
      expect(pods[0]!.spec?.containers[0]?.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(pods[0]!.spec).toMatchObject({ enableServiceLinks: false, automountServiceAccountToken: false, securityContext: { seccompProfile: { type: 'RuntimeDefault' } } });
    }
  }, 120_000);

  it('runs a task to Succeeded in a restricted namespace with the non-root switch on', async () => {
    const task = await insertAndStart({ namespace: restricted, info: { image: 'alpine', ...quick } }, nonRoot);
    expect((await waitForStatus(stack, task.id, ['Succeeded', 'Failed'])).status).toBe('Succeeded');
    const [pod] = await podsOfTask(task);
    expect(pod?.spec?.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 });
  });

  it('without the switch, restricted refuses the pod: the Job controller records FailedCreate and no pod exists', async () => {
    const task = await insertAndStart({ namespace: restricted, info: { image: 'alpine', ...quick } }, config);
    const event = await waitFor(`a FailedCreate event for the Job of task ${task.id}`, async () => {
      const events = await stack.kube.core.listNamespacedEvent({
        namespace: restricted,
        fieldSelector: `involvedObject.kind=Job,involvedObject.name=${task.name},reason=FailedCreate`,
      });
      return events.items[0];
    });
    expect(event.message).toMatch(/violates PodSecurity "restricted:latest": runAsNonRoot != true/);
    expect(await podsOfTask(task)).toEqual([]);
    const row = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
    expect(['Succeeded', 'Running']).not.toContain(row.status);
  });
});
