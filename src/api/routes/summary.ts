/**
 * Rolling cost summaries over the last N hours (the original's user and system summaries): exact
 * totals and breakdowns from the ledger, the last hour from the Redis real-time view. The scope and
 * the window are checked by the shared checks the CLI uses, so their schemas only document them.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { assertScope } from '../../client/budgets.js';
import { readCostSummary } from '../../client/summary.js';
import { parseSummaryHours } from '../../domain/summary.js';
import type { RouteDeps } from '../deps.js';
import { documentsOnly, scopeParamsSchema, summaryQuerySchema, summarySchema, validationResponse } from '../schemas.js';

export const summaryRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    '/v1/summary/:scope',
    {
      config: { scope: 'read' },
      schema: {
        operationId: 'getCostSummary',
        summary: "A scope's cost over the last N hours (default 24): totals, by provider and model, hour, provider and task type",
        params: documentsOnly(scopeParamsSchema),
        querystring: documentsOnly(summaryQuerySchema),
        response: {
          200: summarySchema.describe('The summary'),
          400: validationResponse('Not a scope, or hours not a whole number in range'),
        },
      },
    },
    async (request) => {
      const { scope } = request.params;
      assertScope(scope);
      const hours = parseSummaryHours(request.query.hours);
      return readCostSummary({ pool: deps.pool, realtime: deps.realtime }, scope, hours, deps.clock());
    },
  );
};
