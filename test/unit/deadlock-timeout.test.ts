// The worker's workflow sandbox runs without a per-call time limit by default
// (WORKER_WORKFLOW_DEADLOCK_TIMEOUT=0). Node starts a watchdog thread for every vm call that has a
// `timeout`, and the SDK makes dozens of such calls per workflow task: at 1,000 tasks that was the
// largest single cost in the worker's workflow thread. The SDK itself cannot be told "no limit";
// patches/@temporalio+worker+*.patch (applied by postinstall) makes 0 mean that. These tests load
// the SDK's sandbox exactly as the worker does and look at the options of every vm call, so they
// fail if the patch stops applying or the option stops reaching the sandbox.
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { ReusableVMWorkflowCreator } from '@temporalio/worker/lib/workflow/reusable-vm.js';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

/** The `timeout` option of every vm call made while creating the sandbox with `timeoutMs`. */
async function sandboxTimeouts(timeoutMs: number): Promise<unknown[]> {
  const seen: unknown[] = [];
  // Every call that runs workflow code names its `timeout` (set or undefined); the SDK's other
  // set-up calls do not.
  const record = (options: unknown) => {
    if (typeof options === 'object' && options !== null && 'timeout' in options) seen.push((options as vm.RunningScriptOptions).timeout);
  };
  const runInContext = vm.runInContext.bind(vm);
  vi.spyOn(vm, 'runInContext').mockImplementation((code, context, options) => {
    record(options);
    return runInContext(code, context, options);
  });
  const scriptRun = vm.Script.prototype.runInContext;
  vi.spyOn(vm.Script.prototype, 'runInContext').mockImplementation(function (this: vm.Script, context, options) {
    record(options);
    return scriptRun.call(this, context, options);
  });
  const path = inject('workflowBundlePath');
  const code = readFileSync(path, 'utf8');
  // The bundle carries its source map inline, as the worker reads it.
  const inline = /\/\/# sourceMappingURL=data:application\/json;[^,]*base64,(\S+)\s*$/.exec(code);
  if (!inline) throw new Error(`${path} has no inline source map`);
  const sourceMap = JSON.parse(Buffer.from(inline[1]!, 'base64').toString('utf8'));
  const creator = await ReusableVMWorkflowCreator.create({ code, sourceMap, filename: path }, timeoutMs, new Set());
  await creator.destroy();
  return seen;
}

describe('the workflow sandbox time limit', () => {
  afterEach(() => vi.restoreAllMocks());

  it('is off by default: no vm call into the sandbox carries a timeout', async () => {
    const config = loadConfig({}, '/nonexistent');
    expect(config.WORKER_WORKFLOW_DEADLOCK_TIMEOUT).toBe(0);
    const timeouts = await sandboxTimeouts(config.WORKER_WORKFLOW_DEADLOCK_TIMEOUT);
    expect(timeouts.length).toBeGreaterThan(0);
    expect(timeouts).toEqual(timeouts.map(() => undefined));
  });

  it('is applied to every call when set', async () => {
    const config = loadConfig({ WORKER_WORKFLOW_DEADLOCK_TIMEOUT: '5s' }, '/nonexistent');
    expect(config.WORKER_WORKFLOW_DEADLOCK_TIMEOUT).toBe(5_000);
    const timeouts = await sandboxTimeouts(config.WORKER_WORKFLOW_DEADLOCK_TIMEOUT);
    expect(timeouts.length).toBeGreaterThan(0);
    expect(timeouts).toEqual(timeouts.map(() => 5_000));
  });

  it('reads 0 as off and refuses what is not a duration, naming the variable', () => {
    expect(loadConfig({ WORKER_WORKFLOW_DEADLOCK_TIMEOUT: '0' }, '/nonexistent').WORKER_WORKFLOW_DEADLOCK_TIMEOUT).toBe(0);
    expect(() => loadConfig({ WORKER_WORKFLOW_DEADLOCK_TIMEOUT: 'soon' }, '/nonexistent')).toThrow(ConfigError);
    expect(() => loadConfig({ WORKER_WORKFLOW_DEADLOCK_TIMEOUT: 'soon' }, '/nonexistent')).toThrow(/WORKER_WORKFLOW_DEADLOCK_TIMEOUT/);
  });
});
