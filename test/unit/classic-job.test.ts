// Which Jobs count as the classic Go nightwatch's Job for a row (src/task/classic-job.ts).
import { ApiException, type V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { createKubernetesActivities } from '../../activities/kubernetes.ts';
import type { KubeClients } from '../../src/kubernetes.ts';
import { adoptionLabels, classicJobMismatch } from '../../src/task/classic-job.ts';

const task = { name: 'demo-task-1', namespace: 'default', info: '{"image":"alpine","command":["sleep"],"args":["60"]}' };

/** As the classic toJob makes it, after the API server added the Job controller's pod labels. */
function classicJob(): V1Job {
  return {
    metadata: { name: 'demo-task-1', namespace: 'default', uid: 'u1' },
    spec: {
      backoffLimit: 1,
      template: {
        metadata: { labels: { app: 'task-job', 'batch.kubernetes.io/controller-uid': 'u1', 'batch.kubernetes.io/job-name': 'demo-task-1', 'controller-uid': 'u1', 'job-name': 'demo-task-1' } },
        spec: { containers: [{ name: 'task', image: 'alpine', command: ['sleep'], args: ['60'] }], restartPolicy: 'Never' },
      },
    },
  };
}

describe('classicJobMismatch', () => {
  it('matches the Job the classic nightwatch made for the row', () => {
    expect(classicJobMismatch(classicJob(), task)).toBeNull();
  });

  it('takes an absent list and an empty one alike (Go leaves nil slices out)', () => {
    const job = classicJob();
    delete job.spec!.template.spec!.containers[0]!.args;
    expect(classicJobMismatch(job, { ...task, info: '{"image":"alpine","command":["sleep"],"args":null}' })).toBeNull();
    expect(classicJobMismatch(job, { ...task, info: '{"image":"alpine","command":["sleep"]}' })).toBeNull();
  });

  it.each<[string, (job: V1Job) => void, RegExp]>([
    ['another name', (j) => (j.metadata!.name = 'other'), /another name/],
    ["nightwatch's labels", (j) => (j.metadata!.labels = { 'app.kubernetes.io/managed-by': 'nightwatch' }), /nightwatch's label/],
    ['an owner', (j) => (j.metadata!.ownerReferences = [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'c', uid: 'x' }]), /owned by CronJob\/c/],
    ['another backoffLimit', (j) => (j.spec!.backoffLimit = 6), /backoffLimit is 6/],
    ['other pod labels', (j) => (j.spec!.template.metadata!.labels = { app: 'web' }), /pod labels/],
    ['an extra pod label', (j) => (j.spec!.template.metadata!.labels!.team = 'x'), /pod labels/],
    ['restartPolicy OnFailure', (j) => (j.spec!.template.spec!.restartPolicy = 'OnFailure'), /restartPolicy/],
    ['two containers', (j) => j.spec!.template.spec!.containers.push({ name: 'side', image: 'x' }), /2 containers/],
    ['another container name', (j) => (j.spec!.template.spec!.containers[0]!.name = 'main'), /named main/],
    ['environment variables', (j) => (j.spec!.template.spec!.containers[0]!.env = [{ name: 'A', value: '1' }]), /environment/],
    ['another image', (j) => (j.spec!.template.spec!.containers[0]!.image = 'busybox'), /image busybox/],
    ['another command', (j) => (j.spec!.template.spec!.containers[0]!.command = ['sh']), /command/],
    ['other args', (j) => (j.spec!.template.spec!.containers[0]!.args = ['61']), /args/],
  ])('refuses a Job with %s', (_what, change, why) => {
    const job = classicJob();
    change(job);
    expect(classicJobMismatch(job, task)).toMatch(why);
  });

  it('refuses when the row holds no JSON', () => {
    expect(classicJobMismatch(classicJob(), { ...task, info: 'not json' })).toMatch(/not JSON/);
  });
});

describe('adoptionLabels', () => {
  it("adds nightwatch's labels for the row, attempt 1, to the Job's own", () => {
    const job = classicJob();
    job.metadata!.labels = { team: 'a' };
    expect(adoptionLabels(job, '42')).toEqual({ team: 'a', 'app.kubernetes.io/managed-by': 'nightwatch', 'nightwatch.io/task-id': '42', 'nightwatch.io/attempt': '1' });
  });
});

describe('observeJob on a classic Job (activities/kubernetes.ts)', () => {
  const info = task.info;
  const ref = { taskId: '42', name: task.name, namespace: task.namespace, attempt: 1 };
  const running = (): V1Job => ({ ...classicJob(), metadata: { ...classicJob().metadata, resourceVersion: '7' }, status: { active: 1, ready: 1 } });
  function activities(patch: (req: unknown) => Promise<V1Job>) {
    const batch = { readNamespacedJob: async () => running(), patchNamespacedJob: patch } as unknown as KubeClients['batch'];
    const core = { listNamespacedPod: async () => ({ items: [] }), listNamespacedEvent: async () => ({ items: [] }) } as unknown as KubeClients['core'];
    return createKubernetesActivities({ batch, core }, undefined, {}, { classicTaskInfo: async () => info });
  }

  it('labels the matched Job (guarded by uid and resourceVersion) and follows it as attempt 1', async () => {
    const requests: unknown[] = [];
    const acts = activities(async (req) => {
      requests.push(req);
      const job = running();
      return { ...job, metadata: { ...job.metadata, labels: adoptionLabels(job, '42') } };
    });
    expect(await acts.observeJob(ref)).toMatchObject({ exists: true, owned: true, attempt: 1, status: 'Running' });
    expect(requests).toEqual([
      {
        name: task.name,
        namespace: task.namespace,
        body: [
          { op: 'test', path: '/metadata/uid', value: 'u1' },
          { op: 'test', path: '/metadata/resourceVersion', value: '7' },
          { op: 'add', path: '/metadata/labels', value: adoptionLabels(running(), '42') },
        ],
      },
    ]);
  });

  it('adopts it all the same when the worker may not patch Jobs (403)', async () => {
    const acts = activities(async () => {
      throw new ApiException(403, 'forbidden', {}, {});
    });
    expect(await acts.observeJob(ref)).toMatchObject({ exists: true, owned: true, attempt: 1, status: 'Running' });
  });

  it('does not adopt it for a later attempt, nor label it', async () => {
    const acts = activities(async () => {
      throw new Error('must not patch');
    });
    expect(await acts.observeJob({ ...ref, attempt: 2 })).toEqual({ exists: true, owned: false });
  });
});
