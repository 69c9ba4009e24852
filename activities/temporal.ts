// Temporal activities: what reconcile needs to know about other workflows.
import type { Client } from '@temporalio/client';
import { workflowIsRunning } from '../src/temporal.ts';
import { taskWorkflowId } from '../workflows/ids.ts';

export function createTemporalActivities(client: Client) {
  return {
    /** The ids among `taskIds` whose task workflow is not running (never started, finished, or terminated). */
    async tasksWithoutRunningWorkflow(input: { taskIds: string[]; idPrefix: string }): Promise<string[]> {
      const running = await Promise.all(
        input.taskIds.map((id) => workflowIsRunning(client, taskWorkflowId(id, input.idPrefix))),
      );
      return input.taskIds.filter((_, i) => !running[i]);
    },
  };
}
