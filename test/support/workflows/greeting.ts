// A trivial workflow for the foundation test: one activity call and a durable timer.
import { proxyActivities, sleep } from '@temporalio/workflow';

const { greet } = proxyActivities<{ greet(name: string): Promise<string> }>({ startToCloseTimeout: '10s' });

export async function greetingWorkflow(name: string): Promise<string> {
  await sleep('100ms');
  return greet(name);
}
