// deploy/ against the local API server (RBAC on): the Role grants exactly the Kubernetes calls the
// code makes; every manifest, and every kustomization rendered, passes a server-side dry run; the
// Deployments' pods meet Pod Security `restricted`; and a worker holding only a token of the
// worker's ServiceAccount, bound by deploy/'s Role, runs tasks end to end and is refused (403) on
// Secrets and in a namespace it was not granted.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ApiException,
  KubeConfig,
  KubernetesObjectApi,
  loadAllYaml,
  type KubernetesObject,
  type V1ClusterRole,
  type V1Deployment,
  type V1PolicyRule,
  type V1Role,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import type { Task } from '../../src/db/client.ts';
import { createKubeClients, type KubeClients } from '../../src/kubernetes.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { cancelSignal, taskWorkflow } from '../../workflows/task.ts';
import { connectStack, startWorker, waitFor, type RunningWorker, type Stack } from '../support/stack.ts';
import { deleteJobsOf, insertTask, jobsOfTask, runFor, waitForStatus } from '../support/tasks.ts';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../..', import.meta.url));
const deployDir = join(repo, 'deploy');
/** Strategic-merge patches are partial objects, not manifests; kustomization.yaml is kustomize's. */
const isManifest = (file: string) => file.endsWith('.yaml') && !file.endsWith('.patch.yaml') && !file.endsWith('kustomization.yaml');

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}
const manifestFiles = filesUnder(deployDir).filter(isManifest);
const kustomizations = filesUnder(deployDir)
  .filter((f) => f.endsWith('/kustomization.yaml'))
  .map((f) => relative(repo, f).replace(/\/kustomization\.yaml$/, ''));

const load = (file: string) => loadAllYaml(readFileSync(file, 'utf8')).filter(Boolean) as KubernetesObject[];
const rel = (file: string) => relative(repo, file);

async function render(kustomization: string): Promise<KubernetesObject[]> {
  const { stdout } = await run('bash', [join(repo, 'scripts/kustomize.sh'), 'build', join(repo, kustomization)], { maxBuffer: 16 << 20 });
  return loadAllYaml(stdout).filter(Boolean) as KubernetesObject[];
}

/** "group/resource:verb" for every grant of these rules (no wildcards are expected; they would show as "*"). */
function grants(rules: V1PolicyRule[]): string[] {
  return rules
    .flatMap((r) => (r.apiGroups ?? []).flatMap((g) => (r.resources ?? []).flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`))))
    .sort();
}

const plural = (kind: string) => `${kind.charAt(0).toLowerCase()}${kind.slice(1)}`.replace(/(s|x)$/, '$1e').replace(/y$/, 'ie') + 's';
const VERB: Record<string, string> = { list: 'list', read: 'get', create: 'create', delete: 'delete', deleteCollection: 'deletecollection', patch: 'patch', replace: 'update' };
const GROUP: Record<string, string> = { batch: 'batch', core: '' };

/**
 * Every Kubernetes request the worker and the API can make, read from their sources: calls on the
 * generated clients (`batch.createNamespacedJob(` → batch/jobs:create) and the paths given to
 * watches (`/apis/batch/v1/namespaces/${ns}/jobs` → batch/jobs:watch).
 */
function callsInSources(): { grants: string[]; clusterWide: boolean; clients: string[] } {
  const files = ['src', 'activities', 'workflows']
    .flatMap((d) => filesUnder(join(repo, d)))
    .filter((f) => f.endsWith('.ts') && !f.includes('/src/generated/'));
  const found = new Set<string>();
  const clients = new Set<string>();
  let clusterWide = false;
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/makeApiClient\((\w+)\)/g)) clients.add(m[1]!);
    for (const m of text.matchAll(/\b(batch|core)\.(deleteCollection|list|read|create|delete|patch|replace)(Namespaced)?([A-Z]\w*?)(ForAllNamespaces)?\(/g)) {
      const [, client, verb, , kind, all] = m;
      const resource = kind!.endsWith('Status') ? `${plural(kind!.slice(0, -'Status'.length))}/status` : plural(kind!);
      found.add(`${GROUP[client!]}/${resource}:${VERB[verb!]}`);
      if (all) clusterWide = true;
    }
    for (const m of text.matchAll(/[`'"](\/apis?\/[^`'"]+)[`'"]/g)) {
      const parts = m[1]!.split('/').filter(Boolean);
      const group = parts[0] === 'api' ? '' : parts[1]!;
      found.add(`${group}/${parts[parts.length - 1]}:watch`);
    }
  }
  return { grants: [...found].sort(), clusterWide, clients: [...clients].sort() };
}

const tag = Math.random().toString(36).slice(2, 8);

/**
 * A manifest as it can be sent in this test: namespaced objects into `namespace`, cluster-scoped
 * ones renamed so they cannot meet the real nightwatch's or another run's, bindings pointing at them.
 */
function localize<T extends KubernetesObject>(object: T, namespace: string): T {
  const o = structuredClone(object) as T & { subjects?: { kind: string; namespace?: string }[]; roleRef?: { kind: string; name: string } };
  const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind!);
  if (clusterScoped) o.metadata = { ...o.metadata, name: `${o.metadata!.name}-${tag}` };
  else o.metadata = { ...o.metadata, namespace };
  for (const s of o.subjects ?? []) if (s.kind === 'ServiceAccount') s.namespace = namespace;
  if (o.roleRef?.kind === 'ClusterRole') o.roleRef.name = `${o.roleRef.name}-${tag}`;
  return o;
}

/**
 * `create` with `dryRun=All` as kubectl sends it: the manifest exactly as written (the client's typed
 * serializer would drop fields it does not know, hiding a typo) and `fieldValidation=Strict`, so the
 * server refuses unknown and duplicate fields instead of warning.
 */
function strictDryRun(kc: KubeConfig): (o: KubernetesObject) => Promise<KubernetesObject> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const done = <T>(v: T) => ({ toPromise: () => Promise.resolve(v) });
  let body: string | undefined;
  type Context = { getHttpMethod(): string; setBody(b: string): void; setQueryParam(k: string, v: string): void };
  (api as unknown as { configuration: { middleware: unknown[] } }).configuration.middleware.push({
    pre: (ctx: Context) => {
      if (ctx.getHttpMethod() === 'POST' && body !== undefined) {
        ctx.setBody(body);
        ctx.setQueryParam('fieldValidation', 'Strict');
      }
      return done(ctx);
    },
    post: (rsp: unknown) => done(rsp),
  });
  return async (o) => {
    body = JSON.stringify(o);
    try {
      return await api.create(o, undefined, 'All');
    } finally {
      body = undefined;
    }
  };
}

let stack: Stack;
let objects: KubernetesObjectApi;
let dryRun: (o: KubernetesObject) => Promise<KubernetesObject>;
/** Where nightwatch "runs" (its ServiceAccount), a namespace it may target, and one it may not. */
let home: string;
let target: string;
let outside: string;
let workerKube: KubeClients;
let tempDir: string;
let worker: RunningWorker | null = null;
const tasks: Task[] = [];

/** Apply a manifest from deploy/ for real (with `namespace` for namespaced objects). */
async function applyForReal(file: string, kind: string, namespace: string, subjectsNamespace: string): Promise<void> {
  for (const o of load(join(deployDir, file)).filter((d) => d.kind === kind)) {
    const object = { ...o, metadata: { ...o.metadata, namespace } } as KubernetesObject & { subjects?: { kind: string; namespace?: string }[] };
    for (const s of object.subjects ?? []) if (s.kind === 'ServiceAccount') s.namespace = subjectsNamespace;
    await objects.create(object);
  }
}

beforeAll(async () => {
  stack = await connectStack(undefined, { namespaces: 3 });
  [home, target, outside] = stack.namespaces as [string, string, string];
  objects = KubernetesObjectApi.makeApiClient(stack.kube.kubeconfig);
  dryRun = strictDryRun(stack.kube.kubeconfig);
  tempDir = mkdtempSync(join(tmpdir(), 'nightwatch-deploy-'));
});
afterAll(async () => {
  await worker?.stop();
  if (stack) await deleteJobsOf(stack, tasks);
  rmSync(tempDir, { recursive: true, force: true });
  await stack?.close();
});

describe('deploy/', () => {
  it('grants the worker exactly the Kubernetes calls its code makes, and the API nothing', () => {
    const code = callsInSources();
    // Only these two clients exist, so the scan above sees every request.
    expect(code.clients).toEqual(['BatchV1Api', 'CoreV1Api']);
    const [role] = load(join(deployDir, 'rbac/namespaced/role.yaml')) as V1Role[];
    const [clusterRole] = load(join(deployDir, 'rbac/cluster-wide/clusterrole.yaml')) as V1ClusterRole[];
    expect(grants(role!.rules!)).toEqual(code.grants);
    expect(grants(clusterRole!.rules!)).toEqual(code.grants);
    // The watches list Jobs, pods and events across namespaces under ALLOWED_NAMESPACES=*: hence the ClusterRole.
    expect(code.clusterWide).toBe(true);
    // No rule anywhere in deploy/ reaches Secrets, and the API's account is bound to nothing.
    const all = manifestFiles.flatMap(load);
    const rules = all.flatMap((o) => ((o as V1Role).rules ?? []) as V1PolicyRule[]);
    expect(rules.flatMap((r) => r.resources ?? []).filter((r) => r === 'secrets' || r === '*')).toEqual([]);
    const subjects = all.flatMap((o) => (o as { subjects?: { name: string }[] }).subjects ?? []).map((s) => s.name);
    expect(new Set(subjects)).toEqual(new Set(['nightwatch-worker']));
  });

  it('configures only variables nightwatch reads, with values it accepts, and a grace period that covers the shutdown', () => {
    const known = new Set([...readFileSync(join(repo, 'src/config.ts'), 'utf8').matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]));
    const base = filesUnder(join(deployDir, 'base')).filter(isManifest).flatMap(load);
    const configMap = base.find((o) => o.kind === 'ConfigMap') as KubernetesObject & { data: Record<string, string> };
    const secret = base.find((o) => o.kind === 'Secret') as KubernetesObject & { stringData: Record<string, string> };
    expect(Object.keys(configMap.data).filter((k) => !known.has(k))).toEqual([]);
    expect(Object.keys(secret.stringData).filter((k) => !known.has(k))).toEqual([]);
    const config = loadConfig({ ...configMap.data, ...secret.stringData });
    expect(config.API_HOST).toBe('0.0.0.0');

    const deployments = base.filter((o) => o.kind === 'Deployment') as V1Deployment[];
    const workerPod = deployments.find((d) => d.metadata!.name === 'nightwatch-worker')!.spec!.template.spec!;
    // WORKER_SHUTDOWN_GRACE, then the forced stop 3 s later (src/worker-setup.ts), then a margin to close connections.
    expect(workerPod.terminationGracePeriodSeconds! * 1000).toBeGreaterThanOrEqual(config.WORKER_SHUTDOWN_GRACE + 3_000 + 5_000);
    for (const d of deployments) {
      const pod = d.spec!.template.spec!;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        expect(c.securityContext, `${d.metadata!.name}/${c.name}`).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(c.resources?.requests, `${d.metadata!.name}/${c.name}`).toBeDefined();
        expect(c.resources?.limits?.memory, `${d.metadata!.name}/${c.name}`).toBeDefined();
      }
    }
  });

  it('has every manifest accepted by the API server in a server-side dry run', async () => {
    expect(manifestFiles.length).toBeGreaterThanOrEqual(10);
    const rejected: string[] = [];
    let accepted = 0;
    let total = 0;
    for (const file of manifestFiles) {
      for (const o of load(file)) {
        total++;
        try {
          await dryRun(localize(o, home));
          accepted++;
        } catch (err) {
          rejected.push(`${rel(file)}: ${o.kind}/${o.metadata?.name}: ${err instanceof ApiException ? err.body : String(err)}`);
        }
      }
    }
    expect(rejected).toEqual([]);
    // namespace, 2 ServiceAccounts, ConfigMap, Secret, 2 Deployments, Service, 2 PDBs, Role, RoleBinding, ClusterRole, ClusterRoleBinding.
    expect(total).toBeGreaterThanOrEqual(14);
    expect(accepted).toBe(total);
    // The dry run is strict: a misspelt field is refused, not dropped.
    const [workerDeployment] = load(join(deployDir, 'base/worker.yaml')) as V1Deployment[];
    const typo = localize(workerDeployment!, home);
    Object.assign(typo.spec!.template.spec!.containers[0]!, { securityContext: { readOnlyRootFileSystem: true } });
    await expect(dryRun(typo)).rejects.toMatchObject({ code: 400, body: expect.stringContaining('unknown field') });
  });

  it('renders every kustomization (base, RBAC, the example overlay) into objects the API server accepts', async () => {
    expect(kustomizations).toEqual(expect.arrayContaining(['deploy/base', 'deploy/overlays/example', 'deploy/rbac/namespaced', 'deploy/rbac/cluster-wide']));
    const rejected: string[] = [];
    for (const k of kustomizations) {
      const rendered = await render(k);
      expect(rendered.length, k).toBeGreaterThan(0);
      for (const o of rendered) {
        try {
          await dryRun(localize(o, home));
        } catch (err) {
          rejected.push(`${k}: ${o.kind}/${o.metadata?.name}: ${err instanceof ApiException ? err.body : String(err)}`);
        }
      }
    }
    expect(rejected).toEqual([]);
    // The overlay's choices reached the objects: image, allowed namespaces, a Role in each of them.
    const example = await render('deploy/overlays/example');
    const images = example
      .filter((o): o is V1Deployment => o.kind === 'Deployment')
      .flatMap((d) => [...(d.spec!.template.spec!.initContainers ?? []), ...d.spec!.template.spec!.containers].map((c) => c.image));
    expect(new Set(images)).toEqual(new Set(['registry.example.com/platform/nightwatch:0.1.0']));
    const configMap = example.find((o) => o.kind === 'ConfigMap') as KubernetesObject & { data: Record<string, string> };
    expect(configMap.data.ALLOWED_NAMESPACES).toBe('team-a,team-b');
    expect(example.filter((o) => o.kind === 'Role').map((o) => o.metadata!.namespace).sort()).toEqual(['team-a', 'team-b']);
    const bindings = example.filter((o) => o.kind === 'RoleBinding') as (KubernetesObject & { subjects: { namespace: string }[] })[];
    expect(bindings.map((b) => b.subjects[0]!.namespace)).toEqual(['nightwatch', 'nightwatch']);
  }, 300_000);

  it("runs the Deployments' pods under Pod Security `restricted`", async () => {
    const ns = await stack.kube.core.readNamespace({ name: home });
    ns.metadata!.labels = { ...ns.metadata!.labels, 'pod-security.kubernetes.io/enforce': 'restricted' };
    await stack.kube.core.replaceNamespace({ name: home, body: ns });
    // The pods name their ServiceAccounts, which must exist for admission.
    for (const sa of load(join(deployDir, 'base/serviceaccounts.yaml'))) {
      await objects.create(localize(sa, home)).catch((err: unknown) => {
        if (!(err instanceof ApiException && err.code === 409)) throw err;
      });
    }
    for (const d of filesUnder(join(deployDir, 'base')).filter(isManifest).flatMap(load).filter((o) => o.kind === 'Deployment') as V1Deployment[]) {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `${d.metadata!.name}-dry-run`, namespace: home, labels: d.spec!.template.metadata!.labels },
        spec: d.spec!.template.spec,
      };
      await expect(dryRun(pod), d.metadata!.name).resolves.toMatchObject({ kind: 'Pod' });
    }
    // The check is live: a pod that escalates is refused in this namespace.
    const bad = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'escalating', namespace: home }, spec: { containers: [{ name: 'c', image: 'alpine' }] } };
    await expect(dryRun(bad)).rejects.toMatchObject({ code: 403 });
  });

  describe("a worker with only the worker ServiceAccount's token", () => {
    beforeAll(async () => {
      // deploy/'s ServiceAccount in `home` (nightwatch's namespace), its Role and RoleBinding in `target`.
      await applyForReal('base/serviceaccounts.yaml', 'ServiceAccount', home, home).catch((err: unknown) => {
        if (!(err instanceof ApiException && err.code === 409)) throw err;
      });
      await applyForReal('rbac/namespaced/role.yaml', 'Role', target, home);
      await applyForReal('rbac/namespaced/rolebinding.yaml', 'RoleBinding', target, home);
      const { status } = await stack.kube.core.createNamespacedServiceAccountToken({
        name: 'nightwatch-worker',
        namespace: home,
        body: { spec: { audiences: [], expirationSeconds: 3600 } },
      });
      const admin = stack.kube.kubeconfig.getCurrentCluster()!;
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [admin],
        users: [{ name: 'nightwatch-worker', token: status!.token }],
        contexts: [{ name: 'nightwatch-worker', cluster: admin.name, user: 'nightwatch-worker' }],
        currentContext: 'nightwatch-worker',
      });
      const path = join(tempDir, 'kubeconfig');
      writeFileSync(path, kc.exportConfig(), { mode: 0o600 });
      // The worker's own loading path: KUBECONFIG pointing at a file.
      workerKube = createKubeClients(path);
    });

    it('runs tasks end to end in the namespace it was granted', async () => {
      const config = { ...stack.config, ALLOWED_NAMESPACES: [target], KUBECONFIG: join(tempDir, 'kubeconfig') };
      worker = await startWorker({ config, prisma: stack.prisma, kube: workerKube });
      await worker.watch.ready;
      // Its Job, pod and event watches all listed and are watching under the Role's list and watch.
      expect(worker.watch.healthy()).toBe(true);
      const started: Task[] = [];
      for (const info of [
        { image: 'alpine', ...runFor('1s') },
        { image: 'alpine', ...runFor('1s') },
        { image: 'alpine', ...runFor('1s', 'fail') },
      ]) {
        const task = await insertTask(stack, { namespace: target, info });
        tasks.push(task);
        started.push(task);
        await stack.client.workflow.start(taskWorkflow, {
          taskQueue: config.TEMPORAL_TASK_QUEUE,
          workflowId: taskWorkflowId(task.id.toString(), config.WORKFLOW_ID_PREFIX),
          args: [{ taskId: task.id.toString() }],
        });
      }
      const final = await Promise.all(started.map((t) => waitForStatus(stack, t.id, ['Succeeded', 'Failed', 'Cancelled'], 90_000)));
      expect(final.map((r) => r.status)).toEqual(['Succeeded', 'Succeeded', 'Failed']);
      for (const t of started) expect(await jobsOfTask(stack, t)).toHaveLength(1);

      // Cancelling deletes the Job: the delete verb at work.
      const long = await insertTask(stack, { namespace: target, info: { image: 'alpine', ...runFor('5m') } });
      tasks.push(long);
      const handle = await stack.client.workflow.start(taskWorkflow, {
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        workflowId: taskWorkflowId(long.id.toString(), config.WORKFLOW_ID_PREFIX),
        args: [{ taskId: long.id.toString() }],
      });
      await waitForStatus(stack, long.id, ['Running']);
      await handle.signal(cancelSignal, { reason: 'deploy test' });
      expect((await waitForStatus(stack, long.id, ['Cancelled', 'Succeeded', 'Failed'])).status).toBe('Cancelled');
      await waitFor(`task ${long.id}'s Job to be deleted`, async () => ((await jobsOfTask(stack, long)).length === 0 ? true : undefined), 30_000);
    }, 180_000);

    const refused = async (what: string, call: () => Promise<unknown>) => {
      const err = await call().then(
        () => new Error(`${what} was allowed`),
        (e: unknown) => e,
      );
      expect(err, what).toBeInstanceOf(ApiException);
      expect((err as ApiException<unknown>).code, what).toBe(403);
    };

    it('is refused (403) on Secrets, on namespaces, and anywhere outside the namespaces it was granted', async () => {
      await refused('listing Secrets where it runs Jobs', () => workerKube.core.listNamespacedSecret({ namespace: target }));
      await refused('reading a Secret where it runs Jobs', () => workerKube.core.readNamespacedSecret({ name: 'anything', namespace: target }));
      await refused('listing Secrets in its own namespace', () => workerKube.core.listNamespacedSecret({ namespace: home }));
      await refused('listing namespaces', () => workerKube.core.listNamespace());
      await refused('listing Jobs outside its namespaces', () => workerKube.batch.listNamespacedJob({ namespace: outside }));
      await refused('creating a Job outside its namespaces', () =>
        workerKube.batch.createNamespacedJob({
          namespace: outside,
          body: { metadata: { name: 'not-allowed' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'alpine' }] } } } },
        }),
      );
      await refused('watching pods outside its namespaces', () => workerKube.core.listNamespacedPod({ namespace: outside }));
      await refused('creating pods directly', () =>
        workerKube.core.createNamespacedPod({ namespace: target, body: { metadata: { name: 'direct' }, spec: { containers: [{ name: 'c', image: 'alpine' }] } } }),
      );
      await refused('listing Jobs across the cluster', () => workerKube.batch.listJobForAllNamespaces());
    });

    it('leaves a task in a namespace the Role does not cover waiting with the 403 on its row, and creates no Job there', async () => {
      await worker?.stop();
      // A misconfiguration: ALLOWED_NAMESPACES names `outside`, but the Role was never applied there.
      const config = { ...stack.config, ALLOWED_NAMESPACES: [target, outside], KUBECONFIG: join(tempDir, 'kubeconfig') };
      worker = await startWorker({ config, prisma: stack.prisma, kube: workerKube });
      const task = await insertTask(stack, { namespace: outside, info: { image: 'alpine', ...runFor('1s') } });
      tasks.push(task);
      await stack.client.workflow.start(taskWorkflow, {
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        workflowId: taskWorkflowId(task.id.toString(), config.WORKFLOW_ID_PREFIX),
        args: [{ taskId: task.id.toString() }],
      });
      const row = await waitFor(
        `task ${task.id}'s row to show the refusal`,
        async () => {
          const r = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
          return /403/.test(r.reason ?? '') ? r : undefined;
        },
        60_000,
      );
      // Waiting, not final: the refusal is the cluster's (retried with backoff), not the task's fault.
      expect(['Normal', 'Pending']).toContain(row.status);
      expect(row.reason).toMatch(/forbidden|permission/i);
      expect(await jobsOfTask(stack, task)).toHaveLength(0);
      // Its watches in `outside` are refused too: the watch is not healthy, and says so.
      expect(worker.watch.healthy()).toBe(false);
    }, 120_000);
  });
});
