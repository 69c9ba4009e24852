// fixedDelayWorkflow (workflow id recurring-<id>): a fixed-delay recurring task (issue 9). Not a
// Schedule: the next run is due `delay` after the previous run's task became final, however long it
// ran. Loop: wait until due (or triggered) and not paused → write the run's row → run it as the
// child task-<taskId> until final → due again in `delay`. Continues as new every few runs.
// Signals: pause, resume, trigger (run now, or right after the run in progress), settings (a new
// delay, start, end, maximum). Query: state. The workflow holds the live state; the row keeps what
// the API last set (and what a restart of the workflow starts from).
import { condition, continueAsNew, defineQuery, defineSignal, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { FixedDelaySettings } from '../src/recurring/timing.ts';
import { runTask } from './recurring.ts';

/** Runs per workflow run before continuing as new: keeps each history short. */
const RUNS_PER_CONTINUE = 20;

const acts = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
});

export interface FixedDelayInput {
  recurringTaskId: string;
  idPrefix?: string;
  settings: FixedDelaySettings;
  paused?: boolean;
  /** Carried across continue-as-new. */
  runs?: number;
  /** When the next run is due (ISO); unset: at once (or at startAt). */
  nextRunAt?: string | null;
  lastRunAt?: string | null;
  triggered?: boolean;
}

export interface FixedDelayState {
  paused: boolean;
  runs: number;
  /** The task of the run in progress. */
  runningTaskId: string | null;
  /** When the next run is due, when it is known (not paused, not running, not over). */
  nextRunAt: string | null;
  settings: FixedDelaySettings;
  finished: boolean;
}

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const triggerSignal = defineSignal('trigger');
export const settingsSignal = defineSignal<[FixedDelaySettings]>('settings');
export const stateQuery = defineQuery<FixedDelayState>('state');

export async function fixedDelayWorkflow(input: FixedDelayInput): Promise<{ runs: number; reason: string }> {
  const idPrefix = input.idPrefix ?? '';
  let settings = input.settings;
  let paused = input.paused ?? false;
  let runs = input.runs ?? 0;
  let triggered = input.triggered ?? false;
  let lastRunAt = input.lastRunAt ? Date.parse(input.lastRunAt) : null;
  let nextRunAt = input.nextRunAt ? Date.parse(input.nextRunAt) : Date.now();
  let runningTaskId: string | null = null;
  let finished = false;
  let woken = false;
  const wake = () => {
    woken = true;
  };
  setHandler(pauseSignal, () => {
    paused = true;
    wake();
  });
  setHandler(resumeSignal, () => {
    paused = false;
    wake();
  });
  setHandler(triggerSignal, () => {
    triggered = true;
    wake();
  });
  setHandler(settingsSignal, (next) => {
    // A new delay counts from the end of the last run.
    if (lastRunAt !== null && next.delayMs !== settings.delayMs && runningTaskId === null) nextRunAt += next.delayMs - settings.delayMs;
    settings = next;
    wake();
  });
  setHandler(stateQuery, () => ({
    paused,
    runs,
    runningTaskId,
    nextRunAt: paused || runningTaskId !== null || finished ? null : new Date(due()).toISOString(),
    settings,
    finished,
  }));
  const due = () => Math.max(nextRunAt, settings.startAt ? Date.parse(settings.startAt) : 0);
  const over = (): string | null => {
    if (settings.maxRuns !== null && runs >= settings.maxRuns) return `ran ${runs} times (maxRuns)`;
    if (settings.endAt !== null && Date.now() > Date.parse(settings.endAt)) return `past endAt ${settings.endAt}`;
    return null;
  };

  for (let thisRun = 0; ; thisRun++) {
    for (;;) {
      const reason = over();
      if (reason !== null) {
        finished = true;
        return { runs, reason };
      }
      if (triggered || (!paused && Date.now() >= due())) break;
      const until = [paused ? null : due(), settings.endAt ? Date.parse(settings.endAt) + 1 : null].filter((t): t is number => t !== null);
      woken = false;
      if (until.length === 0) await condition(() => woken);
      else await condition(() => woken, Math.max(1, Math.min(...until) - Date.now()));
    }
    triggered = false;
    // Runs are named after their start second: never two in one second.
    if (lastRunAt !== null && Date.now() < lastRunAt + 1_000) await sleep(lastRunAt + 1_000 - Date.now());
    const at = Math.floor(Date.now() / 1_000) * 1_000;
    lastRunAt = at;
    const run = await acts.createRecurringRun({ recurringTaskId: input.recurringTaskId, scheduledAt: new Date(at).toISOString() });
    if (run === null) {
      finished = true;
      return { runs, reason: 'the recurring task was deleted' };
    }
    runningTaskId = run.task.id;
    await runTask(run.task, idPrefix, 'cancelled with its fixed-delay workflow');
    runningTaskId = null;
    runs++;
    nextRunAt = Date.now() + settings.delayMs;
    if (thisRun + 1 >= RUNS_PER_CONTINUE || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof fixedDelayWorkflow>({
        ...input,
        settings,
        paused,
        runs,
        triggered,
        nextRunAt: new Date(nextRunAt).toISOString(),
        lastRunAt: new Date(lastRunAt).toISOString(),
      });
    }
  }
}
