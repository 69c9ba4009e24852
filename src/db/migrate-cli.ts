// `npm run db:migrate`: applies prisma/migrations to DATABASE_URL (see src/db/migrate.ts).
import { loadConfig } from '../config.ts';
import { migrate } from './migrate.ts';

try {
  const config = loadConfig();
  const url = new URL(config.DATABASE_URL);
  const target = `${url.hostname}:${url.port || 3306}${url.pathname}`;
  const { applied, alreadyApplied } = await migrate(config.DATABASE_URL, undefined, { log: (line) => console.log(`${target}: ${line}`) });
  if (applied.length === 0) {
    console.log(`${target}: no pending migrations (${alreadyApplied.length} already applied).`);
  } else {
    console.log(`${target}: applied ${applied.length} migration(s):`);
    for (const name of applied) console.log(`  ${name}`);
  }
} catch (err) {
  console.error(`db:migrate failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
