// Small holes of issue 8, on the real stack: user ids compared byte for byte (two users whose ids
// differ only in case or accent never share tasks, and the per-user queries keep their index),
// health and cancel answers that name the failed dependency without its address or driver text
// (those go to the log), and a request timeout that cuts off slow or incomplete requests.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import { Writable } from 'node:stream';
import { PrismaMariaDb } from '@prisma/adapter-mariadb';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import mariadb from 'mariadb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type ApiDeps } from '../../src/api/app.ts';
import { ConfigError, loadConfig, type Config } from '../../src/config.ts';
import { connectionOptions, createPrisma } from '../../src/db/client.ts';
import { PrismaClient } from '../../src/generated/prisma/client.ts';
import { closedPort } from '../support/net.ts';
import { connectStack, testConfig, type Stack } from '../support/stack.ts';

const tag = randomBytes(3).toString('hex');
const user = (id: string) => ({ id: `${id}-${tag}`, token: randomBytes(12).toString('hex') });
// Pairs that differ only in case, and only in an accent: one user each under a binary collation,
// one user per pair under the table's default utf8mb4_unicode_ci.
const USERS = { Alice: user('Alice'), alice: user('alice'), josé: user('josé'), jose: user('jose') };
const ALL = Object.values(USERS);

let stack: Stack;
const opened: { close(): Promise<unknown> }[] = [];

beforeAll(async () => {
  stack = await connectStack(testConfig({ API_TOKENS: ALL.map((u) => `${u.token}:${u.id}`).join(',') }));
});

afterAll(async () => {
  for (const thing of opened.reverse()) await thing.close().catch(() => undefined);
  await stack?.close();
});

/** Log lines of an app, as the API server would write them (pino JSON). */
function captureLog(): { lines: string[]; logger: { level: string; stream: Writable } } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, logger: { level: 'info', stream } };
}

/** An API on a port of its own, closed after the file. */
async function serve(deps: ApiDeps, logger?: { level: string; stream: Writable }): Promise<{ app: FastifyInstance; url: string; port: number }> {
  const app = buildApp(deps, logger ? { logger } : {});
  await app.listen({ host: '127.0.0.1', port: 0 });
  opened.push(app);
  const { port } = app.server.address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}`, port };
}

async function call(url: string, method: string, path: string, token?: string): Promise<{ status: number; body: any; text: string }> {
  const response = await fetch(`${url}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text), text };
}

/** Rows written straight to the database (no workflow needed to list them); returns their ids, oldest first. */
async function insertRows(userId: string, count: number, status = 'Succeeded'): Promise<{ id: bigint }[]> {
  const names = Array.from({ length: count }, () => `row-${randomBytes(5).toString('hex')}`);
  await stack.prisma.task.createMany({
    data: names.map((name) => ({ name, namespace: stack.namespace, info: '{"image":"alpine:3.20"}', status, userId })),
  });
  return stack.prisma.task.findMany({ where: { name: { in: names } }, select: { id: true }, orderBy: { id: 'asc' } });
}

async function sql<T>(query: string, values?: unknown[]): Promise<T[]> {
  const conn = await mariadb.createConnection({ ...connectionOptions(stack.config.DATABASE_URL), bigIntAsNumber: false });
  try {
    return await conn.query(query, values);
  } finally {
    await conn.end();
  }
}

describe('user ids that differ only in case or accent', () => {
  let api: { url: string };
  beforeAll(async () => {
    api = await serve(stack);
  });

  it('are stored in a column that compares byte for byte, still VARCHAR(64) NOT NULL', async () => {
    const [column] = await sql<Record<string, string>>(
      `SELECT column_type AS type, is_nullable AS nullable, character_set_name AS charset, collation_name AS collation
         FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'task' AND column_name = 'user_id'`,
    );
    expect(column).toEqual({ type: 'varchar(64)', nullable: 'NO', charset: 'utf8mb4', collation: 'utf8mb4_bin' });
  });

  it('see only their own tasks through the API, and each other\'s answer 404', async () => {
    const own = new Map<string, string[]>();
    for (const u of ALL) {
      const ids = (await insertRows(u.id, 3)).map((r) => r.id.toString());
      own.set(u.id, ids);
    }

    for (const u of ALL) {
      const me = await call(api.url, 'GET', '/me', u.token);
      expect(me.body.userId).toBe(u.id);
      const list = await call(api.url, 'GET', '/tasks?limit=200', u.token);
      expect(list.status).toBe(200);
      const listed = list.body.tasks.map((t: { id: string }) => t.id).sort();
      expect(listed, `tasks listed for ${u.id}`).toEqual([...own.get(u.id)!].sort());
      expect(new Set(list.body.tasks.map((t: { userId: string }) => t.userId))).toEqual(new Set([u.id]));
      for (const other of ALL.filter((o) => o !== u)) {
        const theirs = own.get(other.id)![0]!;
        expect((await call(api.url, 'GET', `/tasks/${theirs}`, u.token)).status, `${u.id} reading ${other.id}'s task`).toBe(404);
        expect((await call(api.url, 'POST', `/tasks/${theirs}/retry`, u.token)).status).toBe(404);
      }
    }
    // The database itself keeps them apart, whatever query reaches it.
    const [row] = await sql<{ n: bigint }>('SELECT COUNT(*) AS n FROM task WHERE user_id = ?', [USERS.alice.id]);
    expect(Number(row!.n)).toBe(3);
  });

  it('per-user list queries, with every filter and the cursor, still use a user_id index (EXPLAIN of the SQL the API sends)', async () => {
    // Enough rows of other users that reading the whole table is clearly the worse plan.
    for (let i = 0; i < 20; i++) await insertRows(`filler-${i}-${tag}`, 60, i % 2 ? 'Failed' : 'Succeeded');
    await insertRows(USERS.Alice.id, 40, 'Failed');
    await sql('ANALYZE TABLE task');

    // A Prisma client like the API's that reports each statement it sends.
    const adapter = new PrismaMariaDb({ ...connectionOptions(stack.config.DATABASE_URL), connectionLimit: 2, bigIntAsNumber: false });
    const logged = new PrismaClient({ adapter, log: [{ emit: 'event', level: 'query' }] });
    opened.push({ close: () => logged.$disconnect() });
    const sent: { query: string; params: unknown[] }[] = [];
    logged.$on('query', (e) => sent.push({ query: e.query, params: JSON.parse(e.params) as unknown[] }));
    const listing = await serve({ ...stack, prisma: logged });

    const first = await call(listing.url, 'GET', '/tasks?limit=5', USERS.Alice.token);
    const paths = [
      '/tasks',
      `/tasks?limit=5&cursor=${first.body.nextCursor}`,
      '/tasks?status=Failed',
      `/tasks?namespace=${stack.namespace}`,
      `/tasks?status=Failed&namespace=${stack.namespace}&cursor=${first.body.nextCursor}`,
    ];
    for (const path of paths) expect((await call(listing.url, 'GET', path, USERS.Alice.token)).status).toBe(200);
    // Prisma's own SELECT or a raw one: any read of `task` whose WHERE has user_id = ?.
    const lists = sent.filter((s) => /^\s*SELECT\b[\s\S]*\bFROM\s+`?task`?\s[\s\S]*\bWHERE\b[\s\S]*\buser_id`?\s*=\s*\?/.test(s.query));
    expect(lists).toHaveLength(paths.length + 1);

    const userIndexes = (
      await sql<{ name: string }>(
        `SELECT index_name AS name FROM information_schema.statistics
          WHERE table_schema = DATABASE() AND table_name = 'task' AND seq_in_index = 1 AND column_name = 'user_id'`,
      )
    ).map((r) => r.name);
    expect(userIndexes).toContain('task_user_id_id_idx');
    for (const { query, params } of lists) {
      // LIMIT and OFFSET take numbers; every other value goes as the string Prisma sent.
      const limitAt = query.search(/\bLIMIT\b[^`]*$/);
      const limits = limitAt < 0 ? 0 : (query.slice(limitAt).match(/\?/g) ?? []).length;
      const values = params.map((p, i) => (i >= params.length - limits ? Number(p) : p));
      const [plan] = await sql<{ type: string; key: string | null; Extra: string }>(`EXPLAIN ${query}`, values);
      const keys = (plan!.key ?? '').split(',');
      expect(plan!.type, `${query} reads the whole table`).not.toBe('ALL');
      expect(keys.some((k) => userIndexes.includes(k)), `${query} uses ${plan!.key}, not an index on user_id`).toBe(true);
    }
  });
});

describe('answers without a token name the failed check, not its address or error', () => {
  it('/readyz with the database down: {"database":"down","temporal":"ok"}; the log has the details', async () => {
    const port = await closedPort();
    const deadDatabase = createPrisma(`mysql://nightwatch:secret-pw@127.0.0.1:${port}/nightwatch`, 1);
    opened.push({ close: () => deadDatabase.$disconnect() });
    const log = captureLog();
    const config: Config = { ...stack.config, DATABASE_URL: `mysql://nightwatch:secret-pw@127.0.0.1:${port}/nightwatch` };
    const api = await serve({ ...stack, config, prisma: deadDatabase }, log.logger);

    const ready = await call(api.url, 'GET', '/readyz');

    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({
      error: { code: 'not_ready', message: "not ready: database down (details are in the API server's log)" },
      checks: { database: 'down', temporal: 'ok' },
    });
    for (const secret of [String(port), '127.0.0.1', 'secret-pw', stack.config.TEMPORAL_ADDRESS, 'ECONNREFUSED', 'connect']) {
      expect(ready.text).not.toContain(secret);
    }
    const line = log.lines.map((l) => JSON.parse(l)).find((l) => l.check === 'database');
    expect(line).toMatchObject({ level: 40, target: `127.0.0.1:${port}` });
    expect(line.msg).toContain(`database at 127.0.0.1:${port} is down`);
    expect(JSON.stringify(log.lines)).not.toContain('secret-pw');
  });

  it('/readyz with Temporal down: {"database":"ok","temporal":"down"}; the log has the address', async () => {
    const address = `127.0.0.1:${await closedPort()}`;
    const client = new Client({ connection: Connection.lazy({ address }), namespace: stack.config.TEMPORAL_NAMESPACE });
    opened.push(client.connection);
    const log = captureLog();
    const api = await serve({ ...stack, config: { ...stack.config, TEMPORAL_ADDRESS: address }, client }, log.logger);

    const ready = await call(api.url, 'GET', '/readyz');

    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({
      error: { code: 'not_ready', message: "not ready: temporal down (details are in the API server's log)" },
      checks: { database: 'ok', temporal: 'down' },
    });
    expect(ready.text).not.toContain(address);
    expect(ready.text).not.toContain(address.split(':')[1]!);
    const line = log.lines.map((l) => JSON.parse(l)).find((l) => l.check === 'temporal');
    expect(line).toMatchObject({ level: 40, target: address });
    expect(line.err).toBeDefined();

    // The cancel 503 (a token is needed, but the caller is no operator either) says what to do, not where.
    const [task] = await insertRows(USERS.Alice.id, 1, 'Normal');
    const cancel = await fetch(`${api.url}/tasks/${task!.id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${USERS.Alice.token}` } });
    const text = await cancel.text();
    expect(cancel.status).toBe(503);
    expect(JSON.parse(text)).toEqual({
      error: { code: 'temporal_unavailable', message: `task ${task!.id} not cancelled: Temporal did not take the request; try again shortly` },
    });
    expect(text).not.toContain(address);
    const logged = log.lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'could not signal cancel to Temporal');
    expect(logged).toMatchObject({ level: 50, taskId: task!.id.toString(), temporal: address });
    expect(logged.err.message).toBeTruthy();
  }, 30_000);
});

describe('the request timeout (API_REQUEST_TIMEOUT)', () => {
  it('is read from the environment, 30 s unless set, and an invalid value names the variable', () => {
    expect(loadConfig({}).API_REQUEST_TIMEOUT).toBe(30_000);
    expect(loadConfig({ API_REQUEST_TIMEOUT: '5s' }).API_REQUEST_TIMEOUT).toBe(5_000);
    expect(() => loadConfig({ API_REQUEST_TIMEOUT: 'soon' })).toThrow(ConfigError);
    expect(() => loadConfig({ API_REQUEST_TIMEOUT: '0s' })).toThrow(/API_REQUEST_TIMEOUT/);
  });

  /** Open a connection, send `parts` one after the other `gapMs` apart, and read what comes back until the server closes it. */
  function rawRequest(port: number, parts: string[], gapMs: number): Promise<{ response: string; closedAfterMs: number; sent: number }> {
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const socket = netConnect({ host: '127.0.0.1', port });
      let response = '';
      let sent = 0;
      let timer: NodeJS.Timeout | undefined;
      const sendNext = () => {
        if (sent >= parts.length || socket.destroyed) return;
        socket.write(parts[sent++]!);
        timer = setTimeout(sendNext, gapMs);
      };
      socket.on('connect', sendNext);
      socket.on('data', (d) => (response += d.toString('utf8')));
      socket.on('error', (err: NodeJS.ErrnoException) => {
        // The server may reset rather than close once it has answered.
        if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') reject(err);
      });
      socket.on('close', () => {
        clearTimeout(timer);
        resolve({ response, closedAfterMs: Date.now() - started, sent });
      });
      // A server without a timeout would keep the connection forever.
      setTimeout(() => socket.destroy(), 10_000).unref();
    });
  }

  function expect408(result: { response: string; closedAfterMs: number }) {
    expect(result.response).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    const body = JSON.parse(result.response.slice(result.response.indexOf('\r\n\r\n') + 4));
    expect(body.error.code).toBe('request_timeout');
    expect(body.error.message).toContain('the request was not received in full within 1 s');
    expect(result.closedAfterMs).toBeGreaterThanOrEqual(900);
    expect(result.closedAfterMs).toBeLessThan(3_000);
  }

  let port: number;
  let url: string;
  beforeAll(async () => {
    ({ port, url } = await serve({ ...stack, config: { ...stack.config, API_REQUEST_TIMEOUT: 1_000 } }));
  });

  it('cuts off a request whose body never arrives in full: 408, connection closed', async () => {
    const head = `POST /tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${USERS.Alice.token}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"name":`;
    expect408(await rawRequest(port, [head], 0));
  });

  it('cuts off a client trickling its headers a byte at a time, though it is never idle', async () => {
    const request = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200);
    const result = await rawRequest(port, [...request], 50);
    expect408(result);
    expect(result.sent).toBeLessThan(request.length);
  });

  it('answers a request that arrives in time as usual', async () => {
    expect((await call(url, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    const result = await rawRequest(port, ['GET /healthz HTTP/1.1\r\nHost: x\r\n', 'Connection: close\r\n\r\n'], 300);
    expect(result.response).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });
});
