import type { V1Job } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseTaskInfo, type TaskInfo } from '../../src/task/info.ts';
import {
  ATTEMPT_LABEL,
  buildJob,
  CONTAINER_NAME,
  isOwnedByTask,
  jobAttempt,
  MANAGED_BY_LABEL,
  TASK_ID_LABEL,
} from '../../src/task/job.ts';

const task = { id: 42n, name: 'nightly-report', namespace: 'demo', attempt: 1 };
const HARDENED = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } };

function info(text: string): TaskInfo {
  const parsed = parseTaskInfo(text);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.info;
}

describe('buildJob', () => {
  it('builds the minimal Job for an image-only task', () => {
    expect(buildJob(task, info('{"image": "alpine:3.20"}'))).toStrictEqual({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: {
        name: 'nightly-report',
        namespace: 'demo',
        labels: {
          'app.kubernetes.io/managed-by': 'nightwatch',
          'nightwatch.io/task-id': '42',
          'nightwatch.io/attempt': '1',
        },
      },
      spec: {
        backoffLimit: 0,
        template: {
          metadata: {
            labels: {
              'app.kubernetes.io/managed-by': 'nightwatch',
              'nightwatch.io/task-id': '42',
              'nightwatch.io/attempt': '1',
            },
          },
          spec: {
            restartPolicy: 'Never',
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'task',
                image: 'alpine:3.20',
                securityContext: {
                  allowPrivilegeEscalation: false,
                  capabilities: { drop: ['ALL'] },
                  seccompProfile: { type: 'RuntimeDefault' },
                },
              },
            ],
          },
        },
      },
    });
  });

  it('maps every info field onto the Job and its one container', () => {
    const job = buildJob(
      { id: '7', name: 'etl', namespace: 'team-a', attempt: 3 },
      info(
        JSON.stringify({
          image: 'ghcr.io/acme/etl:2',
          command: ['python', '-m', 'etl'],
          args: ['--date', '2024-01-01'],
          env: { LOG_LEVEL: 'debug', 'app.mode': 'batch' },
          resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { memory: '128Mi' } },
          timeoutSeconds: 600,
          backoffLimit: 2,
          ttlSecondsAfterFinished: 86400,
        }),
      ),
    );
    expect(job.metadata).toStrictEqual({
      name: 'etl',
      namespace: 'team-a',
      labels: { [MANAGED_BY_LABEL]: 'nightwatch', [TASK_ID_LABEL]: '7', [ATTEMPT_LABEL]: '3' },
    });
    expect(job.spec?.backoffLimit).toBe(2);
    expect(job.spec?.activeDeadlineSeconds).toBe(600);
    expect(job.spec?.ttlSecondsAfterFinished).toBe(86400);
    expect(job.spec?.template.spec?.containers).toStrictEqual([
      {
        name: CONTAINER_NAME,
        image: 'ghcr.io/acme/etl:2',
        command: ['python', '-m', 'etl'],
        args: ['--date', '2024-01-01'],
        env: [
          { name: 'LOG_LEVEL', value: 'debug' },
          { name: 'app.mode', value: 'batch' },
        ],
        resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { memory: '128Mi' } },
        securityContext: HARDENED,
      },
    ]);
  });

  it('carries the same labels on the pod template, so pods trace back to the task', () => {
    const job = buildJob({ ...task, attempt: 2 }, info('{"image": "alpine"}'));
    expect(job.spec?.template.metadata?.labels).toStrictEqual(job.metadata?.labels);
    expect(job.spec?.template.metadata?.labels?.[ATTEMPT_LABEL]).toBe('2');
  });

  it('never restarts in place: the Job controller counts failures against backoffLimit', () => {
    expect(buildJob(task, info('{"image": "alpine", "backoffLimit": 5}')).spec?.template.spec?.restartPolicy).toBe('Never');
  });

  it('keeps empty lists and variables as given, and leaves out resources with nothing in them', () => {
    const container = buildJob(task, info('{"image": "alpine", "args": [], "env": {}, "resources": {"limits": {}}}')).spec
      ?.template.spec?.containers[0];
    expect(container).toStrictEqual({ name: 'task', image: 'alpine', args: [], env: [], securityContext: HARDENED });
  });

  it('adds extra pod annotations (for KWOK and the operator) only to the pod template', () => {
    const annotations = { 'pod-complete.stage.kwok.x-k8s.io/delay': '1s' };
    const job = buildJob(task, info('{"image": "alpine"}'), { annotations });
    expect(job.spec?.template.metadata?.annotations).toStrictEqual(annotations);
    expect(job.metadata?.annotations).toBeUndefined();
    annotations['pod-complete.stage.kwok.x-k8s.io/delay'] = 'changed';
    expect(job.spec?.template.metadata?.annotations).toStrictEqual({ 'pod-complete.stage.kwok.x-k8s.io/delay': '1s' });
    expect(buildJob(task, info('{"image": "alpine"}'), { annotations: {} }).spec?.template.metadata).toStrictEqual({
      labels: job.metadata?.labels,
    });
  });

  it('produces plain JSON with no undefined fields, ready to send', () => {
    const job = buildJob(task, info('{"image": "alpine", "env": {"A": "b"}}'));
    expect(JSON.parse(JSON.stringify(job))).toStrictEqual(job);
  });

  it('does not share objects with info, so changing one cannot change the other', () => {
    const i = info('{"image": "alpine", "args": ["a"], "resources": {"limits": {"cpu": "1"}}}');
    const job = buildJob(task, i);
    job.spec?.template.spec?.containers[0]?.args?.push('b');
    job.spec!.template.spec!.containers[0]!.resources!.limits!.cpu = '2';
    expect(i.args).toStrictEqual(['a']);
    expect(i.resources?.limits?.cpu).toBe('1');
  });
});

describe('isOwnedByTask', () => {
  const job = buildJob(task, info('{"image": "alpine"}'));

  it('recognises the Job it built, by bigint or string id, for any attempt', () => {
    expect(isOwnedByTask(job, 42n)).toBe(true);
    expect(isOwnedByTask(job, '42')).toBe(true);
    expect(isOwnedByTask(buildJob({ ...task, attempt: 9 }, info('{"image": "alpine"}')), '42')).toBe(true);
  });

  it('rejects another task’s Job', () => {
    expect(isOwnedByTask(job, 43n)).toBe(false);
    expect(isOwnedByTask(job, '4')).toBe(false);
  });

  it('rejects a Job of the same name that nightwatch did not make', () => {
    const stranger: V1Job = { metadata: { name: 'nightly-report', namespace: 'demo', labels: { [TASK_ID_LABEL]: '42' } } };
    expect(isOwnedByTask(stranger, 42n)).toBe(false);
    expect(isOwnedByTask({ metadata: { name: 'nightly-report' } }, 42n)).toBe(false);
    expect(isOwnedByTask({}, 42n)).toBe(false);
  });
});

describe('jobAttempt', () => {
  it('reads the attempt a Job was made for', () => {
    expect(jobAttempt(buildJob({ ...task, attempt: 3 }, info('{"image": "alpine"}')))).toBe(3);
  });

  it.each([undefined, '', '0', '-1', '1.5', 'two'])('is null for a missing or unreadable label %j', (value) => {
    const labels: Record<string, string> = value === undefined ? {} : { [ATTEMPT_LABEL]: value };
    expect(jobAttempt({ metadata: { labels } })).toBeNull();
  });
});

describe('buildJob pod annotations', () => {
  it("puts info.annotations on the pod, with the operator's extra annotations winning", () => {
    const job = buildJob(task, info('{"image": "alpine", "annotations": {"example.com/owner": "a", "note": "user"}}'), { annotations: { note: 'operator' } });
    expect(job.spec?.template.metadata?.annotations).toEqual({ 'example.com/owner': 'a', note: 'operator' });
    expect(job.metadata?.annotations).toBeUndefined();
  });
});

describe('buildJob hardening', () => {
  it('hardens every pod whatever the task asks: no escalation, no capabilities, RuntimeDefault seccomp, no service links or token', () => {
    const spec = buildJob(task, info('{"image": "alpine", "env": {"A": "b"}}')).spec?.template.spec;
    expect(spec?.automountServiceAccountToken).toBe(false);
    expect(spec?.enableServiceLinks).toBe(false);
    expect(spec?.securityContext).toStrictEqual({ seccompProfile: { type: 'RuntimeDefault' } });
    expect(spec?.containers[0]?.securityContext).toStrictEqual(HARDENED);
    expect(spec?.hostNetwork ?? spec?.hostPID ?? spec?.hostIPC ?? spec?.volumes).toBeUndefined();
  });

  it('leaves the image user alone by default (root passes baseline, not restricted)', () => {
    const spec = buildJob(task, info('{"image": "alpine"}')).spec?.template.spec;
    expect(spec?.securityContext?.runAsNonRoot).toBeUndefined();
    expect(spec?.securityContext?.runAsUser).toBeUndefined();
  });

  it('runs as the given non-root uid and gid with runAsNonRoot when the operator asks (restricted)', () => {
    const spec = buildJob(task, info('{"image": "alpine"}'), { runAsUser: 65532 }).spec?.template.spec;
    expect(spec?.securityContext).toStrictEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(spec?.containers[0]?.securityContext).toStrictEqual(HARDENED);
  });

  it("sets the operator's imagePullPolicy, and none by default", () => {
    expect(buildJob(task, info('{"image": "alpine"}')).spec?.template.spec?.containers[0]?.imagePullPolicy).toBeUndefined();
    expect(buildJob(task, info('{"image": "alpine"}'), { imagePullPolicy: 'Always' }).spec?.template.spec?.containers[0]?.imagePullPolicy).toBe(
      'Always',
    );
  });

  it('does not share the seccomp profile object between pod and container', () => {
    const spec = buildJob(task, info('{"image": "alpine"}')).spec?.template.spec;
    expect(spec?.securityContext?.seccompProfile).not.toBe(spec?.containers[0]?.securityContext?.seccompProfile);
  });
});
