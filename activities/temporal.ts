// Temporal activities: what reconcile needs to know about other workflows.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { taskWorkflowId } from '../workflows/ids.ts';

export function createTemporalActivities(client: Client) {
  return {
    /** The ids among `taskIds` whose task workflow is not running (never started, finished, or terminated). */
    async tasksWithoutRunningWorkflow(input: { taskIds: string[]; idPrefix: string }): Promise<string[]> {
      const orphaned = await Promise.all(
        input.taskIds.map(async (id) => {
          try {
            const { status } = await client.workflow.getHandle(taskWorkflowId(id, input.idPrefix)).describe();
            return status.name === 'RUNNING' ? null : id;
          } catch (err) {
            if (err instanceof WorkflowNotFoundError) return id;
            throw err;
          }
        }),
      );
      return orphaned.filter((id): id is string => id !== null);
    },
  };
}
