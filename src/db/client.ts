// The Prisma client, on the MariaDB driver adapter: no query engine binary is needed.
import { PrismaMariaDb } from '@prisma/adapter-mariadb';
import { PrismaClient } from '../generated/prisma/client.ts';

export type { Task } from '../generated/prisma/client.ts';
export { PrismaClient };

/** Driver options from a `mysql://user:password@host:port/database` URL; shared by the client and the migration runner. */
export function connectionOptions(databaseUrl: string) {
  const url = new URL(databaseUrl);
  return {
    host: url.hostname,
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.replace(/^\//, '')),
  };
}

export function createPrisma(databaseUrl: string, poolSize = 10): PrismaClient {
  const adapter = new PrismaMariaDb({
    ...connectionOptions(databaseUrl),
    connectionLimit: poolSize,
    // Ids are BIGINT UNSIGNED; keep them exact.
    bigIntAsNumber: false,
  });
  return new PrismaClient({ adapter });
}
