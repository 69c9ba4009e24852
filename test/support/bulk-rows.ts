// Many task rows fast, with plain SQL (INSERT … SELECT from MariaDB's sequence engine, 100,000 rows a
// statement), shaped like a table that has run for a year: one heavy user with most rows and many
// light ones, three namespaces of most rows plus a few rare ones, nearly every row final, the rows in
// progress among the newest. For the query-plan test and the API load benchmark.
import mariadb from 'mariadb';
import { connectionOptions } from '../../src/db/client.ts';

export interface BulkRowsOptions {
  /** Rows to insert, ids `firstId` … `firstId + count - 1`. */
  count: number;
  firstId?: number;
  /** The user with most rows (9 in 10). */
  heavyUser?: string;
  /** The light users are `${lightUserPrefix}0` … `${lightUserPrefix}999`. */
  lightUserPrefix?: string;
  /** Rows in progress (Normal, Pending, Running in turn): the newest ones (default 1 in 500). */
  inProgress?: number;
  /** created_at spans this many days back from now, oldest first (default 365). */
  spanDays?: number;
}

const CHUNK = 100_000;

/**
 * The distribution, per row: user — 90% `heavyUser`, 10% one of 1,000 light users; namespace — 60%
 * `default`, 30% `demo`, 10% one of `ns-0` … `ns-6`; status — the newest `inProgress` rows Normal,
 * Pending or Running, the others 85% Succeeded, 10% Failed, 5% Cancelled, finished 2 s after created.
 * Hashes of the id (CRC32) keep the three independent of each other.
 */
export async function insertTaskRows(databaseUrl: string, options: BulkRowsOptions): Promise<void> {
  const { count } = options;
  const firstId = options.firstId ?? 1;
  const heavy = options.heavyUser ?? 'heavy';
  const lightPrefix = options.lightUserPrefix ?? 'light-';
  const inProgress = options.inProgress ?? Math.ceil(count / 500);
  const spanMs = (options.spanDays ?? 365) * 86_400_000;
  const lastId = firstId + count - 1;
  const stepMs = Math.max(1, Math.floor(spanMs / count));
  const conn = await mariadb.createConnection({ ...connectionOptions(databaseUrl), bigIntAsNumber: true });
  try {
    await conn.query('SET SESSION unique_checks = 0');
    for (let from = 0; from < count; from += CHUNK) {
      const to = Math.min(count, from + CHUNK);
      // s.seq is 1-based; id = firstId + seq - 1.
      await conn.query(
        `INSERT INTO task (id, name, namespace, info, status, user_id, created_at, updated_at, attempt, started_at, finished_at)
         SELECT id, CONCAT('t-', id), ns, '{"image":"alpine:3.20"}', st, usr, created, IF(st IN ('Succeeded','Failed','Cancelled'), created + INTERVAL 2 SECOND, created), 1,
                IF(st IN ('Normal','Pending'), NULL, created + INTERVAL 1 SECOND),
                IF(st IN ('Succeeded','Failed','Cancelled'), created + INTERVAL 2 SECOND, NULL)
         FROM (
           SELECT ? + s.seq - 1 AS id,
                  IF(CRC32(CONCAT('u', s.seq)) % 10 = 0, CONCAT(?, CRC32(CONCAT('l', s.seq)) % 1000), ?) AS usr,
                  ELT(1 + CRC32(CONCAT('n', s.seq)) % 10, 'default','default','default','default','default','default','demo','demo','demo',
                      CONCAT('ns-', CRC32(CONCAT('m', s.seq)) % 7)) AS ns,
                  IF(? + s.seq - 1 > ?, ELT(1 + s.seq % 3, 'Normal', 'Pending', 'Running'),
                     ELT(1 + (CRC32(CONCAT('s', s.seq)) % 100 >= 85) + (CRC32(CONCAT('s', s.seq)) % 100 >= 95), 'Succeeded', 'Failed', 'Cancelled')) AS st,
                  UTC_TIMESTAMP(3) - INTERVAL ((? - s.seq + 1) * ? * 1000) MICROSECOND AS created
           FROM seq_${from + 1}_to_${to} s
         ) r`,
        [firstId, lightPrefix, heavy, firstId, lastId - inProgress, count, stepMs],
      );
    }
    await conn.query('ANALYZE TABLE task');
  } finally {
    await conn.end();
  }
}
