// The recurring-task routes (issue 9). Each recurring task is a row in `recurring_task` (the template:
// name, namespace, info, user; and the timing as the user last set it) plus, in Temporal, either the
// Schedule `recurring-<id>` (cron, calendar, fixed rate) or the fixed-delay workflow `recurring-<id>`.
//
// Source of truth for timing and state: Temporal. The Schedule (or workflow) is what runs, so
// `temporal schedule pause/trigger/update` act at once and are neither lost nor fought: the API
// never rewrites a Schedule from the row, every GET reads the live Schedule (spec, paused, remaining
// runs, next run times), and a PATCH changes only the parts it names (a new timing replaces the
// spec; a new overlap policy only the policy). The row keeps the template, which every run reads
// (so a PATCH of info applies from the next run), and what the user last set, to show and to
// re-create a missing Schedule from.
//
// Per-user isolation as for /tasks: another user's recurring task answers 404.
import { ScheduleNotFoundError, ScheduleOverlapPolicy, WorkflowNotFoundError, type Client, type ScheduleDescription } from '@temporalio/client';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Prisma } from '../generated/prisma/client.ts';
import { infoPolicyProblems, namespaceProblem, policyFromConfig } from '../policy.ts';
import type { RecurringTask } from '../generated/prisma/client.ts';
import type { TaskInfo } from '../task/info.ts';
import {
  fixedDelaySettings,
  MAX_RECURRING_NAME_CHARS,
  parseSettings,
  parseTiming,
  scheduleSpec,
  SETTING_FIELDS,
  TIMING_FIELDS,
  type Kind,
  type Overlap,
  type RecurringSettings,
} from '../recurring/timing.ts';
import { workflowUrl } from '../temporal.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import { recurringWorkflowId } from '../../workflows/recurring.ts';
import type { FixedDelayState } from '../../workflows/fixed-delay.ts';
import type { ApiDeps } from './app.ts';
import { ApiError, type FieldProblem } from './errors.ts';
import { namespaceAllowed, validateSubmission } from './submission.ts';

const TEMPLATE_FIELDS = ['name', 'namespace', 'info'] as const;
const ALL_FIELDS: readonly string[] = [...TEMPLATE_FIELDS, ...TIMING_FIELDS, ...SETTING_FIELDS];
const KIND_KEYS = ['cron', 'calendar', 'every', 'delay'];
/** Without a catch-up window, runs missed while Temporal was away for up to this long are still made. */
export const DEFAULT_CATCHUP_WINDOW_MS = 3_600_000;
const TEMPORAL_CALL_DEADLINE_MS = 5_000;
/**
 * A write to a Schedule (update, pause, unpause, trigger, backfill) passes through the Schedule's
 * own scheduler on the server; an update is also a read before the replace. On a busy machine
 * that took over 5 s just after the Schedule was created or had run (CI runs answered 503 to a
 * valid PATCH, then to a valid resume), so writes get 15 s; reads keep 5 s.
 */
const SCHEDULE_WRITE_DEADLINE_MS = 15_000;
const RECENT_RUNS = 10;
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 200;
const MAX_ID = 2n ** 64n - 1n;

function summary(what: string, problems: FieldProblem[]): string {
  return `${what}: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`;
}

function parseId(raw: string): bigint {
  const id = /^\d{1,20}$/.test(raw) ? BigInt(raw) : null;
  if (id === null || id === 0n || id > MAX_ID) {
    throw new ApiError(400, 'invalid_recurring_task_id', `recurring task id must be a whole number like 42, not ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return id;
}

function kindOf(settings: RecurringSettings): Kind {
  return settings.timing.kind;
}

/** The request body of the row as it was last set: what a PATCH is merged into. */
function rowBody(row: RecurringTask): Record<string, unknown> {
  return {
    name: row.name,
    namespace: row.namespace,
    info: JSON.parse(row.info) as unknown,
    ...(JSON.parse(row.timing) as Record<string, unknown>),
    ...(row.kind !== 'delay' ? { overlap: row.overlap } : {}),
    ...(row.catchupWindowMs !== null ? { catchupWindow: `${row.catchupWindowMs}ms` } : {}),
    ...(row.jitterMs !== null ? { jitter: `${row.jitterMs}ms` } : {}),
    ...(row.startAt ? { startAt: row.startAt.toISOString() } : {}),
    ...(row.endAt ? { endAt: row.endAt.toISOString() } : {}),
    ...(row.maxRuns !== null ? { maxRuns: row.maxRuns } : {}),
    paused: row.paused,
  };
}

interface Parsed {
  name: string;
  namespace: string;
  infoText: string;
  info: TaskInfo;
  settings: RecurringSettings;
}

/** A whole body (POST, or a PATCH merged into the row's), checked; 400 naming every bad field. */
function parseBody(body: unknown, what: string): Parsed {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(400, 'validation_failed', `${what}: the body must be a JSON object like {"name": "report", "namespace": "default", "info": {"image": "alpine"}, "cron": "0 9 * * *"}`);
  }
  const fields = body as Record<string, unknown>;
  const problems: FieldProblem[] = [];
  for (const key of Object.keys(fields)) {
    if (!ALL_FIELDS.includes(key)) problems.push({ field: key, message: `${key} is not a known field: remove it; the body accepts ${ALL_FIELDS.join(', ')}` });
  }
  const template = validateSubmission({ name: fields.name, namespace: fields.namespace, info: fields.info });
  if (!template.ok) problems.push(...template.problems);
  if (typeof fields.name === 'string' && fields.name.length > MAX_RECURRING_NAME_CHARS) {
    problems.push({ field: 'name', message: `name is ${fields.name.length} characters long; a recurring task's name may have at most ${MAX_RECURRING_NAME_CHARS}, because each run is named <name>-<yyyymmdd>-<hhmmss>` });
  }
  const timing = parseTiming(fields, problems);
  const rest = parseSettings(fields, timing?.kind ?? null, problems);
  if (problems.length > 0 || !template.ok || !timing) {
    throw new ApiError(problems.some((p) => p.field === 'info') && !template.ok && template.status === 413 ? 413 : 400, 'validation_failed', summary(what, problems), problems);
  }
  const { name, namespace, infoText, info } = template.submission;
  return { name, namespace, infoText, info, settings: { timing, ...rest } };
}

function rowData(parsed: Parsed) {
  const { kind, ...timing } = parsed.settings.timing;
  const s = parsed.settings;
  return {
    name: parsed.name,
    namespace: parsed.namespace,
    info: parsed.infoText,
    kind,
    timing: JSON.stringify(timing),
    overlap: s.overlap,
    catchupWindowMs: s.catchupWindowMs === null ? null : BigInt(s.catchupWindowMs),
    jitterMs: s.jitterMs === null ? null : BigInt(s.jitterMs),
    startAt: s.startAt,
    endAt: s.endAt,
    maxRuns: s.maxRuns,
    paused: s.paused,
  };
}

export function recurringRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { prisma, config, client } = deps;
  const prefix = config.WORKFLOW_ID_PREFIX;
  const temporalId = (row: { id: bigint }) => recurringWorkflowId(row.id.toString(), prefix);
  const withDeadline = <T>(fn: () => Promise<T>, ms = TEMPORAL_CALL_DEADLINE_MS) => client.withDeadline(Date.now() + ms, fn);
  const writeSchedule = <T>(fn: () => Promise<T>) => withDeadline(fn, SCHEDULE_WRITE_DEADLINE_MS);

  async function own(request: FastifyRequest<{ Params: { id: string } }>): Promise<RecurringTask> {
    const id = parseId(request.params.id);
    const row = await prisma.recurringTask.findFirst({ where: { id, userId: request.userId } });
    if (!row) throw new ApiError(404, 'recurring_task_not_found', `recurring task ${id} not found among yours; list them with GET /recurring-tasks`);
    return row;
  }

  const policy = policyFromConfig(config);
  /** The operator's policy, as for POST /tasks: every run would be refused otherwise. */
  function checkPolicy(parsed: Parsed, what: string): void {
    const closed = namespaceAllowed(config.ALLOWED_NAMESPACES, parsed.namespace)
      ? namespaceProblem(policy, parsed.namespace)
      : `namespace '${parsed.namespace}' is not open to tasks on this server: use one of ${config.ALLOWED_NAMESPACES.join(', ')}`;
    if (closed) throw new ApiError(403, 'namespace_not_allowed', `${what}: ${closed}`, [{ field: 'namespace', message: closed }]);
    const refused = infoPolicyProblems(policy, parsed.info);
    if (refused.length > 0) throw new ApiError(403, 'policy_violation', summary(what, refused), refused);
  }

  const runsSoFar = (row: RecurringTask) => prisma.task.count({ where: { recurringTaskId: row.id } });

  function scheduleOptions(row: RecurringTask, settings: RecurringSettings, remainingActions: number | undefined) {
    const id = temporalId(row);
    return {
      scheduleId: id,
      spec: scheduleSpec(settings),
      action: {
        type: 'startWorkflow' as const,
        workflowType: 'recurringRunWorkflow',
        workflowId: id,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [{ recurringTaskId: row.id.toString(), idPrefix: prefix }],
        staticSummary: `recurring ${row.namespace}/${row.name} (user ${row.userId})`,
      },
      policies: { overlap: settings.overlap, catchupWindow: settings.catchupWindowMs ?? DEFAULT_CATCHUP_WINDOW_MS },
      state: { paused: settings.paused, ...(remainingActions !== undefined ? { remainingActions } : {}), note: settings.paused ? 'paused through the nightwatch API' : '' },
      memo: { recurringTaskId: row.id.toString(), name: row.name, namespace: row.namespace, userId: row.userId },
    };
  }

  /** Start the fixed-delay workflow, or hand new settings to the one running. */
  async function startFixedDelay(row: RecurringTask, settings: RecurringSettings, runs: number): Promise<void> {
    await withDeadline(() =>
      client.workflow.signalWithStart('fixedDelayWorkflow', {
        workflowId: temporalId(row),
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [{ recurringTaskId: row.id.toString(), idPrefix: prefix, settings: fixedDelaySettings(settings), paused: settings.paused, runs }],
        signal: 'settings',
        signalArgs: [fixedDelaySettings(settings)],
        memo: { recurringTaskId: row.id.toString(), name: row.name, namespace: row.namespace, userId: row.userId },
        staticSummary: `recurring ${row.namespace}/${row.name} every ${(settings.timing as { delay: string }).delay} after the last run (user ${row.userId})`,
      }),
    );
  }

  async function createInTemporal(row: RecurringTask, settings: RecurringSettings): Promise<void> {
    if (kindOf(settings) === 'delay') return startFixedDelay(row, settings, await runsSoFar(row));
    const remaining = settings.maxRuns === null ? undefined : Math.max(0, settings.maxRuns - (await runsSoFar(row)));
    await withDeadline(() => client.schedule.create(scheduleOptions(row, settings, remaining)));
  }

  /** What Temporal runs now: the live Schedule or fixed-delay workflow. */
  async function live(row: RecurringTask): Promise<Record<string, unknown>> {
    const id = temporalId(row);
    try {
      if (row.kind === 'delay') {
        const handle = client.workflow.getHandle(id);
        const [description, state] = await withDeadline(() => Promise.all([handle.describe(), handle.query<FixedDelayState>('state')]));
        return {
          source: 'workflow',
          workflowId: id,
          workflowUrl: workflowUrl(config, id),
          status: description.status.name,
          paused: state.paused,
          runs: state.runs,
          runningTaskId: state.runningTaskId,
          nextRunTimes: state.nextRunAt ? [state.nextRunAt] : [],
          delayMs: state.settings.delayMs,
          maxRuns: state.settings.maxRuns,
          startAt: state.settings.startAt,
          endAt: state.settings.endAt,
        };
      }
      const d: ScheduleDescription = await withDeadline(() => client.schedule.getHandle(id).describe());
      return {
        source: 'schedule',
        scheduleId: id,
        scheduleUrl: `${config.TEMPORAL_UI_URL.replace(/\/$/, '')}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/schedules/${encodeURIComponent(id)}`,
        paused: d.state.paused,
        note: d.state.note ?? null,
        remainingRuns: d.state.remainingActions ?? null,
        nextRunTimes: d.info.nextActionTimes,
        overlap: d.policies.overlap,
        catchupWindowMs: d.policies.catchupWindow,
        spec: d.spec,
        runsTaken: d.info.numActionsTaken,
        skippedOverlap: d.info.numActionsSkippedOverlap,
        missedCatchupWindow: d.info.numActionsMissedCatchupWindow,
        recentActions: d.info.recentActions.map((a) => ({ scheduledAt: a.scheduledAt, takenAt: a.takenAt, workflowId: a.action.workflow.workflowId })),
        runningWorkflows: d.info.runningActions.map((a) => a.workflow.workflowId),
      };
    } catch (err) {
      if (err instanceof ScheduleNotFoundError || err instanceof WorkflowNotFoundError) {
        return { source: row.kind === 'delay' ? 'workflow' : 'schedule', missing: true, message: `${id} does not exist in Temporal: PATCH the recurring task (or resume it) to create it again` };
      }
      app.log.warn({ err, id }, 'could not read a recurring task from Temporal');
      return { source: row.kind === 'delay' ? 'workflow' : 'schedule', unavailable: true, message: 'Temporal did not answer; try again shortly' };
    }
  }

  async function recentRuns(row: RecurringTask, take = RECENT_RUNS) {
    const rows = await prisma.task.findMany({
      where: { recurringTaskId: row.id },
      orderBy: { id: 'desc' },
      take,
      select: { id: true, name: true, namespace: true, status: true, reason: true, attempt: true, createdAt: true, startedAt: true, finishedAt: true },
    });
    return rows.map((r) => {
      const workflowId = taskWorkflowId(r.id.toString(), prefix);
      return { ...r, id: r.id.toString(), workflowId, workflowUrl: workflowUrl(config, workflowId) };
    });
  }

  async function view(row: RecurringTask, options: { runs?: number; info?: boolean } = {}) {
    const [liveState, runs] = await Promise.all([live(row), recentRuns(row, options.runs ?? RECENT_RUNS)]);
    const body = rowBody(row);
    return {
      id: row.id.toString(),
      name: row.name,
      namespace: row.namespace,
      userId: row.userId,
      kind: row.kind,
      /** What the user last set through the API (Temporal may have been changed since: see live). */
      settings: Object.fromEntries(Object.entries(body).filter(([k]) => !TEMPLATE_FIELDS.includes(k as never))),
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
      ...(options.info !== false ? { info: body.info } : {}),
      live: liveState,
      recentRuns: runs,
    };
  }

  const temporalFailure = (request: FastifyRequest, err: unknown, what: string): never => {
    request.log.error({ err, temporal: config.TEMPORAL_ADDRESS }, `${what}: Temporal call failed`);
    throw new ApiError(503, 'temporal_unavailable', `${what}: Temporal did not take the request; try again shortly`);
  };

  app.post('/recurring-tasks', async (request, reply) => {
    const what = 'recurring task not created';
    const parsed = parseBody(request.body ?? {}, what);
    checkPolicy(parsed, what);
    let row: RecurringTask;
    try {
      row = await prisma.recurringTask.create({ data: { ...rowData(parsed), userId: request.userId } });
    } catch (err) {
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') {
        const message = `a recurring task named '${parsed.name}' already exists in namespace '${parsed.namespace}': choose another name`;
        throw new ApiError(409, 'recurring_task_exists', `${what}: ${message}`, [{ field: 'name', message }]);
      }
      throw err;
    }
    try {
      await createInTemporal(row, parsed.settings);
    } catch (err) {
      // Nothing runs it: the row must not stay either.
      await prisma.recurringTask.delete({ where: { id: row.id } }).catch(() => undefined);
      const invalid = (err as { code?: number } | null)?.code === 3; // gRPC INVALID_ARGUMENT
      if (invalid) throw new ApiError(400, 'validation_failed', `${what}: Temporal refused the timing: ${(err as Error).message}`, [{ field: 'timing', message: (err as Error).message }]);
      temporalFailure(request, err, what);
    }
    return reply.code(201).send(await view(row));
  });

  app.get('/recurring-tasks', async (request) => {
    const query = request.query as Record<string, string | undefined>;
    const limit = query.limit === undefined ? DEFAULT_PAGE_SIZE : Number(query.limit);
    const problems: FieldProblem[] = [];
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) problems.push({ field: 'limit', message: `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}` });
    if (query.cursor !== undefined && !/^\d{1,20}$/.test(query.cursor)) problems.push({ field: 'cursor', message: 'cursor must be the nextCursor of an earlier page, unchanged' });
    if (problems.length > 0) throw new ApiError(400, 'invalid_query', summary('recurring tasks not listed', problems), problems);
    const rows = await prisma.recurringTask.findMany({
      where: { userId: request.userId, ...(query.cursor ? { id: { lt: BigInt(query.cursor) } } : {}) },
      orderBy: { id: 'desc' },
      take: limit + 1,
    });
    const page = rows.slice(0, limit);
    return {
      recurringTasks: await Promise.all(page.map((r) => view(r, { runs: 5, info: false }))),
      nextCursor: rows.length > limit ? page[page.length - 1]!.id.toString() : null,
    };
  });

  app.get<{ Params: { id: string } }>('/recurring-tasks/:id', async (request) => view(await own(request)));

  app.patch<{ Params: { id: string } }>('/recurring-tasks/:id', async (request) => {
    const row = await own(request);
    const what = `recurring task ${row.id} not changed`;
    const patch = request.body;
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
      throw new ApiError(400, 'validation_failed', `${what}: the body must be a JSON object with the fields to change, like {"cron": "*/30 * * * * *"}`);
    }
    const changes = patch as Record<string, unknown>;
    const merged = rowBody(row);
    if (Object.keys(changes).some((k) => KIND_KEYS.includes(k))) for (const k of [...KIND_KEYS, 'offset', 'timeZone']) delete merged[k];
    if (row.kind === 'delay' && !Object.keys(changes).some((k) => KIND_KEYS.includes(k))) delete merged.overlap;
    for (const [k, v] of Object.entries(changes)) {
      if (v === null) delete merged[k];
      else merged[k] = v;
    }
    const switched = KIND_KEYS.find((k) => changes[k] !== undefined && changes[k] !== null && (k === 'delay') !== (row.kind === 'delay'));
    if (switched) {
      const message = `a ${row.kind} recurring task cannot become a ${switched === 'delay' ? 'fixed-delay' : 'scheduled'} one (${row.kind === 'delay' ? 'a workflow' : 'a Schedule'} runs it): create a new recurring task and delete this one`;
      throw new ApiError(400, 'validation_failed', `${what}: ${message}`, [{ field: switched, message }]);
    }
    const parsed = parseBody(merged, what);
    const newKind = parsed.settings.timing.kind;
    checkPolicy(parsed, what);
    let updated: RecurringTask;
    try {
      updated = await prisma.recurringTask.update({ where: { id: row.id }, data: rowData(parsed) });
    } catch (err) {
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') {
        const message = `a recurring task named '${parsed.name}' already exists in namespace '${parsed.namespace}': choose another name`;
        throw new ApiError(409, 'recurring_task_exists', `${what}: ${message}`, [{ field: 'name', message }]);
      }
      throw err;
    }
    const s = parsed.settings;
    try {
      if (newKind === 'delay') {
        await startFixedDelay(updated, s, await runsSoFar(updated));
        if ('paused' in changes) await withDeadline(() => client.workflow.getHandle(temporalId(updated)).signal(s.paused ? 'pause' : 'resume'));
      } else {
        const specChanged = ['cron', 'calendar', 'every', 'offset', 'timeZone', 'startAt', 'endAt', 'jitter'].some((k) => k in changes);
        const remaining = s.maxRuns === null ? undefined : Math.max(0, s.maxRuns - (await runsSoFar(updated)));
        const handle = client.schedule.getHandle(temporalId(updated));
        try {
          await writeSchedule(() =>
            handle.update((prev) => ({
              ...prev,
              // Only what this PATCH names; anything changed with `temporal schedule` stays.
              spec: specChanged ? scheduleSpec(s) : prev.spec,
              policies: {
                ...prev.policies,
                ...('overlap' in changes ? { overlap: s.overlap } : {}),
                ...('catchupWindow' in changes ? { catchupWindow: s.catchupWindowMs ?? DEFAULT_CATCHUP_WINDOW_MS } : {}),
              },
              state: {
                paused: 'paused' in changes ? s.paused : prev.state.paused,
                note: 'paused' in changes ? (s.paused ? 'paused through the nightwatch API' : '') : prev.state.note,
                ...('maxRuns' in changes ? (remaining !== undefined ? { remainingActions: remaining } : {}) : prev.state.remainingActions !== undefined ? { remainingActions: prev.state.remainingActions } : {}),
              },
            })),
          );
        } catch (err) {
          if (!(err instanceof ScheduleNotFoundError)) throw err;
          // Gone (deleted with `temporal schedule delete`, or never made): made again from the row.
          await withDeadline(() => client.schedule.create(scheduleOptions(updated, s, remaining)));
        }
      }
    } catch (err) {
      if ((err as { code?: number } | null)?.code === 3) {
        throw new ApiError(400, 'validation_failed', `${what}: Temporal refused the timing: ${(err as Error).message}`, [{ field: 'timing', message: (err as Error).message }]);
      }
      temporalFailure(request, err, `recurring task ${row.id} changed in the database but not in Temporal`);
    }
    return view(updated);
  });

  app.delete<{ Params: { id: string } }>('/recurring-tasks/:id', async (request, reply) => {
    const row = await own(request);
    try {
      if (row.kind === 'delay') {
        await withDeadline(() => client.workflow.getHandle(temporalId(row)).terminate('recurring task deleted through the nightwatch API'));
      } else {
        await withDeadline(() => client.schedule.getHandle(temporalId(row)).delete());
      }
    } catch (err) {
      if (!(err instanceof ScheduleNotFoundError || err instanceof WorkflowNotFoundError)) temporalFailure(request, err, `recurring task ${row.id} not deleted`);
    }
    // Past runs stay, with their recurring_task_id; a run in progress finishes (cancel it with POST /tasks/:id/cancel).
    await prisma.recurringTask.delete({ where: { id: row.id } });
    return reply.code(204).send();
  });

  for (const action of ['pause', 'resume'] as const) {
    app.post<{ Params: { id: string } }>(`/recurring-tasks/:id/${action}`, async (request) => {
      const row = await own(request);
      const paused = action === 'pause';
      try {
        if (row.kind === 'delay') {
          const settings = parseBody({ ...rowBody(row), paused }, 'unreachable').settings;
          await startFixedDelay(row, settings, await runsSoFar(row));
          await withDeadline(() => client.workflow.getHandle(temporalId(row)).signal(action));
        } else {
          const handle = client.schedule.getHandle(temporalId(row));
          await writeSchedule(() => (paused ? handle.pause('paused through the nightwatch API') : handle.unpause('resumed through the nightwatch API')));
        }
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) throw new ApiError(409, 'schedule_missing', `recurring task ${row.id}: its Schedule does not exist in Temporal; PATCH the recurring task to create it again`);
        temporalFailure(request, err, `recurring task ${row.id} not ${paused ? 'paused' : 'resumed'}`);
      }
      const updated = await prisma.recurringTask.update({ where: { id: row.id }, data: { paused } });
      return view(updated);
    });
  }

  app.post<{ Params: { id: string } }>('/recurring-tasks/:id/trigger', async (request, reply) => {
    const row = await own(request);
    try {
      if (row.kind === 'delay') await withDeadline(() => client.workflow.getHandle(temporalId(row)).signal('trigger'));
      // Run now, beside a run in progress if there is one (Temporal's default for a trigger).
      else await writeSchedule(() => client.schedule.getHandle(temporalId(row)).trigger(ScheduleOverlapPolicy.ALLOW_ALL));
    } catch (err) {
      if (err instanceof ScheduleNotFoundError || err instanceof WorkflowNotFoundError) {
        throw new ApiError(409, 'schedule_missing', `recurring task ${row.id}: nothing runs it in Temporal (finished, or deleted there); PATCH it to start it again`);
      }
      temporalFailure(request, err, `recurring task ${row.id} not triggered`);
    }
    return reply.code(202).send(await view(row));
  });

  app.post<{ Params: { id: string } }>('/recurring-tasks/:id/backfill', async (request, reply) => {
    const row = await own(request);
    const what = `recurring task ${row.id} not backfilled`;
    if (row.kind === 'delay') throw new ApiError(400, 'validation_failed', `${what}: a fixed delay has no timetable to backfill; trigger it instead`);
    const body = (request.body ?? {}) as Record<string, unknown>;
    const problems: FieldProblem[] = [];
    if (typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'validation_failed', `${what}: the body must be {"startAt": "…", "endAt": "…"}`);
    for (const key of Object.keys(body)) {
      if (!['startAt', 'endAt', 'overlap'].includes(key)) problems.push({ field: key, message: `${key} is not a known field: the body accepts startAt, endAt, overlap` });
    }
    const range = parseSettings({ startAt: body.startAt, endAt: body.endAt, overlap: body.overlap }, null, problems);
    if (!range.startAt && !problems.some((p) => p.field === 'startAt')) problems.push({ field: 'startAt', message: 'startAt is required: the first time to run, like "2030-01-01T00:00:00Z"' });
    if (!range.endAt && !problems.some((p) => p.field === 'endAt')) problems.push({ field: 'endAt', message: 'endAt is required: the last time to run' });
    if (problems.length > 0) throw new ApiError(400, 'validation_failed', summary(what, problems), problems);
    // Every time in the range gets its run, one after the other, unless another policy is asked for.
    const overlap: Overlap = body.overlap === undefined ? 'BUFFER_ALL' : range.overlap;
    try {
      await writeSchedule(() => client.schedule.getHandle(temporalId(row)).backfill({ start: range.startAt!, end: range.endAt!, overlap }));
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) throw new ApiError(409, 'schedule_missing', `${what}: its Schedule does not exist in Temporal; PATCH the recurring task to create it again`);
      temporalFailure(request, err, what);
    }
    return reply.code(202).send(await view(row));
  });
}
