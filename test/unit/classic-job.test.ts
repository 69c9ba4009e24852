// Which Jobs count as the classic Go nightwatch's Job for a row (src/task/classic-job.ts).
import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
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
