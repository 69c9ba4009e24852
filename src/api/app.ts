// The HTTP API and web page as one fastify instance, built from injected clients so tests and the
// benchmark build exactly what `npm run api` serves, against any stack.
//   /healthz /readyz      probes, no token          (health.ts)
//   /  /app.js /style.css the web page, no token     (page.ts)
//   /me /tasks…           the task API, bearer token (tasks.ts)
//   /recurring-tasks…     recurring tasks, bearer token (recurring.ts)
//   /metrics              Prometheus metrics, no token (like the probes: counts only, no task contents)
// Every request must arrive whole within API_REQUEST_TIMEOUT (slow or stalled clients get 408).
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Config } from '../config.ts';
import type { PrismaClient } from '../db/client.ts';
import { MAX_INFO_BYTES } from '../task/info.ts';
import { authenticator, parseApiTokens } from './auth.ts';
import { ApiError, clientErrorHandler, installErrorHandlers } from './errors.ts';
import { healthRoutes } from './health.ts';
import { apiRequestDuration, apiRequests, exposeTaskCounts, exposition } from '../metrics.ts';
import { pageRoutes } from './page.ts';
import { recurringRoutes } from './recurring.ts';
import { taskRoutes } from './tasks.ts';

export interface ApiDeps {
  config: Config;
  prisma: PrismaClient;
  client: Client;
}

/** A full info plus name, namespace and generous formatting; submission.ts holds info itself to MAX_INFO_BYTES. */
export const MAX_BODY_BYTES = MAX_INFO_BYTES + 4 * 1024;

export function buildApp(deps: ApiDeps, options: { logger?: FastifyServerOptions['logger'] } = {}): FastifyInstance {
  const users = parseApiTokens(deps.config.API_TOKENS);
  const timeout = deps.config.API_REQUEST_TIMEOUT;
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: MAX_BODY_BYTES,
    // A client gets API_REQUEST_TIMEOUT to send its whole request; then it is answered 408 and cut off.
    requestTimeout: timeout,
    http: {
      requestTimeout: timeout,
      // Node's default (60 s) would outlast a shorter request timeout; Node checks both only every
      // connectionsCheckingInterval (30 s by default), so check often enough for the timeout to hold.
      headersTimeout: timeout,
      connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(timeout / 4))),
    },
    clientErrorHandler: clientErrorHandler(timeout),
  });
  installErrorHandlers(app, MAX_BODY_BYTES);

  // JSON only: a text/plain body would otherwise reach the handlers as a string.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, text, done) => {
    try {
      done(null, parseJsonBody(text as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  // Every answer, by route pattern (never the raw URL: ids would make a series per task).
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    if (route === '/metrics') return;
    apiRequests.labels({ method: request.method, route, status: String(reply.statusCode) }).inc();
    apiRequestDuration.labels({ method: request.method, route }).observe(reply.elapsedTime / 1000);
  });
  exposeTaskCounts(deps.prisma);
  app.get('/metrics', async (_request, reply) => {
    const { contentType, body } = await exposition();
    return reply.type(contentType).send(body);
  });

  healthRoutes(app, deps);
  pageRoutes(app);
  // An encapsulated scope: the token check applies to these routes only.
  app.register(async (api) => {
    api.decorateRequest('userId', '');
    api.addHook('onRequest', authenticator(users));
    taskRoutes(api, deps);
    recurringRoutes(api, deps);
  });
  return app;
}

/** An empty body counts as none (the action routes take an optional body); anything else must be valid JSON. */
function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  let protoKey = false;
  let value: unknown;
  try {
    value = JSON.parse(text, (key, v: unknown) => {
      // JSON.parse keeps "__proto__" as a plain key, but code copying objects could turn it into a prototype.
      if (key === '__proto__') protoKey = true;
      return v;
    });
  } catch (err) {
    throw new ApiError(400, 'invalid_json', `the request body is not valid JSON (${(err as Error).message}): fix the syntax`);
  }
  if (protoKey) throw new ApiError(400, 'invalid_json', 'the request body uses the key "__proto__", which is not allowed anywhere: remove or rename it');
  return value;
}
