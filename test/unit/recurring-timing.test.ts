// The timing of recurring tasks as the API checks it (src/recurring/timing.ts): cron with and
// without seconds, calendars, time zones, rates, delays, and what each becomes in Temporal.
import { describe, expect, it } from 'vitest';
import { calendarSpec, parseCron, parseSettings, parseTiming, runName, scheduleSpec, type FieldProblem, type RecurringSettings } from '../../src/recurring/timing.ts';

const timing = (body: Record<string, unknown>) => {
  const problems: FieldProblem[] = [];
  return { timing: parseTiming(body, problems), problems };
};
const settings = (t: RecurringSettings['timing']): RecurringSettings => ({
  timing: t,
  overlap: 'SKIP',
  catchupWindowMs: null,
  jitterMs: null,
  startAt: null,
  endAt: null,
  maxRuns: null,
  paused: false,
});

describe('cron', () => {
  it('takes 5 fields, or 6 with seconds first', () => {
    const five = parseCron('30 9 * * MON-FRI');
    expect(five).toMatchObject({ second: [{ start: 0, end: 0 }], minute: [{ start: 30, end: 30 }], hour: [{ start: 9, end: 9 }], dayOfWeek: [{ start: 1, end: 5, step: 1 }] });
    const six = parseCron('*/10 * * * * *');
    expect(six).toMatchObject({ second: [{ start: 0, end: 59, step: 10 }], minute: [{ start: 0, end: 59, step: 1 }] });
    expect(parseCron('@daily')).toMatchObject({ hour: [{ start: 0, end: 0 }], minute: [{ start: 0, end: 0 }] });
  });

  it('names the bad field', () => {
    expect(parseCron('0 25 * * *')).toMatch(/^field 2 \(hours \(0-23\)\): '25' is outside 0-23/);
    expect(parseCron('61 * * * * *')).toMatch(/^field 1 \(seconds/);
    expect(parseCron('* * * * FOO')).toMatch(/^field 5 \(day of week/);
    expect(parseCron('* * * *')).toMatch(/has 4 fields/);
    expect(parseCron('@often')).toMatch(/not a known shorthand/);
    expect(timing({ cron: '0 9 * * * * *' }).problems).toEqual([{ field: 'cron', message: expect.stringMatching(/has 7 fields/) }]);
  });

  it('makes Sunday 0 whether written 0 or 7', () => {
    expect(parseCron('0 0 * * 7')).toMatchObject({ dayOfWeek: [{ start: 0, end: 0 }] });
    expect(parseCron('0 0 * * 5-7')).toMatchObject({ dayOfWeek: [{ start: 0, end: 0 }, { start: 5, end: 6 }] });
  });

  it('becomes a Temporal calendar with months and days by name, in the time zone', () => {
    const { timing: t } = timing({ cron: '0 30 9 * JAN-MAR MON', timeZone: 'Europe/Paris' });
    const spec = scheduleSpec(settings(t!));
    expect(spec).toMatchObject({ timezone: 'Europe/Paris' });
    expect((spec as { calendars: unknown[] }).calendars[0]).toMatchObject({
      second: [{ start: 0, end: 0 }],
      minute: [{ start: 30, end: 30 }],
      month: [{ start: 'JANUARY', end: 'MARCH' }],
      dayOfWeek: [{ start: 'MONDAY', end: 'MONDAY' }],
    });
    expect((spec as { calendars: Record<string, unknown>[] }).calendars[0]!.year).toBeUndefined();
  });
});

describe('timing fields', () => {
  it('wants exactly one kind', () => {
    expect(timing({}).problems[0]!.field).toBe('cron');
    expect(timing({ cron: '* * * * *', every: '1m' }).problems[0]).toMatchObject({ field: 'every', message: expect.stringMatching(/only one/) });
  });

  it('checks time zones against the IANA database', () => {
    expect(timing({ cron: '0 9 * * *', timeZone: 'America/New_York' }).problems).toEqual([]);
    expect(timing({ cron: '0 9 * * *', timeZone: 'Mars/Olympus' }).problems).toEqual([{ field: 'timeZone', message: expect.stringMatching(/IANA/) }]);
    expect(timing({ every: '1m', timeZone: 'UTC' }).problems[0]!.field).toBe('timeZone');
  });

  it('refuses intervals and delays under one second', () => {
    expect(timing({ every: '500ms' }).problems).toEqual([{ field: 'every', message: expect.stringMatching(/at least 1s/) }]);
    expect(timing({ delay: '999ms' }).problems).toEqual([{ field: 'delay', message: expect.stringMatching(/at least 1s/) }]);
    expect(timing({ every: 'often' }).problems[0]!.field).toBe('every');
    expect(timing({ every: '10s', offset: '15s' }).problems[0]!.field).toBe('offset');
    expect(scheduleSpec(settings(timing({ every: '10s', offset: '3s' }).timing!))).toEqual({ intervals: [{ every: 10_000, offset: 3_000 }] });
  });

  it('checks calendars field by field', () => {
    expect(timing({ calendar: { hour: 25, dayOfWeek: 'MON-FRI', minutes: 3 } }).problems.map((p) => p.field)).toEqual(['calendar.minutes', 'calendar.hour']);
    const ok = timing({ calendar: { hour: 9, dayOfWeek: 'MON-FRI' } });
    expect(ok.problems).toEqual([]);
    expect(calendarSpec(parseCron('0 9 * * MON-FRI') as never)).toMatchObject({ hour: [{ start: 9 }], minute: [{ start: 0 }] });
  });
});

describe('settings', () => {
  const parse = (body: Record<string, unknown>, kind: 'cron' | 'delay' = 'cron') => {
    const problems: FieldProblem[] = [];
    return { value: parseSettings(body, kind, problems), problems };
  };

  it('wants the end after the start', () => {
    expect(parse({ startAt: '2030-01-02T00:00:00Z', endAt: '2030-01-01T00:00:00Z' }).problems).toEqual([{ field: 'endAt', message: expect.stringMatching(/after startAt/) }]);
    expect(parse({ startAt: 'tomorrow' }).problems[0]!.field).toBe('startAt');
  });

  it('takes overlap policies by the API name or Temporal name', () => {
    expect(parse({ overlap: 'bufferOne' }).value.overlap).toBe('BUFFER_ONE');
    expect(parse({ overlap: 'TERMINATE_OTHER' }).value.overlap).toBe('TERMINATE_OTHER');
    expect(parse({ overlap: 'sometimes' }).problems[0]!.field).toBe('overlap');
    expect(parse({ overlap: 'skip' }, 'delay').problems[0]!.field).toBe('overlap');
  });

  it('checks maxRuns, jitter and the catch-up window', () => {
    expect(parse({ maxRuns: 0 }).problems[0]!.field).toBe('maxRuns');
    expect(parse({ maxRuns: 3, jitter: '2s', catchupWindow: '5m' }).value).toMatchObject({ maxRuns: 3, jitterMs: 2_000, catchupWindowMs: 300_000 });
    expect(parse({ catchupWindow: '1s' }).problems[0]!.field).toBe('catchupWindow');
  });
});

it('names runs <name>-<yyyymmdd>-<hhmmss> in UTC', () => {
  expect(runName('nightly-report', new Date('2026-11-30T03:00:05.123Z'))).toBe('nightly-report-20261130-030005');
  expect(runName('a'.repeat(47), new Date()).length).toBe(63);
});
