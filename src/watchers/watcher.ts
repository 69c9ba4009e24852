// A watcher is one piece of periodic work, declared once (OneX nightwatch's registry, on
// Temporal Schedules). Adding one means a new file in this folder and a line in index.ts;
// no framework code changes. Fixed time and fixed rate are Schedules; a fixed delay after
// the previous run would be a long-lived workflow that sleeps and continues as new.
import type { ScheduleOverlapPolicy, ScheduleSpec } from '@temporalio/client';
import type { Config } from '../config.ts';

export interface Watcher {
  /** The Schedule id (prefixed with WORKFLOW_ID_PREFIX), also the started workflows' id prefix. */
  id: string;
  description: string;
  spec: ScheduleSpec;
  overlap: ScheduleOverlapPolicy;
  /** The workflow each tick starts, by its exported name in workflows/index.ts. */
  workflowType: string;
  args: unknown[];
}

export type WatcherFactory = (config: Config) => Watcher;
