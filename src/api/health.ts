// Probes for an orchestrator. Liveness touches nothing (a database outage must not get every API
// replica restarted); readiness checks what every task route needs: the database and Temporal.
import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from './app.ts';
import { errorBody } from './errors.ts';

/** Well under a typical probe timeout (1 s to a few s), so a hung dependency reads as "not ready", not as a probe timeout. */
const CHECK_TIMEOUT_MS = 2_000;

async function check(what: string, probe: () => Promise<unknown>): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([probe(), timeout]);
    return null;
  } catch (err) {
    return `${what}: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    clearTimeout(timer);
  }
}

export function healthRoutes(app: FastifyInstance, { prisma, client, config }: ApiDeps): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const [database, temporal] = await Promise.all([
      check('the database', () => prisma.$queryRaw`SELECT 1`),
      check(`Temporal at ${config.TEMPORAL_ADDRESS}`, () =>
        client.withDeadline(Date.now() + CHECK_TIMEOUT_MS, () => client.workflowService.getSystemInfo({})),
      ),
    ]);
    const checks = { database: database ?? 'ok', temporal: temporal ?? 'ok' };
    const failed = [database, temporal].filter((p): p is string => p !== null);
    if (failed.length === 0) return { status: 'ready', checks };
    return reply.code(503).send({ ...errorBody('not_ready', `not ready: ${failed.join('; ')}`), checks });
  });
}
