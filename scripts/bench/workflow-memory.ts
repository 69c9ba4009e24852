// Benchmark: the live heap one cached task workflow costs in the worker's workflow thread, with the
// workflow modules preloaded (src/worker-setup.ts, WORKFLOW_PRELOAD_MODULES; the default) and
// without (each workflow evaluates its own copy of every module), measured in one run.
//   eval "$(npm run -s stack env)"
//   npm exec -- tsx scripts/bench/workflow-memory.ts [workflows=1000]
// For each bundle: a worker with the real workflow code and stub activities (a task whose Job is
// created and then never changes, so its workflow parks in `follow`, as a long task's does) runs N
// task workflows on the dev server; once all have parked, the workflow thread's heap is measured
// right after a full collection (a heap snapshot forces one) and compared with the same thread's
// heap before them. WF_MEMORY_SNAPSHOT=<prefix> also writes the thread's heap snapshot at that point
// to <prefix>-<preloaded>.heapsnapshot, to see what a cached workflow holds.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { subscribe } from 'node:diagnostics_channel';
import type { Worker as NodeWorker } from 'node:worker_threads';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Activities } from '../../activities/index.ts';
import { createLaunchActivities } from '../../activities/launch.ts';
import { loadConfig } from '../../src/config.ts';
import { temporalConnectionOptions } from '../../src/temporal.ts';
import { bundleWorkflows, sandboxOptions } from '../../src/worker-setup.ts';
import type { TaskWorkflowInput } from '../../workflows/task.ts';

Runtime.install({ logger: new DefaultLogger('WARN') });
const count = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 1000);
const config = loadConfig();
/**
 * Started; workflow task scheduled, started, completed; the launch patch's marker and its search
 * attribute; the launch's marker; the quiet timer.
 */
const PARKED_HISTORY_LENGTH = 8;

const threads = new Set<NodeWorker>();
subscribe('worker_threads', (message) => {
  const { worker } = message as { worker: NodeWorker };
  threads.add(worker);
  worker.once('exit', () => threads.delete(worker));
});

/** The workflow threads' heap in use right after a full collection (MB). */
async function liveHeapMb(): Promise<number> {
  let used = 0;
  for (const thread of threads) {
    // Writing a heap snapshot collects garbage first; the snapshot itself is drained and dropped.
    for await (const _chunk of await thread.getHeapSnapshot()) void _chunk;
    used += (await thread.getHeapStatistics()).used_heap_size;
  }
  return used / 2 ** 20;
}

const steps: Pick<Activities, 'loadTask' | 'createJob' | 'markStatus'> = {
  async loadTask(id) {
    return { id, name: `task-${id}`, namespace: 'default', userId: 'bench', status: 'Normal', attempt: 1, valid: true, info: { image: 'alpine' } as never };
  },
  async createJob() {
    return 'created';
  },
  async markStatus() {
    return { updated: true };
  },
};

async function measure(preload: boolean, client: Client, native: NativeConnection) {
  const { code } = await bundleWorkflows({ logger: new DefaultLogger('WARN'), preload });
  const taskQueue = `wf-memory-${randomBytes(3).toString('hex')}`;
  const worker = await Worker.create({
    connection: native,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue,
    workflowBundle: { code },
    activities: { ...steps, ...createLaunchActivities(steps) },
    maxCachedWorkflows: count + 10,
    // The sandbox as the worker runs it (no stack trace kept per promise, no watchdog per call).
    ...sandboxOptions(config),
  });
  return worker.runUntil(async () => {
    const before = await liveHeapMb();
    // The watch never signals here and the fallback look is an hour away: every workflow parks.
    const input = (id: number): TaskWorkflowInput => ({ taskId: String(id), fallbackAfterMs: 3_600_000 });
    const handles = [];
    for (let id = 1; id <= count; id += 50) {
      const ids = Array.from({ length: Math.min(50, count - id + 1) }, (_, k) => id + k);
      handles.push(
        ...(await Promise.all(
          ids.map((i) => client.workflow.start('taskWorkflow', { workflowId: `${taskQueue}-${i}`, taskQueue, args: [input(i)] })),
        )),
      );
    }
    // Parked: the launch's marker and the quiet timer recorded, no workflow task pending.
    for (const handle of handles) {
      for (;;) {
        const { raw } = await handle.describe();
        if (!raw.pendingWorkflowTask && Number(raw.workflowExecutionInfo?.historyLength?.toString() ?? 0) >= PARKED_HISTORY_LENGTH) break;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const after = await liveHeapMb();
    await Promise.all(handles.map((h) => h.terminate().catch(() => undefined)));
    if (process.env.WF_MEMORY_SNAPSHOT) for (const t of threads) await pipeline(await t.getHeapSnapshot(), createWriteStream(`${process.env.WF_MEMORY_SNAPSHOT}-${preload}.heapsnapshot`));
    return { before, after };
  });
}

const connection = await Connection.connect(temporalConnectionOptions(config));
const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
const native = await NativeConnection.connect(temporalConnectionOptions(config));
const rows: [string, Awaited<ReturnType<typeof measure>>][] = [];
for (const preload of [true, false]) rows.push([preload ? 'preloaded (default)' : 'not preloaded', await measure(preload, client, native)]);
await native.close();
await connection.close();

console.log(`${count} parked task workflows in one worker's cache`);
console.log('workflow modules      | live heap per workflow | workflow thread heap, before → after');
for (const [name, r] of rows) {
  console.log(`${name.padEnd(21)} | ${(((r.after - r.before) * 1024) / count).toFixed(1).padStart(19)} KB | ${r.before.toFixed(1)} → ${r.after.toFixed(1)} MB`);
}
