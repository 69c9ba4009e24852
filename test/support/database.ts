// Databases of a test file's own on the test server, so tests never touch a developer's data, and
// no test file pages, adopts or counts another file's rows.
import { randomBytes } from 'node:crypto';
import mariadb, { type Connection } from 'mariadb';
import { connectionOptions } from '../../src/db/client.ts';
import { migrate } from '../../src/db/migrate.ts';

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

/**
 * A database with every migration applied, whose task ids start at a random offset: Jobs are
 * labelled with task ids, and the ids of one file then match no other file's (nor another run's).
 */
export async function createMigratedTestDatabase(): Promise<TestDatabase> {
  const database = await createTestDatabase();
  try {
    await migrate(database.url);
    await database.query(`ALTER TABLE task AUTO_INCREMENT = ${1_000_000 + Math.floor(Math.random() * 1_000_000_000)}`);
    return database;
  } catch (err) {
    await database.drop();
    throw err;
  }
}

/** A URL on the test server naming a database that does not exist: for configuration not yet given one of its own. */
export function unconnectedDatabaseUrl(): string {
  const url = new URL(serverUrl);
  url.pathname = '/nightwatch_test_not_connected_use_connectStack';
  return url.toString();
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
