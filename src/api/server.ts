/**
 * The HTTP API (fastify), versioned under /v1. Every route except GET /healthz needs an API key, in
 * `x-api-key` or `Authorization: Bearer <key>`, of a scope that allows the route (src/api/keys.ts).
 * Every error, whoever detects it (a route, fastify, Node's HTTP parser), is JSON in one shape:
 * `{ error: <code>, message, issues? }` with the codes of src/api/errors.ts, validation errors with
 * `issues` naming each bad field.
 *
 * Abuse limits: a body of at most 32 MiB nesting at most 32 levels (checked without recursion before
 * it is parsed), the request line and headers within Node's 16 KiB, headers within
 * `api.headersTimeoutMs` and the whole request within `api.requestTimeoutMs` (then 408 and the
 * connection is closed), and a per-key rate limit by the key's scope (429 with Retry-After).
 *
 * POST /v1/usage answers 202 only once Temporal has durably accepted every event (the CostTracker
 * promise resolved), so a 202 means the usage cannot be lost.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import rateLimit from '@fastify/rate-limit';
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Pool } from 'pg';
import { acknowledgeAlert, getAlert, listAlerts } from '../client/alerts.js';
import { assertScope, readBudgetStatus, setScopeBudgets } from '../client/budgets.js';
import { type CostTracker, parseTrackedEvents } from '../client/cost-tracker.js';
import type { ApiConfig, Config } from '../config/index.js';
import { reportTimezone } from '../config/reports.js';
import { incidentHistory } from '../db/alerts.js';
import { pingDatabase } from '../db/health.js';
import { loadReport } from '../db/reports.js';
import { parseReportPeriod } from '../domain/report-period.js';
import { ConflictError, CostGuardError, type ErrorCode, type FieldIssue, NotFoundError, ValidationError } from '../domain/errors.js';
import { isHoldId } from '../domain/leases.js';
import type { AuthorizeRequest } from '../client/preflight.js';
import type { Logger } from '../lib/logger.js';
import type { CostGuardMetrics } from '../metrics/index.js';
import { ApiError, clientErrorBody, clip, codeOfStatus, writeClientError } from './errors.js';
import { MAX_JSON_DEPTH, jsonNestingDepth } from './json-depth.js';
import { type ApiKey, ApiKeyVerifier, type AuthenticatedKey, type RouteScope, scopeAllows } from './keys.js';
import { MAX_EVENTS_PER_REQUEST, openApiDocument, openApiPath, operationScope } from './openapi.js';

export interface ApiDeps {
  pool: Pool;
  /** Parsed keys, or strings as configured (`<scope>:<key>`, or a plain key meaning admin). */
  apiKeys: readonly (string | ApiKey)[];
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

const HOLD_STATES: Record<string, string> = { s: 'settled', r: 'released', x: 'expired', S: 'settled after its release or expiry' };

/** 10,000 events of a few hundred bytes each, with room for metadata. */
export const BODY_LIMIT_BYTES = 32 * 1024 * 1024;
/** Node's default limit on the request line plus headers (--max-http-header-size), answered with 431. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Longer URLs are answered 414 (a scope is at most 208 characters, a few more percent-encoded). */
export const MAX_URL_LENGTH = 4096;
/** Longest path parameter (fastify answers 414 beyond it). */
const MAX_PARAM_LENGTH = 1000;

const STATUS_OF: Record<ErrorCode, number> = { validation: 400, not_found: 404, conflict: 409, unavailable: 503 };

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs no API key. */
    public?: boolean;
    /** The key scope the route needs (an admin key may call every route). */
    scope?: RouteScope;
  }
  interface FastifyRequest {
    /** The key the request was authenticated with (null on public routes and before the check). */
    apiKey: AuthenticatedKey | null;
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

function sendApiError(reply: FastifyReply, err: ApiError) {
  for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
  return reply.code(err.status).send({ error: err.code, message: err.message });
}

/** `?backfill=true` (events older than the usual window are then allowed); absent means false. */
function backfillFlag(query: unknown): boolean {
  const value = (query as Record<string, unknown> | undefined)?.backfill;
  if (value === undefined) return false;
  if (value === 'true') return true;
  const shown = Array.isArray(value) ? `${value.length} values` : JSON.stringify(clip(String(value), 50));
  throw new ValidationError([{ path: 'backfill', message: `expected "true" or no backfill parameter, got ${shown}` }], 'bad query parameter');
}

/** The rate-limit budget of a key scope: requests per window (0 = none). */
function budgetOf(limits: ApiConfig['rateLimit'], key: AuthenticatedKey | null): number {
  return key ? limits[key.scope] : 0;
}

/** URLs the router cannot decode, or whose parameter is too long: answered before any hook runs. */
function frameworkError(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (err.code === 'FST_ERR_BAD_URL') {
    const url = request.raw.url ?? '';
    return reply.code(400).send({
      error: 'validation',
      message: `the URL is not valid: ${JSON.stringify(clip(url.split('?')[0] ?? url))} has a malformed percent-encoding`,
      issues: [{ path: 'url', message: 'malformed percent-encoding (%XX with two hex digits, UTF-8)' }],
    });
  }
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    return reply.code(414).send({ error: 'uri_too_long', message: `a path segment of the URL is longer than ${MAX_PARAM_LENGTH} characters` });
  }
  request.log.error({ err }, 'framework error');
  return reply.code(500).send({ error: 'internal', message: 'internal error (logged on the server)' });
}

/** The JSON parser's connection to fastify's default one, kept for its prototype-poisoning checks. */
type JsonParser = (request: FastifyRequest, body: string, done: (err: Error | null, body?: unknown) => void) => void;

export function buildApi(deps: ApiDeps): FastifyInstance {
  const clock = deps.clock ?? Date.now;
  const generateId = deps.generateId ?? randomUUID;
  const logger = deps.logger.child({ component: 'api' }, { serializers: { req: requestLogView } });
  const limits = deps.config.api;
  const verifier = new ApiKeyVerifier(deps.apiKeys);
  const clientErrorLimits = { requestTimeoutMs: limits.requestTimeoutMs, headersTimeoutMs: limits.headersTimeoutMs, maxHeaderBytes: MAX_HEADER_BYTES };
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    // A scope is up to 208 characters, more once percent-encoded.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // The whole request (headers and body) within requestTimeout, the headers within headersTimeout:
    // a client sending a body shorter than its Content-Length is answered 408 and disconnected.
    // Node checks the deadlines every connectionsCheckingInterval (default 30 s: too coarse).
    requestTimeout: limits.requestTimeoutMs,
    // Requests arriving while the server shuts down are answered 503 by the first hook (below), in
    // our shape, rather than by fastify's own 503.
    return503OnClosing: false,
    http: {
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
      maxHeaderSize: MAX_HEADER_BYTES,
    },
    // What Node's parser refuses (headers too large, malformed request, timeouts) never reaches
    // fastify's routing: answer it here, in our shape, and close the connection.
    clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket) {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const { status, body } = clientErrorBody(err, clientErrorLimits);
      logger.debug({ code: err.code, status, remoteAddress: socket.remoteAddress }, 'HTTP client error');
      writeClientError(socket, status, body);
    },
    // URLs the router cannot decode or whose parameter is too long, before any hook runs.
    frameworkErrors(err, request, reply) {
      void frameworkError(err, request as unknown as FastifyRequest, reply as unknown as FastifyReply);
    },
  }) as unknown as FastifyInstance;

  app.decorateRequest('apiKey', null);

  // JSON only: a text/plain body would otherwise reach the handlers as a string.
  app.removeContentTypeParser('text/plain');
  // JSON nesting is bounded before parsing (and so before anything walks the value recursively);
  // then fastify's own parser, which refuses `__proto__` and `constructor.prototype` keys.
  const defaultJsonParser = app.getDefaultJsonParser('error', 'error') as unknown as JsonParser;
  app.removeContentTypeParser('application/json');
  // Bytes, decoded here with a fatal decoder: invalid UTF-8 is refused, never turned into U+FFFD.
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(new ValidationError([{ path: '', message: 'the body is not valid UTF-8 (JSON must be UTF-8; invalid bytes are refused, not replaced)' }], 'the request body is not valid UTF-8'), undefined);
      return;
    }
    const depth = jsonNestingDepth(text, MAX_JSON_DEPTH);
    if (depth > MAX_JSON_DEPTH) {
      done(new ValidationError([{ path: '', message: `JSON nests deeper than ${MAX_JSON_DEPTH} levels of objects and arrays` }], 'the request body nests too deeply'), undefined);
      return;
    }
    defaultJsonParser(request, text, (err, value) => {
      if (err && (err as FastifyError).code === 'FST_ERR_CTP_INVALID_JSON_BODY' && /"(__proto__|constructor)"/.test(text) && isJson(text)) {
        done(new ValidationError([{ path: '', message: 'a "__proto__" or "constructor.prototype" key is not allowed' }], 'the request body has a forbidden key'), undefined);
        return;
      }
      done(err, value);
    });
  });

  // @fastify/rate-limit's in-memory store, applied by hand after authentication (below), keyed by the
  // key's id (a hash: never the key) with a budget by the key's scope.
  void app.register(rateLimit, { global: false });
  let checkRateLimit: ReturnType<FastifyInstance['createRateLimit']> | undefined;
  const warnedUntil = new Map<string, number>();

  const routes: { method: string; url: string; scope: RouteScope | undefined }[] = [];
  app.addHook('onRoute', (route) => {
    const config = route.config as { public?: boolean; scope?: RouteScope } | undefined;
    if (!config?.public && !config?.scope) throw new Error(`route ${String(route.method)} ${route.url} needs config.scope (or config.public)`);
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push({ method, url: route.url, scope: config.public ? undefined : config.scope });
  });
  app.addHook('onReady', async () => {
    // The OpenAPI document is hand-written: refuse to start with a route it does not describe, or
    // describes with another key scope.
    const paths = openApiDocument().paths as Record<string, Record<string, unknown>>;
    const missing = routes.filter((r) => !paths[openApiPath(r.url)]?.[r.method.toLowerCase()]);
    if (missing.length > 0) throw new Error(`routes missing from the OpenAPI document: ${missing.map((r) => `${r.method} ${r.url}`).join(', ')}`);
    const wrong = routes.filter((r) => operationScope(paths[openApiPath(r.url)]![r.method.toLowerCase()]) !== r.scope);
    if (wrong.length > 0) throw new Error(`routes whose key scope differs in the OpenAPI document: ${wrong.map((r) => `${r.method} ${r.url}`).join(', ')}`);
    checkRateLimit = app.createRateLimit({
      keyGenerator: (request) => request.apiKey?.id ?? '',
      max: (request) => budgetOf(limits.rateLimit, request.apiKey),
      timeWindow: limits.rateLimit.windowMs,
      allowList: (request) => budgetOf(limits.rateLimit, request.apiKey) === 0,
    });
  });

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  app.addHook('onRequest', async (request) => {
    if (closing) throw new ApiError('unavailable', 'the API is shutting down: send the request again (to another replica)', { connection: 'close' });
    if ((request.raw.url ?? '').length > MAX_URL_LENGTH) throw new ApiError('uri_too_long', `the URL is longer than ${MAX_URL_LENGTH} characters`);
    const config = request.routeOptions.config;
    if (config?.public) return;
    const header = request.headers['x-api-key'];
    const bearer = request.headers.authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
    const given = (Array.isArray(header) ? header[0] : header) ?? bearer;
    const key = verifier.verify(given);
    if (!key) {
      request.log.warn({ keyGiven: given !== undefined }, 'request without a valid API key');
      throw new ApiError('unauthorized', 'a valid API key is required (x-api-key header or Authorization: Bearer)', { 'www-authenticate': 'Bearer' });
    }
    request.apiKey = key;
    // An unknown route (no scope) goes on to its 404 with any valid key.
    const needed = config?.scope;
    if (needed && !scopeAllows(key.scope, needed)) {
      request.log.warn({ keyId: key.id, keyScope: key.scope, needed }, 'API key of the wrong scope');
      throw new ApiError(
        'forbidden',
        `this API key's scope (${key.scope}) does not allow ${request.method} ${request.routeOptions.url ?? ''}: it needs an ${needed === 'admin' ? 'admin' : `${needed} or admin`} key`,
      );
    }
    const limit = await checkRateLimit!(request);
    if (limit.isAllowed) return;
    if (limit.isExceeded) {
      const now = Date.now();
      if ((warnedUntil.get(key.id) ?? 0) <= now) {
        // Once per key and window: a client hammering the API must not flood the logs as well.
        warnedUntil.set(key.id, now + limit.ttl);
        request.log.warn({ keyId: key.id, keyScope: key.scope, max: limit.max, windowMs: limit.timeWindow }, 'API key over its rate limit');
      }
      throw new ApiError(
        'rate_limited',
        `this API key (scope ${key.scope}) made more than ${limit.max} requests in ${limit.timeWindow / 1000} s; retry after ${limit.ttlInSeconds} s`,
        {
          'retry-after': String(limit.ttlInSeconds),
          'x-ratelimit-limit': String(limit.max),
          'x-ratelimit-remaining': '0',
          'x-ratelimit-reset': String(limit.ttlInSeconds),
        },
      );
    }
  });

  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${clip(request.url.split('?')[0] ?? '')}` });
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof ApiError) return sendApiError(reply, err);
    if (err instanceof CostGuardError) {
      if (err.code === 'unavailable') request.log.warn({ err }, 'dependency unavailable');
      return sendError(reply, err);
    }
    switch (err.code) {
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.code(415).send({
          error: 'unsupported_media_type',
          message: `expected a JSON body (Content-Type: application/json), got ${request.headers['content-type'] ? JSON.stringify(clip(request.headers['content-type'], 100)) : 'no Content-Type'}`,
        });
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.code(400).send({ error: 'validation', message: 'the request body is empty; expected JSON' });
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return reply.code(400).send({ error: 'validation', message: 'the request body is not valid JSON' });
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.code(413).send({ error: 'payload_too_large', message: `the request body is larger than ${BODY_LIMIT_BYTES / 1024 / 1024} MiB` });
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send({ error: codeOfStatus(err.statusCode), message: err.message });
    }
    request.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error (logged on the server)' });
  });

  app.get('/healthz', { config: { public: true } }, async (_request, reply) => {
    try {
      await pingDatabase(deps.pool);
      return { status: 'ok' };
    } catch {
      return reply.code(503).send({ status: 'unavailable', database: 'unreachable' });
    }
  });

  app.get('/v1/openapi.json', { config: { scope: 'read' } }, async () => openApiDocument());

  // Outside /v1: Prometheus' conventional path, and its format is versioned by its content type.
  app.get('/metrics', { config: { scope: 'read' } }, async (_request, reply) => {
    const text = await deps.metrics.render();
    return reply.header('content-type', deps.metrics.contentType).send(text);
  });

  app.post('/v1/usage', { config: { scope: 'ingest' } }, async (request, reply) => {
    const backfill = backfillFlag(request.query);
    const body = request.body;
    const batch = Array.isArray(body);
    const inputs: unknown[] = batch ? body : [body];
    if (batch && inputs.length === 0) return reply.code(400).send(validationBody([{ path: '', message: 'must contain at least one usage event' }], 'no usage events'));
    if (inputs.length > MAX_EVENTS_PER_REQUEST) {
      const issues = [{ path: '', message: `at most ${MAX_EVENTS_PER_REQUEST} events per request, got ${inputs.length}: split the array` }];
      return reply.code(400).send(validationBody(issues, 'too many usage events'));
    }
    // All or nothing: every event is checked before any is sent, and each bad field is named.
    const parsed = parseTrackedEvents(inputs, { now: clock(), generateId, indexed: batch, backfill });
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
    // `accepted` counts events, not array entries: a requestId sent twice is one event, counted once.
    return reply.code(202).send({ accepted: new Set(requestIds).size, requestIds });
  });

  app.post('/v1/authorize', { config: { scope: 'ingest' } }, async (request) => deps.tracker.authorize(request.body as AuthorizeRequest));

  app.get<{ Params: { id: string } }>('/v1/holds/:id', { config: { scope: 'ingest' } }, async (request) => {
    const { id } = request.params;
    if (!isHoldId(id)) throw new ValidationError([{ path: 'id', message: 'must be a hold id as POST /v1/authorize returns it' }]);
    const hold = await deps.tracker.holdState(id);
    if (!hold) throw new NotFoundError(`no hold ${id} (never made, or finished more than two days ago)`);
    return { holdId: id, ...hold };
  });

  app.delete<{ Params: { id: string } }>('/v1/holds/:id', { config: { scope: 'ingest' } }, async (request) => ({ holdId: request.params.id, status: await deps.tracker.releaseHold(request.params.id) }));

  app.post<{ Params: { id: string } }>('/v1/holds/:id/renew', { config: { scope: 'ingest' } }, async (request) => {
    const body = (request.body ?? {}) as { ttlSeconds?: unknown };
    const extra = typeof body === 'object' && body !== null ? Object.keys(body).filter((k) => k !== 'ttlSeconds') : [];
    if (typeof body !== 'object' || body === null || Array.isArray(body) || extra.length > 0) throw new ValidationError([{ path: '', message: 'expected {} or { "ttlSeconds": 60 }' }]);
    const ttl = body.ttlSeconds;
    if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1)) throw new ValidationError([{ path: 'ttlSeconds', message: 'must be a whole number of seconds, at least 1' }]);
    const r = await deps.tracker.renewHold(request.params.id, ttl as number | undefined);
    if (r.ok) return { holdId: request.params.id, expiresAt: r.expiresAt };
    if (r.state === 'unknown') throw new NotFoundError(`no hold ${request.params.id}`);
    throw new ConflictError(`hold ${request.params.id} is no longer open (${HOLD_STATES[r.state] ?? r.state}): authorize again`);
  });

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/advice', { config: { scope: 'read' } }, async (request) => {
    const q = request.query;
    const req: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(q)) {
      if (v === undefined) continue;
      req[k] = k === 'inputTokens' || k === 'maxOutputTokens' ? (/^\d{1,12}$/.test(v) ? Number(v) : v) : v;
    }
    return deps.tracker.advise({ inputTokens: 0, maxOutputTokens: 0, ...req } as unknown as AuthorizeRequest);
  });

  app.get<{ Params: { scope: string } }>('/v1/budgets/:scope', { config: { scope: 'read' } }, async (request) => {
    const { scope } = request.params;
    assertScope(scope);
    const [status, preflight] = await Promise.all([readBudgetStatus(deps.temporal, deps.pool, deps.config, scope, clock()), deps.tracker.preflightStatus(scope).catch(() => null)]);
    return preflight ? { ...status, preflight } : status;
  });

  app.put<{ Params: { scope: string } }>('/v1/budgets/:scope', { config: { scope: 'admin' } }, async (request) => {
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
  });

  app.get<{ Querystring: { status?: string; scope?: string; limit?: string } }>('/v1/alerts', { config: { scope: 'read' } }, async (request) => {
    const { status = 'open', scope, limit } = request.query;
    if (status !== 'open' && status !== 'all') throw new ValidationError([{ path: 'status', message: 'expected "open" or "all"' }]);
    if (scope !== undefined) assertScope(scope);
    const n = limit === undefined ? 100 : Number(limit);
    return { incidents: await listAlerts(incidentHistory(deps.pool), { all: status === 'all', scope, limit: n }) };
  });

  app.get<{ Params: { id: string } }>('/v1/alerts/:id', { config: { scope: 'read' } }, async (request) => getAlert(incidentHistory(deps.pool), request.params.id));

  app.post<{ Params: { id: string } }>('/v1/alerts/:id/ack', { config: { scope: 'admin' } }, async (request) => acknowledgeAlert(deps.temporal, incidentHistory(deps.pool), request.params.id, request.body));

  // One route serves both forms: `/v1/reports/daily/2026-03-08` (JSON) and `.../2026-03-08.html`
  // (the page sent by email). Reports are read, never generated here: generating reads a whole
  // period of the ledger, which an HTTP request should not trigger (`costguard report --generate`).
  app.get<{ Params: { kind: string; period: string }; Querystring: { tz?: string } }>('/v1/reports/:kind/:period', { config: { scope: 'read' } }, async (request, reply) => {
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

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
