// Activities of recurring tasks (issue 9): write a run's `task` row from its template, and cancel
// runs that an overlap policy replaces.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { ScheduleNotFoundError, type Client } from '@temporalio/client';
import type { PrismaClient } from '../src/db/client.ts';
import { Prisma } from '../src/generated/prisma/client.ts';
import { runName } from '../src/recurring/timing.ts';
import { FINAL_STATUSES, TaskStatus } from '../src/task-status.ts';
import { taskWorkflowStart } from '../workflows/ids.ts';
import type { TaskRef } from './database.ts';

export interface RecurringRun {
  task: TaskRef;
  /** False when the row already existed: a retried activity, or a time run before (backfill). */
  created: boolean;
  /** The Schedule's overlap policy now (null for a fixed delay, or when the Schedule is gone). */
  overlap: string | null;
}

const refOf = (row: { id: bigint; name: string; namespace: string; userId: string; status: string; attempt: number }): TaskRef => ({
  id: row.id.toString(),
  name: row.name,
  namespace: row.namespace,
  userId: row.userId,
  status: row.status,
  attempt: row.attempt,
});

export function createRecurringActivities(prisma: PrismaClient, client: Client) {
  return {
    /**
     * The `task` row of the run of recurring task `recurringTaskId` scheduled at `scheduledAt`, named
     * `<name>-<yyyymmdd>-<hhmmss>`. Idempotent through the unique (name, namespace) key: a retried
     * or repeated call finds the row the first one wrote. Null when the recurring task was deleted.
     */
    async createRecurringRun(input: { recurringTaskId: string; scheduledAt: string; scheduleId?: string | null }): Promise<RecurringRun | null> {
      const template = await prisma.recurringTask.findUnique({ where: { id: BigInt(input.recurringTaskId) } });
      if (!template) return null;
      const name = runName(template.name, new Date(input.scheduledAt));
      const overlap = input.scheduleId ? await scheduleOverlap(client, input.scheduleId) : null;
      try {
        const row = await prisma.task.create({
          data: {
            name,
            namespace: template.namespace,
            info: template.info,
            userId: template.userId,
            status: TaskStatus.Normal,
            recurringTaskId: template.id,
          },
        });
        return { task: refOf(row), created: true, overlap };
      } catch (err) {
        if (!(err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002')) throw err;
      }
      const existing = await prisma.task.findUnique({ where: { name_namespace: { name, namespace: template.namespace } } });
      if (existing && existing.recurringTaskId === template.id) return { task: refOf(existing), created: false, overlap };
      throw ApplicationFailure.nonRetryable(
        existing
          ? `a task named '${name}' already exists in namespace '${template.namespace}' and is not a run of recurring task ${template.id}: rename that task or the recurring task`
          : `the task '${name}' in namespace '${template.namespace}' conflicted and then vanished; the run is skipped`,
        'RunNameTaken',
      );
    },

    /** Runs of the recurring task older than `beforeTaskId` that are not final (what an overlap policy replaces). */
    async unfinishedEarlierRuns(input: { recurringTaskId: string; beforeTaskId: string }): Promise<string[]> {
      const rows = await prisma.task.findMany({
        where: { recurringTaskId: BigInt(input.recurringTaskId), id: { lt: BigInt(input.beforeTaskId) }, status: { notIn: [...FINAL_STATUSES] } },
        select: { id: true },
        orderBy: { id: 'asc' },
        take: 100,
      });
      return rows.map((r) => r.id.toString());
    },

    /**
     * Ask the task workflows of these rows to cancel (delete the Job, write Cancelled), starting one
     * where none runs, as POST /tasks/:id/cancel does. Final rows ignore it.
     */
    async cancelRunTasks(input: { taskIds: string[]; idPrefix: string; reason: string }): Promise<void> {
      const { taskQueue } = Context.current().info;
      const rows = await prisma.task.findMany({ where: { id: { in: input.taskIds.map((id) => BigInt(id)) }, status: { notIn: [...FINAL_STATUSES] } } });
      await Promise.all(
        rows.map((row) =>
          client.workflow.signalWithStart('taskWorkflow', {
            ...taskWorkflowStart(refOf(row), input.idPrefix),
            taskQueue,
            signal: 'cancel',
            signalArgs: [{ reason: input.reason }],
          }),
        ),
      );
    },
  };
}

async function scheduleOverlap(client: Client, scheduleId: string): Promise<string | null> {
  try {
    return (await client.schedule.getHandle(scheduleId).describe()).policies.overlap ?? null;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return null;
    throw err;
  }
}
