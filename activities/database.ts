// Database activities: thin adapters over the `task` table. Every status write is
// conditional on the status it expects and on the attempt, so a stale writer (an old
// attempt, a replayed step, a second replica) can never move a row backwards.
import type { PrismaClient } from '../src/db/client.ts';
import { namespaceAllowed, parseTaskInfo, validateNamespaceName, validateTaskName, type TaskInfo } from '../src/task/info.ts';
import { statusesBefore, TaskStatus } from '../src/task-status.ts';

/** A row as workflows see it: ids as strings (bigint is not JSON), no large fields. */
export interface TaskRef {
  id: string;
  name: string;
  namespace: string;
  userId: string;
  status: string;
  attempt: number;
}

export type LoadedTask = TaskRef & ({ valid: true; info: TaskInfo } | { valid: false; reason: string });

export interface StatusWrite {
  taskId: string;
  attempt: number;
  to: TaskStatus;
  reason?: string | null;
}

/** Why a conditional write did not apply: the row is gone, or it moved on (final, or a newer attempt). */
export type StatusWriteResult = { updated: true } | { updated: false; current: { status: string; attempt: number } | null };

const refSelect = { id: true, name: true, namespace: true, userId: true, status: true, attempt: true } as const;
const toRef = (row: { id: bigint } & Omit<TaskRef, 'id'>): TaskRef => ({ ...row, id: row.id.toString() });

/**
 * The namespaces tasks may target (ALLOWED_NAMESPACES). The worker checks it too, not only the
 * API: rows can also come straight into the table (the classic web form, SQL).
 */
export interface NamespacePolicy {
  allowedNamespaces: readonly string[];
}

export function createDatabaseActivities(prisma: PrismaClient, policy: NamespacePolicy) {
  return {
    /** A page of submitted rows, oldest first, for the dispatcher. */
    async listTasksInStatus(input: { statuses: TaskStatus[]; afterId: string; limit: number }): Promise<TaskRef[]> {
      const rows = await prisma.task.findMany({
        where: { status: { in: input.statuses }, id: { gt: BigInt(input.afterId) } },
        orderBy: { id: 'asc' },
        take: input.limit,
        select: refSelect,
      });
      return rows.map(toRef);
    },

    /** The row with its `info` checked; null when the row no longer exists. */
    async loadTask(taskId: string): Promise<LoadedTask | null> {
      const row = await prisma.task.findUnique({ where: { id: BigInt(taskId) } });
      if (!row) return null;
      const ref = toRef(row);
      const problem =
        validateTaskName(row.name) ??
        validateNamespaceName(row.namespace) ??
        (namespaceAllowed(policy.allowedNamespaces, row.namespace)
          ? null
          : `namespace '${row.namespace}' is not open to tasks (ALLOWED_NAMESPACES is ${policy.allowedNamespaces.join(',')}): move the task to one of those namespaces, or ask the operator to allow it`);
      if (problem) return { ...ref, valid: false, reason: problem };
      const parsed = parseTaskInfo(row.info);
      return parsed.ok ? { ...ref, valid: true, info: parsed.info } : { ...ref, valid: false, reason: parsed.reason };
    },

    async markStatus(write: StatusWrite): Promise<StatusWriteResult> {
      const now = new Date();
      const { count } = await prisma.task.updateMany({
        where: { id: BigInt(write.taskId), attempt: write.attempt, status: { in: statusesBefore(write.to) } },
        data: {
          status: write.to,
          reason: write.reason ?? null,
          ...(write.to === TaskStatus.Running ? { startedAt: now } : {}),
          ...(write.to === TaskStatus.Succeeded || write.to === TaskStatus.Failed || write.to === TaskStatus.Cancelled
            ? { finishedAt: now }
            : {}),
        },
      });
      if (count === 1) return { updated: true };
      const current = await prisma.task.findUnique({ where: { id: BigInt(write.taskId) }, select: { status: true, attempt: true } });
      return { updated: false, current };
    },

    /** The ids among `taskIds` whose rows are (still) in one of `statuses`. */
    async tasksStillInStatus(input: { taskIds: string[]; statuses: TaskStatus[] }): Promise<string[]> {
      const rows = await prisma.task.findMany({
        where: { id: { in: input.taskIds.map((id) => BigInt(id)) }, status: { in: input.statuses } },
        select: { id: true },
      });
      return rows.map((r) => r.id.toString());
    },

    /** The row's status and attempt now; null when it was deleted. */
    async taskState(taskId: string): Promise<{ status: string; attempt: number } | null> {
      return prisma.task.findUnique({ where: { id: BigInt(taskId) }, select: { status: true, attempt: true } });
    },

    /** Show (or clear, with null) the last transient error on a row in progress, without moving its status. */
    async recordReason(input: { taskId: string; attempt: number; reason: string | null }): Promise<void> {
      await prisma.task.updateMany({
        where: { id: BigInt(input.taskId), attempt: input.attempt, status: { in: [TaskStatus.Normal, TaskStatus.Pending, TaskStatus.Running] } },
        data: { reason: input.reason?.slice(0, 4000) ?? null },
      });
    },
  };
}
