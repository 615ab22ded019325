/**
 * The HTTP API (fastify), versioned under /v1. Every route except GET /healthz needs an API key, in
 * `x-api-key` or `Authorization: Bearer <key>`. Errors are JSON in Cost Guard's vocabulary:
 * `{ error: 'validation' | 'not_found' | 'conflict' | 'unavailable' | 'unauthorized' | 'internal', message }`,
 * validation errors with `issues` naming each bad field.
 *
 * POST /v1/usage answers 202 only once Temporal has durably accepted every event (the CostTracker
 * promise resolved), so a 202 means the usage cannot be lost.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Pool } from 'pg';
import { acknowledgeAlert, getAlert, listAlerts } from '../client/alerts.js';
import { assertScope, queryBudgetStatus, setScopeBudgets } from '../client/budgets.js';
import { type CostTracker, parseTrackedEvents } from '../client/cost-tracker.js';
import type { Config } from '../config/index.js';
import { reportTimezone } from '../config/reports.js';
import { loadReport } from '../db/reports.js';
import { parseReportPeriod } from '../domain/report-period.js';
import { CostGuardError, type ErrorCode, type FieldIssue, NotFoundError, ValidationError } from '../domain/errors.js';
import type { Logger } from '../lib/logger.js';
import type { CostGuardMetrics } from '../metrics/index.js';
import { isValidApiKey } from './auth.js';
import { MAX_EVENTS_PER_REQUEST, openApiDocument, openApiPath } from './openapi.js';

export interface ApiDeps {
  pool: Pool;
  apiKeys: readonly string[];
  logger: Logger;
  temporal: Client;
  tracker: CostTracker;
  config: Config;
  /** The process's Prometheus registry, served at GET /metrics (API key required, as everywhere). */
  metrics: CostGuardMetrics;
  /** Injected for tests; default Date.now and randomUUID. */
  clock?: () => number;
  generateId?: () => string;
}

/** 10,000 events of a few hundred bytes each, with room for metadata. */
export const BODY_LIMIT_BYTES = 32 * 1024 * 1024;

const STATUS_OF: Record<ErrorCode, number> = { validation: 400, not_found: 404, conflict: 409, unavailable: 503 };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs no API key. */
    public?: boolean;
  }
}

/** What a request log line shows: never headers (they carry the API key), never the body. */
function requestLogView(request: FastifyRequest): Record<string, unknown> {
  return { method: request.method, url: request.url, remoteAddress: request.ip };
}

function validationBody(issues: FieldIssue[], message: string) {
  return { error: 'validation', message, issues };
}

function issuesSummary(issues: FieldIssue[]): string {
  const shown = issues.slice(0, 5).map((i) => `${i.path || '(root)'}: ${i.message}`);
  return issues.length > 5 ? `${shown.join('; ')}; and ${issues.length - 5} more` : shown.join('; ');
}

function sendError(reply: FastifyReply, err: CostGuardError, extra: Record<string, unknown> = {}) {
  if (err instanceof ValidationError) return reply.code(400).send({ ...validationBody(err.issues, err.message), ...extra });
  return reply.code(STATUS_OF[err.code]).send({ error: err.code, message: err.message, ...extra });
}

export function buildApi(deps: ApiDeps): FastifyInstance {
  const clock = deps.clock ?? Date.now;
  const generateId = deps.generateId ?? randomUUID;
  const logger = deps.logger.child({ component: 'api' }, { serializers: { req: requestLogView } });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    // A scope is up to 208 characters, more once percent-encoded.
    routerOptions: { maxParamLength: 1000 },
  }) as unknown as FastifyInstance;

  // JSON only: a text/plain body would otherwise reach the handlers as a string.
  app.removeContentTypeParser('text/plain');

  const routes: { method: string; url: string }[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push({ method, url: route.url });
  });
  app.addHook('onReady', async () => {
    // The OpenAPI document is hand-written: refuse to start with a route it does not describe.
    const paths = openApiDocument().paths as Record<string, Record<string, unknown>>;
    const missing = routes.filter((r) => !paths[openApiPath(r.url)]?.[r.method.toLowerCase()]);
    if (missing.length > 0) throw new Error(`routes missing from the OpenAPI document: ${missing.map((r) => `${r.method} ${r.url}`).join(', ')}`);
  });

  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config?.public) return;
    const header = request.headers['x-api-key'];
    const bearer = request.headers.authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
    const key = (Array.isArray(header) ? header[0] : header) ?? bearer;
    if (!isValidApiKey(key, deps.apiKeys)) {
      request.log.warn({ keyGiven: key !== undefined }, 'request without a valid API key');
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ error: 'unauthorized', message: 'a valid API key is required (x-api-key header or Authorization: Bearer)' });
    }
  });

  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof CostGuardError) {
      if (err.code === 'unavailable') request.log.warn({ err }, 'dependency unavailable');
      return sendError(reply, err);
    }
    switch (err.code) {
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.code(415).send({
          error: 'validation',
          message: `expected a JSON body (Content-Type: application/json), got ${request.headers['content-type'] ? JSON.stringify(request.headers['content-type']) : 'no Content-Type'}`,
        });
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.code(400).send({ error: 'validation', message: 'the request body is empty; expected JSON' });
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return reply.code(400).send({ error: 'validation', message: 'the request body is not valid JSON' });
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.code(413).send({ error: 'validation', message: `the request body is larger than ${BODY_LIMIT_BYTES / 1024 / 1024} MiB` });
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send({ error: 'validation', message: err.message });
    }
    request.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error (logged on the server)' });
  });

  app.get('/healthz', { config: { public: true } }, async (_request, reply) => {
    try {
      await deps.pool.query('SELECT 1');
      return { status: 'ok' };
    } catch {
      return reply.code(503).send({ status: 'unavailable', database: 'unreachable' });
    }
  });

  app.get('/v1/openapi.json', async () => openApiDocument());

  // Outside /v1: Prometheus' conventional path, and its format is versioned by its content type.
  app.get('/metrics', async (_request, reply) => {
    const text = await deps.metrics.render();
    return reply.header('content-type', deps.metrics.contentType).send(text);
  });

  app.post('/v1/usage', async (request, reply) => {
    const body = request.body;
    const batch = Array.isArray(body);
    const inputs: unknown[] = batch ? body : [body];
    if (batch && inputs.length === 0) return reply.code(400).send(validationBody([{ path: '', message: 'must contain at least one usage event' }], 'no usage events'));
    if (inputs.length > MAX_EVENTS_PER_REQUEST) {
      const issues = [{ path: '', message: `at most ${MAX_EVENTS_PER_REQUEST} events per request, got ${inputs.length}: split the array` }];
      return reply.code(400).send(validationBody(issues, 'too many usage events'));
    }
    // All or nothing: every event is checked before any is sent, and each bad field is named.
    const parsed = parseTrackedEvents(inputs, { now: clock(), generateId, indexed: batch });
    if (!parsed.ok) {
      const bad = new Set(parsed.issues.map((i) => /^\[(\d+)\]/.exec(i.path)?.[1] ?? '0')).size;
      return reply
        .code(400)
        .send(validationBody(parsed.issues, `${bad} of ${inputs.length} usage event(s) invalid, nothing recorded: ${issuesSummary(parsed.issues)}`));
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
    return reply.code(202).send({ accepted: requestIds.length, requestIds });
  });

  app.get<{ Params: { scope: string } }>('/v1/budgets/:scope', async (request) => {
    const { scope } = request.params;
    assertScope(scope);
    return queryBudgetStatus(deps.temporal, scope);
  });

  app.put<{ Params: { scope: string } }>('/v1/budgets/:scope', async (request) => {
    const { scope } = request.params;
    assertScope(scope);
    return setScopeBudgets(deps.temporal, {
      scope,
      taskQueue: deps.config.temporal.taskQueue,
      change: request.body,
      defaultTimezone: deps.config.timezone,
    });
  });

  app.get<{ Querystring: { status?: string; scope?: string; limit?: string } }>('/v1/alerts', async (request) => {
    const { status = 'open', scope, limit } = request.query;
    if (status !== 'open' && status !== 'all') throw new ValidationError([{ path: 'status', message: 'expected "open" or "all"' }]);
    if (scope !== undefined) assertScope(scope);
    const n = limit === undefined ? 100 : Number(limit);
    return { incidents: await listAlerts(deps.pool, { all: status === 'all', scope, limit: n }) };
  });

  app.get<{ Params: { id: string } }>('/v1/alerts/:id', async (request) => getAlert(deps.pool, request.params.id));

  app.post<{ Params: { id: string } }>('/v1/alerts/:id/ack', async (request) => acknowledgeAlert(deps.temporal, deps.pool, request.params.id, request.body));

  // One route serves both forms: `/v1/reports/daily/2026-03-08` (JSON) and `.../2026-03-08.html`
  // (the page sent by email). Reports are read, never generated here: generating reads a whole
  // period of the ledger, which an HTTP request should not trigger (`costguard report --generate`).
  app.get<{ Params: { kind: string; period: string }; Querystring: { tz?: string } }>('/v1/reports/:kind/:period', async (request, reply) => {
    const { kind } = request.params;
    const html = request.params.period.endsWith('.html');
    const period = html ? request.params.period.slice(0, -'.html'.length) : request.params.period;
    const tz = typeof request.query.tz === 'string' ? request.query.tz : undefined;
    const p = parseReportPeriod(kind, period, reportTimezone(deps.config, tz));
    const stored = await loadReport(deps.pool, p.kind, p.period, p.timezone);
    if (!stored) {
      throw new NotFoundError(
        `no ${p.kind} report for ${p.period} (${p.timezone}) has been generated; generate it with \`costguard report ${p.kind} ${p.kind === 'daily' ? '--date' : '--month'} ${p.period} --tz ${p.timezone} --generate\``,
      );
    }
    if (html) return reply.type('text/html; charset=utf-8').send(stored.html);
    return stored.report;
  });

  return app;
}
