/**
 * The HTTP API (fastify). Every route except GET /healthz needs an API key, in `x-api-key` or
 * `Authorization: Bearer <key>`.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import type { Logger } from '../lib/logger.js';
import { isValidApiKey } from './auth.js';

export interface ApiDeps {
  pool: Pool;
  apiKeys: readonly string[];
  logger: Logger;
}

export function buildApi(deps: ApiDeps): FastifyInstance {
  const app = Fastify({ loggerInstance: deps.logger.child({ component: 'api' }) as FastifyBaseLogger });
  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/healthz') return;
    const header = request.headers['x-api-key'];
    const bearer = request.headers.authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
    const key = (Array.isArray(header) ? header[0] : header) ?? bearer;
    if (!isValidApiKey(key, deps.apiKeys)) {
      await reply.code(401).send({ error: 'unauthorized', message: 'a valid API key is required (x-api-key header)' });
    }
  });
  app.get('/healthz', async (_request, reply) => {
    try {
      await deps.pool.query('SELECT 1');
      return { status: 'ok' };
    } catch {
      return reply.code(503).send({ status: 'unavailable', database: 'unreachable' });
    }
  });
  return app;
}
