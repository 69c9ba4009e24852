// Database activities: thin adapters over the `task` table. Every status write is
// conditional on the status it expects and on the attempt, so a stale writer (an old
// attempt, a replayed step, a second replica) can never move a row backwards.
import type { PrismaClient } from '../src/db/client.ts';
import { checkInfoAgainstPolicy, namespaceProblem, type Policy } from '../src/policy.ts';
import { parseTaskInfo, validateNamespaceName, validateTaskName, type TaskInfo } from '../src/task/info.ts';
import { statusesBefore, TaskStatus } from '../src/task-status.ts';
import { taskTransitions } from '../src/metrics.ts';

/** What the worker measures around status writes (activities/index.ts wires it to the metrics). */
export interface DatabaseHooks {
  /** A final status was written to the row now (for the time since its Job ended). */
  onFinal?: (taskId: string, at: Date) => void;
}

/** A row as workflows see it: ids as strings (bigint is not JSON), no large fields. */
export interface TaskRef {
  id: string;
  name: string;
  namespace: string;
  userId: string;
  status: string;
  attempt: number;
}

export type LoadedTask = TaskRef & {
  /** Set when a per-user cap is configured: the task must be admitted first (activities/admission.ts). */
  capped?: true;
} & ({ valid: true; info: TaskInfo } | { valid: false; reason: string });

export interface StatusWrite {
  taskId: string;
  attempt: number;
  to: TaskStatus;
  reason?: string | null;
}

/** Why a conditional write did not apply: the row is gone, or it moved on (final, or a newer attempt). */
export type StatusWriteResult = { updated: true } | { updated: false; current: { status: string; attempt: number } | null };

const refSelect = { id: true, name: true, namespace: true, userId: true, status: true, attempt: true } as const;
const toRef = (row: { id: bigint } & Omit<TaskRef, 'id'>): TaskRef => {
  // A whole row also has recurring_task_id, a bigint, which an activity's (JSON) result cannot carry.
  const { recurringTaskId: _, ...rest } = row as typeof row & { recurringTaskId?: unknown };
  return { ...rest, id: row.id.toString() };
};

/**
 * The operator's policy (src/policy.ts). The worker checks it too, not only the API: rows can also
 * come straight into the table (the classic web form, SQL), and it applies the policy's defaults.
 */
export function createDatabaseActivities(prisma: PrismaClient, policy: Policy, hooks: DatabaseHooks = {}) {
  return {
    /**
     * A page of rows in any of `statuses`, oldest first: the dispatcher's (Normal) and reconcile's
     * (Pending, Running). One query per status, each a range of the (status, id) index read in
     * order, merged here: `status IN (a, b) ORDER BY id` would sort every row in progress, or walk
     * the primary key through all the finished ones (issue 11; test/integration/query-plans.test.ts).
     */
    async listTasksInStatus(input: { statuses: TaskStatus[]; afterId: string; limit: number }): Promise<TaskRef[]> {
      const pages = await Promise.all(
        [...new Set(input.statuses)].map((status) =>
          prisma.task.findMany({
            where: { status, id: { gt: BigInt(input.afterId) } },
            orderBy: { id: 'asc' },
            take: input.limit,
            select: refSelect,
          }),
        ),
      );
      const rows = pages.length === 1 ? pages[0]! : pages.flat().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).slice(0, input.limit);
      return rows.map(toRef);
    },

    /**
     * The row with its name, namespace and `info` checked, against the schema and the operator's
     * policy, and `info` with the policy's defaults applied (what the Job is built from); null when
     * the row no longer exists.
     */
    async loadTask(taskId: string): Promise<LoadedTask | null> {
      const row = await prisma.task.findUnique({ where: { id: BigInt(taskId) } });
      if (!row) return null;
      const ref = toRef(row);
      const problem = validateTaskName(row.name) ?? validateNamespaceName(row.namespace) ?? namespaceProblem(policy, row.namespace);
      if (problem) return { ...ref, valid: false, reason: problem };
      const parsed = parseTaskInfo(row.info);
      if (!parsed.ok) return { ...ref, valid: false, reason: parsed.reason };
      const checked = checkInfoAgainstPolicy(policy, parsed.info);
      return checked.ok ? { ...ref, valid: true, info: checked.info } : { ...ref, valid: false, reason: checked.reason.slice(0, 4000) };
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
      if (count === 1) {
        taskTransitions.labels({ to: write.to }).inc();
        if (write.to === TaskStatus.Succeeded || write.to === TaskStatus.Failed || write.to === TaskStatus.Cancelled) hooks.onFinal?.(write.taskId, now);
        return { updated: true };
      }
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
