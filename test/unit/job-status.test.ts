import type { V1Job, V1JobCondition, V1JobStatus, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { jobStatusToTaskStatus } from '../../src/task/job-status.ts';

const when = new Date('2024-05-01T12:00:00Z');

function condition(type: string, status = 'True', reason?: string, message?: string): V1JobCondition {
  return { type, status, lastTransitionTime: when, lastProbeTime: when, ...(reason && { reason }), ...(message && { message }) };
}

function job(status: V1JobStatus | undefined, spec: Partial<NonNullable<V1Job['spec']>> = {}): V1Job {
  return {
    metadata: { name: 'report', namespace: 'demo' },
    spec: { template: {}, backoffLimit: 0, ...spec },
    ...(status && { status }),
  };
}

const BACKOFF = condition('Failed', 'True', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit');
const DEADLINE = condition('Failed', 'True', 'DeadlineExceeded', 'Job was active longer than specified deadline');

describe('jobStatusToTaskStatus', () => {
  describe('before any pod runs', () => {
    it('is Pending for a Job with no status yet', () => {
      expect(jobStatusToTaskStatus(job(undefined))).toStrictEqual({ status: 'Pending' });
    });

    it('is Pending with an empty status, or no active pods', () => {
      expect(jobStatusToTaskStatus(job({}))).toStrictEqual({ status: 'Pending' });
      expect(jobStatusToTaskStatus(job({ active: 0, ready: 0, failed: 0, succeeded: 0 }))).toStrictEqual({ status: 'Pending' });
    });

    it('is Pending, saying why, while the Job is suspended', () => {
      expect(jobStatusToTaskStatus(job({ conditions: [condition('Suspended', 'True', 'JobSuspended', 'Job suspended')] }))).toStrictEqual({
        status: 'Pending',
        reason: 'the Job is suspended, so no pod runs until it is resumed',
      });
    });

    it('is Pending while suspended even if pods are still winding down', () => {
      expect(jobStatusToTaskStatus(job({ active: 1, conditions: [condition('Suspended')] })).status).toBe('Pending');
    });
  });

  describe('while pods run', () => {
    it('is Running when a pod is active', () => {
      expect(jobStatusToTaskStatus(job({ active: 1, startTime: when }))).toStrictEqual({ status: 'Running' });
    });

    it('is Running when a pod is ready', () => {
      expect(jobStatusToTaskStatus(job({ ready: 1 }))).toStrictEqual({ status: 'Running' });
    });

    it('is Running again after a resume (Suspended turned False)', () => {
      expect(jobStatusToTaskStatus(job({ active: 1, conditions: [condition('Suspended', 'False', 'JobResumed', 'Job resumed')] }))).toStrictEqual({
        status: 'Running',
      });
    });

    it('is Running between a failed pod and its retry', () => {
      expect(jobStatusToTaskStatus(job({ active: 1, failed: 1 }, { backoffLimit: 3 }))).toStrictEqual({ status: 'Running' });
    });
  });

  describe('when the Job succeeded', () => {
    it('is Succeeded on Complete=True', () => {
      const status = { succeeded: 1, conditions: [condition('Complete', 'True', 'CompletionsReached', 'Reached expected number of succeeded pods')] };
      expect(jobStatusToTaskStatus(job(status))).toStrictEqual({ status: 'Succeeded' });
    });

    it('is Succeeded on SuccessCriteriaMet=True, before Complete is added', () => {
      expect(jobStatusToTaskStatus(job({ active: 1, conditions: [condition('SuccessCriteriaMet', 'True', 'CompletionsReached')] }))).toStrictEqual({
        status: 'Succeeded',
      });
    });

    it('is Succeeded even while a pod is still counted active', () => {
      expect(jobStatusToTaskStatus(job({ active: 1, ready: 1, conditions: [condition('SuccessCriteriaMet'), condition('Complete')] }))).toStrictEqual({
        status: 'Succeeded',
      });
    });
  });

  describe('when the Job failed', () => {
    it('is Failed on BackoffLimitExceeded, saying how many pods failed and what to check', () => {
      expect(jobStatusToTaskStatus(job({ failed: 1, conditions: [condition('FailureTarget', 'True', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit'), BACKOFF] }))).toStrictEqual({
        status: 'Failed',
        reason:
          'BackoffLimitExceeded: Job has reached the specified backoff limit; the container exited with an error on every try (1 failed pod); ' +
          'check its logs and exit code, or raise info.backoffLimit',
      });
      expect(jobStatusToTaskStatus(job({ failed: 3, conditions: [BACKOFF] }, { backoffLimit: 2 })).reason).toContain('(3 failed pods)');
      expect(jobStatusToTaskStatus(job({ conditions: [BACKOFF] })).reason).toBe(
        'BackoffLimitExceeded: Job has reached the specified backoff limit; the container exited with an error on every try; ' +
          'check its logs and exit code, or raise info.backoffLimit',
      );
    });

    it('is Failed on DeadlineExceeded, naming the timeout', () => {
      expect(jobStatusToTaskStatus(job({ failed: 1, conditions: [DEADLINE] }, { activeDeadlineSeconds: 60 }))).toStrictEqual({
        status: 'Failed',
        reason:
          'DeadlineExceeded: Job was active longer than specified deadline; the task ran longer than info.timeoutSeconds (60s); ' +
          'raise info.timeoutSeconds or make the task faster',
      });
    });

    it('is Failed on FailureTarget=True alone, before pods are gone, even with pods still active', () => {
      const failing = condition('FailureTarget', 'True', 'DeadlineExceeded', 'Job was active longer than specified deadline');
      expect(jobStatusToTaskStatus(job({ active: 1, conditions: [failing] }, { activeDeadlineSeconds: 5 }))).toStrictEqual({
        status: 'Failed',
        reason:
          'DeadlineExceeded: Job was active longer than specified deadline; the task ran longer than info.timeoutSeconds (5s); ' +
          'raise info.timeoutSeconds or make the task faster',
      });
    });

    it('passes other reasons through as "Reason: message"', () => {
      const policy = condition('Failed', 'True', 'PodFailurePolicy', 'Container task for pod demo/report-x failed with exit code 42 matching FailJob rule at index 0.');
      expect(jobStatusToTaskStatus(job({ conditions: [policy] }))).toStrictEqual({
        status: 'Failed',
        reason: 'PodFailurePolicy: Container task for pod demo/report-x failed with exit code 42 matching FailJob rule at index 0',
      });
    });

    it('still says something when the condition has no reason or message', () => {
      expect(jobStatusToTaskStatus(job({ conditions: [condition('Failed', 'True', 'Evicted')] }))).toStrictEqual({ status: 'Failed', reason: 'Evicted' });
      expect(jobStatusToTaskStatus(job({ conditions: [condition('Failed', 'True', undefined, 'node lost')] }))).toStrictEqual({ status: 'Failed', reason: 'node lost' });
      expect(jobStatusToTaskStatus(job({ conditions: [condition('Failed')] }))).toStrictEqual({
        status: 'Failed',
        reason: 'the Job reports Failed without a reason',
      });
    });

    it('prefers the final Failed condition over an earlier FailureTarget', () => {
      const target = condition('FailureTarget', 'True', 'PodFailurePolicy', 'matched rule 0');
      const failed = condition('Failed', 'True', 'PodFailurePolicy', 'matched rule 0 (final)');
      expect(jobStatusToTaskStatus(job({ conditions: [target, failed] })).reason).toBe('PodFailurePolicy: matched rule 0 (final)');
    });
  });

  describe('conditions that do not hold', () => {
    it.each(['False', 'Unknown'])('ignores Complete, Failed and friends with status %s', (s) => {
      const conditions = ['Complete', 'SuccessCriteriaMet', 'Failed', 'FailureTarget', 'Suspended'].map((t) => condition(t, s, 'Whatever'));
      expect(jobStatusToTaskStatus(job({ conditions }))).toStrictEqual({ status: 'Pending' });
      expect(jobStatusToTaskStatus(job({ active: 2, conditions }))).toStrictEqual({ status: 'Running' });
    });

    it('ignores condition types it does not know', () => {
      expect(jobStatusToTaskStatus(job({ active: 1, conditions: [condition('SomethingNew')] }))).toStrictEqual({ status: 'Running' });
    });
  });

  it.each<[string, string, V1JobStatus]>([
    ['no status', 'Pending', {}],
    ['suspended', 'Pending', { conditions: [condition('Suspended')] }],
    ['active', 'Running', { active: 1 }],
    ['ready', 'Running', { ready: 1 }],
    ['SuccessCriteriaMet', 'Succeeded', { conditions: [condition('SuccessCriteriaMet')] }],
    ['Complete', 'Succeeded', { conditions: [condition('Complete')] }],
    ['FailureTarget', 'Failed', { conditions: [condition('FailureTarget')] }],
    ['Failed', 'Failed', { conditions: [condition('Failed')] }],
    ['Failed while suspended', 'Failed', { conditions: [condition('Suspended'), condition('Failed')] }],
    ['Complete while active', 'Succeeded', { active: 3, conditions: [condition('Complete')] }],
    ['Failed while active', 'Failed', { active: 3, conditions: [condition('Failed')] }],
  ])('maps %s to %s', (_, expected, status) => {
    expect(jobStatusToTaskStatus(job(status)).status).toBe(expected);
  });
});

describe('jobStatusToTaskStatus with what the cluster says around the Job', () => {
  const pod = (status: NonNullable<V1Pod['status']>, extra: Partial<NonNullable<V1Pod['metadata']>> = {}): V1Pod => ({
    metadata: { name: 'report-x1', namespace: 'demo', ...extra },
    status,
  });
  const waitingFor = (reason: string, message?: string) =>
    pod({ phase: 'Pending', containerStatuses: [{ name: 'task', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason, ...(message && { message }) } } }] });
  const running = pod({ phase: 'Running', containerStatuses: [{ name: 'task', image: 'x', imageID: '', ready: true, restartCount: 0, state: { running: { startedAt: when } } }] });

  it('is Pending, not Running, while the active pod is not ready', () => {
    expect(jobStatusToTaskStatus(job({ active: 1, ready: 0 }))).toStrictEqual({ status: 'Pending' });
    expect(jobStatusToTaskStatus(job({ active: 1, ready: 0 }), { pods: [waitingFor('ContainerCreating')] })).toStrictEqual({ status: 'Pending' });
  });

  it('is Running once a pod is ready, or seen running before the Job counts it', () => {
    expect(jobStatusToTaskStatus(job({ active: 1, ready: 1 }), { pods: [] })).toStrictEqual({ status: 'Running' });
    expect(jobStatusToTaskStatus(job({ active: 1, ready: 0 }), { pods: [running] })).toStrictEqual({ status: 'Running' });
  });

  it.each(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName'])('says the image cannot be pulled (%s), with the kubelet’s message', (reason) => {
    const seen = jobStatusToTaskStatus(job({ active: 1, ready: 0 }), { pods: [waitingFor(reason, 'Back-off pulling image "registry.invalid/app:1".')] });
    expect(seen.status).toBe('Pending');
    expect(seen.reason).toBe(
      `waiting: the image cannot be pulled (${reason}: Back-off pulling image "registry.invalid/app:1"); check info.image and that the registry is reachable and allows the pull`,
    );
    expect(seen.refused).toBeUndefined();
  });

  it('says no node can run the pod, with the scheduler’s message', () => {
    const unschedulable = pod({
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient cpu.' }],
    });
    expect(jobStatusToTaskStatus(job({ active: 1, ready: 0 }), { pods: [unschedulable] })).toStrictEqual({
      status: 'Pending',
      reason: 'waiting: no node can run the pod (Unschedulable: 0/3 nodes are available: 3 Insufficient cpu); lower info.resources or ask the operator for capacity',
    });
  });

  it('ignores pods that are finished or being deleted', () => {
    const gone = { ...waitingFor('ImagePullBackOff'), metadata: { name: 'old', deletionTimestamp: when } };
    const failed = pod({ phase: 'Failed', containerStatuses: waitingFor('ErrImagePull').status!.containerStatuses! });
    expect(jobStatusToTaskStatus(job({ active: 0, ready: 0 }), { pods: [gone, failed] })).toStrictEqual({ status: 'Pending' });
  });

  it('fails at once when admission refuses the pod by policy (Pod Security, a webhook, a LimitRange)', () => {
    for (const message of [
      'Error creating: pods "report-x1" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true',
      'Error creating: admission webhook "pods.policy.example.com" denied the request: no hostPath',
      'Error creating: pods "report-x1" is forbidden: maximum cpu usage per Container is 2, but limit is 4',
    ]) {
      const seen = jobStatusToTaskStatus(job({ active: 0, ready: 0 }), { pods: [], createFailure: message });
      expect(seen).toStrictEqual({ status: 'Pending', refused: true, reason: `the cluster refused to create the task's pod: ${message.replace('Error creating: ', '')}` });
    }
  });

  it('waits, saying so, while the namespace’s quota is used up', () => {
    const message = 'Error creating: pods "report-x1" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2';
    const seen = jobStatusToTaskStatus(job({ active: 0 }), { pods: [], createFailure: message });
    expect(seen.refused).toBeUndefined();
    expect(seen.reason).toMatch(/^waiting: the namespace's ResourceQuota is used up \(pods "report-x1" is forbidden: exceeded quota/);
  });

  it('waits when a webhook cannot be reached, and forgets a creation failure once a pod exists', () => {
    const unreachable = 'Error creating: Internal error occurred: failed calling webhook "x.example.com": connection refused';
    expect(jobStatusToTaskStatus(job({}), { pods: [], createFailure: unreachable }).refused).toBeUndefined();
    const refusal = 'Error creating: pods "r" is forbidden: violates PodSecurity "baseline:latest": privileged';
    expect(jobStatusToTaskStatus(job({ active: 1, ready: 0 }), { pods: [waitingFor('ContainerCreating')], createFailure: refusal })).toStrictEqual({ status: 'Pending' });
  });

  it('lets a finished Job speak for itself whatever its pods say', () => {
    expect(jobStatusToTaskStatus(job({ conditions: [condition('Complete')] }), { pods: [waitingFor('ImagePullBackOff')] })).toStrictEqual({ status: 'Succeeded' });
  });
});
