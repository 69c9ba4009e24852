// Every query nightwatch makes on `task`, run against 200,000 rows on the real MariaDB and checked
// with ANALYZE (the plan, and the rows the server actually read): each must use the index made for it
// (prisma/migrations/20261130020000_task_query_indexes), never sort, never read a whole table or
// index, and a page must read no more rows than it returns. The SQL is not written out here: it is
// captured from the code that makes it (the API, the dispatcher's and reconcile's activity, retention)
// through Prisma's query log, so a change to a query's shape that loses its index fails this file.
// The per-user cap's queries are the exception, as the issue gives them (see `capQueries`).
import { PrismaMariaDb } from '@prisma/adapter-mariadb';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import mariadb, { type Connection } from 'mariadb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.ts';
import { buildApp } from '../../src/api/app.ts';
import { LIST_INDEX } from '../../src/api/tasks.ts';
import { connectionOptions } from '../../src/db/client.ts';
import { PrismaClient } from '../../src/generated/prisma/client.ts';
import { policyFromConfig } from '../../src/policy.ts';
import { TaskStatus } from '../../src/task-status.ts';
import { insertTaskRows } from '../support/bulk-rows.ts';
import { createMigratedTestDatabase, type TestDatabase } from '../support/database.ts';
import { testConfig } from '../support/stack.ts';

const ROWS = 200_000;
const HEAVY = 'heavy';
const LIGHT = 'light-7';
const TOKENS = `heavy-token:${HEAVY},light-token:${LIGHT}`;

interface Captured {
  sql: string;
  params: unknown[];
}

let db: TestDatabase;
let prisma: PrismaClient;
let conn: Connection;
let app: FastifyInstance;
let activities: ReturnType<typeof createActivities>;
let captured: Captured[] | null = null;

beforeAll(async () => {
  db = await createMigratedTestDatabase();
  await insertTaskRows(db.url, { count: ROWS, heavyUser: HEAVY, lightUserPrefix: 'light-' });
  const logging = new PrismaClient({
    adapter: new PrismaMariaDb({ ...connectionOptions(db.url), connectionLimit: 2, bigIntAsNumber: false }),
    log: [{ emit: 'event' as const, level: 'query' as const }],
  });
  logging.$on('query', (e) => captured?.push({ sql: e.query, params: JSON.parse(e.params) as unknown[] }));
  prisma = logging as unknown as PrismaClient;
  conn = await mariadb.createConnection({ ...connectionOptions(db.url), bigIntAsNumber: true });
  const config = { ...testConfig({ API_TOKENS: TOKENS }), DATABASE_URL: db.url };
  // Listing never reaches Temporal; nothing here starts or signals a workflow.
  app = buildApp({ config, prisma, client: {} as Client });
  activities = createActivities({
    prisma,
    policy: policyFromConfig(config),
    kube: {} as never,
    temporal: {} as Client,
    retention: { afterMs: 90 * 86_400_000, mode: 'archive', dryRun: false, batchSize: 100, pauseMs: 0 },
  });
}, 300_000);

afterAll(async () => {
  await app?.close();
  await conn?.end();
  await prisma?.$disconnect();
  await db?.drop();
});

/** The data statements `run` makes, as Prisma sent them. */
async function capture(run: () => Promise<unknown>): Promise<Captured[]> {
  captured = [];
  try {
    await run();
    return captured.filter((q) => /^\s*(SELECT|INSERT|UPDATE|DELETE)\b/i.test(q.sql));
  } finally {
    captured = null;
  }
}

interface PlanRow {
  table: string | null;
  type: string;
  key: string | null;
  rows: number | null;
  r_rows?: number | null;
  Extra: string | null;
}

/**
 * ANALYZE a read (it runs, and says how many rows it read), EXPLAIN a write. Prisma logs ids and
 * limits as strings; the test data has no user, status or namespace made of digits only, so every
 * digit-only parameter is a number.
 */
async function plan(q: Captured): Promise<PlanRow[]> {
  const params = q.params.map((p) => {
    if (typeof p !== 'string') return p;
    if (/^\d+$/.test(p)) return Number(p);
    // A Date is logged in ISO form; the driver sends it as `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
    const iso = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d(?:\.\d+)?)Z$/.exec(p);
    return iso ? `${iso[1]} ${iso[2]}` : p;
  });
  const verb = /^\s*SELECT\b/i.test(q.sql) && !/FOR UPDATE\s*$/i.test(q.sql) ? 'ANALYZE' : 'EXPLAIN';
  return (await conn.query(`${verb} ${q.sql}`, params)) as PlanRow[];
}

interface Expectation {
  key: string;
  /** The most rows the server may read (ANALYZE's r_rows): a page reads what it returns. */
  maxRead?: number;
  /** Answered from the index alone. */
  covering?: boolean;
}

async function expectPlan(what: string, q: Captured, expected: Expectation): Promise<void> {
  const rows = (await plan(q)).filter((r) => r.table === 'task');
  const context = `${what}\n${q.sql}\n${JSON.stringify(q.params)}\n${JSON.stringify(rows, null, 1)}`;
  expect(rows, context).toHaveLength(1);
  const [row] = rows as [PlanRow];
  expect(row.key, context).toBe(expected.key);
  expect(['ALL', 'index', 'index_merge'], context).not.toContain(row.type);
  expect(row.Extra ?? '', context).not.toMatch(/filesort|temporary/i);
  if (expected.maxRead !== undefined && row.r_rows != null) expect(Number(row.r_rows), context).toBeLessThanOrEqual(expected.maxRead);
  if (expected.covering) expect(row.Extra ?? '', context).toMatch(/Using index(?! condition)/);
}

async function listQuery(token: string, query: string): Promise<Captured> {
  const queries = await capture(async () => {
    const response = await app.inject({ method: 'GET', url: `/tasks?${query}`, headers: { authorization: `Bearer ${token}` } });
    expect(response.statusCode, response.body).toBe(200);
  });
  const lists = queries.filter((q) => /FROM\s+`?task`?\b/i.test(q.sql));
  expect(lists, `GET /tasks?${query} made ${queries.length} queries: ${queries.map((q) => q.sql).join('\n')}`).toHaveLength(1);
  return lists[0]!;
}

describe('GET /tasks reads one index range per filter combination, from the cursor, backwards', () => {
  // A cursor in the middle of the table, and filters both common (Failed, default: tens of thousands
  // of the heavy user's rows) and rare (Running, ns-3: a handful), which tempt the optimizer differently.
  const cursor = String(ROWS / 2);
  const cases: [string, string, keyof typeof LIST_INDEX][] = [
    ['no filter', 'limit=50', 'none'],
    ['no filter, cursor', `limit=50&cursor=${cursor}`, 'none'],
    ['status', 'status=Failed&limit=50', 'status'],
    ['status, cursor', `status=Failed&limit=50&cursor=${cursor}`, 'status'],
    ['rare status', 'status=Pending&limit=200', 'status'],
    ['namespace', 'namespace=default&limit=50', 'namespace'],
    ['rare namespace, cursor', `namespace=ns-3&limit=50&cursor=${cursor}`, 'namespace'],
    ['status and namespace', 'status=Failed&namespace=default&limit=200', 'both'],
    ['status and namespace, cursor', `status=Failed&namespace=default&limit=200&cursor=${cursor}`, 'both'],
    ['rare status and namespace, cursor', `status=Running&namespace=ns-3&limit=200&cursor=${ROWS}`, 'both'],
  ];
  for (const [label, query, filters] of cases) {
    it(`${label}: ${query}`, async () => {
      const limit = Number(/limit=(\d+)/.exec(query)![1]);
      await expectPlan(`heavy user, ${label}`, await listQuery('heavy-token', query), { key: LIST_INDEX[filters], maxRead: limit + 1 });
    });
  }

  it('a light user with both filters', async () => {
    await expectPlan('light user', await listQuery('light-token', 'status=Succeeded&namespace=default&limit=50'), {
      key: LIST_INDEX.both,
      maxRead: 51,
    });
  });

  it('shows every task as GET /tasks/:id does, without info (timestamps formatted by the database included)', async () => {
    const get = async (url: string) => {
      const response = await app.inject({ method: 'GET', url, headers: { authorization: 'Bearer heavy-token' } });
      expect(response.statusCode, response.body).toBe(200);
      return response.json();
    };
    // Newest first: rows in progress (no started_at or finished_at yet) and finished ones.
    const { tasks } = await get('/tasks?limit=200');
    const older = await get(`/tasks?limit=20&cursor=${ROWS / 2}`);
    for (const task of [...tasks, ...older.tasks]) {
      const { info, ...one } = await get(`/tasks/${task.id}`);
      expect(info).toBeDefined();
      expect(task).toEqual(one);
    }
    expect(new Set(tasks.map((t: { status: string }) => t.status)).size).toBeGreaterThan(1);
  });

  it('GET /tasks/:id reads one row by primary key', async () => {
    const queries = await capture(async () => {
      const response = await app.inject({ method: 'GET', url: `/tasks/${ROWS / 2}`, headers: { authorization: 'Bearer heavy-token' } });
      expect([200, 404]).toContain(response.statusCode);
    });
    expect(queries.length).toBeGreaterThanOrEqual(1);
    for (const q of queries) await expectPlan('GET /tasks/:id', q, { key: 'PRIMARY', maxRead: 1 });
  });
});

describe("the dispatcher's and reconcile's pages read (status, id) in order, one status at a time", () => {
  // Rows in progress are among the newest, so every page here starts below 100,000 finished rows.
  // (Past the last of those, the primary key's range is shorter than a page and MariaDB rightly reads it.)
  const pages: [string, TaskStatus[], string][] = [
    ['dispatch, first page', [TaskStatus.Normal], '0'],
    ['dispatch, a later page', [TaskStatus.Normal], String(ROWS / 2)],
    ['reconcile, first page', [TaskStatus.Pending, TaskStatus.Running], '0'],
    ['reconcile, a later page', [TaskStatus.Pending, TaskStatus.Running], String(ROWS / 2)],
  ];
  for (const [label, statuses, afterId] of pages) {
    it(label, async () => {
      const queries = await capture(() => activities.listTasksInStatus({ statuses, afterId, limit: 100 }));
      expect(queries).toHaveLength(statuses.length);
      for (const q of queries) await expectPlan(label, q, { key: 'task_status_id_idx', maxRead: 100 });
    });
  }

  it('a page of many statuses is still the oldest rows of all of them, in id order', async () => {
    const page = await activities.listTasksInStatus({ statuses: [TaskStatus.Pending, TaskStatus.Running], afterId: '0', limit: 100 });
    const rows = await prisma.task.findMany({
      where: { status: { in: [TaskStatus.Pending, TaskStatus.Running] } },
      orderBy: { id: 'asc' },
      take: 100,
      select: { id: true },
    });
    expect(page.map((r) => r.id)).toEqual(rows.map((r) => r.id.toString()));
  });
});

describe('the per-user cap counts and pages from (user_id, status, id)', () => {
  // As the issue gives them (src/db/user-cap.ts and the API make them): the count of a user's tasks
  // in progress (or unfinished), the same for several users at once, and a user's page of waiting rows.
  const capQueries: [string, Captured, Expectation][] = [
    [
      "a user's tasks in progress",
      { sql: "SELECT COUNT(*) FROM task WHERE user_id = ? AND status IN ('Pending', 'Running')", params: [HEAVY] },
      { key: 'task_user_id_status_id_idx', covering: true },
    ],
    [
      "a user's unfinished tasks (the API's check before accepting one)",
      { sql: "SELECT COUNT(*) FROM task WHERE user_id = ? AND status IN ('Normal', 'Pending', 'Running')", params: [HEAVY] },
      { key: 'task_user_id_status_id_idx', covering: true },
    ],
    [
      'tasks in progress of several users',
      { sql: "SELECT user_id, COUNT(*) FROM task WHERE user_id IN (?, ?) AND status IN ('Pending', 'Running') GROUP BY user_id", params: [HEAVY, LIGHT] },
      { key: 'task_user_id_status_id_idx', covering: true },
    ],
    [
      "a user's page of Normal rows",
      { sql: "SELECT id FROM task WHERE user_id = ? AND status = 'Normal' AND id > ? ORDER BY id LIMIT 100", params: [HEAVY, 0] },
      { key: 'task_user_id_status_id_idx', covering: true, maxRead: 100 },
    ],
  ];
  for (const [label, q, expected] of capQueries) it(label, () => expectPlan(label, q, expected));
});

describe('retention reads the (finished_at, status) index alone and removes by primary key', () => {
  it('the dry-run count', async () => {
    const queries = await capture(() =>
      new MockActivityEnvironment().run(activities.countRetainable, { cutoff: new Date(Date.now() - 90 * 86_400_000).toISOString() }),
    );
    expect(queries).toHaveLength(1);
    await expectPlan('dry-run count', queries[0]!, { key: 'task_finished_at_status_idx', covering: true });
  });

  it('a batch, archived and deleted', async () => {
    const cutoff = new Date(Date.now() - 90 * 86_400_000).toISOString();
    for (const mode of ['archive', 'delete'] as const) {
      const [pick, ...writes] = await capture(async () => {
        const result = await activities.removeRetainable({ cutoff, mode, batchSize: 100 });
        expect(result).toEqual({ picked: 100, removed: 100 });
      });
      expect(pick!.sql).toMatch(/^\s*SELECT id FROM task WHERE finished_at/);
      const pickPlan = (await plan(pick!)).find((r) => r.table === 'task')!;
      expect(pickPlan.key, `${mode}: ${JSON.stringify(pickPlan)}`).toBe('task_finished_at_status_idx');
      expect(pickPlan.Extra ?? '').not.toMatch(/filesort|temporary/i);
      expect(pickPlan.Extra ?? '').toMatch(/Using index(?! condition)/);
      // Each write (and the archive's locking read) names its rows by id: the primary key, no range scan elsewhere.
      for (const write of writes) {
        // INSERT … SELECT: its SELECT is the same id list; the archive's column list comes from information_schema.
        if (/^\s*INSERT/i.test(write.sql) || /information_schema/i.test(write.sql)) continue;
        const rows = (await plan(write)).filter((r) => r.table === 'task');
        expect(rows.map((r) => r.key), `${mode}: ${write.sql}`).toEqual(['PRIMARY']);
      }
      expect(writes.length).toBeGreaterThanOrEqual(1);
    }
  });
});
