// Runs before a project's tests: checks that the local stack is up and bundles the workflow code
// once for every test worker. Databases and namespaces are each test file's own (connectStack).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { DefaultLogger } from '@temporalio/worker';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../src/config.ts';
import { createKubeClients } from '../../src/kubernetes.ts';
import { temporalConnectionOptions } from '../../src/temporal.ts';
import { bundleWorkflows } from '../../src/worker-setup.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    workflowBundlePath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await checkStack();
  // Bundle the workflow code once per run; every test worker loads the same bundle.
  const bundleDir = await mkdtemp(join(tmpdir(), 'nightwatch-bundle-'));
  const { code } = await bundleWorkflows({ logger: quietLogger });
  const bundlePath = join(bundleDir, 'workflows.js');
  await writeFile(bundlePath, code);
  project.provide('workflowBundlePath', bundlePath);
  return async () => {
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
