// The task routes. Every route acts as the token's user and sees only that user's tasks: another
// user's task answers 404, exactly like one that does not exist, so ids reveal nothing.
// Rows are written here (insert, retry); statuses are moved only by the task's workflow.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Task } from '../db/client.ts';
import { Prisma } from '../generated/prisma/client.ts';
import { FINAL_STATUSES, isFinal, TaskStatus } from '../task-status.ts';
import { workflowUrl } from '../temporal.ts';
import { taskWorkflowId } from '../../workflows/ids.ts';
import type { ApiDeps } from './app.ts';
import { signalCancel, startTaskWorkflow } from './dispatch.ts';
import { ApiError, type FieldProblem } from './errors.ts';
import { infoPolicyProblems, namespaceProblem, policyFromConfig } from '../policy.ts';
import { namespaceAllowed, validateSubmission } from './submission.ts';
import { countInProgress } from '../db/user-cap.ts';

const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 200;
/** The reason column is TEXT, but a reason is a sentence for people, not a document. */
const MAX_CANCEL_REASON_CHARS = 1_000;
/** BIGINT UNSIGNED */
const MAX_TASK_ID = 2n ** 64n - 1n;

/**
 * A task as the API shows it: ids as strings (JSON has no 64-bit integers), a link to its workflow,
 * and `info` when the row was read with it.
 */
/**
 * What taskView reads: a Task row, or a row of the list, whose timestamps come formatted by the
 * database. A field added to the view must be added here, and so to the list's SELECT (listPage).
 */
type ViewRow = Pick<Task, 'id' | 'name' | 'namespace' | 'status' | 'reason' | 'attempt' | 'userId'> & {
  createdAt: Date | string;
  updatedAt: Date | string;
  startedAt: Date | string | null;
  finishedAt: Date | string | null;
  info?: string;
};

function taskView(deps: ApiDeps, row: ViewRow) {
  const id = row.id.toString();
  const workflowId = taskWorkflowId(id, deps.config.WORKFLOW_ID_PREFIX);
  return {
    id,
    name: row.name,
    namespace: row.namespace,
    status: row.status,
    reason: row.reason,
    attempt: row.attempt,
    userId: row.userId,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    workflowId,
    workflowUrl: workflowUrl(deps.config, workflowId),
    ...(row.info !== undefined ? { info: infoValue(row.info) } : {}),
  };
}

/** The stored info as JSON; a row written elsewhere with malformed info shows its raw text instead. */
function infoValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function summary(what: string, problems: FieldProblem[]): string {
  return `${what}: ${problems.map((p) => p.message).join('; ')}`;
}

function parseTaskId(raw: string): bigint {
  const id = /^\d{1,20}$/.test(raw) ? BigInt(raw) : null;
  if (id === null || id === 0n || id > MAX_TASK_ID) {
    throw new ApiError(400, 'invalid_task_id', `task id must be a whole number like 42, not ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return id;
}

interface ListQuery {
  status?: TaskStatus;
  namespace?: string;
  limit: number;
  cursor?: bigint;
}

const STATUSES = Object.values(TaskStatus);
const LIST_PARAMS = ['status', 'namespace', 'limit', 'cursor'];

function parseListQuery(query: Record<string, unknown>): ListQuery {
  const problems: FieldProblem[] = [];
  const one = (key: string): string | undefined => {
    const value = query[key];
    if (Array.isArray(value)) {
      problems.push({ field: key, message: `${key} is given ${value.length} times; give it once` });
      return undefined;
    }
    return typeof value === 'string' ? value : undefined;
  };
  for (const key of Object.keys(query)) {
    if (!LIST_PARAMS.includes(key)) problems.push({ field: key, message: `${key} is not a known query parameter: remove it; GET /tasks accepts ${LIST_PARAMS.join(', ')}` });
  }
  const result: ListQuery = { limit: DEFAULT_PAGE_SIZE };
  const status = one('status');
  if (status !== undefined) {
    if ((STATUSES as string[]).includes(status)) result.status = status as TaskStatus;
    else problems.push({ field: 'status', message: `status must be one of ${STATUSES.join(', ')}, not ${JSON.stringify(status.slice(0, 40))}` });
  }
  const namespace = one('namespace');
  if (namespace !== undefined && namespace !== '') result.namespace = namespace;
  const limit = one('limit');
  if (limit !== undefined) {
    const n = /^\d{1,4}$/.test(limit) ? Number(limit) : NaN;
    if (n >= 1 && n <= MAX_PAGE_SIZE) result.limit = n;
    else problems.push({ field: 'limit', message: `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}, not ${JSON.stringify(limit.slice(0, 40))}` });
  }
  const cursor = one('cursor');
  if (cursor !== undefined && cursor !== '') {
    if (/^\d{1,20}$/.test(cursor)) result.cursor = BigInt(cursor);
    else problems.push({ field: 'cursor', message: 'cursor must be the nextCursor of an earlier page, unchanged' });
  }
  if (problems.length > 0) throw new ApiError(400, 'invalid_query', summary('tasks not listed', problems), problems);
  return result;
}

/**
 * The index each filter combination is read from: its equalities, then `id`, so a page is one range
 * read backwards from the cursor, however many rows the user has (issue 11). Named in the query
 * because MariaDB, left to choose, intersects (status, id) with (user_id, …) and sorts the
 * intersection (tens of thousands of rows for a heavy user's `?status=Failed`). The indexes are made
 * by prisma/migrations/20261130020000_task_query_indexes; test/integration/query-plans.test.ts runs
 * EXPLAIN of every combination on a large table.
 */
export const LIST_INDEX = {
  none: 'task_user_id_id_idx',
  status: 'task_user_id_status_id_idx',
  namespace: 'task_user_id_namespace_id_idx',
  both: 'task_user_id_status_namespace_id_idx',
} as const;

type ListedRow = Omit<ViewRow, 'info'>;

/**
 * A DATETIME(3) (UTC) as JSON shows a Date (toISOString: `2026-11-30T23:11:13.321Z`), formatted by
 * the database: a page's timestamps then cost the API nothing, where Dates were a third of its CPU
 * time per page (decoded by the driver adapter, rebuilt by Prisma, formatted again for JSON).
 */
const isoTimestamp = (column: string) => Prisma.raw(`CONCAT(LEFT(DATE_FORMAT(${column}, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z')`);

async function listPage(prisma: ApiDeps['prisma'], userId: string, query: ListQuery): Promise<ListedRow[]> {
  const index = LIST_INDEX[query.status && query.namespace ? 'both' : query.status ? 'status' : query.namespace ? 'namespace' : 'none'];
  const where = [Prisma.sql`user_id = ${userId}`];
  if (query.status) where.push(Prisma.sql`status = ${query.status}`);
  if (query.namespace) where.push(Prisma.sql`namespace = ${query.namespace}`);
  if (query.cursor !== undefined) where.push(Prisma.sql`id < ${query.cursor}`);
  // Without info: it can be 64 KiB a row and the page polls this list; GET /tasks/:id has it.
  // One row more than asked tells whether another page follows, without a count query.
  const rows = await prisma.$queryRaw<(ListedRow & { attempt: number | bigint })[]>`
    SELECT id, name, namespace, status, reason, attempt, user_id AS userId, ${isoTimestamp('created_at')} AS createdAt,
           ${isoTimestamp('updated_at')} AS updatedAt, ${isoTimestamp('started_at')} AS startedAt, ${isoTimestamp('finished_at')} AS finishedAt
    FROM task FORCE INDEX (${Prisma.raw(index)})
    WHERE ${Prisma.join(where, ' AND ')}
    ORDER BY id DESC
    LIMIT ${query.limit + 1}`;
  // A raw INT UNSIGNED comes back as a bigint; the model's is a number.
  return rows.map((row) => ({ ...row, attempt: Number(row.attempt) }));
}

function parseCancelBody(body: unknown, taskId: bigint): string | undefined {
  if (body === undefined) return undefined;
  const what = `task ${taskId} not cancelled`;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(400, 'validation_failed', `${what}: the body must be a JSON object like {"reason": "no longer needed"}, or absent`);
  }
  const problems: FieldProblem[] = [];
  for (const key of Object.keys(body)) {
    if (key !== 'reason') problems.push({ field: key, message: `${key} is not a known field: remove it; the body accepts reason` });
  }
  const { reason } = body as { reason?: unknown };
  if (reason !== undefined && typeof reason !== 'string') problems.push({ field: 'reason', message: 'reason must be a string, for example "no longer needed"' });
  else if (typeof reason === 'string' && reason.length > MAX_CANCEL_REASON_CHARS) {
    problems.push({ field: 'reason', message: `reason is ${reason.length} characters long; at most ${MAX_CANCEL_REASON_CHARS} are allowed` });
  }
  if (problems.length > 0) throw new ApiError(400, 'validation_failed', summary(what, problems), problems);
  return reason as string | undefined;
}

function expectNoBody(body: unknown, what: string): void {
  if (body === undefined) return;
  if (body !== null && typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0) return;
  throw new ApiError(400, 'validation_failed', `${what}: this route takes no body; send none, or {}`);
}

export function taskRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { prisma, config } = deps;
  const policy = policyFromConfig(config);

  async function ownTask(request: FastifyRequest<{ Params: { id: string } }>): Promise<Task> {
    const id = parseTaskId(request.params.id);
    const task = await prisma.task.findFirst({ where: { id, userId: request.userId } });
    if (!task) throw new ApiError(404, 'task_not_found', `task ${id} not found among your tasks; list them with GET /tasks`);
    return task;
  }

  /**
   * MAX_TASKS_IN_PROGRESS_PER_USER, as the API applies it: every unfinished task counts (a
   * submitted one is about to take a slot), so the API never accepts a task that would have to wait.
   */
  async function checkUserCap(request: FastifyRequest, reply: { header(name: string, value: string): unknown }, what: string): Promise<void> {
    const cap = config.MAX_TASKS_IN_PROGRESS_PER_USER;
    if (cap <= 0) return;
    const open = await countInProgress(prisma, request.userId, [TaskStatus.Normal, TaskStatus.Pending, TaskStatus.Running]);
    if (open < cap) return;
    const retryAfter = Math.max(1, Math.ceil(config.DISPATCH_INTERVAL / 1000));
    reply.header('Retry-After', String(retryAfter));
    throw new ApiError(
      429,
      'too_many_tasks_in_progress',
      `${what}: you have ${open} unfinished ${open === 1 ? 'task' : 'tasks'}, the most allowed at once (the operator's MAX_TASKS_IN_PROGRESS_PER_USER is ${cap}); ` +
        `try again in ${retryAfter} s or once one finishes, or cancel one`,
    );
  }

  app.get('/me', async (request) => ({ userId: request.userId, allowedNamespaces: config.ALLOWED_NAMESPACES }));

  app.post('/tasks', async (request, reply) => {
    const result = validateSubmission(request.body);
    if (!result.ok) {
      const code = result.status === 413 ? 'info_too_large' : 'validation_failed';
      throw new ApiError(result.status, code, summary('task not created', result.problems), result.problems);
    }
    const { name, namespace, infoText, info } = result.submission;
    if (!namespaceAllowed(config.ALLOWED_NAMESPACES, namespace)) {
      const message = `namespace '${namespace}' is not open to tasks on this server: use one of ${config.ALLOWED_NAMESPACES.join(', ')} (the operator sets ALLOWED_NAMESPACES)`;
      throw new ApiError(403, 'namespace_not_allowed', `task not created: ${message}`, [{ field: 'namespace', message }]);
    }
    // Open by ALLOWED_NAMESPACES (perhaps `*`) yet closed whatever it says: kube-*, nightwatch's own.
    const closed = namespaceProblem(policy, namespace);
    if (closed) throw new ApiError(403, 'namespace_not_allowed', `task not created: ${closed}`, [{ field: 'namespace', message: closed }]);
    // Well-formed, but more than the operator allows (annotations, image, timeout, resources).
    const refused = infoPolicyProblems(policy, info);
    if (refused.length > 0) throw new ApiError(403, 'policy_violation', summary('task not created', refused), refused);
    await checkUserCap(request, reply, 'task not created');
    let task: Task;
    try {
      task = await prisma.task.create({ data: { name, namespace, info: infoText, status: TaskStatus.Normal, userId: request.userId } });
    } catch (err) {
      if (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') {
        const message = `a task named '${name}' already exists in namespace '${namespace}' (the name becomes the Job name, unique per namespace): choose another name, or retry that task`;
        throw new ApiError(409, 'task_exists', `task not created: ${message}`, [{ field: 'name', message }]);
      }
      throw err;
    }
    try {
      await startTaskWorkflow(deps, task);
    } catch (err) {
      // The row is safe in status Normal: the dispatcher's next tick starts its workflow.
      request.log.warn({ err, taskId: task.id.toString() }, 'could not start the task workflow at once; the dispatcher will start it');
    }
    return reply.code(201).send(taskView(deps, task));
  });

  app.get('/tasks', async (request) => {
    const query = parseListQuery(request.query as Record<string, unknown>);
    const rows = await listPage(prisma, request.userId, query);
    const page = rows.slice(0, query.limit);
    return {
      tasks: page.map((row) => taskView(deps, row)),
      nextCursor: rows.length > query.limit ? page[page.length - 1]!.id.toString() : null,
    };
  });

  app.get<{ Params: { id: string } }>('/tasks/:id', async (request) => taskView(deps, await ownTask(request)));

  app.post<{ Params: { id: string } }>('/tasks/:id/cancel', async (request, reply) => {
    const task = await ownTask(request);
    const reason = parseCancelBody(request.body, task.id);
    if (isFinal(task.status)) {
      throw new ApiError(409, 'task_final', `task ${task.id} is already ${task.status}, so there is nothing to cancel; retry it to run it again`);
    }
    try {
      await signalCancel(deps, task, reason);
    } catch (err) {
      // The address and the client's error are for the operator, in the log; the caller learns what to do.
      request.log.error({ err, taskId: task.id.toString(), temporal: config.TEMPORAL_ADDRESS }, 'could not signal cancel to Temporal');
      throw new ApiError(503, 'temporal_unavailable', `task ${task.id} not cancelled: Temporal did not take the request; try again shortly`);
    }
    return reply.code(202).send(taskView(deps, task));
  });

  app.post<{ Params: { id: string } }>('/tasks/:id/retry', async (request, reply) => {
    const task = await ownTask(request);
    expectNoBody(request.body, `task ${task.id} not retried`);
    if (!isFinal(task.status)) {
      throw new ApiError(
        409,
        'task_not_final',
        `task ${task.id} is ${task.status}, not finished: only a finished task (${FINAL_STATUSES.join(', ')}) can be retried; cancel it first to stop it`,
      );
    }
    await checkUserCap(request, reply, `task ${task.id} not retried`);
    // Conditional on the status and attempt just read, so two retries at once make one new attempt.
    const { count } = await prisma.task.updateMany({
      where: { id: task.id, userId: request.userId, attempt: task.attempt, status: { in: [...FINAL_STATUSES] } },
      data: { status: TaskStatus.Normal, attempt: task.attempt + 1, reason: null, startedAt: null, finishedAt: null },
    });
    if (count === 0) {
      throw new ApiError(409, 'task_changed', `task ${task.id} changed while it was being retried (another retry?); read it again with GET /tasks/${task.id}`);
    }
    const retried = await ownTask(request);
    try {
      await startTaskWorkflow(deps, retried, { afterFinalRun: true });
    } catch (err) {
      request.log.warn({ err, taskId: task.id.toString() }, 'could not start the retried task workflow at once; the dispatcher will start it');
    }
    return reply.code(202).send(taskView(deps, retried));
  });
}
