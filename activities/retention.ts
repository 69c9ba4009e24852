// Retention activities: rows final (Succeeded, Failed, Cancelled) for longer than RETENTION_AFTER leave
// `task`, deleted or moved to `task_archive`, a small batch per call (workflows/retention.ts loops and
// pauses between batches). Each batch is picked oldest first from the (finished_at, status) index
// without locking anything, then removed by primary key in one short statement (delete) or one short
// transaction (archive) that re-checks every condition, so a row retried meanwhile (Normal again,
// finished_at cleared) stays. A final row's task workflow has closed and nothing follows its Job any
// more, so removing the row never touches Kubernetes.
import { log } from '@temporalio/activity';
import type { Config } from '../src/config.ts';
import type { PrismaClient } from '../src/db/client.ts';
import { Prisma } from '../src/generated/prisma/client.ts';
import { FINAL_STATUSES } from '../src/task-status.ts';

export type RetentionMode = 'archive' | 'delete';

/** The worker's retention settings (RETENTION_*); `afterMs` null means retention is off. */
export interface RetentionSettings {
  afterMs: number | null;
  mode: RetentionMode;
  dryRun: boolean;
  batchSize: number;
  pauseMs: number;
}

export const RETENTION_OFF: RetentionSettings = { afterMs: null, mode: 'archive', dryRun: false, batchSize: 500, pauseMs: 1_000 };

export function retentionSettings(config: Config): RetentionSettings {
  return {
    afterMs: config.RETENTION_AFTER ?? null,
    mode: config.RETENTION_MODE,
    dryRun: config.RETENTION_DRY_RUN,
    batchSize: config.RETENTION_BATCH_SIZE,
    pauseMs: config.RETENTION_BATCH_PAUSE,
  };
}

/** One run's plan: the settings fixed, and the cutoff computed once, so every batch of the run agrees. */
export interface RetentionPlan {
  /** ISO time: rows finished before it go. */
  cutoff: string;
  mode: RetentionMode;
  dryRun: boolean;
  batchSize: number;
  pauseMs: number;
}

export interface RetentionBatch {
  /** Rows the batch picked; fewer than the batch size means nothing older is left. */
  picked: number;
  /** Rows it removed (or moved): fewer than picked when some were retried meanwhile. */
  removed: number;
}

const final = Prisma.join([...FINAL_STATUSES]);

export function createRetentionActivities(prisma: PrismaClient, settings: RetentionSettings) {
  /** Ids of the oldest rows past the cutoff: a range of the (finished_at, status) index, no row read, no lock taken. */
  async function pick(cutoff: Date, limit: number): Promise<bigint[]> {
    const rows = await prisma.$queryRaw<{ id: bigint }[]>`
      SELECT id FROM task WHERE finished_at < ${cutoff} AND status IN (${final}) ORDER BY finished_at LIMIT ${limit}`;
    return rows.map((r) => BigInt(r.id));
  }

  /**
   * Every column of `task`, to copy by name. A column that task_archive lacks stops archiving (the
   * run fails, saying which) rather than archive rows without it: the migration that adds a column
   * to task adds it to task_archive too.
   */
  async function archiveColumns(): Promise<string> {
    const rows = await prisma.$queryRaw<{ t: string; c: string }[]>`
      SELECT table_name AS t, column_name AS c FROM information_schema.columns
      WHERE table_schema = DATABASE() AND table_name IN ('task', 'task_archive') ORDER BY ordinal_position`;
    const task = rows.filter((r) => r.t === 'task').map((r) => r.c);
    const archive = new Set(rows.filter((r) => r.t === 'task_archive').map((r) => r.c));
    const missing = task.filter((c) => !archive.has(c));
    if (archive.size === 0 || missing.length > 0) {
      throw new Error(
        `task_archive lacks ${archive.size === 0 ? 'everything (apply the migrations)' : `column(s) ${missing.join(', ')} of task`}: nothing archived. ` +
          'Add them to task_archive with a migration, or set RETENTION_MODE=delete',
      );
    }
    return task.map((c) => `\`${c}\``).join(', ');
  }

  return {
    /** This worker's settings as a plan for one run; null when RETENTION_AFTER is unset (retention off). */
    async retentionPlan(): Promise<RetentionPlan | null> {
      if (settings.afterMs === null) return null;
      const { afterMs, ...rest } = settings;
      return { ...rest, cutoff: new Date(Date.now() - afterMs).toISOString() };
    },

    /** How many rows a run with this cutoff would remove now (the dry run): one read of the index. */
    async countRetainable(input: { cutoff: string }): Promise<number> {
      const [row] = await prisma.$queryRaw<{ n: bigint | number }[]>`
        SELECT COUNT(*) AS n FROM task WHERE finished_at < ${new Date(input.cutoff)} AND status IN (${final})`;
      const n = Number(row?.n ?? 0);
      log.info(`retention dry run: ${n} rows finished before ${input.cutoff} would be ${settings.mode === 'delete' ? 'deleted' : 'archived'}`, {
        rows: n,
        cutoff: input.cutoff,
      });
      return n;
    },

    /** Remove (or move to task_archive) up to `batchSize` of the oldest rows past the cutoff. */
    async removeRetainable(input: { cutoff: string; mode: RetentionMode; batchSize: number }): Promise<RetentionBatch> {
      const cutoff = new Date(input.cutoff);
      const ids = await pick(cutoff, input.batchSize);
      if (ids.length === 0) return { picked: 0, removed: 0 };
      const still = Prisma.sql`id IN (${Prisma.join(ids)}) AND finished_at < ${cutoff} AND status IN (${final})`;
      if (input.mode === 'delete') {
        const removed = await prisma.$executeRaw`DELETE FROM task WHERE ${still}`;
        return { picked: ids.length, removed };
      }
      // Lock exactly these rows by primary key (no range, no gap), copy them, delete them: a few
      // milliseconds of locks on rows nobody else writes, and a row is in one table or the other.
      const columns = Prisma.raw(await archiveColumns());
      const removed = await prisma.$transaction(async (tx) => {
        const locked = await tx.$queryRaw<{ id: bigint }[]>`SELECT id FROM task WHERE ${still} FOR UPDATE`;
        if (locked.length === 0) return 0;
        const these = Prisma.join(locked.map((r) => BigInt(r.id)));
        await tx.$executeRaw`
          INSERT INTO task_archive (${columns}, archived_at)
          SELECT ${columns}, UTC_TIMESTAMP(3) FROM task WHERE id IN (${these})`;
        return tx.$executeRaw`DELETE FROM task WHERE id IN (${these})`;
      });
      return { picked: ids.length, removed };
    },
  };
}
