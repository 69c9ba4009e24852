// Every periodic job nightwatch runs.
import type { Config } from '../config.ts';
import { dispatchWatcher } from './dispatch.ts';
import { reconcileWatcher } from './reconcile.ts';
import type { Watcher } from './watcher.ts';

export const watcherFactories = [dispatchWatcher, reconcileWatcher];

export function allWatchers(config: Config): Watcher[] {
  return watcherFactories.map((make) => make(config));
}
export type { Watcher } from './watcher.ts';
