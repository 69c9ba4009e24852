// Runs once per `vitest run`, before any project's tests: gives the run a migrated database of its
// own (tests read its URL with `inject('databaseUrl')`) and drops it at the end.
import type { TestProject } from 'vitest/node';
import { migrate } from '../../src/db/migrate.ts';
import { createTestDatabase } from './database.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // ---- STACK CHECK (to be added): verify Temporal, the Kubernetes API server and MariaDB are up
  // ---- before anything else, and fail with instructions for starting the local stack if not.

  const database = await createTestDatabase();
  try {
    await migrate(database.url);
  } catch (err) {
    await database.drop();
    throw err;
  }
  project.provide('databaseUrl', database.url);
  return () => database.drop();
}
