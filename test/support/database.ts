// A database of the test run's own on the test server, so tests never touch a developer's data.
import { randomBytes } from 'node:crypto';
import mariadb, { type Connection } from 'mariadb';
import { connectionOptions } from '../../src/db/client.ts';

const serverUrl = process.env.TEST_DATABASE_SERVER_URL || 'mysql://root@127.0.0.1:3306';

export interface TestDatabase {
  url: string;
  /** Run one statement in this database. */
  query(sql: string): Promise<void>;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  // Unique per call, so parallel runs and several databases in one run cannot collide.
  const name = `nightwatch_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await onServer(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    query: (sql) => onServer(`USE \`${name}\`; ${sql}`),
    drop: () => onServer(`DROP DATABASE IF EXISTS \`${name}\``),
  };
}

async function onServer(sql: string): Promise<void> {
  const { database: _, ...server } = connectionOptions(serverUrl);
  let conn: Connection;
  try {
    conn = await mariadb.createConnection({ ...server, multipleStatements: true });
  } catch (err) {
    const where = `${server.host}:${server.port}`;
    throw new Error(`cannot reach the test database server at ${where} (TEST_DATABASE_SERVER_URL): ${String(err)}`, { cause: err });
  }
  try {
    await conn.query(sql);
  } finally {
    await conn.end();
  }
}
