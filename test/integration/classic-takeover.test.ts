// Taking over a classic Go nightwatch deployment (issue 10, part 4) on the real stack: its database
// (the `task` table as the classic system creates it, no _prisma_migrations) is upgraded by the
// migration runner, and a row it left in progress is adopted with its classic Job.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { V1Job } from '@kubernetes/client-node';
import mariadb from 'mariadb';
import { afterAll, describe, expect, it } from 'vitest';
import { connectionOptions } from '../../src/db/client.ts';
import { BASELINE_MIGRATION } from '../../src/db/classic.ts';
import { MigrationError, migrate } from '../../src/db/migrate.ts';
import { ATTEMPT_LABEL, MANAGED_BY_LABEL, TASK_ID_LABEL } from '../../src/task/job.ts';
import { dispatchWorkflow, reconcileWorkflow } from '../../workflows/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { connectStack, startWorker, testConfig } from '../support/stack.ts';
import { waitForStatus } from '../support/tasks.ts';

const databases: TestDatabase[] = [];
afterAll(async () => {
  await Promise.all(databases.map((d) => d.drop()));
});

async function newDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}

async function sql<T = Record<string, unknown>>(url: string, query: string, values?: unknown[]): Promise<T[]> {
  const conn = await mariadb.createConnection({ ...connectionOptions(url), dateStrings: true, bigIntAsNumber: true });
  try {
    return await conn.query(query, values);
  } finally {
    await conn.end();
  }
}

/**
 * The classic nightwatch's table (jianghushinian/blog-go-example, nightwatch/assets/schema.sql): the
 * same columns, types, defaults and keys; its Chinese column comments are left out.
 */
const CLASSIC_TASK_TABLE = `CREATE TABLE IF NOT EXISTS \`task\` (
  \`id\` bigint(20) NOT NULL AUTO_INCREMENT,
  \`name\` varchar(45) NOT NULL DEFAULT '' COMMENT 'task name',
  \`namespace\` varchar(45) NOT NULL DEFAULT '' COMMENT 'k8s namespace',
  \`info\` TEXT NOT NULL COMMENT 'k8s details of the task',
  \`status\` varchar(45) NOT NULL DEFAULT '' COMMENT 'task status',
  \`user_id\` bigint(20) NOT NULL DEFAULT '0' COMMENT 'user id',
  \`created_at\` datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,
  \`updated_at\` datetime NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (\`id\`),
  UNIQUE KEY \`uk_name_namespace\` (\`name\`, \`namespace\`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='tasks'`;

/** A database as the classic system leaves it: its table, under the collation its README creates the database with. */
async function classicDatabase(rows: string[] = []): Promise<TestDatabase> {
  const db = await newDatabase();
  const name = new URL(db.url).pathname.slice(1);
  await sql(db.url, `ALTER DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
  await sql(db.url, CLASSIC_TASK_TABLE);
  for (const row of rows) await sql(db.url, row);
  return db;
}

/** Everything about a table's columns and indexes that the migrations decide. */
async function tableShape(url: string, table: string) {
  const schema = new URL(url).pathname.slice(1);
  const columns = await sql(
    url,
    `SELECT column_name, ordinal_position, column_type, is_nullable, column_default, character_set_name, collation_name, extra
       FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position`,
    [schema, table],
  );
  const indexes = await sql(
    url,
    `SELECT index_name, non_unique, seq_in_index, column_name FROM information_schema.statistics
      WHERE table_schema = ? AND table_name = ? ORDER BY index_name, seq_in_index`,
    [schema, table],
  );
  const [info] = await sql(url, 'SELECT engine, table_collation FROM information_schema.tables WHERE table_schema = ? AND table_name = ?', [schema, table]);
  return { columns, indexes, info };
}

async function rejection(promise: Promise<unknown>): Promise<MigrationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MigrationError);
  return err as MigrationError;
}

const insert = (id: number, name: string, status: string, userId: number, info = '{"image":"alpine","command":["sleep"],"args":["60"]}') =>
  `INSERT INTO task (id, name, namespace, info, status, user_id) VALUES (${id}, '${name}', 'default', '${info}', '${status}', ${userId})`;

describe('db:migrate on a classic nightwatch database', () => {
  it('upgrades it in place to exactly what the migrations make, records the baseline, and keeps every row', async () => {
    const classic = await classicDatabase([
      insert(1, 'demo-task-1', 'Normal', 1),
      insert(2, 'demo-task-2', 'Pending', 2),
      insert(3, 'demo-task-3', 'Running', 2),
      insert(4, 'demo-task-4', 'Succeeded', 10),
      insert(5, 'demo-task-5', 'Failed', 10),
      insert(6, 'demo-task-6', 'Unknown', 1),
    ]);
    const before = await sql<{ id: number; created_at: string }>(classic.url, 'SELECT id, created_at FROM task ORDER BY id');
    const lines: string[] = [];
    const result = await migrate(classic.url, undefined, { log: (line) => lines.push(line) });

    const fresh = await newDatabase();
    const all = await migrate(fresh.url);
    expect(result.applied).toEqual(all.applied.filter((m) => m !== BASELINE_MIGRATION));
    expect(result.alreadyApplied).toEqual([BASELINE_MIGRATION]);
    expect(result.takeover).toEqual(lines);
    expect(lines.join('\n')).toMatch(/classic nightwatch `task` table \(6 rows\)/);
    expect(lines.join('\n')).toMatch(/id bigint\(20\) → bigint\(20\) unsigned, name varchar\(45\) → varchar\(253\)/);
    expect(lines.join('\n')).toMatch(/renamed unique index uk_name_namespace/);
    expect(lines.join('\n')).toMatch(/1 row\(s\) in the classic status Unknown set to Pending/);
    expect(lines.at(-1)).toMatch(new RegExp(`recorded ${BASELINE_MIGRATION} as applied`));

    // The same tables, columns (types, defaults, collations) and indexes as a database made by the migrations.
    const tables = async (url: string) =>
      (await sql<{ t: string }>(url, 'SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? ORDER BY t', [new URL(url).pathname.slice(1)])).map((r) => r.t);
    expect(await tables(classic.url)).toEqual(await tables(fresh.url));
    for (const table of ['task', 'task_archive', 'recurring_task']) {
      expect(await tableShape(classic.url, table), table).toEqual(await tableShape(fresh.url, table));
    }

    // The baseline as `prisma migrate resolve --applied` records it; the rest as applied.
    const history = await sql<{ migration_name: string; checksum: string; finished_at: string | null; applied_steps_count: number; rolled_back_at: string | null }>(
      classic.url,
      'SELECT migration_name, checksum, finished_at, applied_steps_count, rolled_back_at FROM _prisma_migrations ORDER BY started_at, migration_name',
    );
    expect(history.map((h) => h.migration_name)).toEqual(all.applied);
    const script = await readFile(`prisma/migrations/${BASELINE_MIGRATION}/migration.sql`);
    expect(history[0]).toMatchObject({
      migration_name: BASELINE_MIGRATION,
      checksum: createHash('sha256').update(script).digest('hex'),
      applied_steps_count: 0,
      rolled_back_at: null,
    });
    for (const h of history) expect(h.finished_at, h.migration_name).not.toBeNull();

    // Every row, as it was, plus the new columns' defaults; user ids are now strings.
    const rows = await sql(classic.url, 'SELECT id, name, status, user_id, attempt, reason, started_at, finished_at, recurring_task_id, created_at FROM task ORDER BY id');
    expect(rows.map((r) => [r.id, r.name, r.status, r.user_id, r.attempt])).toEqual([
      [1, 'demo-task-1', 'Normal', '1', 1],
      [2, 'demo-task-2', 'Pending', '2', 1],
      [3, 'demo-task-3', 'Running', '2', 1],
      [4, 'demo-task-4', 'Succeeded', '10', 1],
      [5, 'demo-task-5', 'Failed', '10', 1],
      [6, 'demo-task-6', 'Pending', '1', 1],
    ]);
    for (const [i, r] of rows.entries()) {
      expect(r).toMatchObject({ reason: null, started_at: null, finished_at: null, recurring_task_id: null });
      expect(r.created_at).toBe(`${before[i]!.created_at}.000`);
    }
    // New ids continue after the classic ones.
    await sql(classic.url, "INSERT INTO task (name, namespace, info, user_id) VALUES ('after', 'default', '{}', 'u')");
    expect((await sql<{ id: number }>(classic.url, "SELECT id FROM task WHERE name = 'after'"))[0]!.id).toBe(7);

    // From now on it is an ordinary nightwatch database.
    expect(await migrate(classic.url)).toEqual({ applied: [], alreadyApplied: all.applied });
  });

  it('records only the baseline when an upgraded table lost its record (an interrupted takeover)', async () => {
    const db = await newDatabase();
    await sql(db.url, (await readFile(`prisma/migrations/${BASELINE_MIGRATION}/migration.sql`, 'utf8')));
    const result = await migrate(db.url);
    expect(result.alreadyApplied).toEqual([BASELINE_MIGRATION]);
    expect(result.takeover?.[0]).toMatch(/already in the shape of 20261122000000_create_task/);
  });

  it.each([
    ['an extra column', 'ALTER TABLE task ADD COLUMN priority INT NOT NULL DEFAULT 0', /columns the classic schema does not have: priority/],
    ['a missing column', 'ALTER TABLE task DROP COLUMN user_id', /column `user_id` is missing/],
    ['a changed type', 'ALTER TABLE task MODIFY info BLOB NOT NULL', /column `info` is blob, expected text or mediumtext or longtext/],
    ['a nullable column', 'ALTER TABLE task MODIFY status VARCHAR(45) NULL', /column `status` allows NULL/],
    ['an extra index', 'CREATE INDEX by_status ON task (status)', /indexes the classic schema does not have: by_status \(status\)/],
    ['no unique (name, namespace)', 'ALTER TABLE task DROP INDEX uk_name_namespace', /no unique index on \(name, namespace\)/],
    ['another table', 'CREATE TABLE cron_lock (id INT PRIMARY KEY)', /tables other than `task`: cron_lock/],
    ['a name longer than nightwatch takes', 'ALTER TABLE task MODIFY name VARCHAR(300) NOT NULL', /column `name` is varchar\(300\), longer than nightwatch's 253/],
  ])('refuses a classic-looking database with %s, naming the difference and changing nothing (P3005)', async (_what, change, difference) => {
    const db = await classicDatabase([insert(1, 'demo-task-1', 'Running', 1)]);
    await sql(db.url, change);
    const before = await tableShape(db.url, 'task');
    const err = await rejection(migrate(db.url));
    expect(err.code).toBe('P3005');
    expect(err.message).toMatch(/no _prisma_migrations table/);
    expect(err.message).toMatch(difference);
    expect(await sql(db.url, "SHOW TABLES LIKE '\\_prisma\\_migrations'")).toHaveLength(0);
    expect(await tableShape(db.url, 'task')).toEqual(before);
  });

  it('refuses rows it cannot carry over (a negative id) without changing anything', async () => {
    const db = await classicDatabase([insert(-1, 'demo-task-1', 'Normal', 1)]);
    const before = await tableShape(db.url, 'task');
    const err = await rejection(migrate(db.url));
    expect(err.code).toBe('classic-takeover');
    expect(err.message).toMatch(/a row has id -1/);
    expect(await tableShape(db.url, 'task')).toEqual(before);
    expect(await sql(db.url, "SHOW TABLES LIKE '\\_prisma\\_migrations'")).toHaveLength(0);
  });
});

/**
 * The Job the classic nightwatch makes for a row (internal/watcher/task/task.go, toJob): named after
 * the task, no labels, backoffLimit 1, pod label app=task-job, one container `task` from the row's
 * info, restartPolicy Never. Plus the local cluster's KWOK annotation, so its pod runs for `runFor`.
 */
function classicJob(name: string, info: { image: string; command?: string[]; args?: string[] }, runFor: string): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: {
      backoffLimit: 1,
      template: {
        metadata: { labels: { app: 'task-job' }, annotations: { 'nightwatch.io/kwok-run-duration': runFor } },
        spec: {
          containers: [{ name: 'task', image: info.image, ...(info.command && { command: info.command }), ...(info.args && { args: info.args }) }],
          restartPolicy: 'Never',
        },
      },
    },
  };
}

describe('in-flight rows of a classic nightwatch, after db:migrate', () => {
  it('are adopted with their classic Jobs and end as those Jobs do, with no second Job; a stranger Job of the same name is left alone', async () => {
    const stack = await connectStack(testConfig());
    let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
    try {
      const ns = stack.namespace;
      const url = stack.config.DATABASE_URL;
      // The file's database as the classic system leaves it: only its table, no migration history.
      for (const table of ['_prisma_migrations', 'task_archive', 'recurring_task', 'task']) await sql(url, `DROP TABLE IF EXISTS \`${table}\``);
      await sql(url, CLASSIC_TASK_TABLE);
      // Ids of their own: nightwatch labels Jobs with them, and workflow ids carry the file's prefix.
      const base = 1_000_000 + Math.floor(Math.random() * 1_000_000_000);
      const info = (seconds: string) => ({ image: 'alpine', command: ['sleep'], args: [seconds] });
      const rows = {
        // Running when taken over; its Job ends a while after adoption (followed through the watch once labelled).
        running: { id: base + 1, name: 'classic-running', status: 'Running', info: info('12'), runFor: '12s' },
        // Its Job finished while nobody watched: adopted and final at the first look.
        finished: { id: base + 2, name: 'classic-finished', status: 'Pending', info: info('1'), runFor: '500ms' },
        // The classic system made its Job and stopped before marking it Pending: the dispatcher adopts it.
        unmarked: { id: base + 3, name: 'classic-unmarked', status: 'Normal', info: info('2'), runFor: '2s' },
        // A Job of the same name that the classic system did not make for this row (another image).
        stranger: { id: base + 4, name: 'classic-stranger', status: 'Running', info: info('5'), runFor: '60s' },
        // Final rows stay as they are.
        done: { id: base + 5, name: 'classic-done', status: 'Succeeded', info: info('1'), runFor: '' },
      };
      for (const r of Object.values(rows)) {
        await sql(url, 'INSERT INTO task (id, name, namespace, info, status, user_id) VALUES (?, ?, ?, ?, ?, ?)', [r.id, r.name, ns, JSON.stringify(r.info), r.status, 7]);
      }
      for (const r of [rows.running, rows.finished, rows.unmarked]) {
        await stack.kube.batch.createNamespacedJob({ namespace: ns, body: classicJob(r.name, r.info, r.runFor) });
      }
      await stack.kube.batch.createNamespacedJob({ namespace: ns, body: classicJob(rows.stranger.name, { ...rows.stranger.info, image: 'busybox' }, rows.stranger.runFor) });
      const uidOf = async (name: string) => (await stack.kube.batch.readNamespacedJob({ name, namespace: ns })).metadata!.uid!;
      const classicUids = Object.fromEntries(await Promise.all(Object.values(rows).filter((r) => r.runFor).map(async (r) => [r.name, await uidOf(r.name)] as const)));

      const upgrade = await migrate(url);
      expect(upgrade.takeover?.[0]).toMatch(/classic nightwatch `task` table \(5 rows\)/);
      expect(upgrade.alreadyApplied).toEqual([BASELINE_MIGRATION]);

      worker = await startWorker(stack);
      const run = async (workflow: typeof reconcileWorkflow | typeof dispatchWorkflow, name: string) =>
        stack.client.workflow.execute(workflow, {
          taskQueue: stack.config.TEMPORAL_TASK_QUEUE,
          workflowId: `${stack.config.WORKFLOW_ID_PREFIX}${name}`,
          args: [{ idPrefix: stack.config.WORKFLOW_ID_PREFIX }],
        });
      expect(await run(reconcileWorkflow, 'reconcile-1')).toMatchObject({ started: 3 });
      expect(await run(dispatchWorkflow, 'dispatch-1')).toMatchObject({ started: 1 });

      const id = (r: { id: number }) => BigInt(r.id);
      const finished = await waitForStatus(stack, id(rows.finished), ['Succeeded', 'Failed']);
      expect(finished).toMatchObject({ status: 'Succeeded', attempt: 1, reason: null });
      const unmarked = await waitForStatus(stack, id(rows.unmarked), ['Succeeded', 'Failed']);
      expect(unmarked).toMatchObject({ status: 'Succeeded', attempt: 1, reason: null });
      const stranger = await waitForStatus(stack, id(rows.stranger), ['Succeeded', 'Failed']);
      expect(stranger.status).toBe('Failed');
      expect(stranger.reason).toMatch(/belongs to another task/);

      // Still in progress after adoption, then Succeeded once its classic Job completes: through the
      // Job watch (the labels), well before the workflow's first quiet read at 60 s.
      const midway = await stack.prisma.task.findUniqueOrThrow({ where: { id: id(rows.running) } });
      expect(['Pending', 'Running']).toContain(midway.status);
      const running = await waitForStatus(stack, id(rows.running), ['Succeeded', 'Failed'], 90_000);
      expect(running).toMatchObject({ status: 'Succeeded', attempt: 1, reason: null });
      const job = await stack.kube.batch.readNamespacedJob({ name: rows.running.name, namespace: ns });
      const completed = new Date(job.status!.completionTime!).getTime();
      expect(running.finishedAt!.getTime() - completed, 'from the Job completing to the row Succeeded, in ms').toBeLessThan(20_000);

      // Each adopted Job is the classic one (same uid), now carrying nightwatch's labels for its row,
      // attempt 1, beside its own; the stranger is untouched. No task ever got a second Job.
      for (const r of [rows.running, rows.finished, rows.unmarked]) {
        const adopted = await stack.kube.batch.readNamespacedJob({ name: r.name, namespace: ns });
        expect(adopted.metadata!.uid).toBe(classicUids[r.name]);
        expect(adopted.metadata!.labels).toMatchObject({ [MANAGED_BY_LABEL]: 'nightwatch', [TASK_ID_LABEL]: String(r.id), [ATTEMPT_LABEL]: '1' });
        expect(adopted.spec!.template.metadata!.labels).toMatchObject({ app: 'task-job' });
      }
      const strangerJob = await stack.kube.batch.readNamespacedJob({ name: rows.stranger.name, namespace: ns });
      expect(strangerJob.metadata!.uid).toBe(classicUids[rows.stranger.name]);
      expect(strangerJob.metadata!.labels ?? {}).not.toHaveProperty(MANAGED_BY_LABEL);
      await stack.jobs.sync();
      for (const r of Object.values(rows)) {
        const runs = stack.jobs.runsNamed(ns, r.name);
        expect(runs.map((j) => j.uid), `Jobs ever named ${r.name}: ${stack.jobs.describe(runs)}`).toEqual(r.runFor ? [classicUids[r.name]] : []);
      }
      expect(await stack.prisma.task.findUniqueOrThrow({ where: { id: id(rows.done) } })).toMatchObject({ status: 'Succeeded' });
    } finally {
      await worker?.stop();
      await stack.close();
    }
  }, 180_000);
});
