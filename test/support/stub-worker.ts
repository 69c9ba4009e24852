// A worker on its own task queue running the real workflow bundle with stub activities, for
// testing workflow logic on the real dev server with faults injected on purpose.
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import type { Activities } from '../../activities/index.ts';
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
    activities: { ...activities, ...withClient(new Client({ connection: native, namespace: config.TEMPORAL_NAMESPACE })) },
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
