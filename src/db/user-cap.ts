// The per-user cap on tasks in progress (MAX_TASKS_IN_PROGRESS_PER_USER). A task is in progress
// from the moment it is admitted (its row moves Normal → Pending, before its Job is created) until
// it is final. Admission is atomic per user: a named lock serialises the admissions of one user
// across every replica, and the count is a locking read, so it also sees an admission that was
// made just before and is not committed yet. Two tasks of one user can never both take the last slot.
import type { PrismaClient } from './client.ts';
import { TaskStatus } from '../task-status.ts';

export const IN_PROGRESS: readonly TaskStatus[] = [TaskStatus.Pending, TaskStatus.Running];
/** How long an admission waits for another admission of the same user; past it the task is retried. */
const LOCK_WAIT_SECONDS = 10;

export type Admission =
  /** The row moved Normal → Pending: the task has its slot. */
  | { outcome: 'admitted' }
  /** The user is at the cap: the row stays Normal, with `reason` on it. */
  | { outcome: 'held'; reason: string; inProgress: number }
  /** The row is no longer this attempt's Normal row (deleted, cancelled, retried): nothing was written. */
  | { outcome: 'moved'; current: { status: string; attempt: number } | null };

/** Tasks of `userId` in progress now. */
export async function countInProgress(prisma: PrismaClient, userId: string, statuses: readonly TaskStatus[] = IN_PROGRESS): Promise<number> {
  return prisma.task.count({ where: { userId, status: { in: [...statuses] } } });
}

export function heldReason(userId: string, inProgress: number, cap: number): string {
  return (
    `waiting: user '${userId}' has ${inProgress} ${inProgress === 1 ? 'task' : 'tasks'} in progress, the most allowed at once ` +
    `(MAX_TASKS_IN_PROGRESS_PER_USER=${cap}); this task starts when one of them finishes`
  );
}

/** Take a slot for the task if its user is under `cap`, atomically with respect to every other admission. */
export async function admit(prisma: PrismaClient, task: { id: string; attempt: number; userId: string }, cap: number): Promise<Admission> {
  const lock = `nightwatch-user-cap:${task.userId}`;
  return prisma.$transaction(async (tx) => {
    const [got] = await tx.$queryRaw<{ got: bigint | number | null }[]>`SELECT GET_LOCK(${lock}, ${LOCK_WAIT_SECONDS}) AS got`;
    if (Number(got?.got) !== 1) throw new Error(`another admission for user '${task.userId}' held the lock for ${LOCK_WAIT_SECONDS} s; trying again`);
    try {
      // A locking read: it waits for (and then counts) an admission committed a moment ago.
      const [row] = await tx.$queryRaw<{ n: bigint | number }[]>`
        SELECT COUNT(*) AS n FROM task WHERE user_id = ${task.userId} AND status IN (${TaskStatus.Pending}, ${TaskStatus.Running}) LOCK IN SHARE MODE`;
      const inProgress = Number(row?.n ?? 0);
      const id = BigInt(task.id);
      if (inProgress >= cap) {
        const reason = heldReason(task.userId, inProgress, cap);
        const { count } = await tx.task.updateMany({ where: { id, attempt: task.attempt, status: TaskStatus.Normal }, data: { reason } });
        if (count === 1) return { outcome: 'held', reason, inProgress };
      } else {
        const { count } = await tx.task.updateMany({ where: { id, attempt: task.attempt, status: TaskStatus.Normal }, data: { status: TaskStatus.Pending, reason: null } });
        if (count === 1) return { outcome: 'admitted' };
      }
      const current = await tx.task.findUnique({ where: { id }, select: { status: true, attempt: true } });
      return { outcome: 'moved', current };
    } finally {
      await tx.$queryRaw`SELECT RELEASE_LOCK(${lock})`;
    }
  });
}

/**
 * Of a page of waiting rows (oldest first), those whose users have room now, oldest first per
 * user; the rest get the reason they wait. Only a first cut for the dispatcher: `admit` decides.
 */
export async function withinCaps<T extends { id: string; userId: string }>(prisma: PrismaClient, rows: readonly T[], cap: number): Promise<T[]> {
  const users = [...new Set(rows.map((r) => r.userId))];
  const counts = await prisma.task.groupBy({
    by: ['userId'],
    where: { userId: { in: users }, status: { in: [...IN_PROGRESS] } },
    _count: { _all: true },
  });
  const inProgressOf = new Map(counts.map((c) => [c.userId, c._count._all]));
  const room = new Map(users.map((u) => [u, cap - (inProgressOf.get(u) ?? 0)]));
  const chosen: T[] = [];
  const held = new Map<string, string[]>();
  for (const row of rows) {
    const left = room.get(row.userId) ?? 0;
    if (left > 0) {
      chosen.push(row);
      room.set(row.userId, left - 1);
    } else held.set(row.userId, [...(held.get(row.userId) ?? []), row.id]);
  }
  for (const [userId, ids] of held) {
    // Rows chosen on this page will be in progress too once admitted.
    const reason = heldReason(userId, Math.max(inProgressOf.get(userId) ?? 0, cap), cap);
    await prisma.task.updateMany({
      where: { id: { in: ids.map((id) => BigInt(id)) }, status: TaskStatus.Normal, OR: [{ reason: null }, { reason: { not: reason } }] },
      data: { reason },
    });
  }
  return chosen;
}
