// dispatchPartitionWorkflow: one page of submitted rows, handed over by the dispatcher, whose task
// workflows it starts as its own children. Fanning out through partitions spreads the child
// starts (each an event pair in the parent's history) over many small histories that the server
// works on in parallel, instead of serialising every start through the one dispatcher run.
import type { TaskRef } from '../activities/index.ts';
import { startTaskWorkflow } from './start-task.ts';

export interface PartitionInput {
  /** The rows to start, in id order; at most DISPATCH_PAGE_SIZE, far below the 2,000 pending-children limit. */
  tasks: TaskRef[];
  idPrefix: string;
}

export interface PartitionTotals {
  started: number;
  alreadyRunning: number;
}

export async function dispatchPartitionWorkflow(input: PartitionInput): Promise<PartitionTotals> {
  // All starts go out in one workflow task; each child is abandoned, so it outlives this partition.
  const results = await Promise.all(input.tasks.map((task) => startTaskWorkflow(task, input.idPrefix)));
  const started = results.filter((r) => r === 'started').length;
  return { started, alreadyRunning: results.length - started };
}
