// The migration runner, the Prisma client and the seed, on the real MariaDB server.
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, cp, mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mariadb from 'mariadb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoTasks } from '../../prisma/seed.ts';
import { connectionOptions, createPrisma, type PrismaClient } from '../../src/db/client.ts';
import { MigrationError, migrate, type MigrationRow } from '../../src/db/migrate.ts';
import { Prisma } from '../../src/generated/prisma/client.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const MIGRATIONS = 'prisma/migrations';
const databases: TestDatabase[] = [];
const tempDirs: string[] = [];

async function newDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}

/** A copy of the real migrations to change freely. */
async function copyOfMigrations(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nightwatch-migrations-'));
  tempDirs.push(dir);
  await cp(MIGRATIONS, dir, { recursive: true });
  return dir;
}

async function localMigrationNames(dir = MIGRATIONS): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

async function sql<T = Record<string, unknown>>(url: string, query: string, values?: unknown[]): Promise<T[]> {
  const conn = await mariadb.createConnection({ ...connectionOptions(url), dateStrings: true });
  try {
    return await conn.query(query, values);
  } finally {
    await conn.end();
  }
}


const migrationRows = (url: string) =>
  sql<MigrationRow>(url, 'SELECT * FROM _prisma_migrations ORDER BY started_at, migration_name');

async function rejection(promise: Promise<unknown>): Promise<MigrationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MigrationError);
  return err as MigrationError;
}

afterAll(async () => {
  await Promise.all(databases.map((db) => db.drop()));
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('migrate', () => {
  let url: string;
  let names: string[];

  beforeAll(async () => {
    const db = await newDatabase();
    // Start from no database at all: the runner must create it, as `prisma migrate deploy` does.
    await db.drop();
    url = db.url;
    names = await localMigrationNames();
    expect(names.length).toBeGreaterThan(0);
  });

  it('creates the database and applies every migration, in order', async () => {
    const result = await migrate(url);

    expect(result).toEqual({ applied: names, alreadyApplied: [] });
    const database = connectionOptions(url).database;
    const [schema] = await sql(
      url,
      'SELECT default_character_set_name AS charset, default_collation_name AS collation FROM information_schema.schemata WHERE schema_name = ?',
      [database],
    );
    expect(schema).toEqual({ charset: 'utf8mb4', collation: 'utf8mb4_unicode_ci' });
    const tables = await sql<{ name: string }>(
      url,
      'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ?',
      [database],
    );
    expect(tables.map((t) => t.name).sort()).toEqual(['_prisma_migrations', 'recurring_task', 'task', 'task_archive']);
  });

  it('keeps _prisma_migrations as Prisma Migrate does', async () => {
    const rows = await migrationRows(url);

    expect(rows.map((r) => r.migration_name)).toEqual(names);
    for (const row of rows) {
      const file = await readFile(path.join(MIGRATIONS, row.migration_name, 'migration.sql'));
      expect(row.checksum).toBe(createHash('sha256').update(file).digest('hex'));
      expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(row.finished_at).not.toBeNull();
      expect(row.finished_at! >= row.started_at).toBe(true);
      expect(row.applied_steps_count).toBe(1);
      expect(row.rolled_back_at).toBeNull();
      // Prisma's record_migration_started leaves logs unset; only a failure writes them.
      expect(row.logs).toBeNull();
    }

    // The table Prisma's MySQL connector creates, column for column (as MariaDB's information_schema spells it).
    const columns = await sql(
      url,
      `SELECT column_name AS name, column_type AS type, is_nullable AS nullable, column_default AS \`default\`, column_key AS \`key\`
       FROM information_schema.columns WHERE table_schema = ? AND table_name = '_prisma_migrations' ORDER BY ordinal_position`,
      [connectionOptions(url).database],
    );
    expect(columns).toEqual([
      { name: 'id', type: 'varchar(36)', nullable: 'NO', default: null, key: 'PRI' },
      { name: 'checksum', type: 'varchar(64)', nullable: 'NO', default: null, key: '' },
      { name: 'finished_at', type: 'datetime(3)', nullable: 'YES', default: 'NULL', key: '' },
      { name: 'migration_name', type: 'varchar(255)', nullable: 'NO', default: null, key: '' },
      { name: 'logs', type: 'text', nullable: 'YES', default: 'NULL', key: '' },
      { name: 'rolled_back_at', type: 'datetime(3)', nullable: 'YES', default: 'NULL', key: '' },
      { name: 'started_at', type: 'datetime(3)', nullable: 'NO', default: 'current_timestamp(3)', key: '' },
      { name: 'applied_steps_count', type: 'int(10) unsigned', nullable: 'NO', default: '0', key: '' },
    ]);
    const [table] = await sql(
      url,
      `SELECT table_collation AS collation FROM information_schema.tables WHERE table_schema = ? AND table_name = '_prisma_migrations'`,
      [connectionOptions(url).database],
    );
    expect(table).toEqual({ collation: 'utf8mb4_unicode_ci' });
  });

  it('applies nothing on a second run', async () => {
    const before = await migrationRows(url);

    expect(await migrate(url)).toEqual({ applied: [], alreadyApplied: names });
    expect(await migrationRows(url)).toEqual(before);
  });

  it('waits for the lock Prisma Migrate takes before touching the database', async () => {
    const holder = await mariadb.createConnection(connectionOptions(url));
    try {
      const [held] = await holder.query("SELECT GET_LOCK('prisma_migrate', 0) AS ok");
      expect(Number(held.ok)).toBe(1);
      let finished = false;
      const run = migrate(url).finally(() => {
        finished = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(finished).toBe(false);
      await holder.query("SELECT RELEASE_LOCK('prisma_migrate')");
      expect(await run).toEqual({ applied: [], alreadyApplied: names });
    } finally {
      await holder.end();
    }
  });

  it('reports a migration modified after it was applied, but not one whose line endings changed', async () => {
    const dir = await copyOfMigrations();
    const db = await newDatabase();
    await migrate(db.url, dir);
    const [first] = names as [string];
    const file = path.join(dir, first, 'migration.sql');
    const original = await readFile(file, 'utf8');

    // Git may check a file out with CRLF line endings; Prisma accepts that, and so must we.
    await writeFile(file, original.replaceAll('\n', '\r\n'));
    expect(await migrate(db.url, dir)).toEqual({ applied: [], alreadyApplied: names });

    await writeFile(file, original);
    await appendFile(file, '\nSELECT 1;\n');
    const err = await rejection(migrate(db.url, dir));
    expect(err.code).toBe('modified');
    expect(err.message).toContain(first);
    expect(err.message).toContain('was modified after it was applied');
  });

  it('reports a migration applied to the database but missing locally', async () => {
    const dir = await copyOfMigrations();
    const db = await newDatabase();
    await migrate(db.url, dir);
    const last = names.at(-1)!;
    await rm(path.join(dir, last), { recursive: true });

    const err = await rejection(migrate(db.url, dir));
    expect(err.code).toBe('missing-locally');
    expect(err.message).toContain(last);
  });

  it('records a failed migration and refuses to go on until it is rolled back', async () => {
    const dir = await copyOfMigrations();
    const db = await newDatabase();
    const broken = '29991231000000_broken';
    await mkdir(path.join(dir, broken));
    const brokenFile = path.join(dir, broken, 'migration.sql');
    await writeFile(brokenFile, 'CREATE TABLE `half_done` (`id` INTEGER NOT NULL);\nSELEC oops;\n');

    const failure = await rejection(migrate(db.url, dir));
    expect(failure.code).toBe('P3018');
    expect(failure.message).toContain(broken);
    expect(failure.message).toContain('SELEC oops');
    let rows = await migrationRows(db.url);
    expect(rows.map((r) => r.migration_name)).toEqual([...names, broken]);
    const failed = rows.at(-1)!;
    expect(failed.finished_at).toBeNull();
    expect(failed.rolled_back_at).toBeNull();
    expect(failed.applied_steps_count).toBe(0);
    expect(failed.logs).toContain(`Migration name: ${broken}`);
    expect(failed.logs).toContain('Database error code: 1064');
    expect(failed.logs).toContain('SELEC oops');
    // The multi-statement script ran up to the bad statement.
    expect(await sql(db.url, "SHOW TABLES LIKE 'half_done'")).toHaveLength(1);

    const blocked = await rejection(migrate(db.url, dir));
    expect(blocked.code).toBe('P3009');
    expect(blocked.message).toContain(`\`${broken}\``);
    expect(await migrationRows(db.url)).toEqual(rows);

    // Resolve it the way `prisma migrate resolve --rolled-back` does, fix the file, run again.
    await sql(db.url, 'DROP TABLE `half_done`');
    await sql(db.url, 'UPDATE _prisma_migrations SET rolled_back_at = UTC_TIMESTAMP(3) WHERE id = ?', [failed.id]);
    await writeFile(brokenFile, 'CREATE TABLE `half_done` (`id` INTEGER NOT NULL);\n');
    expect(await migrate(db.url, dir)).toEqual({ applied: [broken], alreadyApplied: names });
    rows = await migrationRows(db.url);
    const attempts = rows.filter((r) => r.migration_name === broken);
    expect(attempts).toHaveLength(2);
    expect(attempts[0]).toMatchObject({ id: failed.id, finished_at: null });
    expect(attempts[0]!.rolled_back_at).not.toBeNull();
    expect(attempts[1]).toMatchObject({ rolled_back_at: null, applied_steps_count: 1 });
    expect(attempts[1]!.finished_at).not.toBeNull();
  });

  it('refuses a database that has tables but no migration history', async () => {
    const db = await newDatabase();
    await sql(db.url, 'CREATE TABLE `task` (`id` BIGINT UNSIGNED NOT NULL PRIMARY KEY)');

    const err = await rejection(migrate(db.url));
    expect(err.code).toBe('P3005');
    expect(err.message).toContain('task');
    expect(await sql(db.url, "SHOW TABLES LIKE '\\_prisma\\_migrations'")).toHaveLength(0);
  });

  it('refuses migrations made for another provider', async () => {
    const dir = await copyOfMigrations();
    await writeFile(path.join(dir, 'migration_lock.toml'), 'provider = "postgresql"\n');
    const db = await newDatabase();

    const err = await rejection(migrate(db.url, dir));
    expect(err.code).toBe('P3019');
    expect(err.message).toContain('postgresql');
    expect(await sql(db.url, 'SHOW TABLES')).toHaveLength(0);
  });
});

describe('the task table through Prisma', () => {
  let prisma: PrismaClient;
  const suffix = randomBytes(4).toString('hex');

  beforeAll(async () => {
    const db = await newDatabase();
    await migrate(db.url);
    prisma = createPrisma(db.url, 2);
  });
  afterAll(() => prisma?.$disconnect());

  it('creates, reads, updates and deletes a task, with bigint ids', async () => {
    const info = JSON.stringify({ image: 'alpine', command: ['true'] });
    const created = await prisma.task.create({
      data: { name: `crud-${suffix}`, namespace: 'default', info, userId: 'tester' },
    });
    expect(typeof created.id).toBe('bigint');
    expect(created).toMatchObject({ status: 'Normal', attempt: 1, reason: null, startedAt: null, finishedAt: null });
    expect(created.createdAt).toBeInstanceOf(Date);

    const read = await prisma.task.findUniqueOrThrow({ where: { id: created.id } });
    expect(read).toEqual(created);

    const updated = await prisma.task.update({
      where: { id: created.id },
      data: { status: 'Running', startedAt: new Date('2026-01-02T03:04:05.678Z') },
    });
    expect(updated.status).toBe('Running');
    expect(updated.startedAt?.toISOString()).toBe('2026-01-02T03:04:05.678Z');
    expect((await prisma.task.findUniqueOrThrow({ where: { id: created.id } })).status).toBe('Running');

    await prisma.task.delete({ where: { id: created.id } });
    expect(await prisma.task.findUnique({ where: { id: created.id } })).toBeNull();
  });

  it('rejects a second task with the same name and namespace (P2002), but not in another namespace', async () => {
    const data = { name: `dup-${suffix}`, namespace: 'default', info: '{}', userId: 'tester' };
    await prisma.task.create({ data });

    const err = await prisma.task.create({ data }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Prisma.PrismaClientKnownRequestError);
    expect((err as Prisma.PrismaClientKnownRequestError).code).toBe('P2002');

    await expect(prisma.task.create({ data: { ...data, namespace: 'demo' } })).resolves.toMatchObject({ namespace: 'demo' });
  });
});

describe('seedDemoTasks', () => {
  let prisma: PrismaClient;

  beforeAll(async () => {
    const db = await newDatabase();
    await migrate(db.url);
    prisma = createPrisma(db.url, 2);
  });
  afterAll(() => prisma?.$disconnect());

  it('creates exactly the two demo tasks, and running it again changes nothing', async () => {
    await seedDemoTasks(prisma);
    const first = await prisma.task.findMany({ orderBy: { name: 'asc' } });
    expect(first.map(({ name, namespace, status, userId }) => ({ name, namespace, status, userId }))).toEqual([
      { name: 'demo-task-1', namespace: 'default', status: 'Normal', userId: 'demo' },
      { name: 'demo-task-2', namespace: 'demo', status: 'Normal', userId: 'demo' },
    ]);
    expect(first.map((t) => JSON.parse(t.info))).toEqual([
      { image: 'alpine', command: ['sleep', '60'] },
      { image: 'busybox', command: ['sleep', '3600'] },
    ]);

    await seedDemoTasks(prisma);
    expect(await prisma.task.findMany({ orderBy: { name: 'asc' } })).toEqual(first);
  });
});
