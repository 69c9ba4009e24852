// Structured logs (README, "Operating"): one JSON line per event, from pino. The worker routes the
// Temporal SDK's logger (its own messages, workflow `log.*` calls with workflowId and runId, activity
// logs with the activity's info) and the Job watch into one pino logger; the API's fastify logger
// is pino too. Each line names the task where there is one: `taskId` (read from a task workflow's
// id), `workflowId`, and `taskAttempt` (the row's attempt) where the event knows it.
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';
import { pino, type Logger as Pino, type LoggerOptions } from 'pino';

export type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * Paths never written, whatever code logs them: API tokens (the Authorization header) and a task's
 * `info` (its image, command and environment may hold secrets).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'info',
  'task.info',
  'input.info',
  '*.info',
  'body',
  'req.body',
  'API_TOKENS',
  'TEMPORAL_API_KEY',
];

/** `service` names the process (nightwatch-worker, nightwatch-api) on every line; `component` a part of it. */
export function loggerOptions(level: LevelName, service: string): LoggerOptions {
  return {
    level,
    base: { service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
}

/** The process's JSON logger, on stdout. `destination` is for tests. */
export function createLogger(level: LevelName, service: string, destination?: pino.DestinationStream): Pino {
  return destination ? pino(loggerOptions(level, service), destination) : pino(loggerOptions(level, service));
}

/** task-<id> with any WORKFLOW_ID_PREFIX before it: the task's id. */
const TASK_WORKFLOW_ID = /(?:^|-)task-(\d+)$/;
export function taskIdOfWorkflow(workflowId: unknown): string | undefined {
  return typeof workflowId === 'string' ? TASK_WORKFLOW_ID.exec(workflowId)?.[1] : undefined;
}

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * The Temporal SDK's Logger interface over pino (Runtime.install({ logger })). Its metadata becomes
 * the line's fields; an `error`/`failure` becomes pino's `err`; the task's id is added from the workflow id.
 */
export class PinoTemporalLogger implements Logger {
  private readonly pino: Pino;
  constructor(pino: Pino) {
    this.pino = pino;
  }

  log(level: LogLevel, message: string, meta: LogMetadata = {}): void {
    const fields: Record<string, unknown> = {};
    // String keys only: the SDK's own timestamp is a symbol key (pino stamps each line itself).
    for (const [k, v] of Object.entries(meta)) {
      if (v === undefined) continue;
      if (k === 'error' || k === 'failure') fields.err = v;
      else fields[k] = typeof v === 'bigint' ? v.toString() : v;
    }
    const taskId = fields.taskId ?? taskIdOfWorkflow(fields.workflowId);
    if (taskId !== undefined) fields.taskId = taskId;
    this.pino[LEVELS[level] ?? 'info'](fields, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

/** The Temporal SDK's level names for pino's (the SDK's logger filters below its level). */
export function temporalLevel(level: LevelName): LogLevel {
  return ({ fatal: 'ERROR', error: 'ERROR', warn: 'WARN', info: 'INFO', debug: 'DEBUG', trace: 'TRACE', silent: 'ERROR' } as const)[level];
}

/**
 * The task an activity works on, from its first argument (`{ taskId, attempt }`, `{ task: { id,
 * attempt } }`, a TaskRef, a JobRef or a bare id): what its log lines name. Never anything else of
 * the input (a task's `info` may hold secrets).
 */
export function taskOfActivityInput(args: readonly unknown[]): { taskId?: string; taskAttempt?: number } {
  const first = args[0];
  if (typeof first === 'string' && /^\d+$/.test(first)) return { taskId: first };
  if (typeof first !== 'object' || first === null) return {};
  const a = first as { taskId?: unknown; attempt?: unknown; task?: { id?: unknown; attempt?: unknown } };
  const taskId = typeof a.taskId === 'string' ? a.taskId : typeof a.task?.id === 'string' ? a.task.id : undefined;
  const attempt = typeof a.attempt === 'number' ? a.attempt : typeof a.task?.attempt === 'number' ? a.task.attempt : undefined;
  return { ...(taskId !== undefined && { taskId }), ...(attempt !== undefined && { taskAttempt: attempt }) };
}
