/**
 * POST /v1/usage: one usage event or an array of up to 10,000. It answers 202 only once Temporal has
 * durably accepted every event (the CostTracker promise resolved), so a 202 means the usage cannot
 * be lost.
 *
 * The events are validated by `parseTrackedEvents` (the client library's own check: a hand-written
 * fast path of 1-2 us an event with the domain's zod schema as fallback, naming each bad field), not
 * by a validator compiler: a zod schema run over the body first would answer in other words and add
 * about two thirds to the time a large batch takes to validate. The body schema documents the
 * events; the query is validated by its schema.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseTrackedEvents } from '../../client/cost-tracker.js';
import { CostGuardError, type FieldIssue } from '../../domain/errors.js';
import type { RouteDeps } from '../deps.js';
import { sendError, validationBody } from '../errors.js';
import { documentsOnly, errorSchema, usageAcceptedSchema, usageEventSchema, usageQuerySchema, validationResponse } from '../schemas.js';
import { MAX_JSON_DEPTH } from '../json-depth.js';

export const MAX_EVENTS_PER_REQUEST = 10_000;

function issuesSummary(issues: FieldIssue[]): string {
  const shown = issues.slice(0, 5).map((i) => `${i.path || '(root)'}: ${i.message}`);
  return issues.length > 5 ? `${shown.join('; ')}; and ${issues.length - 5} more` : shown.join('; ');
}

const usageBodySchema = z.union([usageEventSchema, z.array(usageEventSchema).min(1).max(MAX_EVENTS_PER_REQUEST)]);

export const usageRoutes: FastifyPluginAsync<RouteDeps> = async (app, deps) => {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/usage',
    {
      config: { scope: 'ingest', badQueryMessage: 'bad query parameter' },
      schema: {
        operationId: 'recordUsage',
        summary: 'Record LLM usage: one event or an array of up to 10,000',
        description:
          'All events are validated first: if any is invalid the answer is 400 naming each bad field (`[3].usage.inputTokens`) ' +
          'and nothing is recorded. Otherwise the events are sent to their budget workflows and the answer, 202, comes only ' +
          'once Temporal has durably accepted every one of them. Events without a `requestId` get one (returned in order); ' +
          'send your own to make retries safe: an event is counted once per `requestId`, however often it is sent ' +
          '(also within one request: `accepted` counts distinct request ids).',
        querystring: usageQuerySchema,
        body: documentsOnly(usageBodySchema),
        response: {
          202: usageAcceptedSchema.describe('Accepted and durable'),
          400: validationResponse(`Invalid events, body (not JSON, nesting deeper than ${MAX_JSON_DEPTH} levels) or backfill flag; nothing was recorded`),
          503: errorSchema
            .extend({ requestIds: z.array(z.string()).optional() })
            .describe('Temporal unavailable: the events may not have been recorded. Retry with the same requestIds (listed here) so nothing counts twice.'),
        },
      },
    },
    async (request, reply) => {
      const { backfill } = request.query;
      const body: unknown = request.body;
      const batch = Array.isArray(body);
      const inputs: unknown[] = batch ? body : [body];
      if (batch && inputs.length === 0) return reply.code(400).send(validationBody([{ path: '', message: 'must contain at least one usage event' }], 'no usage events'));
      if (inputs.length > MAX_EVENTS_PER_REQUEST) {
        const issues = [{ path: '', message: `at most ${MAX_EVENTS_PER_REQUEST} events per request, got ${inputs.length}: split the array` }];
        return reply.code(400).send(validationBody(issues, 'too many usage events'));
      }
      // All or nothing: every event is checked before any is sent, and each bad field is named.
      const parsed = parseTrackedEvents(inputs, { now: deps.clock(), generateId: deps.generateId, indexed: batch, backfill });
      if (!parsed.ok) {
        const bad = new Set(parsed.issues.map((i) => /^\[(\d+)\]/.exec(i.path)?.[1] ?? '0')).size;
        return reply.code(400).send(validationBody(parsed.issues, `${bad} of ${inputs.length} usage event(s) invalid, nothing recorded: ${issuesSummary(parsed.issues)}`));
      }
      const requestIds = parsed.value.map((e) => e.requestId);
      try {
        await deps.tracker.recordValidated(parsed.value);
      } catch (err) {
        if (err instanceof CostGuardError && err.code === 'unavailable') {
          request.log.warn({ err, events: requestIds.length }, 'usage not accepted: Temporal unavailable');
          // The ids let the caller resend the very same events: whatever did get through counts once.
          return sendError(reply, err, { requestIds });
        }
        throw err;
      }
      // `accepted` counts events, not array entries: a requestId sent twice is one event, counted once.
      return reply.code(202).send({ accepted: new Set(requestIds).size, requestIds });
    },
  );
};
