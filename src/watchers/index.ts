// Every periodic job nightwatch runs.
import type { Config } from '../config.ts';
import { dispatchWatcher } from './dispatch.ts';
import { reconcileWatcher } from './reconcile.ts';
import { retentionWatcher } from './retention.ts';
import type { Watcher } from './watcher.ts';

export const watcherFactories = [dispatchWatcher, reconcileWatcher, retentionWatcher];

export function allWatchers(config: Config): Watcher[] {
  return watcherFactories.map((make) => make(config));
}
export type { Watcher } from './watcher.ts';
