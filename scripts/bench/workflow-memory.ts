// Benchmark: the live heap one cached task workflow costs in the worker's workflow thread, with the
// workflow modules preloaded (src/worker-setup.ts, WORKFLOW_PRELOAD_MODULES; the default) and
// without (each workflow evaluates its own copy of every module), measured in one run.
//   eval "$(npm run -s stack env)"
//   npm exec -- tsx scripts/bench/workflow-memory.ts [workflows=1000]
// For each bundle: a worker with the real workflow code and stub activities (a task whose Job is
// created and then never changes, so its workflow parks in `follow`, as a long task's does) runs N
// task workflows on the dev server; once all have parked, the workflow thread's heap is measured
// right after a full collection (a heap snapshot forces one) and compared with the same thread's
// heap before them. WF_MEMORY_SNAPSHOT=<prefix> keeps the heap snapshot taken at that point, as
// <prefix>-<preloaded>.heapsnapshot, to see what a cached workflow holds (one workflow thread).
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import type { Activities } from '../../activities/index.ts';
import { createLaunchActivities } from '../../activities/launch.ts';
import { loadConfig } from '../../src/config.ts';
import { temporalConnectionOptions } from '../../src/temporal.ts';
import { bundleWorkflows, sandboxOptions } from '../../src/worker-setup.ts';
import { workflowThreads } from '../../src/workflow-threads.ts';
import type { TaskWorkflowInput } from '../../workflows/task.ts';

Runtime.install({ logger: new DefaultLogger('WARN') });
const count = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 1000);
const config = loadConfig();
/**
 * Started; workflow task scheduled, started, completed; the launch patch's marker and its search
 * attribute; the launch's marker; the quiet timer.
 */
const PARKED_HISTORY_LENGTH = 8;

/**
 * The workflow threads' heap in use right after a full collection (MB). Writing a heap snapshot
 * collects garbage first; the snapshot is written to `keepAs` when given, else drained and dropped.
 */
async function liveHeapMb(keepAs?: string): Promise<number> {
  let used = 0;
  for (const thread of workflowThreads) {
    const snapshot = await thread.getHeapSnapshot();
    if (keepAs) await pipeline(snapshot, createWriteStream(keepAs));
    else for await (const _chunk of snapshot) void _chunk;
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
    const keepAs = process.env.WF_MEMORY_SNAPSHOT && `${process.env.WF_MEMORY_SNAPSHOT}-${preload}.heapsnapshot`;
    const after = await liveHeapMb(keepAs || undefined);
    await Promise.all(handles.map((h) => h.terminate().catch(() => undefined)));
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
