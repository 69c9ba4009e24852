// One error shape for every failed request, so clients (and the web page) handle errors in one place:
//   { "error": { "code": "validation_failed", "message": "…", "fields": [{ "field": "info.image", "message": "…" }] } }
// `message` says what happened, to what, and what to do; `fields` points at the body fields to fix.
import { countDatabaseError } from '../metrics.ts';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance } from 'fastify';

export interface FieldProblem {
  field: string;
  message: string;
}

export interface ErrorBody {
  error: { code: string; message: string; fields?: FieldProblem[] };
}

/** Thrown by route handlers; the error handler turns it into the response. */
export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly fields?: FieldProblem[];
  constructor(statusCode: number, code: string, message: string, fields?: FieldProblem[]) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
    this.fields = fields;
  }
}

export function errorBody(code: string, message: string, fields?: FieldProblem[]): ErrorBody {
  return { error: { code, message, ...(fields && fields.length > 0 ? { fields } : {}) } };
}

export function formatKiB(bytes: number): string {
  const kib = bytes / 1024;
  return `${Number.isInteger(kib) ? kib : kib.toFixed(1)} KiB`;
}

/** Fastify's own errors (body parsing happens before any handler runs), reworded for people. */
function fastifyErrorBody(err: FastifyError, bodyLimit: number): { status: number; body: ErrorBody } | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return {
        status: 413,
        body: errorBody(
          'body_too_large',
          `the request body is larger than ${formatKiB(bodyLimit)}, the most this API accepts: ` +
            'keep large inputs out of the task (bake them into the image or pass a URL in args)',
        ),
      };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return {
        status: 415,
        body: errorBody('unsupported_media_type', 'the request body must be JSON: send it with the header Content-Type: application/json'),
      };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return {
        status: 400,
        body: errorBody('bad_request', 'the request body is shorter or longer than its Content-Length header says: send the body whole'),
      };
    default:
      return null;
  }
}

export function installErrorHandlers(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler<FastifyError | ApiError>((err, request, reply) => {
    if (err instanceof ApiError) {
      return reply.code(err.statusCode).send(errorBody(err.code, err.message, err.fields));
    }
    const known = fastifyErrorBody(err, bodyLimit);
    if (known) return reply.code(known.status).send(known.body);
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(errorBody('bad_request', err.message));
    }
    countDatabaseError(err);
    request.log.error({ err }, 'request failed');
    return reply
      .code(500)
      .send(
        errorBody(
          'internal',
          `internal error while handling ${request.method} ${request.url}; it is logged on the API server with request id ${request.id}: try again, and report it if it persists`,
        ),
      );
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(errorBody('not_found', `there is no route ${request.method} ${request.url.split('?')[0]}; the routes are listed in README.md (HTTP API)`)),
  );
}

/**
 * Errors on a connection before any route runs (Node's `clientError`): a request not received in
 * full within API_REQUEST_TIMEOUT, oversized headers, or bytes that are not HTTP. Answered in the
 * one error shape, then the connection is closed. Fastify's `clientErrorHandler`.
 */
export function clientErrorHandler(requestTimeoutMs: number) {
  return function onClientError(this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
    // A reset connection has nobody left to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let status = 400;
    let body = errorBody('bad_request', 'the request is not valid HTTP/1.1');
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      body = errorBody(
        'request_timeout',
        `the request was not received in full within ${requestTimeoutMs / 1000} s, so its connection is closed: ` +
          'send the whole request at once (the server sets API_REQUEST_TIMEOUT)',
      );
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      body = errorBody('headers_too_large', 'the request headers are larger than this server accepts: send fewer or shorter headers');
    }
    this.log.debug({ code: err.code, status, remoteAddress: socket.remoteAddress }, 'client error: answered and closed the connection');
    // As Node itself does: never write into a response already under way on this connection.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      const text = JSON.stringify(body);
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    }
    socket.destroy();
  };
}
