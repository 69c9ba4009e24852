// Benchmark: the API under load (autocannon) against a task table of 1,000,000 rows (issue 11).
//   eval "$(npm run -s stack env)"
//   npm exec -- tsx scripts/bench/api-load.ts [--rows=1000000] [--connections=1,10] [--duration=8] [--posts=500] [--fresh] [--drop]
// The rows (test/support/bulk-rows.ts: 90% one heavy user's, the bench's token is that user; 60%
// namespace default; 85% Succeeded, 10% Failed) live in a database of their own, kept between runs
// (--fresh rebuilds it, --drop removes it at the end); rows a run adds with POST /tasks are removed
// at its start. The API runs as its own process (`src/api/server.ts`, as `npm run api` does,
// API_LOG_LEVEL=warn) on a throwaway task queue with no worker: POST /tasks starts real workflows,
// which this script terminates at the end. For every list filter, a single task, POST /tasks and
// GET /healthz (no database: the ratio column divides by it, so the table compares within one run on
// a shared machine) it prints requests/s and p50/p99 latency, after a short warm-up. Then the
// issue's filtered list on the database alone, with the new indexes and with them ignored (the plan
// before this change), timed back to back.
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import autocannon, { type Request } from 'autocannon';
import mariadb from 'mariadb';
import { loadConfig } from '../../src/config.ts';
import { connectionOptions } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';
import { connectTemporalClient } from '../../src/temporal.ts';
import { insertTaskRows } from '../../test/support/bulk-rows.ts';
import { closedPort } from '../../test/support/net.ts';
import { removeTemporalLeftovers } from '../../test/support/stack.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const ROWS = Number(flag('rows', '1000000'));
/** Each scenario runs at each of these concurrencies (connections kept busy by autocannon). */
const CONNECTIONS = flag('connections', '1,10').split(',').map(Number);
const DURATION = Number(flag('duration', '8'));
const WARMUP = 2;
const POSTS = Number(flag('posts', '500'));
const HEAVY = 'heavy';
const TOKEN = 'bench-load-token';
const tag = randomBytes(3).toString('hex');

const serverUrl = process.env.TEST_DATABASE_SERVER_URL || 'mysql://root@127.0.0.1:3306';
const dbUrl = new URL(serverUrl);
dbUrl.pathname = '/nightwatch_bench_api_load';
const DATABASE_URL = dbUrl.toString();
const server = connectionOptions(serverUrl);
const sql = await mariadb.createConnection({ ...server, database: undefined, bigIntAsNumber: true, multipleStatements: true });

// --- the rows -------------------------------------------------------------------------------------
if (args.includes('--fresh')) await sql.query('DROP DATABASE IF EXISTS nightwatch_bench_api_load');
await migrate(DATABASE_URL);
await sql.query('USE nightwatch_bench_api_load');
const present = Number(((await sql.query('SELECT COUNT(*) AS n FROM task')) as { n: number }[])[0]!.n);
await sql.query('DELETE FROM task WHERE id > ?', [ROWS]);
if (present < ROWS) {
  const t0 = performance.now();
  await sql.query('DELETE FROM task');
  console.log(`inserting ${ROWS.toLocaleString('en')} rows…`);
  await insertTaskRows(DATABASE_URL, { count: ROWS, heavyUser: HEAVY, lightUserPrefix: 'light-' });
  console.log(`inserted in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const [counts] = (await sql.query(
  `SELECT SUM(user_id = ?) AS heavyRows, SUM(user_id = ? AND status = 'Failed' AND namespace = 'default') AS failedDefault,
          SUM(user_id = ? AND namespace = 'ns-3') AS rareNs FROM task`,
  [HEAVY, HEAVY, HEAVY],
)) as Record<'heavyRows' | 'failedDefault' | 'rareNs', string | number>[];
// SUM is DECIMAL, which the driver returns as a string.
const [heavyRows, failedDefault, rareNs] = [counts!.heavyRows, counts!.failedDefault, counts!.rareNs].map(Number) as [number, number, number];
// Ids of the heavy user's tasks, a random sample across the whole table, for GET /tasks/:id.
const sample = ((await sql.query('SELECT id FROM task WHERE user_id = ? ORDER BY RAND() LIMIT 10000', [HEAVY])) as { id: number }[]).map((r) => r.id);
const pick = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)]!;

// --- the API, as its own process ----------------------------------------------------------------------
const port = await closedPort();
const env = {
  ...process.env,
  DATABASE_URL,
  API_PORT: String(port),
  API_HOST: '127.0.0.1',
  API_TOKENS: `${TOKEN}:${HEAVY}`,
  API_LOG_LEVEL: 'warn',
  ALLOWED_NAMESPACES: 'default',
  TEMPORAL_TASK_QUEUE: `bench-load-${tag}`,
  WORKFLOW_ID_PREFIX: `benchload${tag}-`,
};
const config = loadConfig(env);
const api = spawn(process.execPath, ['src/api/server.ts'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
const base = `http://127.0.0.1:${port}`;
for (let waited = 0; ; waited += 200) {
  const up = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
  if (up) break;
  if (waited > 60_000 || api.exitCode !== null) throw new Error('the API did not start');
  await new Promise((r) => setTimeout(r, 200));
}

interface Scenario {
  label: string;
  request: (n: number) => Request;
  /** Requests in all (POST): a fixed amount instead of a duration. */
  amount?: number;
  read: boolean;
}
const get = (path: () => string) => () => ({ method: 'GET' as const, path: path() });
let posted = 0;
const scenarios: Scenario[] = [
  { label: 'GET /healthz (no database)', request: get(() => '/healthz'), read: true },
  { label: 'GET /tasks?limit=50', request: get(() => '/tasks?limit=50'), read: true },
  { label: 'GET /tasks?limit=50&cursor=<random>', request: get(() => `/tasks?limit=50&cursor=${1 + Math.floor(Math.random() * ROWS)}`), read: true },
  { label: 'GET /tasks?status=Failed&limit=50', request: get(() => '/tasks?status=Failed&limit=50'), read: true },
  { label: 'GET /tasks?namespace=default&limit=50', request: get(() => '/tasks?namespace=default&limit=50'), read: true },
  { label: 'GET /tasks?namespace=ns-3&limit=50 (rare)', request: get(() => '/tasks?namespace=ns-3&limit=50'), read: true },
  { label: 'GET /tasks?status=Failed&namespace=default&limit=200', request: get(() => '/tasks?status=Failed&namespace=default&limit=200'), read: true },
  {
    label: 'GET /tasks?status=Failed&namespace=default&limit=200&cursor=<random>',
    request: get(() => `/tasks?status=Failed&namespace=default&limit=200&cursor=${1 + Math.floor(Math.random() * ROWS)}`),
    read: true,
  },
  { label: 'GET /tasks/:id (random)', request: get(() => `/tasks/${pick(sample)}`), read: true },
  {
    label: 'POST /tasks',
    amount: POSTS,
    read: false,
    request: () => ({
      method: 'POST' as const,
      path: '/tasks',
      body: JSON.stringify({ name: `load-${tag}-${posted++}`, namespace: 'default', info: { image: 'alpine:3.20', command: ['true'] } }),
    }),
  },
];

async function load(scenario: Scenario, connections: number, seconds: number, amount?: number) {
  return autocannon({
    url: base,
    connections,
    ...(amount !== undefined ? { amount } : { duration: seconds }),
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    requests: [{ setupRequest: (req: Request) => ({ ...req, ...scenario.request(0) }) }],
  });
}

interface Measured {
  rps: number;
  p50: number;
  p99: number;
  bad: number;
}
const rows: { label: string; read: boolean; at: Measured[] }[] = [];
try {
  for (const scenario of scenarios) {
    const at: Measured[] = [];
    for (const connections of CONNECTIONS) {
      if (scenario.amount === undefined) await load(scenario, connections, WARMUP);
      const r = await load(scenario, connections, DURATION, scenario.amount);
      const bad = r.non2xx + r.errors + r.timeouts;
      // A fixed amount of POSTs: their rate is requests over the run's duration.
      const rps = scenario.amount === undefined ? r.requests.average : r.requests.total / (r.duration || 1);
      at.push({ rps, p50: r.latency.p50, p99: r.latency.p99, bad });
      console.log(`${scenario.label}, ${connections} conn.: ${rps.toFixed(0)}/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms${bad ? `, ${bad} not 2xx/errors` : ''}`);
    }
    rows.push({ label: scenario.label, read: scenario.read, at });
  }
} finally {
  api.kill('SIGTERM');
  await new Promise((r) => api.once('exit', r));
  const client = await connectTemporalClient(config);
  await removeTemporalLeftovers(client, config).catch((err: unknown) => console.error(`could not terminate the POSTs' workflows: ${String(err)}`));
  await client.connection.close();
  await sql.query('DELETE FROM task WHERE id > ?', [ROWS]);
}

// --- the database alone: the issue's filtered list with and without the new indexes ---------------
const NEW_INDEXES = ['task_user_id_status_id_idx', 'task_user_id_namespace_id_idx', 'task_user_id_status_namespace_id_idx'];
const listSql = (hint: string) =>
  `SELECT id, name, namespace, status, reason, attempt, user_id, created_at, updated_at, started_at, finished_at FROM task ${hint}
   WHERE user_id = ? AND status = 'Failed' AND namespace = 'default' ORDER BY id DESC LIMIT 201`;
async function timeQuery(text: string, times: number): Promise<number> {
  await sql.query(text, [HEAVY]);
  const t0 = performance.now();
  for (let i = 0; i < times; i++) await sql.query(text, [HEAVY]);
  return (performance.now() - t0) / times;
}
const after = await timeQuery(listSql('FORCE INDEX (task_user_id_status_namespace_id_idx)'), 50);
const before = await timeQuery(listSql(`IGNORE INDEX (${NEW_INDEXES.join(', ')})`), 10);
if (args.includes('--drop')) await sql.query('DROP DATABASE IF EXISTS nightwatch_bench_api_load');
await sql.end();

// --- the table ------------------------------------------------------------------------------------
const last = CONNECTIONS.length - 1;
const healthz = rows[0]!.at[last]!.rps;
console.log(
  `\n${ROWS.toLocaleString('en')} rows (${heavyRows.toLocaleString('en')} of them the benchmark user's; ${failedDefault.toLocaleString('en')} of those Failed in default, ` +
    `${rareNs.toLocaleString('en')} in ns-3); ${DURATION} s a read (after ${WARMUP} s of warm-up), ${POSTS} POSTs, at ${CONNECTIONS.join(' and ')} connections\n`,
);
console.log(`| request | ${CONNECTIONS.map((c) => `${c} conn.: requests/s | p50 | p99`).join(' | ')} | requests/s ÷ healthz's (${CONNECTIONS[last]} conn.) |`);
console.log(`| --- | ${CONNECTIONS.map(() => '---: | ---: | ---:').join(' | ')} | ---: |`);
for (const r of rows) {
  const cells = r.at.map((m) => `${m.rps.toFixed(0)} | ${m.p50} ms | ${r.read && m.p99 >= 50 ? `**${m.p99} ms**` : `${m.p99} ms`}${m.bad ? ` (${m.bad} failed)` : ''}`);
  console.log(`| \`${r.label}\` | ${cells.join(' | ')} | ${(r.at[last]!.rps / healthz).toFixed(3)} |`);
}
console.log('\n(p99 in bold: over the 50 ms target for reads)');
console.log(
  `\nthe status+namespace list query alone (limit 201): ${after.toFixed(2)} ms with its index, ${before.toFixed(1)} ms with the plan from before ` +
    `(new indexes ignored): ${(before / after).toFixed(0)}× faster`,
);
