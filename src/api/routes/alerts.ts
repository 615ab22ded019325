/**
 * Incidents: list them, read one with its history, acknowledge one. `status` is checked here; the
 * scope, the limit, the incident id and the acknowledgement by the alerts client (shared with the
 * CLI), so their schemas only document them.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { acknowledgeAlert, getAlert, listAlerts } from '../../client/alerts.js';
import { incidentHistory } from '../../db/alerts.js';
import { assertScope } from '../../client/budgets.js';
import type { RouteDeps } from '../deps.js';
import { acknowledgementSchema, alertsQuerySchema, documentsOnly, errorResponse, incidentParamsSchema, incidentSchema, validationResponse } from '../schemas.js';

export const alertRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const params = documentsOnly(incidentParamsSchema);

  app.get(
    '/v1/alerts',
    {
      config: { scope: 'read' },
      schema: {
        operationId: 'listAlerts',
        summary: 'Open incidents (most severe first), and with status=all the recently resolved ones too',
        querystring: alertsQuerySchema,
        response: { 200: z.object({ incidents: z.array(incidentSchema) }).describe('Incidents'), 400: validationResponse('Bad query parameter') },
      },
    },
    async (request) => {
      const { status, scope, limit } = request.query as { status: 'open' | 'all'; scope?: string; limit?: string };
      if (scope !== undefined) assertScope(scope);
      const n = limit === undefined ? 100 : Number(limit);
      return { incidents: await listAlerts(incidentHistory(deps.pool), { all: status === 'all', scope, limit: n }) };
    },
  );

  app.get(
    '/v1/alerts/:id',
    {
      config: { scope: 'read' },
      schema: {
        operationId: 'getAlert',
        summary: 'One incident with its history (opened, level changes, notifications, acknowledgement, resolution)',
        params,
        response: { 200: incidentSchema.describe('The incident'), 400: validationResponse('Not an incident id'), 404: errorResponse('No such incident') },
      },
    },
    async (request) => getAlert(incidentHistory(deps.pool), request.params.id),
  );

  app.post(
    '/v1/alerts/:id/ack',
    {
      config: { scope: 'admin' },
      schema: {
        operationId: 'acknowledgeAlert',
        summary: 'Acknowledge an open incident: someone takes responsibility and escalation stops',
        params,
        body: documentsOnly(acknowledgementSchema),
        response: {
          200: z.unknown().meta({ type: 'object', description: 'The incident as its alert workflow now sees it' }),
          400: validationResponse('Invalid acknowledgement or incident id'),
          404: errorResponse('No such incident'),
          409: errorResponse('The incident is already resolved'),
          503: errorResponse('Temporal unavailable'),
        },
      },
    },
    async (request) => acknowledgeAlert(deps.temporal, incidentHistory(deps.pool), request.params.id, request.body),
  );
};
