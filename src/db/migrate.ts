// Applies prisma/migrations to MySQL/MariaDB without Prisma's schema engine, which cannot run
// offline here. It keeps `_prisma_migrations` the way Prisma Migrate's MySQL connector does
// (prisma-engines: schema-engine/core/src/commands/apply_migrations.rs,
// sql-schema-connector/src/sql_migration_persistence.rs and flavour/mysql.rs), so
// `prisma migrate deploy/status/resolve` on a machine with network access accept the same database.
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import mariadb, { type Connection } from 'mariadb';
import { BASELINE_MIGRATION, inspectClassic, upgradeClassic } from './classic.ts';
import { connectionOptions } from './client.ts';

export interface MigrateResult {
  /** Migrations applied by this run, in order. */
  applied: string[];
  /** Local migrations the database already had. */
  alreadyApplied: string[];
  /** What taking over a classic nightwatch database did, step by step (src/db/classic.ts); absent otherwise. */
  takeover?: string[];
}

export interface MigrateOptions {
  /** Told each step of a classic takeover as it is done (the CLI prints them). */
  log?: (line: string) => void;
}

/**
 * A migration history problem. `code` is Prisma's error code where Prisma has one for the same
 * condition (P3005, P3009, P3015, P3018, P3019), so the message can be looked up in its docs.
 */
export class MigrationError extends Error {
  override name = 'MigrationError';
  readonly code: string;
  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

const MIGRATIONS_TABLE = '_prisma_migrations';
// Prisma's MySQL connector takes this server-wide named lock, with this timeout in seconds, so
// this runner and `prisma migrate` never apply migrations at the same time.
const LOCK_NAME = 'prisma_migrate';
const LOCK_TIMEOUT_SECONDS = 10;

// Byte for byte the DDL of Prisma's MySQL connector (create_migrations_table).
const CREATE_MIGRATIONS_TABLE = `CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             DATETIME(3),
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          DATETIME(3),
    started_at              DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    applied_steps_count     INTEGER UNSIGNED NOT NULL DEFAULT 0
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
`;

interface LocalMigration {
  name: string;
  script: string;
  checksum: string;
}

/** A row of `_prisma_migrations`, as Prisma Migrate writes it. */
export interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: string | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: string | null;
  started_at: string;
  applied_steps_count: number;
}

export async function migrate(databaseUrl: string, migrationsDir = 'prisma/migrations', options: MigrateOptions = {}): Promise<MigrateResult> {
  const local = await readMigrations(migrationsDir);
  const { database, ...server } = connectionOptions(databaseUrl);
  if (!database) {
    throw new MigrationError(
      `the database URL for ${server.host}:${server.port} names no database; add one as its path, e.g. mysql://${server.host}:${server.port}/nightwatch`,
      'invalid-url',
    );
  }

  // dateStrings: timestamps are UTC (Prisma writes chrono::Utc::now()); keep them as stored
  // rather than letting the driver shift them into the local time zone.
  const conn = await mariadb.createConnection({ ...server, multipleStatements: true, dateStrings: true });
  try {
    // Like `prisma migrate deploy`, which creates a missing database before migrating it.
    await conn.query(`CREATE DATABASE IF NOT EXISTS ${quoteId(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await conn.query(`USE ${quoteId(database)}`);
    await acquireLock(conn, database);
    try {
      return await applyPending(conn, database, local, options.log ?? (() => undefined));
    } finally {
      // Ending the session would release it too; failing here must not hide the real error.
      await conn.query('SELECT RELEASE_LOCK(?)', [LOCK_NAME]).catch(() => undefined);
    }
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}

async function applyPending(conn: Connection, database: string, local: LocalMigration[], log: (line: string) => void): Promise<MigrateResult> {
  const takeover = await ensureMigrationsTable(conn, database, local, log);
  const rows: MigrationRow[] = await conn.query(
    `SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at FROM ${MIGRATIONS_TABLE} ORDER BY started_at`,
  );
  // Rows marked rolled back (`prisma migrate resolve --rolled-back`) no longer count for anything.
  const live = rows.filter((r) => r.rolled_back_at === null);

  const failed = live.filter((r) => r.finished_at === null);
  if (failed.length > 0) {
    const details = failed
      .map((r) => {
        const logs = r.logs?.trim() ? ` with the following logs:\n${r.logs.trim()}` : '';
        return `The \`${r.migration_name}\` migration started at ${r.started_at} UTC failed${logs}`;
      })
      .join('\n');
    const names = failed.map((r) => r.migration_name).join(', ');
    throw new MigrationError(
      `database \`${database}\` has failed migrations (${names}); new migrations will not be applied (Prisma P3009).\n${details}\n` +
        `To recover: undo what the failed migration changed, then mark it rolled back ` +
        `(\`prisma migrate resolve --rolled-back <name>\`, or offline: UPDATE ${MIGRATIONS_TABLE} SET rolled_back_at = UTC_TIMESTAMP(3) ` +
        `WHERE migration_name = '<name>' AND finished_at IS NULL) and run the migrations again. ` +
        `If you completed it by hand instead, use \`prisma migrate resolve --applied <name>\`.`,
      'P3009',
    );
  }

  // `prisma migrate deploy` itself does not check these two; `migrate dev` and `migrate status`
  // do. Refusing here stops a deploy from building on a history that no longer matches the files.
  const localByName = new Map(local.map((m) => [m.name, m]));
  const missing = live.filter((r) => !localByName.has(r.migration_name)).map((r) => r.migration_name);
  if (missing.length > 0) {
    throw new MigrationError(
      `database \`${database}\` has migrations applied that are missing from the local migrations directory: ${missing.join(', ')}. ` +
        `Restore them from version control, or check that this is the right database and migrations directory.`,
      'missing-locally',
    );
  }
  const modified = live
    .filter((r) => !scriptMatchesChecksum(localByName.get(r.migration_name)!.script, r.checksum))
    .map((r) => r.migration_name);
  if (modified.length > 0) {
    throw new MigrationError(
      `migration ${modified.join(', ')} was modified after it was applied to database \`${database}\` ` +
        `(its migration.sql no longer matches the checksum in ${MIGRATIONS_TABLE}). ` +
        `Restore the original file and put the change in a new migration.`,
      'modified',
    );
  }

  const appliedNames = new Set(live.map((r) => r.migration_name));
  const result: MigrateResult = { applied: [], alreadyApplied: [], ...(takeover && { takeover }) };
  for (const migration of local) {
    if (appliedNames.has(migration.name)) {
      result.alreadyApplied.push(migration.name);
      continue;
    }
    await applyOne(conn, database, migration);
    result.applied.push(migration.name);
  }
  return result;
}

async function applyOne(conn: Connection, database: string, migration: LocalMigration): Promise<void> {
  const id = randomUUID();
  // The same writes, in the same order, as Prisma's record_migration_started,
  // record_successful_step / record_failed_step and record_migration_finished.
  await conn.query(
    `INSERT INTO ${MIGRATIONS_TABLE} (id, checksum, started_at, migration_name) VALUES (?, ?, UTC_TIMESTAMP(3), ?)`,
    [id, migration.checksum, migration.name],
  );
  try {
    // MySQL DDL commits implicitly, so a failure part-way leaves the earlier statements applied;
    // the failed row makes the next run stop until someone has looked at it.
    await conn.query(migration.script);
  } catch (err) {
    const { code, text } = describeSqlError(err);
    const logs =
      'A migration failed to apply. New migrations cannot be applied before the error is recovered from. ' +
      'Read more about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve\n\n' +
      `Migration name: ${migration.name}\n\nDatabase error code: ${code}\n\nDatabase error:\n${text}\n`;
    await conn.query(`UPDATE ${MIGRATIONS_TABLE} SET logs = ? WHERE id = ?`, [logs, id]);
    throw new MigrationError(
      `migration ${migration.name} failed to apply to database \`${database}\` (error ${code}): ${text}\n` +
        `It is recorded as failed in ${MIGRATIONS_TABLE}, so later runs refuse to migrate until it is resolved ` +
        `(see https://pris.ly/d/migrate-resolve).`,
      'P3018',
      { cause: err },
    );
  }
  await conn.query(`UPDATE ${MIGRATIONS_TABLE} SET applied_steps_count = applied_steps_count + 1 WHERE id = ?`, [id]);
  await conn.query(`UPDATE ${MIGRATIONS_TABLE} SET finished_at = UTC_TIMESTAMP(3) WHERE id = ?`, [id]);
}

/** Creates the migrations table where there is none; a classic nightwatch database is upgraded and baselined first (returns its steps). */
async function ensureMigrationsTable(
  conn: Connection,
  database: string,
  local: LocalMigration[],
  log: (line: string) => void,
): Promise<string[] | undefined> {
  const tables: { name: string }[] = await conn.query(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'`,
    [database],
  );
  if (tables.some((t) => t.name === MIGRATIONS_TABLE)) return undefined;
  if (tables.length === 0) {
    await conn.query(CREATE_MIGRATIONS_TABLE);
    return undefined;
  }
  // Prisma refuses to start a history on a database that already has tables: the first
  // migration would collide with them. A classic nightwatch database is the one exception this
  // runner knows: it is upgraded to the first migration's shape and that migration baselined.
  const names = tables.map((t) => t.name).sort();
  const shape = await inspectClassic(conn, database, names);
  const baseline = local.find((m) => m.name === BASELINE_MIGRATION);
  if (shape.kind === 'unknown' || !baseline) {
    const why = !baseline
      ? `the local migrations do not include ${BASELINE_MIGRATION}, the baseline of a classic nightwatch database`
      : names.includes('task')
        ? `it is not a classic nightwatch database as this runner knows it: ${shape.kind === 'unknown' ? shape.differences.join('; ') : ''}`
        : '';
    throw new MigrationError(
      `database \`${database}\` already has tables (${names.join(', ')}) but no ${MIGRATIONS_TABLE} table, ` +
        `so it was not created by these migrations (Prisma P3005)${why ? `, and ${why}` : ''}. If its schema matches them, baseline it with ` +
        `\`prisma migrate resolve --applied <migration>\` for each migration it already has (https://pris.ly/d/migrate-baseline); ` +
        `otherwise point DATABASE_URL at an empty database.`,
      'P3005',
    );
  }
  const steps =
    shape.kind === 'classic'
      ? await upgradeClassic(conn, database, shape, log).catch((err: unknown) => {
          if (err instanceof MigrationError) throw err;
          const { code, text } = describeSqlError(err);
          const sqlCode = code === 'none' ? '' : ` (error ${code})`;
          throw new MigrationError(`taking over the classic nightwatch database \`${database}\` failed${sqlCode}: ${text}; nothing was changed or recorded`, 'classic-takeover', { cause: err });
        })
      : [];
  if (shape.kind === 'baseline') {
    const line = `database \`${database}\` holds a \`task\` table already in the shape of ${BASELINE_MIGRATION} and no ${MIGRATIONS_TABLE} (an interrupted takeover): recording the baseline`;
    steps.push(line);
    log(line);
  }
  await conn.query(CREATE_MIGRATIONS_TABLE);
  // As `prisma migrate resolve --applied` records a migration (mark_migration_applied): started and
  // finished now, no steps run.
  await conn.query(
    `INSERT INTO ${MIGRATIONS_TABLE} (id, checksum, started_at, finished_at, migration_name, applied_steps_count) ` +
      `VALUES (?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), ?, 0)`,
    [randomUUID(), baseline.checksum, baseline.name],
  );
  const recorded = `recorded ${baseline.name} as applied in ${MIGRATIONS_TABLE} (baseline, as \`prisma migrate resolve --applied\`); the later migrations follow`;
  steps.push(recorded);
  log(recorded);
  return steps;
}

async function acquireLock(conn: Connection, database: string): Promise<void> {
  const [row]: { locked: number | null }[] = await conn.query('SELECT GET_LOCK(?, ?) AS locked', [
    LOCK_NAME,
    LOCK_TIMEOUT_SECONDS,
  ]);
  // Prisma ignores the result and carries on after a timeout; stopping is the safer choice.
  if (Number(row?.locked) !== 1) {
    throw new MigrationError(
      `could not take the migration lock '${LOCK_NAME}' for database \`${database}\` within ${LOCK_TIMEOUT_SECONDS}s: ` +
        `another migration (this runner or prisma migrate) is running against the same server. ` +
        `Wait for it to finish and run again; SELECT IS_USED_LOCK('${LOCK_NAME}') shows which connection holds it.`,
      'lock-timeout',
    );
  }
}

/** The migrations directory in Prisma's layout: `<name>/migration.sql` plus `migration_lock.toml`, in name order. */
async function readMigrations(dir: string): Promise<LocalMigration[]> {
  const lockFile = path.join(dir, 'migration_lock.toml');
  const lock = await readFile(lockFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    throw new MigrationError(
      `${lockFile} does not exist; is ${dir} a Prisma migrations directory? It must hold migration_lock.toml with provider = "mysql".`,
      'invalid-directory',
    );
  });
  const provider = /^\s*provider\s*=\s*"([^"]*)"/m.exec(lock)?.[1];
  if (provider !== 'mysql') {
    throw new MigrationError(
      `${lockFile} says provider = ${JSON.stringify(provider ?? null)}, but this runner applies MySQL migrations only (Prisma P3019). ` +
        `These migrations were made for another database; they cannot be applied to MySQL/MariaDB.`,
      'P3019',
    );
  }

  const entries = await readdir(dir, { withFileTypes: true });
  // Plain code-unit order, as Prisma sorts directory names (timestamps first make it chronological).
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const file = path.join(dir, name, 'migration.sql');
      const bytes = await readFile(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        throw new MigrationError(
          `could not find the migration file at ${file}. Please delete the directory or restore the migration file (Prisma P3015).`,
          'P3015',
        );
      });
      return { name, script: bytes.toString('utf8'), checksum: sha256(bytes) };
    }),
  );
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Prisma's script_matches_checksum: a script also matches with its line endings converted either
 * way (git may check files out with CRLF), and old engines wrote hex digits without zero padding.
 */
function scriptMatchesChecksum(script: string, checksum: string): boolean {
  const variants = [script, script.replaceAll('\r\n', '\n'), script.replaceAll('\n', '\r\n')];
  return variants.some((s) => {
    const digest = createHash('sha256').update(s).digest();
    const rendered =
      checksum.length !== 0 && checksum.length !== 64
        ? Array.from(digest, (b) => b.toString(16)).join('')
        : digest.toString('hex');
    return rendered === checksum;
  });
}

function describeSqlError(err: unknown): { code: string; text: string } {
  const e = err as { errno?: number; sqlMessage?: string | null; message?: string };
  return { code: e.errno === undefined ? 'none' : String(e.errno), text: e.sqlMessage ?? e.message ?? String(err) };
}

function quoteId(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}
