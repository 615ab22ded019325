/**
 * Pre-flight checks: POST /v1/authorize reserves a call's worst case on every budget that applies,
 * the holds routes settle, release and renew that reservation, and GET /v1/advice gives model
 * advice without reserving anything. Requests are checked by the pre-flight client
 * (`authorizeRequestProblems`, shared with the client library), so the authorize and advice schemas
 * only document them.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { AuthorizeRequest } from '../../client/preflight.js';
import { ConflictError, NotFoundError } from '../../domain/errors.js';
import type { RouteDeps } from '../deps.js';
import {
  adviceQuerySchema,
  adviceResultSchema,
  authorizeRequestSchema,
  authorizeResultSchema,
  documentsOnly,
  errorResponse,
  holdIdParamsSchema,
  holdParamsSchema,
  holdSchema,
  renewBodySchema,
  validationResponse,
} from '../schemas.js';

const HOLD_STATES: Record<string, string> = { s: 'settled', r: 'released', x: 'expired', S: 'settled after its release or expiry' };

/** Query parameters holding token counts: numbers when they are whole numbers, as sent otherwise. */
const NUMERIC_QUERY = new Set(['inputTokens', 'maxOutputTokens']);

export const preflightRoutes: FastifyPluginAsync<RouteDeps> = async (fastify, deps) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.post(
    '/v1/authorize',
    {
      config: { scope: 'ingest' },
      schema: {
        operationId: 'authorize',
        summary: 'Pre-flight check: reserve a call\'s worst-case cost on every budget that applies (user, team, project, system), or on none',
        description:
          'Answers `allow`, `downgrade` (with model advice) or `deny` (with a reason). An admitted call gets a `holdId`: send it with the ' +
          'call\'s usage event (`holdId` in POST /v1/usage) to settle the reservation with the actual cost, or DELETE /v1/holds/{id}. ' +
          'A hold expires after its TTL unless renewed (POST /v1/holds/{id}/renew). A deny is an answer (200), not an error.',
        body: documentsOnly(authorizeRequestSchema),
        response: { 200: authorizeResultSchema.describe('The decision'), 400: validationResponse('Invalid request (each bad field named)') },
      },
    },
    async (request) => deps.tracker.authorize(request.body as AuthorizeRequest),
  );

  app.get(
    '/v1/holds/:id',
    {
      config: { scope: 'ingest' },
      schema: {
        operationId: 'getHold',
        summary: 'A hold\'s state: open, settled, released, expired, or settled after a release or expiry',
        params: holdIdParamsSchema,
        response: { 200: holdSchema.describe('The hold'), 400: validationResponse('Not a hold id'), 404: errorResponse('No such hold (never made, or finished more than two days ago)') },
      },
    },
    async (request) => {
      const { id } = request.params;
      const hold = await deps.tracker.holdState(id);
      if (!hold) throw new NotFoundError(`no hold ${id} (never made, or finished more than two days ago)`);
      return { holdId: id, ...hold };
    },
  );

  app.delete(
    '/v1/holds/:id',
    {
      config: { scope: 'ingest', emptyBody: true },
      schema: {
        operationId: 'releaseHold',
        summary: 'Give a hold\'s reservation back (the call was not made); repeats change nothing',
        params: holdParamsSchema,
        response: { 200: z.object({ holdId: z.string(), status: z.string() }).describe('What happened: released, duplicate (already finished) or unknown') },
      },
    },
    async (request) => ({ holdId: request.params.id, status: await deps.tracker.releaseHold(request.params.id) }),
  );

  app.post(
    '/v1/holds/:id/renew',
    {
      config: { scope: 'ingest', emptyBody: true },
      schema: {
        operationId: 'renewHold',
        summary: 'Extend an open hold\'s life (a long stream renews its hold every third of its TTL)',
        params: holdParamsSchema,
        body: renewBodySchema.optional(),
        response: {
          200: z.object({ holdId: z.string(), expiresAt: z.string() }).describe('Renewed, with the new expiry'),
          400: validationResponse('Invalid request'),
          404: errorResponse('No such hold'),
          409: errorResponse('The hold is no longer open (settled, released or expired)'),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      const r = await deps.tracker.renewHold(id, request.body?.ttlSeconds);
      if (r.ok) return { holdId: id, expiresAt: r.expiresAt };
      if (r.state === 'unknown') throw new NotFoundError(`no hold ${id}`);
      throw new ConflictError(`hold ${id} is no longer open (${HOLD_STATES[r.state] ?? r.state}): authorize again`);
    },
  );

  app.get(
    '/v1/advice',
    {
      config: { scope: 'read' },
      schema: {
        operationId: 'getAdvice',
        summary: 'Model advice (tiers by task complexity and per-call budget, max_tokens caps per task type)',
        querystring: documentsOnly(adviceQuerySchema),
        response: { 200: adviceResultSchema.describe('The advice and what remains per scope'), 400: validationResponse('Invalid request') },
      },
    },
    async (request) => {
      const req: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(request.query as unknown as Record<string, string | undefined>)) {
        if (v === undefined) continue;
        req[k] = NUMERIC_QUERY.has(k) && /^\d{1,12}$/.test(v) ? Number(v) : v;
      }
      return deps.tracker.advise({ inputTokens: 0, maxOutputTokens: 0, ...req } as unknown as AuthorizeRequest);
    },
  );
};
