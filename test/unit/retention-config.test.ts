// RETENTION_* as the worker reads them (src/config.ts) and hands them to retention
// (activities/retention.ts): off unless RETENTION_AFTER is set, durations in days.
import { describe, expect, it } from 'vitest';
import { retentionSettings } from '../../activities/retention.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';

const DAY = 86_400_000;
const settings = (env: Record<string, string>) => retentionSettings(loadConfig(env, '/nonexistent'));

describe('retention configuration', () => {
  it('is off by default, with archive, 500-row batches and a 1 s pause ready for when it is on', () => {
    expect(settings({})).toEqual({ afterMs: null, mode: 'archive', dryRun: false, batchSize: 500, pauseMs: 1_000 });
    expect(loadConfig({}, '/nonexistent').RETENTION_INTERVAL).toBe(3_600_000);
  });

  it('reads ages in days, and every setting', () => {
    expect(
      settings({ RETENTION_AFTER: '90d', RETENTION_MODE: 'delete', RETENTION_DRY_RUN: 'true', RETENTION_BATCH_SIZE: '200', RETENTION_BATCH_PAUSE: '250ms' }),
    ).toEqual({ afterMs: 90 * DAY, mode: 'delete', dryRun: true, batchSize: 200, pauseMs: 250 });
    expect(loadConfig({ RETENTION_INTERVAL: '1d' }, '/nonexistent').RETENTION_INTERVAL).toBe(DAY);
  });

  it('refuses an age under an hour, an unknown mode and batches out of range, naming the variable', () => {
    for (const [name, value] of [
      ['RETENTION_AFTER', '30m'],
      ['RETENTION_AFTER', '90'],
      ['RETENTION_MODE', 'purge'],
      ['RETENTION_BATCH_SIZE', '0'],
      ['RETENTION_BATCH_SIZE', '100000'],
    ] as const) {
      expect(() => loadConfig({ [name]: value }, '/nonexistent'), `${name}=${value}`).toThrow(ConfigError);
      expect(() => loadConfig({ [name]: value }, '/nonexistent'), `${name}=${value}`).toThrow(name);
    }
  });
});
