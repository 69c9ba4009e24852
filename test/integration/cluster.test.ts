// The Kubernetes part of the local stack: Jobs run through the real job controller,
// scheduler and garbage collector, with KWOK playing the kubelet on fake nodes.
import { randomBytes } from 'node:crypto';
import type { V1Job } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClients, type KubeClients } from '../../src/kubernetes.ts';
import { testConfig, waitFor } from '../support/stack.ts';

let kube: KubeClients;
const created: string[] = [];

beforeAll(() => {
  kube = createKubeClients(testConfig().KUBECONFIG);
});
afterAll(async () => {
  await Promise.all(
    created.map((name) =>
      kube.batch.deleteNamespacedJob({ name, namespace: 'default', propagationPolicy: 'Background' }).catch(() => undefined),
    ),
  );
});

function job(podAnnotations: Record<string, string> = {}): V1Job {
  const name = `stack-${randomBytes(4).toString('hex')}`;
  created.push(name);
  return {
    metadata: { name, namespace: 'default' },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { annotations: { 'nightwatch.io/kwok-run-duration': '500ms', ...podAnnotations } },
        spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'alpine', command: ['true'] }] },
      },
    },
  };
}

const condition = (j: V1Job, type: string) => j.status?.conditions?.find((c) => c.type === type && c.status === 'True');
const podsOf = (name: string) =>
  kube.core.listNamespacedPod({ namespace: 'default', labelSelector: `job-name=${name}` }).then((l) => l.items);

describe('local Kubernetes cluster', () => {
  it('runs a Job to Complete', async () => {
    const { metadata } = await kube.batch.createNamespacedJob({ namespace: 'default', body: job() });
    const done = await waitFor('the Job to complete', async () => {
      const j = await kube.batch.readNamespacedJob({ name: metadata!.name!, namespace: 'default' });
      return condition(j, 'Complete') ? j : undefined;
    });
    expect(done.status?.succeeded).toBe(1);
    const pods = await podsOf(metadata!.name!);
    expect(pods.map((p) => p.status?.phase)).toEqual(['Succeeded']);
    expect(pods[0]!.spec?.nodeName).toMatch(/^kwok-node-/);
  });

  it('fails a Job whose pod is annotated to fail', async () => {
    const { metadata } = await kube.batch.createNamespacedJob({
      namespace: 'default',
      body: job({ 'nightwatch.io/kwok-outcome': 'fail' }),
    });
    const failed = await waitFor('the Job to fail', async () => {
      const j = await kube.batch.readNamespacedJob({ name: metadata!.name!, namespace: 'default' });
      return condition(j, 'Failed') ? j : undefined;
    });
    expect(condition(failed, 'Failed')?.reason).toBe('BackoffLimitExceeded');
    expect(condition(failed, 'Complete')).toBeUndefined();
  });

  it('removes the pods of a Job deleted with background propagation', async () => {
    const body = job({ 'nightwatch.io/kwok-run-duration': '1h' });
    const name = body.metadata!.name!;
    await kube.batch.createNamespacedJob({ namespace: 'default', body });
    await waitFor('the pod to run', async () => ((await podsOf(name)).some((p) => p.status?.phase === 'Running') ? true : undefined));
    await kube.batch.deleteNamespacedJob({ name, namespace: 'default', propagationPolicy: 'Background' });
    await waitFor('the pods to be gone', async () => ((await podsOf(name)).length === 0 ? true : undefined));
    await expect(kube.batch.readNamespacedJob({ name, namespace: 'default' })).rejects.toMatchObject({ code: 404 });
  });
});
