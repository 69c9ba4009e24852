// The timing of a recurring task (issue 9) as the API takes it, checked field by field, and what it
// becomes in Temporal: a Schedule spec and policies (cron, calendar, fixed rate) or the settings of the
// fixed-delay workflow. Pure module: the API validates with it, workflows import its types.
//
//   cron      "m h dom mon dow" or "s m h dom mon dow" (a seconds field first), or @hourly, @daily…
//   calendar  {second, minute, hour, dayOfMonth, month, dayOfWeek, year}: each a cron field ("*/5",
//             "1-5", "MON-FRI") or a number; unset seconds/minutes/hours are 0, the others "*"
//   rate      every N (≥ 1 s), optional offset (phase) from the Unix epoch
//   delay     N after the previous run ended (the fixed-delay workflow, not a Schedule)
//
// Cron and calendar are matched in `timeZone` (IANA, default UTC), so daylight-saving changes are
// honoured: a 02:30 that does not exist that day is skipped, one that happens twice runs twice.
// As in Temporal, day-of-month and day-of-week must BOTH match (classic cron ORs them).

export const KINDS = ['cron', 'calendar', 'rate', 'delay'] as const;
export type Kind = (typeof KINDS)[number];

export const OVERLAP_POLICIES = ['SKIP', 'BUFFER_ONE', 'BUFFER_ALL', 'ALLOW_ALL', 'CANCEL_OTHER', 'TERMINATE_OTHER'] as const;
export type Overlap = (typeof OVERLAP_POLICIES)[number];
/** The API's spelling of each policy (Temporal's is accepted too). */
const OVERLAP_NAMES: Record<string, Overlap> = {
  skip: 'SKIP',
  bufferOne: 'BUFFER_ONE',
  bufferAll: 'BUFFER_ALL',
  allowAll: 'ALLOW_ALL',
  cancelOther: 'CANCEL_OTHER',
  terminateOther: 'TERMINATE_OTHER',
};

/** Runs are named `<name>-<yyyymmdd>-<hhmmss>`: 16 characters after a name of at most this many. */
export const MAX_RECURRING_NAME_CHARS = 47;
export const MIN_INTERVAL_MS = 1_000;
/** Temporal's scheduler does not honour a shorter catch-up window. */
export const MIN_CATCHUP_WINDOW_MS = 10_000;
export const MAX_RUNS = 1_000_000_000;

export type CronField = 'second' | 'minute' | 'hour' | 'dayOfMonth' | 'month' | 'dayOfWeek' | 'year';
export const CALENDAR_FIELDS: readonly CronField[] = ['second', 'minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek', 'year'];

/** A field of a Temporal CalendarSpec: ranges with steps. Month and day of week are numbers here (1–12, 0–6). */
export interface NumRange {
  start: number;
  end: number;
  step: number;
}
export type Calendar = Record<CronField, NumRange[]>;

/** The timing as stored (recurring_task.timing) and shown: what the user set. */
export type Timing =
  | { kind: 'cron'; cron: string; timeZone?: string }
  | { kind: 'calendar'; calendar: Partial<Record<CronField, string | number>>; timeZone?: string }
  | { kind: 'rate'; every: string; offset?: string }
  | { kind: 'delay'; delay: string };

export interface RecurringSettings {
  timing: Timing;
  overlap: Overlap;
  catchupWindowMs: number | null;
  jitterMs: number | null;
  startAt: Date | null;
  endAt: Date | null;
  maxRuns: number | null;
  paused: boolean;
}

export interface FieldProblem {
  field: string;
  message: string;
}

const LIMITS: Record<CronField, [number, number]> = {
  second: [0, 59],
  minute: [0, 59],
  hour: [0, 23],
  dayOfMonth: [1, 31],
  month: [1, 12],
  dayOfWeek: [0, 7],
  year: [1970, 2999],
};
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
const SHORTHANDS: Record<string, string> = {
  '@yearly': '0 0 0 1 1 *',
  '@annually': '0 0 0 1 1 *',
  '@monthly': '0 0 0 1 * *',
  '@weekly': '0 0 0 * * 0',
  '@daily': '0 0 0 * * *',
  '@midnight': '0 0 0 * * *',
  '@hourly': '0 0 * * * *',
};
const FIELD_WORDS: Record<CronField, string> = {
  second: 'seconds (0-59)',
  minute: 'minutes (0-59)',
  hour: 'hours (0-23)',
  dayOfMonth: 'day of month (1-31)',
  month: 'month (1-12 or JAN-DEC)',
  dayOfWeek: 'day of week (0-7 or SUN-SAT, 0 and 7 are Sunday)',
  year: 'year',
};

/** One field of a cron expression or calendar, as ranges; a string is the reason it is invalid. */
export function parseCronField(field: CronField, text: string): NumRange[] | string {
  const [min, max] = LIMITS[field];
  const names = field === 'month' ? MONTHS : field === 'dayOfWeek' ? DAYS : null;
  const value = (token: string): number | null => {
    if (/^\d{1,4}$/.test(token)) return Number(token);
    const i = names?.indexOf(token.toUpperCase()) ?? -1;
    if (i < 0) return null;
    return field === 'month' ? i + 1 : i;
  };
  const ranges: NumRange[] = [];
  for (const part of text.split(',')) {
    const m = /^([^/]+)(?:\/(\d{1,4}))?$/.exec(part);
    if (!m) return `'${part}' is not a value, a range (1-5), a step (*/15) or a list of those`;
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1) return `step '/${m[2]}' must be at least 1`;
    let start: number;
    let end: number;
    if (m[1] === '*' || m[1] === '?') {
      [start, end] = [min, field === 'dayOfWeek' ? 6 : max];
    } else {
      const bounds = m[1]!.split('-');
      if (bounds.length > 2) return `'${part}' is not a range like 1-5`;
      const a = value(bounds[0]!);
      const b = bounds.length === 2 ? value(bounds[1]!) : m[2] === undefined ? a : field === 'dayOfWeek' ? 6 : max;
      if (a === null || b === null) return `'${part}' is not a number${names ? ` or a name (${names.join(', ')})` : ''}`;
      if (a < min || a > max || b < min || b > max) return `'${part}' is outside ${min}-${max}`;
      if (b < a) return `'${part}' runs backwards: write the smaller value first`;
      [start, end] = [a, b];
    }
    if (field === 'dayOfWeek' && end === 7) {
      // 7 is Sunday again, which Temporal spells 0.
      if (start === 7 || step === 1 || (7 - start) % step === 0) ranges.push({ start: 0, end: 0, step: 1 });
      if (start === 7) continue;
      end = 6;
    }
    ranges.push({ start, end, step });
  }
  return ranges;
}

/** A cron expression as a calendar; a string is why it is not valid, naming the field. */
export function parseCron(text: string): Calendar | string {
  const trimmed = text.trim();
  const expanded = SHORTHANDS[trimmed.toLowerCase()] ?? trimmed;
  if (expanded.startsWith('@')) return `'${trimmed}' is not a known shorthand: use one of ${Object.keys(SHORTHANDS).join(', ')}, or write the fields`;
  const fields = expanded.split(/\s+/).filter(Boolean);
  if (fields.length !== 5 && fields.length !== 6) {
    return `has ${fields.length} field${fields.length === 1 ? '' : 's'}; write 5 (minute hour day-of-month month day-of-week) or 6 (a seconds field first), e.g. "*/10 * * * * *" for every 10 seconds`;
  }
  const names: CronField[] = fields.length === 6 ? ['second', 'minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek'] : ['minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek'];
  const calendar: Calendar = { second: [{ start: 0, end: 0, step: 1 }], minute: [], hour: [], dayOfMonth: [], month: [], dayOfWeek: [], year: [] };
  for (const [i, name] of names.entries()) {
    const parsed = parseCronField(name, fields[i]!);
    if (typeof parsed === 'string') return `field ${i + 1} (${FIELD_WORDS[name]}): ${parsed}`;
    calendar[name] = parsed;
  }
  calendar.year = parseCronField('year', '*') as NumRange[];
  return calendar;
}

/** A calendar object as ranges; problems name the field (`calendar.hour`). */
export function parseCalendar(value: unknown, problems: FieldProblem[]): Calendar | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    problems.push({ field: 'calendar', message: 'calendar must be an object like {"hour": 9, "minute": 30, "dayOfWeek": "MON-FRI"}' });
    return null;
  }
  const calendar = {} as Calendar;
  const before = problems.length;
  for (const key of Object.keys(value)) {
    if (!(CALENDAR_FIELDS as readonly string[]).includes(key)) {
      problems.push({ field: `calendar.${key}`, message: `${key} is not a calendar field: use ${CALENDAR_FIELDS.join(', ')}` });
    }
  }
  for (const field of CALENDAR_FIELDS) {
    const raw = (value as Record<string, unknown>)[field];
    const text = raw === undefined ? (['second', 'minute', 'hour'].includes(field) ? '0' : '*') : typeof raw === 'number' && Number.isInteger(raw) ? String(raw) : raw;
    if (typeof text !== 'string') {
      problems.push({ field: `calendar.${field}`, message: `${field} must be a whole number or a cron field like "*/15", "1-5" or "MON,FRI"` });
      continue;
    }
    const parsed = parseCronField(field, text.trim());
    if (typeof parsed === 'string') problems.push({ field: `calendar.${field}`, message: `${field} (${FIELD_WORDS[field]}): ${parsed}` });
    else calendar[field] = parsed;
  }
  return problems.length > before ? null : calendar;
}

/** A duration like 500ms, 30s, 5m, 2h or 1d, in milliseconds; null when it is not one. */
export function parseDuration(value: unknown): number | null {
  if (typeof value !== 'string') return null;
  const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(value.trim());
  if (!m) return null;
  return Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
}

/** Whether the runtime (ICU) knows `zone` as an IANA time zone. */
export function validTimeZone(zone: string): boolean {
  if (!/^[A-Za-z0-9_+\-/]{1,64}$/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

export const TIMING_FIELDS = ['cron', 'calendar', 'timeZone', 'every', 'offset', 'delay'] as const;
export const SETTING_FIELDS = ['overlap', 'catchupWindow', 'jitter', 'startAt', 'endAt', 'maxRuns', 'paused'] as const;

/**
 * The timing fields of a request body, checked: exactly one of cron, calendar, every, delay, with
 * timeZone (cron, calendar) or offset (every) beside it.
 */
export function parseTiming(body: Record<string, unknown>, problems: FieldProblem[]): Timing | null {
  const given = (['cron', 'calendar', 'every', 'delay'] as const).filter((k) => body[k] !== undefined && body[k] !== null);
  if (given.length !== 1) {
    problems.push({
      field: given[1] ?? 'cron',
      message:
        given.length === 0
          ? 'say when it runs: give one of cron ("*/10 * * * * *"), calendar ({"hour": 9}), every ("30s") or delay ("1m")'
          : `give only one of cron, calendar, every and delay, not ${given.join(' and ')}`,
    });
    return null;
  }
  const kind = given[0]!;
  const before = problems.length;
  const timeZone = body.timeZone ?? undefined;
  if (timeZone !== undefined) {
    if (kind === 'every' || kind === 'delay') problems.push({ field: 'timeZone', message: `timeZone applies to cron and calendar only, not to ${kind}: remove it` });
    else if (typeof timeZone !== 'string' || !validTimeZone(timeZone)) {
      problems.push({ field: 'timeZone', message: `timeZone must be an IANA time zone like "Europe/Paris" or "America/New_York", not ${JSON.stringify(String(timeZone).slice(0, 60))}` });
    }
  }
  if ((body.offset ?? undefined) !== undefined && kind !== 'every') problems.push({ field: 'offset', message: 'offset applies to every only: remove it' });
  const zone = typeof timeZone === 'string' ? { timeZone } : {};
  switch (kind) {
    case 'cron': {
      const cron = body.cron;
      if (typeof cron !== 'string') {
        problems.push({ field: 'cron', message: 'cron must be a string like "0 9 * * MON-FRI" or, with seconds, "*/10 * * * * *"' });
        return null;
      }
      const parsed = parseCron(cron);
      if (typeof parsed === 'string') problems.push({ field: 'cron', message: `cron "${cron.slice(0, 100)}" ${parsed}` });
      return problems.length > before ? null : { kind: 'cron', cron: cron.trim(), ...zone };
    }
    case 'calendar': {
      const parsed = parseCalendar(body.calendar, problems);
      return parsed && problems.length === before ? { kind: 'calendar', calendar: body.calendar as Record<CronField, string | number>, ...zone } : null;
    }
    case 'every': {
      const every = parseDuration(body.every);
      if (every === null) problems.push({ field: 'every', message: 'every must be a duration like 30s, 5m, 1h or 1d' });
      else if (every < MIN_INTERVAL_MS) problems.push({ field: 'every', message: `every is ${every} ms; it must be at least 1s` });
      else if (every % 1_000 !== 0) problems.push({ field: 'every', message: 'every must be a whole number of seconds' });
      let offset: number | null = null;
      if (body.offset !== undefined && body.offset !== null) {
        offset = parseDuration(body.offset);
        if (offset === null || offset % 1_000 !== 0) problems.push({ field: 'offset', message: 'offset must be a whole number of seconds, like 0s, 15s or 5m' });
        else if (every !== null && offset >= every) problems.push({ field: 'offset', message: `offset must be shorter than every (${String(body.every)})` });
      }
      return problems.length > before ? null : { kind: 'rate', every: String(body.every).trim(), ...(offset !== null ? { offset: String(body.offset).trim() } : {}) };
    }
    case 'delay': {
      const delay = parseDuration(body.delay);
      if (delay === null) problems.push({ field: 'delay', message: 'delay must be a duration like 30s, 5m, 1h or 1d' });
      else if (delay < MIN_INTERVAL_MS) problems.push({ field: 'delay', message: `delay is ${delay} ms; it must be at least 1s` });
      return problems.length > before ? null : { kind: 'delay', delay: String(body.delay).trim() };
    }
  }
}

/** The settings beside the timing (all optional); problems name the field. */
export function parseSettings(body: Record<string, unknown>, kind: Kind | null, problems: FieldProblem[]): Omit<RecurringSettings, 'timing'> {
  const out: Omit<RecurringSettings, 'timing'> = { overlap: 'SKIP', catchupWindowMs: null, jitterMs: null, startAt: null, endAt: null, maxRuns: null, paused: false };
  const given = (k: string) => body[k] !== undefined && body[k] !== null;
  if (kind === 'delay') {
    for (const k of ['overlap', 'catchupWindow', 'jitter']) {
      if (given(k)) problems.push({ field: k, message: `${k} does not apply to a fixed delay (runs never overlap, and none is missed): remove it` });
    }
  }
  if (given('overlap')) {
    const raw = String(body.overlap);
    const overlap = OVERLAP_NAMES[raw] ?? (OVERLAP_POLICIES as readonly string[]).find((p) => p === raw);
    if (overlap) out.overlap = overlap as Overlap;
    else problems.push({ field: 'overlap', message: `overlap must be one of ${Object.keys(OVERLAP_NAMES).join(', ')}, not ${JSON.stringify(raw.slice(0, 40))}` });
  }
  if (given('catchupWindow')) {
    const ms = parseDuration(body.catchupWindow);
    if (ms === null || ms < MIN_CATCHUP_WINDOW_MS) problems.push({ field: 'catchupWindow', message: 'catchupWindow must be a duration of at least 10s, like 1m or 1h' });
    else out.catchupWindowMs = ms;
  }
  if (given('jitter')) {
    const ms = parseDuration(body.jitter);
    if (ms === null) problems.push({ field: 'jitter', message: 'jitter must be a duration like 0s, 5s or 1m' });
    else out.jitterMs = ms;
  }
  for (const k of ['startAt', 'endAt'] as const) {
    if (!given(k)) continue;
    const raw = body[k];
    const date = typeof raw === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(raw) ? new Date(raw) : null;
    if (date === null || Number.isNaN(date.getTime())) problems.push({ field: k, message: `${k} must be an ISO 8601 time like "2030-01-01T09:00:00Z"` });
    else out[k] = date;
  }
  if (out.startAt && out.endAt && out.endAt <= out.startAt) problems.push({ field: 'endAt', message: `endAt (${out.endAt.toISOString()}) must be after startAt (${out.startAt.toISOString()})` });
  if (given('maxRuns')) {
    const n = body.maxRuns;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_RUNS) problems.push({ field: 'maxRuns', message: `maxRuns must be a whole number from 1 to ${MAX_RUNS}` });
    else out.maxRuns = n;
  }
  if (given('paused')) {
    if (typeof body.paused !== 'boolean') problems.push({ field: 'paused', message: 'paused must be true or false' });
    else out.paused = body.paused;
  }
  return out;
}

/** The body fields that describe a timing and its settings, for storing beside a row and merging a PATCH. */
export function timingBody(settings: RecurringSettings): Record<string, unknown> {
  const { kind: _, ...timing } = settings.timing;
  return {
    ...timing,
    ...(settings.timing.kind !== 'delay' ? { overlap: settings.overlap } : {}),
    ...(settings.catchupWindowMs !== null ? { catchupWindow: `${settings.catchupWindowMs}ms` } : {}),
    ...(settings.jitterMs !== null ? { jitter: `${settings.jitterMs}ms` } : {}),
  };
}

const SPEC_MONTHS = ['JANUARY', 'FEBRUARY', 'MARCH', 'APRIL', 'MAY', 'JUNE', 'JULY', 'AUGUST', 'SEPTEMBER', 'OCTOBER', 'NOVEMBER', 'DECEMBER'] as const;
const SPEC_DAYS = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'] as const;

/** A calendar in the shape of Temporal's CalendarSpec (months and days by name). */
export function calendarSpec(calendar: Calendar) {
  const named = <T extends string>(ranges: NumRange[], names: readonly T[], base: number) =>
    ranges.map((r) => ({ start: names[r.start - base]!, end: names[r.end - base]!, step: r.step }));
  return {
    second: calendar.second,
    minute: calendar.minute,
    hour: calendar.hour,
    dayOfMonth: calendar.dayOfMonth,
    month: named(calendar.month, SPEC_MONTHS, 1),
    dayOfWeek: named(calendar.dayOfWeek, SPEC_DAYS, 0),
    // Any year is Temporal's default; the parsed '*' (1970-2999) is left out.
    ...(calendar.year.length === 1 && calendar.year[0]!.start === LIMITS.year[0] && calendar.year[0]!.end === LIMITS.year[1] && calendar.year[0]!.step === 1
      ? {}
      : { year: calendar.year }),
  };
}

/** The Schedule spec of a cron, calendar or rate timing (settings already validated). */
export function scheduleSpec(settings: RecurringSettings) {
  const t = settings.timing;
  const common = {
    ...(settings.startAt ? { startAt: settings.startAt } : {}),
    ...(settings.endAt ? { endAt: settings.endAt } : {}),
    ...(settings.jitterMs !== null ? { jitter: settings.jitterMs } : {}),
  };
  switch (t.kind) {
    case 'cron':
      return { calendars: [calendarSpec(parseCron(t.cron) as Calendar)], timezone: t.timeZone ?? 'UTC', ...common };
    case 'calendar':
      return { calendars: [calendarSpec(parseCalendar(t.calendar, []) as Calendar)], timezone: t.timeZone ?? 'UTC', ...common };
    case 'rate':
      return { intervals: [{ every: parseDuration(t.every)!, offset: t.offset ? parseDuration(t.offset)! : 0 }], ...common };
    case 'delay':
      throw new Error('a fixed delay has no Schedule');
  }
}

/** The settings of the fixed-delay workflow. */
export interface FixedDelaySettings {
  delayMs: number;
  startAt: string | null;
  endAt: string | null;
  maxRuns: number | null;
}

export function fixedDelaySettings(settings: RecurringSettings): FixedDelaySettings {
  if (settings.timing.kind !== 'delay') throw new Error('not a fixed delay');
  return {
    delayMs: parseDuration(settings.timing.delay)!,
    startAt: settings.startAt?.toISOString() ?? null,
    endAt: settings.endAt?.toISOString() ?? null,
    maxRuns: settings.maxRuns,
  };
}

/** The name of the run scheduled at `at`: `<name>-<yyyymmdd>-<hhmmss>` in UTC, a DNS label of at most 63 characters. */
export function runName(name: string, at: Date): string {
  const iso = at.toISOString();
  return `${name}-${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}`;
}
