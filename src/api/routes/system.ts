/**
 * The routes about the service itself: GET /healthz (no key), GET /v1/openapi.json (the document
 * generated from every route's schema) and GET /metrics (outside /v1: Prometheus' conventional path;
 * its format is versioned by its content type).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { pingDatabase } from '../../db/health.js';
import type { RouteDeps } from '../deps.js';
import { openApiDocument } from '../openapi.js';

export const systemRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        operationId: 'health',
        summary: 'Liveness and database reachability (no API key needed)',
        response: {
          200: z.object({ status: z.literal('ok') }).describe('Healthy'),
          503: z.object({ status: z.literal('unavailable'), database: z.literal('unreachable') }).describe('The database is unreachable'),
        },
      },
    },
    async (_request, reply) => {
      try {
        await pingDatabase(deps.pool);
        return { status: 'ok' as const };
      } catch {
        return reply.code(503).send({ status: 'unavailable', database: 'unreachable' });
      }
    },
  );

  app.get(
    '/v1/openapi.json',
    {
      config: { scope: 'read' },
      schema: { operationId: 'openApi', summary: 'This document', response: { 200: z.record(z.string(), z.unknown()).describe('OpenAPI 3.1 document') } },
    },
    async () => openApiDocument(fastify),
  );

  app.get(
    '/metrics',
    {
      config: { scope: 'read' },
      schema: {
        operationId: 'metrics',
        summary: 'Prometheus metrics of this process (text exposition format 0.0.4)',
        description:
          'For Prometheus: configure the scrape job with `authorization: { credentials: <key> }` (sent as `Authorization: Bearer`). ' +
          'Names, labels and their mapping from the original metric names are in the README ("Metrics").',
        response: { 200: { description: 'Metrics', content: { 'text/plain': { schema: z.string() } } } },
      },
    },
    async (_request, reply) => {
      const text = await deps.metrics.render();
      return reply.header('content-type', deps.metrics.contentType).send(text);
    },
  );
};
