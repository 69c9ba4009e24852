// Probes for an orchestrator. Liveness touches nothing (a database outage must not get every API
// replica restarted); readiness checks what every task route needs: the database and Temporal.
// Both answer without a token, so they say only which check failed ({"database": "down"}); the
// addresses and driver errors that explain it go to the log.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { ApiDeps } from './app.ts';
import { errorBody } from './errors.ts';

/** Well under a typical probe timeout (1 s to a few s), so a hung dependency reads as "not ready", not as a probe timeout. */
const CHECK_TIMEOUT_MS = 2_000;

type CheckResult = 'ok' | 'down';

async function check(log: FastifyBaseLogger, what: string, where: string, probe: () => Promise<unknown>): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([probe(), timeout]);
    return 'ok';
  } catch (err) {
    log.warn({ check: what, target: where, err }, `readiness: ${what} at ${where} is down: ${err instanceof Error ? err.message : String(err)}`);
    return 'down';
  } finally {
    clearTimeout(timer);
  }
}

/** host:port of a database URL, for the log; never its credentials. */
function databaseHost(databaseUrl: string): string {
  try {
    return new URL(databaseUrl).host;
  } catch {
    return 'DATABASE_URL';
  }
}

export function healthRoutes(app: FastifyInstance, { prisma, client, config }: ApiDeps): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (request, reply) => {
    const [database, temporal] = await Promise.all([
      check(request.log, 'database', databaseHost(config.DATABASE_URL), () => prisma.$queryRaw`SELECT 1`),
      check(request.log, 'temporal', config.TEMPORAL_ADDRESS, () =>
        client.withDeadline(Date.now() + CHECK_TIMEOUT_MS, () => client.workflowService.getSystemInfo({})),
      ),
    ]);
    const checks = { database, temporal };
    const failed = Object.entries(checks)
      .filter(([, result]) => result !== 'ok')
      .map(([name]) => name);
    if (failed.length === 0) return { status: 'ready', checks };
    return reply
      .code(503)
      .send({ ...errorBody('not_ready', `not ready: ${failed.join(' and ')} down (details are in the API server's log)`), checks });
  });
}
