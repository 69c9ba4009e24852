// The Prisma client, on the MariaDB driver adapter: no query engine binary is needed.
import { PrismaMariaDb } from '@prisma/adapter-mariadb';
import { PrismaClient } from '../generated/prisma/client.ts';

export type { Task } from '../generated/prisma/client.ts';
export { PrismaClient };

export function createPrisma(databaseUrl: string, poolSize = 10): PrismaClient {
  const url = new URL(databaseUrl);
  const adapter = new PrismaMariaDb({
    host: url.hostname,
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: url.pathname.replace(/^\//, ''),
    connectionLimit: poolSize,
    // Ids are BIGINT UNSIGNED; keep them exact.
    bigIntAsNumber: false,
  });
  return new PrismaClient({ adapter });
}
