// Baseline for scripts/bench/dispatch.ts: the same number of 2-second Jobs created straight
// through the Kubernetes API (no Temporal, no database), timed until all are Complete. The
// difference to the dispatch benchmark is what nightwatch itself adds.
//   eval "$(npm run -s stack env)"; npm exec -- tsx scripts/bench/cluster-baseline.ts [jobs=200]
import { randomBytes } from 'node:crypto';
import { createKubeClients } from '../../src/kubernetes.ts';

const count = Number(process.argv[2] ?? 200);
const kube = createKubeClients(process.env.KUBECONFIG);
const tag = randomBytes(3).toString('hex');
const names = Array.from({ length: count }, (_, i) => `baseline-${tag}-${i}`);

const t0 = performance.now();
// 20 creates in flight at a time, about what a worker's concurrent activities amount to.
for (let i = 0; i < names.length; i += 20) {
  await Promise.all(
    names.slice(i, i + 20).map((name) =>
      kube.batch.createNamespacedJob({
        namespace: 'default',
        body: {
          metadata: { name, labels: { 'nightwatch.io/benchmark': tag } },
          spec: {
            backoffLimit: 0,
            template: { spec: { restartPolicy: 'Never', containers: [{ name: 'task', image: 'alpine', command: ['true'] }] } },
          },
        },
      }),
    ),
  );
}
const createdMs = performance.now() - t0;
for (;;) {
  const jobs = await kube.batch.listNamespacedJob({ namespace: 'default', labelSelector: `nightwatch.io/benchmark=${tag}` });
  const done = jobs.items.filter((j) => j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')).length;
  if (done === count) break;
  await new Promise((r) => setTimeout(r, 200));
}
const doneMs = performance.now() - t0;
console.log(`jobs                      ${count}`);
console.log(`all created               ${(createdMs / 1000).toFixed(1)} s`);
console.log(`all Complete              ${(doneMs / 1000).toFixed(1)} s`);
await kube.batch.deleteCollectionNamespacedJob({
  namespace: 'default',
  labelSelector: `nightwatch.io/benchmark=${tag}`,
  body: { propagationPolicy: 'Background' },
});
