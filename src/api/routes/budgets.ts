/**
 * A scope's budgets: GET reads their live state from the scope's budget workflow (with the pre-flight
 * view when Redis answers), PUT changes them. The scope and the change are checked by the budgets
 * client (shared with the CLI), so their schemas only document them.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { assertScope, readBudgetStatus, setScopeBudgets } from '../../client/budgets.js';
import type { RouteDeps } from '../deps.js';
import { budgetChangeSchema, budgetStatusSchema, documentsOnly, errorResponse, scopeParamsSchema, validationResponse } from '../schemas.js';

export const budgetRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const params = documentsOnly(scopeParamsSchema);

  app.get(
    '/v1/budgets/:scope',
    {
      config: { scope: 'read' },
      schema: {
        operationId: 'getBudgetStatus',
        summary: 'Live state of a scope\'s budgets (queried from its budget workflow)',
        params,
        response: {
          200: budgetStatusSchema.describe('The status'),
          400: validationResponse('Not a scope'),
          404: errorResponse('No budget workflow for this scope (no usage and no budget set yet)'),
          503: errorResponse('Temporal unavailable'),
        },
      },
    },
    async (request) => {
      const { scope } = request.params;
      assertScope(scope);
      const [status, preflight] = await Promise.all([readBudgetStatus(deps.temporal, deps.pool, deps.config, scope, deps.clock()), deps.tracker.preflightStatus(scope).catch(() => null)]);
      return preflight ? { ...status, preflight } : status;
    },
  );

  app.put(
    '/v1/budgets/:scope',
    {
      config: { scope: 'admin' },
      schema: {
        operationId: 'setBudgets',
        summary: 'Change a scope\'s budgets, merged by period (starts its budget workflow if needed)',
        description:
          'A budget whose `period` the scope already has keeps every field the change omits (thresholds merge key by key; `null` removes ' +
          '`enforcement`, `failMode`, `thresholds.info` or `thresholds.emergency`). A new period needs `amount` and `thresholds` (the 400 names ' +
          'each missing one). Periods the change does not list are removed.',
        params,
        body: documentsOnly(budgetChangeSchema),
        response: {
          200: budgetStatusSchema.describe('The status with the new budgets'),
          400: validationResponse('Invalid change (each bad field named), or rejected by the budget workflow'),
          503: errorResponse('Temporal unavailable'),
        },
      },
    },
    async (request) => {
      const { scope } = request.params;
      assertScope(scope);
      return setScopeBudgets(deps.temporal, {
        scope,
        taskQueue: deps.config.temporal.taskQueue,
        change: request.body,
        defaultTimezone: deps.config.timezone,
        pool: deps.pool,
        config: deps.config,
      });
    },
  );
};
