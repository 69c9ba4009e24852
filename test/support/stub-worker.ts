// A worker on its own task queue running the real workflow bundle with stub activities, for
// testing workflow logic on the real dev server with faults injected on purpose.
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { inject } from 'vitest';
import type { Activities } from '../../activities/index.ts';
import { createLaunchActivities } from '../../activities/launch.ts';
import { loadConfig } from '../../src/config.ts';
import { temporalConnectionOptions } from '../../src/temporal.ts';

export interface StubWorker {
  client: Client;
  taskQueue: string;
  close(): Promise<void>;
}

export async function startStubWorker(
  name: string,
  activities: Partial<Activities>,
  /** Activities that need the stub worker's own client (e.g. the real start of task workflows). */
  withClient: (client: Client) => Partial<Activities> = () => ({}),
  /** More worker options (as buildWorker would add them). */
  options: Partial<WorkerOptions> = {},
): Promise<StubWorker> {
  const config = loadConfig();
  const taskQueue = `${name}-${randomBytes(3).toString('hex')}`;
  const connection = await Connection.connect(temporalConnectionOptions(config));
  const client = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  const native = await NativeConnection.connect(temporalConnectionOptions(config));
  const worker = await Worker.create({
    connection: native,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue,
    workflowBundle: { codePath: inject('workflowBundlePath') },
    // On the worker's own connection, as a real worker's activities are (eager start needs it).
    activities: { ...launchFrom(activities), ...activities, ...withClient(new Client({ connection: native, namespace: config.TEMPORAL_NAMESPACE })) },
    ...options,
  });
  const running = worker.run();
  return {
    client,
    taskQueue,
    async close() {
      worker.shutdown();
      await running;
      await native.close();
      await connection.close();
    },
  };
}

/** launchTask made of the stubbed steps, as the worker makes it of the real ones (activities/index.ts). */
function launchFrom(stubs: Partial<Activities>): Partial<Activities> {
  if (!stubs.loadTask) return {};
  const missing = (name: string) => async (): Promise<never> => {
    throw new Error(`${name} is not stubbed`);
  };
  return createLaunchActivities({
    loadTask: stubs.loadTask,
    createJob: stubs.createJob ?? missing('createJob'),
    markStatus: stubs.markStatus ?? missing('markStatus'),
  });
}
