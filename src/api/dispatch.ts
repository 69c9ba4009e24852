// The API's fast path into Temporal (ARCHITECTURE.md, "start workflow task-<id> at once"): the
// workflow starts as soon as the row is written instead of at the dispatcher's next tick. Every
// call is bounded by a deadline, so a slow or absent Temporal delays a request by seconds, not forever.
import type { Client } from '@temporalio/client';
import type { Config } from '../config.ts';
import { workflowIsRunning } from '../temporal.ts';
import { taskWorkflowStart } from '../../workflows/ids.ts';
import { cancelSignal, taskWorkflow } from '../../workflows/task.ts';

/** Temporal answers a start or a signal in milliseconds; past this it is unreachable for now. */
const TEMPORAL_CALL_DEADLINE_MS = 5_000;
/**
 * A task's row turns final in the last step of its workflow, so a retry can arrive while that run
 * is closing. Waiting this long for it to close is ample; see startTaskWorkflow.
 */
const PREVIOUS_RUN_CLOSE_WAIT_MS = 5_000;

export interface DispatchDeps {
  config: Config;
  client: Client;
}

export interface TaskIdentity {
  id: bigint;
  name: string;
  namespace: string;
  userId: string;
}

const withDeadline = <T>(client: Client, fn: () => Promise<T>) => client.withDeadline(Date.now() + TEMPORAL_CALL_DEADLINE_MS, fn);

function workflowOptions(deps: DispatchDeps, task: TaskIdentity) {
  return {
    ...taskWorkflowStart({ ...task, id: task.id.toString() }, deps.config.WORKFLOW_ID_PREFIX),
    taskQueue: deps.config.TEMPORAL_TASK_QUEUE,
    // The dispatcher may have started it already; that run owns the task, and that is fine.
    workflowIdConflictPolicy: 'USE_EXISTING' as const,
  };
}

/**
 * Start task-<id> for a row in status Normal. `afterFinalRun` (a retry): the previous attempt's run
 * may still be closing after writing the final status; USE_EXISTING would attach to that run, which
 * ends without running the new attempt, so wait for it to close first.
 */
export async function startTaskWorkflow(deps: DispatchDeps, task: TaskIdentity, options: { afterFinalRun?: boolean } = {}): Promise<void> {
  const opts = workflowOptions(deps, task);
  if (options.afterFinalRun) await waitForRunToClose(deps.client, opts.workflowId);
  await withDeadline(deps.client, () => deps.client.workflow.start(taskWorkflow, opts));
}

/** Ask task-<id> to cancel, starting it if no run is open (a Normal row not dispatched yet cancels without a Job). */
export async function signalCancel(deps: DispatchDeps, task: TaskIdentity, reason: string | undefined): Promise<void> {
  const opts = workflowOptions(deps, task);
  await withDeadline(deps.client, () =>
    deps.client.workflow.signalWithStart(taskWorkflow, { ...opts, signal: cancelSignal, signalArgs: [reason === undefined ? {} : { reason }] }),
  );
}

async function waitForRunToClose(client: Client, workflowId: string): Promise<void> {
  const handle = client.workflow.getHandle(workflowId);
  if (!(await isRunning(client, workflowId))) return;
  await client
    .withDeadline(Date.now() + PREVIOUS_RUN_CLOSE_WAIT_MS, () => handle.result())
    // How the previous run ended does not matter, only whether it has.
    .catch(() => undefined);
  if (await isRunning(client, workflowId)) {
    throw new Error(
      `${workflowId}: the previous attempt's run is still open after ${PREVIOUS_RUN_CLOSE_WAIT_MS / 1000} s; ` +
        'the dispatcher starts the new attempt once it has closed',
    );
  }
}

function isRunning(client: Client, workflowId: string): Promise<boolean> {
  return withDeadline(client, () => workflowIsRunning(client, workflowId));
}
