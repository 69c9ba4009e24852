import { defineConfig } from 'prisma/config';

// env('DATABASE_URL') throws when the variable is unset, which would break
// `prisma generate` on a fresh clone; fall back to the local default instead.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: {
    path: 'prisma/migrations',
    seed: 'tsx prisma/seed.ts',
  },
  datasource: {
    url: process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/nightwatch',
  },
});
