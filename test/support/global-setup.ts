// Runs once per `vitest run`, before any project's tests: gives the run a migrated database of its
// own (tests read its URL with `inject('databaseUrl')`) and drops it at the end.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../src/config.ts';
import { createKubeClients } from '../../src/kubernetes.ts';
import { temporalConnectionOptions } from '../../src/temporal.ts';
import { WORKFLOWS_PATH } from '../../src/worker-setup.ts';
import { migrate } from '../../src/db/migrate.ts';
import { createTestDatabase } from './database.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    workflowBundlePath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await checkStack();

  const database = await createTestDatabase();
  try {
    await migrate(database.url);
    // Jobs live in a cluster shared by every run (and by `npm start`), labelled with task ids.
    // Starting this run's ids at a random offset keeps them from matching another run's Jobs.
    await database.query(`ALTER TABLE task AUTO_INCREMENT = ${1_000_000 + Math.floor(Math.random() * 1_000_000_000)}`);
  } catch (err) {
    await database.drop();
    throw err;
  }
  project.provide('databaseUrl', database.url);
  // Bundle the workflow code once per run; every test worker loads the same bundle.
  const bundleDir = await mkdtemp(join(tmpdir(), 'nightwatch-bundle-'));
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
  const bundlePath = join(bundleDir, 'workflows.js');
  await writeFile(bundlePath, code);
  project.provide('workflowBundlePath', bundlePath);
  return async () => {
    await database.drop();
    await rm(bundleDir, { recursive: true, force: true });
  };
}

const quietLogger = new DefaultLogger('WARN');
const HOW_TO_START = 'start the local stack with `npm run stack start` (npm test does this for you) and export its settings: eval "$(npm run -s stack env)"';

/** Fail fast, naming what is down, instead of letting every test time out. */
async function checkStack(): Promise<void> {
  const config = loadConfig();
  try {
    const connection = await Connection.connect({ ...temporalConnectionOptions(config), connectTimeout: '5s' });
    await connection.close();
  } catch (err) {
    throw new Error(`Temporal is not reachable at ${config.TEMPORAL_ADDRESS}: ${String(err)}; ${HOW_TO_START}`);
  }
  if (!config.KUBECONFIG) throw new Error(`KUBECONFIG is not set; ${HOW_TO_START}`);
  try {
    await createKubeClients(config.KUBECONFIG).core.listNode();
  } catch (err) {
    throw new Error(`the Kubernetes API in ${config.KUBECONFIG} is not reachable: ${String(err)}; ${HOW_TO_START}`);
  }
}
