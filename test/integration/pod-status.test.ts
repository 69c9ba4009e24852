// Truthful status on the real stack (issue 8): a task is Running only once its pod runs; while it
// waits, its row says what the cluster says (an image that cannot be pulled, no node with room, a
// used-up quota), and a task that never starts ends Failed at its deadline with that reason. A pod
// refused by policy (Pod Security) and a Job refused by an admission policy fail the task at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '../../src/db/client.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { taskWorkflow } from '../../workflows/task.ts';
import { connectStack, startWorker, testConfig, waitFor, type RunningWorker, type Stack } from '../support/stack.ts';
import { insertTask as insertRow, jobsOfTask, runFor, uniqueName, waitForStatus } from '../support/tasks.ts';

let stack: Stack;
let worker: RunningWorker;
/** Namespaces of the file: [plain, Pod Security restricted, with a ResourceQuota, behind an admission policy]. */
let plain: string, restricted: string, quota: string, guarded: string;
const policyName = `nightwatch-test-deny-${Date.now().toString(36)}`;

beforeAll(async () => {
  // No maximum on resources: one test asks for more CPU than any node has, which only the scheduler refuses.
  stack = await connectStack(testConfig({ TASK_MAX_RESOURCES: 'none' }), { namespaces: 4 });
  [plain, restricted, quota, guarded] = stack.namespaces as [string, string, string, string];
  const label = async (name: string, labels: Record<string, string>) => {
    const ns = await stack.kube.core.readNamespace({ name });
    ns.metadata!.labels = { ...ns.metadata!.labels, ...labels };
    await stack.kube.core.replaceNamespace({ name, body: ns });
  };
  await label(restricted, { 'pod-security.kubernetes.io/enforce': 'restricted' });
  await label(guarded, { 'nightwatch.io/test-guarded': 'true' });
  worker = await startWorker(stack);
  await worker.watch.ready;
});

afterAll(async () => {
  await worker?.stop();
  const admission = stack?.kube.kubeconfig.makeApiClient((await import('@kubernetes/client-node')).AdmissionregistrationV1Api);
  await admission?.deleteValidatingAdmissionPolicyBinding({ name: policyName }).catch(() => undefined);
  await admission?.deleteValidatingAdmissionPolicy({ name: policyName }).catch(() => undefined);
  await stack?.close();
});

/** A row, and its task workflow started as the API would start it. */
async function insertTask(...args: Parameters<typeof insertRow>): Promise<Task> {
  const task = await insertRow(...args);
  await stack.client.workflow.start(taskWorkflow, {
    taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
    workflowId: taskWorkflowId(task.id.toString(), stack.config.WORKFLOW_ID_PREFIX),
    args: [{ taskId: task.id.toString() }],
  });
  return task;
}

/** Every status the row showed, sampled until it is final. */
async function statusesSeen(task: Task, timeoutMs = 60_000): Promise<{ seen: string[]; reasons: string[]; final: Task }> {
  const seen: string[] = [];
  const reasons: string[] = [];
  const final = await waitFor(
    `task ${task.id} to end`,
    async () => {
      const row = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
      if (seen.at(-1) !== row.status) seen.push(row.status);
      if (row.reason && reasons.at(-1) !== row.reason) reasons.push(row.reason);
      return ['Succeeded', 'Failed', 'Cancelled'].includes(row.status) ? row : undefined;
    },
    timeoutMs,
    100,
  );
  return { seen, reasons, final };
}

describe('truthful status', () => {
  it('shows an image that cannot be pulled while Pending, never Running, and fails at the deadline with that reason', async () => {
    const task = await insertTask(stack, {
      namespace: plain,
      info: { image: 'registry.invalid/nope:1', timeoutSeconds: 8, annotations: { 'nightwatch.io/kwok-outcome': 'image-pull-backoff' } },
    });
    const waiting = await waitFor('the row to show why it waits', async () => {
      const row = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
      return row.reason?.includes('ImagePullBackOff') ? row : undefined;
    }, 30_000, 100);
    expect(waiting.status).toBe('Pending');
    expect(waiting.startedAt).toBeNull();
    expect(waiting.reason).toBe(
      'waiting: the image cannot be pulled (ImagePullBackOff: Back-off pulling image "registry.invalid/nope:1"); check info.image and that the registry is reachable and allows the pull',
    );
    const { seen, final } = await statusesSeen(task);
    expect(seen).not.toContain('Running');
    expect(final.status).toBe('Failed');
    expect(final.startedAt).toBeNull();
    expect(final.reason).toBe(
      'the task never started before its deadline (info.timeoutSeconds): the image cannot be pulled (ImagePullBackOff: Back-off pulling image "registry.invalid/nope:1"); check info.image and that the registry is reachable and allows the pull',
    );
  });

  it('shows the scheduler’s message for a pod no node can hold', async () => {
    const task = await insertTask(stack, { namespace: plain, info: { image: 'alpine', timeoutSeconds: 8, resources: { requests: { cpu: '100000' } } } });
    const { seen, reasons, final } = await statusesSeen(task);
    expect(seen).not.toContain('Running');
    expect(reasons.some((r) => /^waiting: no node can run the pod \(Unschedulable: 0\/\d+ nodes are available: .*Insufficient cpu/.test(r))).toBe(true);
    expect(final.status).toBe('Failed');
    expect(final.reason).toMatch(/^the task never started before its deadline \(info.timeoutSeconds\): no node can run the pod \(Unschedulable: .*Insufficient cpu/);
  });

  it('is Running only while the pod runs, then Succeeded', async () => {
    const task = await insertTask(stack, { namespace: plain, info: { image: 'alpine', ...runFor('3s') } });
    const { seen, final } = await statusesSeen(task);
    expect(seen).toEqual(['Normal', 'Pending', 'Running', 'Succeeded'].filter((s) => seen.includes(s)));
    expect(seen).toContain('Running');
    expect(final.status).toBe('Succeeded');
    expect(final.startedAt).not.toBeNull();
  });

  it('fails at once, and deletes the Job, when Pod Security refuses the pod', async () => {
    const task = await insertTask(stack, { namespace: restricted, info: { image: 'alpine', ...runFor('1s') } });
    const final = await waitForStatus(stack, task.id, ['Succeeded', 'Failed'], 30_000);
    expect(final.status).toBe('Failed');
    expect(final.reason).toMatch(/^the cluster refused to create the task's pod: pods "[^"]+" is forbidden: violates PodSecurity "restricted:latest"/);
    await waitFor('the refused Job to be deleted', async () => ((await jobsOfTask(stack, task)).length === 0 ? true : undefined), 15_000);
  });

  it('waits while the namespace’s quota is used up, saying so, and runs once there is room', async () => {
    const name = 'pods';
    await stack.kube.core.createNamespacedResourceQuota({ namespace: quota, body: { metadata: { name }, spec: { hard: { pods: '0' } } } });
    await waitFor('the quota controller to count the namespace', async () => {
      const q = await stack.kube.core.readNamespacedResourceQuota({ name, namespace: quota });
      return q.status?.used?.pods !== undefined ? true : undefined;
    }, 30_000);
    const task = await insertTask(stack, { namespace: quota, info: { image: 'alpine', ...runFor('1s') } });
    const waiting = await waitFor('the row to show the quota', async () => {
      const row = await stack.prisma.task.findUniqueOrThrow({ where: { id: task.id } });
      return row.reason?.includes('ResourceQuota is used up') ? row : undefined;
    }, 60_000, 200);
    expect(waiting.status).toBe('Pending');
    expect(waiting.reason).toMatch(/^waiting: the namespace's ResourceQuota is used up \(pods "[^"]+" is forbidden: exceeded quota: pods/);
    await stack.kube.core.replaceNamespacedResourceQuota({ name, namespace: quota, body: { metadata: { name }, spec: { hard: { pods: '5' } } } });
    // The Job controller retries pod creation with a growing back-off (up to minutes), so allow time.
    const final = await waitForStatus(stack, task.id, ['Succeeded', 'Failed'], 120_000);
    expect(final.status).toBe('Succeeded');
    expect(final.reason).toBeNull();
  }, 180_000);

  it('fails at once with the policy’s message when an admission policy refuses the Job itself', async () => {
    const { AdmissionregistrationV1Api } = await import('@kubernetes/client-node');
    const admission = stack.kube.kubeconfig.makeApiClient(AdmissionregistrationV1Api);
    await admission.createValidatingAdmissionPolicy({
      body: {
        metadata: { name: policyName },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: { resourceRules: [{ apiGroups: ['batch'], apiVersions: ['v1'], operations: ['CREATE'], resources: ['jobs'] }] },
          validations: [{ expression: 'false', message: 'Jobs in this namespace need a security review' }],
        },
      },
    });
    await admission.createValidatingAdmissionPolicyBinding({
      body: {
        metadata: { name: policyName },
        spec: { policyName, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'nightwatch.io/test-guarded': 'true' } } } },
      },
    });
    // The policy takes effect within a second or two: probe with a dry run until it refuses.
    await waitFor('the admission policy to take effect', async () => {
      try {
        await stack.kube.batch.createNamespacedJob({
          namespace: guarded,
          dryRun: 'All',
          body: { metadata: { name: uniqueName('probe') }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'x', image: 'alpine' }] } } } },
        });
        return undefined;
      } catch {
        return true;
      }
    }, 30_000);
    const before = Date.now();
    const task = await insertTask(stack, { namespace: guarded, info: { image: 'alpine', ...runFor('1s') } });
    const final = await waitForStatus(stack, task.id, ['Succeeded', 'Failed'], 30_000);
    expect(final.status).toBe('Failed');
    expect(final.reason).toMatch(/^task \d+: the cluster's admission policy refused the Job \(4\d\d \w+: .*Jobs in this namespace need a security review.*\); change the task/);
    expect(Date.now() - before).toBeLessThan(20_000);
    expect(await jobsOfTask(stack, task)).toHaveLength(0);
  });
});
