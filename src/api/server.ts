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
 * This module builds the instance around the routes: body parsing, authentication, rate limits, the
 * one error shape. The routes are fastify plugins in src/api/routes/, one per concern, each declaring
 * its zod schemas (src/api/schemas.ts), from which the OpenAPI document is generated
 * (src/api/openapi.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, validatorCompiler } from 'fastify-type-provider-zod';
import type { ApiConfig } from '../config/index.js';
import { CostGuardError, ValidationError } from '../domain/errors.js';
import { rateLimitStoreOptions } from '../redis/rate-limit.js';
import type { ApiDeps, RouteDeps } from './deps.js';
import { ApiError, clientErrorBody, clip, codeOfStatus, sendApiError, sendError, writeClientError } from './errors.js';
import { MAX_JSON_DEPTH, jsonNestingDepth } from './json-depth.js';
import { ApiKeyVerifier, type AuthenticatedKey, type RouteScope, scopeAllows } from './keys.js';
import { type DocumentedLimits, documentRoute, registerOpenApi } from './openapi.js';
import { alertRoutes } from './routes/alerts.js';
import { otlpRoutes } from './routes/otlp.js';
import { budgetRoutes } from './routes/budgets.js';
import { preflightRoutes } from './routes/preflight.js';
import { reportRoutes } from './routes/reports.js';
import { summaryRoutes } from './routes/summary.js';
import { systemRoutes } from './routes/system.js';
import { usageRoutes } from './routes/usage.js';
import { isDocumentationOnly } from './schemas.js';

export type { ApiDeps } from './deps.js';

/** 10,000 events of a few hundred bytes each, with room for metadata. */
export const BODY_LIMIT_BYTES = 32 * 1024 * 1024;
/** Node's default limit on the request line plus headers (--max-http-header-size), answered with 431. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Longer URLs are answered 414 (a scope is at most 208 characters, a few more percent-encoded). */
export const MAX_URL_LENGTH = 4096;
/** Longest path parameter (fastify answers 414 beyond it). */
const MAX_PARAM_LENGTH = 1000;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs no API key. */
    public?: boolean;
    /** The key scope the route needs (an admin key may call every route). */
    scope?: RouteScope;
    /** How a 400 for a bad query parameter begins (default `invalid input`, as ValidationError's). */
    badQueryMessage?: string;
    /** The route takes no body or an optional one: an empty body with a JSON content type is no body (many HTTP clients send one). */
    emptyBody?: boolean;
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

/** The validator of a schema that only documents its input. */
const passThrough = (value: unknown) => ({ value });

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
    if ((body as Buffer).length === 0 && request.routeOptions.config?.emptyBody) {
      done(null, undefined);
      return;
    }
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

  // @fastify/rate-limit, applied by hand after authentication (below), keyed by the key's id (a hash:
  // never the key) with a budget by the key's scope; in Redis when given, so replicas share one count.
  void app.register(rateLimit, { global: false, ...(deps.rateLimitRedis ? rateLimitStoreOptions(deps.rateLimitRedis, deps.config.redis.keyPrefix) : {}) });
  let checkRateLimit: ReturnType<FastifyInstance['createRateLimit']> | undefined;
  const warnedUntil = new Map<string, number>();

  // Requests are validated by the routes' zod schemas (errors answered in our shape by the error
  // handler), except where a schema only documents an input its domain check validates. Responses
  // are sent as JSON.stringify would send them: their schemas document them, nothing more.
  app.setValidatorCompiler((route) => (isDocumentationOnly(route.schema) ? passThrough : validatorCompiler(route as Parameters<typeof validatorCompiler>[0])));
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  // Every route says which key scope it needs (or that it is public); the OpenAPI document learns
  // it, and the errors every route shares, here.
  const documented: DocumentedLimits = { bodyLimitBytes: BODY_LIMIT_BYTES, maxUrlLength: MAX_URL_LENGTH, maxParamLength: MAX_PARAM_LENGTH, maxHeaderBytes: MAX_HEADER_BYTES };
  app.addHook('onRoute', (route) => {
    const config = route.config as { public?: boolean; scope?: RouteScope } | undefined;
    if (!config?.public && !config?.scope) throw new Error(`route ${String(route.method)} ${route.url} needs config.scope (or config.public)`);
    documentRoute(route, config.public ? undefined : config.scope, documented);
  });
  void registerOpenApi(app, documented);

  app.addHook('onReady', async () => {
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
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issues = err.validation.map((v) => ({ path: v.instancePath.slice(1).replaceAll('/', '.'), message: v.message ?? 'invalid' }));
      return sendError(reply, new ValidationError(issues, err.validationContext === 'querystring' ? request.routeOptions.config.badQueryMessage : undefined));
    }
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

  const routeDeps: RouteDeps = { pool: deps.pool, temporal: deps.temporal, tracker: deps.tracker, config: deps.config, metrics: deps.metrics, ...(deps.realtime ? { realtime: deps.realtime } : {}), clock, generateId };
  for (const routes of [systemRoutes, usageRoutes, otlpRoutes, preflightRoutes, budgetRoutes, alertRoutes, reportRoutes, summaryRoutes]) void app.register(routes, routeDeps);

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
