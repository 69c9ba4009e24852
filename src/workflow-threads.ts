// The Temporal SDK's workflow threads in this process: the isolates that hold every cached workflow.
// The SDK creates them itself, so they are caught as they are created, through Node's
// `worker_threads` diagnostics channel (the metrics read their heaps on each scrape; the
// workflow-memory benchmark measures them). Import this module before the worker is created.
import { subscribe } from 'node:diagnostics_channel';
import type { Worker } from 'node:worker_threads';

const threads = new Set<Worker>();
subscribe('worker_threads', (message) => {
  const { worker } = message as { worker: Worker };
  threads.add(worker);
  worker.once('exit', () => threads.delete(worker));
});

export const workflowThreads: ReadonlySet<Worker> = threads;
