/**
 * The OpenAPI 3.1 document of the HTTP API, served at GET /v1/openapi.json. Hand-written rather than
 * generated from route schemas: request validation is ours (zod, naming each bad field), and fastify's
 * own schema validation would answer first in a different shape. `buildApi` refuses to start if a
 * route is missing here, so the document cannot fall behind the routes.
 */
import { MAX_TOKENS } from '../domain/usage.js';
import { SUPPORTED_CURRENCIES } from '../domain/money.js';
import { STATUS_OF_CODE } from './errors.js';
import { MAX_JSON_DEPTH } from './json-depth.js';
import { API_KEY_SCOPES, type RouteScope } from './keys.js';

export const MAX_EVENTS_PER_REQUEST = 10_000;

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ 'application/json': { schema } });
const errorResponse = (description: string) => ({ description, content: json(ref('Error')) });

/**
 * The key scope an operation needs, as OpenAPI 3.1 role names on the API key schemes (an `admin` key
 * satisfies every role). `buildApi` checks that each route's `config.scope` matches.
 */
const holdParameter = { name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'A hold id as POST /v1/authorize returns it' };
const keyed = (scope: RouteScope) => ({ security: [{ apiKey: [scope] }, { bearer: [scope] }] });

/** The scope an operation of this document needs (undefined: no key). */
export function operationScope(operation: unknown): RouteScope | undefined {
  const security = (operation as { security?: Record<string, string[]>[] } | undefined)?.security;
  const role = security?.[0] ? Object.values(security[0])[0]?.[0] : undefined;
  return (API_KEY_SCOPES as readonly string[]).includes(role ?? '') ? (role as RouteScope) : undefined;
}

/** Responses any keyed route can give, besides its own. */
const keyedResponses = (scope: RouteScope) => ({
  '401': errorResponse('Missing or invalid API key (`unauthorized`, with `WWW-Authenticate: Bearer`)'),
  '403': errorResponse(`The key's scope does not allow this route: it needs ${scope === 'admin' ? 'an admin' : `an ${scope} or admin`} key (\`forbidden\`)`),
  '408': errorResponse('The request did not arrive in time (`timeout`; `api.headersTimeoutMs`, `api.requestTimeoutMs`); the connection is closed'),
  '414': errorResponse('The URL is longer than 4096 characters, or a path segment longer than 1000 (`uri_too_long`)'),
  '429': {
    description: 'This key made more requests in the current window than its scope allows (`rate_limited`, `api.rateLimit`)',
    headers: {
      'Retry-After': { description: 'Seconds until the window resets.', schema: { type: 'integer' } },
      'X-RateLimit-Limit': { description: 'Requests allowed per window for this key.', schema: { type: 'integer' } },
    },
    content: json(ref('Error')),
  },
  '431': errorResponse('The request line and headers are larger than 16 KiB (`headers_too_large`); the connection is closed'),
});

/** And those of a route taking a JSON body. */
const bodyResponses = {
  '413': errorResponse('Body larger than 32 MiB (`payload_too_large`)'),
  '415': errorResponse('Body is not application/json (`unsupported_media_type`)'),
};

const tokenCount = { type: 'integer', minimum: 0, maximum: MAX_TOKENS, default: 0, description: 'A whole number; leave it out for 0 (null is refused).' };

const scopeParameter = {
  name: 'scope',
  in: 'path',
  required: true,
  description: 'A budget scope: `system`, `user:<id>`, `team:<id>` or `project:<id>` (the colon may be sent as `%3A`).',
  schema: { type: 'string', pattern: '^(system|(user|team|project):[A-Za-z0-9._@+=:/-]{1,200})$' },
  examples: { user: { value: 'user:alice' }, system: { value: 'system' } },
};

const incidentParameter = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'An incident id (12 hex digits), as listed by GET /v1/alerts or `costguard alerts list`.',
  schema: { type: 'string', pattern: '^[0-9a-f]{12}$' },
};

const periodTotals = {
  type: 'object',
  properties: {
    costUsd: { type: 'string', description: 'Exact decimal.' },
    calls: { type: 'integer' },
    unpricedCalls: { type: 'integer' },
    tokens: ref('TokenUsage'),
    byProvider: { type: 'array', items: ref('BreakdownEntry') },
    byModel: { type: 'array', items: ref('BreakdownEntry') },
    byTaskType: { type: 'array', items: ref('BreakdownEntry') },
  },
};

const reportParameters = [
  { name: 'kind', in: 'path', required: true, schema: { enum: ['daily', 'monthly'] } },
  {
    name: 'period',
    in: 'path',
    required: true,
    description: '`YYYY-MM-DD` for a daily report, `YYYY-MM` for a monthly one.',
    schema: { type: 'string', pattern: '^\\d{4}-\\d{2}(-\\d{2})?$' },
    examples: { daily: { value: '2026-03-08' }, monthly: { value: '2026-03' } },
  },
  {
    name: 'tz',
    in: 'query',
    required: false,
    description: 'IANA time zone of the period; default the configured report time zone.',
    schema: { type: 'string', examples: ['America/New_York'] },
  },
];

const breakdownRow = {
  type: 'object',
  properties: {
    key: { type: 'string' },
    costUsd: { type: 'string' },
    calls: { type: 'integer' },
    totalTokens: { type: 'integer' },
    sharePct: { type: 'number' },
    avgCostPerCallUsd: { type: 'string' },
  },
};

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Cost Guard API',
      version: '1',
      description:
        'Exact LLM cost metering with durable budgets. Money is always a decimal string (never a float). ' +
        'Every route except `GET /healthz` needs an API key, sent as `x-api-key: <key>` or `Authorization: Bearer <key>`, ' +
        'of a scope that allows the route: `ingest` (POST /v1/usage), `read` (GET budgets, reports, alerts, this document, /metrics) ' +
        'or `admin` (everything, including PUT /v1/budgets and acknowledging alerts). Each operation names the scope it needs as a ' +
        'role of its security requirement; an `admin` key satisfies every role. ' +
        'Every error, whatever detects it, is JSON `{ error, message, issues? }` with `error` one of ' +
        Object.entries(STATUS_OF_CODE)
          .map(([code, status]) => `\`${code}\` (${status})`)
          .join(', ') +
        '; validation errors also list `issues`, each `{ path, message }`. ' +
        `Limits: a body of at most 32 MiB nesting at most ${MAX_JSON_DEPTH} levels of objects and arrays (400 beyond), ` +
        'a URL of at most 4096 characters (414), the request line and headers within 16 KiB (431), the headers within ' +
        '`api.headersTimeoutMs` (default 10 s) and the whole request within `api.requestTimeoutMs` (default 30 s; 408 and the ' +
        'connection is closed), and per key a number of requests per window by its scope (`api.rateLimit`; 429 with `Retry-After`).',
    },
    security: [{ apiKey: [] }, { bearer: [] }],
    paths: {
      '/healthz': {
        get: {
          operationId: 'health',
          summary: 'Liveness and database reachability (no API key needed)',
          security: [],
          responses: {
            '200': { description: 'Healthy', content: json({ type: 'object', properties: { status: { const: 'ok' } } }) },
            '503': { description: 'The database is unreachable', content: json({ type: 'object' }) },
          },
        },
      },
      '/v1/usage': {
        post: {
          operationId: 'recordUsage',
          summary: 'Record LLM usage: one event or an array of up to 10,000',
          ...keyed('ingest'),
          parameters: [
            {
              name: 'backfill',
              in: 'query',
              required: false,
              description:
                '`true` to record events older than the usual window (importing past usage); any other value is a 400. ' +
                'Without it, an `occurredAt` too far in the past is refused.',
              schema: { enum: ['true'] },
            },
          ],
          description:
            'All events are validated first: if any is invalid the answer is 400 naming each bad field (`[3].usage.inputTokens`) ' +
            'and nothing is recorded. Otherwise the events are sent to their budget workflows and the answer, 202, comes only ' +
            'once Temporal has durably accepted every one of them. Events without a `requestId` get one (returned in order); ' +
            'send your own to make retries safe: an event is counted once per `requestId`, however often it is sent ' +
            '(also within one request: `accepted` counts distinct request ids).',
          requestBody: {
            required: true,
            content: json({ oneOf: [ref('UsageEvent'), { type: 'array', items: ref('UsageEvent'), minItems: 1, maxItems: MAX_EVENTS_PER_REQUEST }] }),
          },
          responses: {
            '202': {
              description: 'Accepted and durable',
              content: json({
                type: 'object',
                required: ['accepted', 'requestIds'],
                properties: {
                  accepted: { type: 'integer', description: 'Distinct events accepted (a requestId repeated in the request counts once).' },
                  requestIds: { type: 'array', items: { type: 'string' }, description: 'One per array entry, in order.' },
                },
              }),
            },
            '400': {
              description: `Invalid events, body (not JSON, nesting deeper than ${MAX_JSON_DEPTH} levels) or backfill flag; nothing was recorded`,
              content: json(ref('ValidationError')),
            },
            ...keyedResponses('ingest'),
            ...bodyResponses,
            '503': {
              description:
                'Temporal unavailable: the events may not have been recorded. Retry with the same requestIds (listed here) so nothing counts twice.',
              content: json({ allOf: [ref('Error'), { type: 'object', properties: { requestIds: { type: 'array', items: { type: 'string' } } } }] }),
            },
          },
        },
      },
      '/v1/budgets/{scope}': {
        parameters: [scopeParameter],
        get: {
          operationId: 'getBudgetStatus',
          summary: 'Live state of a scope\'s budgets (queried from its budget workflow)',
          ...keyed('read'),
          responses: {
            '200': { description: 'The status', content: json(ref('BudgetStatus')) },
            '400': { description: 'Not a scope', content: json(ref('ValidationError')) },
            ...keyedResponses('read'),
            '404': errorResponse('No budget workflow for this scope (no usage and no budget set yet)'),
            '503': errorResponse('Temporal unavailable'),
          },
        },
        put: {
          operationId: 'setBudgets',
          summary: 'Change a scope\'s budgets, merged by period (starts its budget workflow if needed)',
          description:
            'A budget whose `period` the scope already has keeps every field the change omits (thresholds merge key by key; `null` removes ' +
            '`enforcement`, `failMode`, `thresholds.info` or `thresholds.emergency`). A new period needs `amount` and `thresholds` (the 400 names ' +
            'each missing one). Periods the change does not list are removed.',
          ...keyed('admin'),
          requestBody: { required: true, content: json(ref('BudgetChange')) },
          responses: {
            '200': { description: 'The status with the new budgets', content: json(ref('BudgetStatus')) },
            '400': { description: 'Invalid change (each bad field named), or rejected by the budget workflow', content: json(ref('ValidationError')) },
            ...keyedResponses('admin'),
            ...bodyResponses,
            '503': errorResponse('Temporal unavailable'),
          },
        },
      },
      '/v1/alerts': {
        get: {
          operationId: 'listAlerts',
          summary: 'Open incidents (most severe first), and with status=all the recently resolved ones too',
          ...keyed('read'),
          parameters: [
            { name: 'status', in: 'query', schema: { enum: ['open', 'all'], default: 'open' } },
            { name: 'scope', in: 'query', schema: { type: 'string' }, description: 'Only incidents of this scope.' },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          ],
          responses: {
            '200': { description: 'Incidents', content: json({ type: 'object', properties: { incidents: { type: 'array', items: ref('Incident') } } }) },
            '400': { description: 'Bad query parameter', content: json(ref('ValidationError')) },
            ...keyedResponses('read'),
          },
        },
      },
      '/v1/alerts/{id}': {
        parameters: [incidentParameter],
        get: {
          operationId: 'getAlert',
          summary: 'One incident with its history (opened, level changes, notifications, acknowledgement, resolution)',
          ...keyed('read'),
          responses: {
            '200': { description: 'The incident', content: json(ref('Incident')) },
            '400': { description: 'Not an incident id', content: json(ref('ValidationError')) },
            ...keyedResponses('read'),
            '404': errorResponse('No such incident'),
          },
        },
      },
      '/v1/alerts/{id}/ack': {
        parameters: [incidentParameter],
        post: {
          operationId: 'acknowledgeAlert',
          summary: 'Acknowledge an open incident: someone takes responsibility and escalation stops',
          ...keyed('admin'),
          requestBody: {
            required: true,
            content: json({ type: 'object', additionalProperties: false, required: ['by'], properties: { by: { type: 'string', maxLength: 200 }, note: { type: 'string', maxLength: 2000 } } }),
          },
          responses: {
            '200': { description: 'The incident as its alert workflow now sees it', content: json({ type: 'object' }) },
            '400': { description: 'Invalid acknowledgement or incident id', content: json(ref('ValidationError')) },
            ...keyedResponses('admin'),
            ...bodyResponses,
            '404': errorResponse('No such incident'),
            '409': errorResponse('The incident is already resolved'),
            '503': errorResponse('Temporal unavailable'),
          },
        },
      },
      '/v1/reports/{kind}/{period}': {
        parameters: reportParameters,
        get: {
          operationId: 'getReport',
          summary: 'A stored cost report (JSON)',
          ...keyed('read'),
          description:
            'Reports are generated by the daily and monthly schedules, or on demand for any past period with ' +
            '`costguard report daily|monthly --generate`. The same path with `.html` appended serves the page sent by email.',
          responses: {
            '200': { description: 'The report', content: json(ref('Report')) },
            '400': { description: 'Bad kind, period or time zone (named in `issues`)', content: json(ref('ValidationError')) },
            ...keyedResponses('read'),
            '404': errorResponse('No report generated for this period and time zone'),
          },
        },
      },
      '/v1/reports/{kind}/{period}.html': {
        parameters: reportParameters,
        get: {
          operationId: 'getReportHtml',
          summary: 'A stored cost report as the HTML page sent by email (inline SVG charts)',
          ...keyed('read'),
          responses: {
            '200': { description: 'The page', content: { 'text/html': { schema: { type: 'string' } } } },
            '400': { description: 'Bad kind, period or time zone (named in `issues`)', content: json(ref('ValidationError')) },
            ...keyedResponses('read'),
            '404': errorResponse('No report generated for this period and time zone'),
          },
        },
      },
      '/v1/openapi.json': {
        get: {
          operationId: 'openApi',
          summary: 'This document',
          ...keyed('read'),
          responses: { '200': { description: 'OpenAPI 3.1 document', content: json({ type: 'object' }) }, ...keyedResponses('read') },
        },
      },
      '/v1/authorize': {
        post: {
          operationId: 'authorize',
          summary: 'Pre-flight check: reserve a call\'s worst-case cost on every budget that applies (user, team, project, system), or on none',
          description:
            'Answers `allow`, `downgrade` (with model advice) or `deny` (with a reason). An admitted call gets a `holdId`: send it with the ' +
            'call\'s usage event (`holdId` in POST /v1/usage) to settle the reservation with the actual cost, or DELETE /v1/holds/{id}. ' +
            'A hold expires after its TTL unless renewed (POST /v1/holds/{id}/renew). A deny is an answer (200), not an error.',
          ...keyed('ingest'),
          requestBody: { required: true, content: json(ref('AuthorizeRequest')) },
          responses: {
            '200': { description: 'The decision', content: json(ref('AuthorizeResult')) },
            '400': { description: 'Invalid request (each bad field named)', content: json(ref('ValidationError')) },
            ...keyedResponses('ingest'),
            ...bodyResponses,
          },
        },
      },
      '/v1/holds/{id}': {
        parameters: [holdParameter],
        get: {
          operationId: 'getHold',
          summary: 'A hold\'s state: open, settled, released, expired, or settled after a release or expiry',
          ...keyed('ingest'),
          responses: {
            '200': { description: 'The hold', content: json({ type: 'object', properties: { holdId: { type: 'string' }, state: { type: 'string' }, reservedUsd: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } } }) },
            '400': { description: 'Not a hold id', content: json(ref('ValidationError')) },
            ...keyedResponses('ingest'),
            '404': errorResponse('No such hold (never made, or finished more than two days ago)'),
          },
        },
        delete: {
          operationId: 'releaseHold',
          summary: 'Give a hold\'s reservation back (the call was not made); repeats change nothing',
          ...keyed('ingest'),
          responses: {
            '200': { description: 'What happened: released, duplicate (already finished) or unknown', content: json({ type: 'object', properties: { holdId: { type: 'string' }, status: { type: 'string' } } }) },
            '400': { description: 'Not a hold id', content: json(ref('ValidationError')) },
            ...keyedResponses('ingest'),
          },
        },
      },
      '/v1/holds/{id}/renew': {
        parameters: [holdParameter],
        post: {
          operationId: 'renewHold',
          summary: 'Extend an open hold\'s life (a long stream renews its hold every third of its TTL)',
          ...keyed('ingest'),
          requestBody: { required: false, content: json({ type: 'object', properties: { ttlSeconds: { type: 'integer', minimum: 1 } }, additionalProperties: false }) },
          responses: {
            '200': { description: 'Renewed, with the new expiry', content: json({ type: 'object', properties: { holdId: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } } }) },
            '400': { description: 'Invalid request', content: json(ref('ValidationError')) },
            ...keyedResponses('ingest'),
            '409': errorResponse('The hold is no longer open (settled, released or expired)'),
            '404': errorResponse('No such hold'),
          },
        },
      },
      '/v1/advice': {
        get: {
          operationId: 'getAdvice',
          summary: 'Model advice (tiers by task complexity and per-call budget, max_tokens caps per task type)',
          ...keyed('read'),
          parameters: ['userId', 'teamId', 'projectId', 'provider', 'model', 'taskType', 'complexity', 'inputTokens', 'maxOutputTokens', 'conversationId', 'perCallBudgetUsd'].map((name) => ({
            name,
            in: 'query',
            required: ['userId', 'provider', 'model'].includes(name),
            schema: { type: ['inputTokens', 'maxOutputTokens'].includes(name) ? 'integer' : 'string' },
          })),
          responses: {
            '200': { description: 'The advice and what remains per scope', content: json({ type: 'object', properties: { advice: ref('Advice'), scopes: { type: 'array', items: ref('ScopeRemaining') } } }) },
            '400': { description: 'Invalid request', content: json(ref('ValidationError')) },
            ...keyedResponses('read'),
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics of this process (text exposition format 0.0.4)',
          ...keyed('read'),
          description:
            'For Prometheus: configure the scrape job with `authorization: { credentials: <key> }` (sent as `Authorization: Bearer`). ' +
            'Names, labels and their mapping from the original metric names are in the README ("Metrics").',
          responses: {
            '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
            ...keyedResponses('read'),
          },
        },
      },
    },
    components: {
      securitySchemes: {
        apiKey: {
          type: 'apiKey',
          in: 'header',
          name: 'x-api-key',
          description: 'An API key of scope `ingest`, `read` or `admin` (configured as `<scope>:<key>`; a plain key is `admin`).',
        },
        bearer: { type: 'http', scheme: 'bearer', description: 'The same API key as `Authorization: Bearer <key>`.' },
      },
      schemas: {
        Incident: {
          type: 'object',
          properties: {
            id: { type: 'string', pattern: '^[0-9a-f]{12}$' },
            rule: { enum: ['threshold', 'forecast', 'spike', 'unpriced'] },
            scope: { type: 'string' },
            budgetPeriod: { type: ['string', 'null'] },
            periodKey: { type: ['string', 'null'] },
            level: { enum: ['info', 'warning', 'critical', 'emergency'] },
            status: { enum: ['open', 'acknowledged', 'resolved'] },
            title: { type: 'string' },
            summary: { type: 'string' },
            fields: { type: 'array', items: { type: 'object', properties: { label: { type: 'string' }, value: { type: 'string' } } } },
            openedAt: { type: 'string', format: 'date-time' },
            updatedAt: { type: 'string', format: 'date-time' },
            acknowledged: { type: ['object', 'null'], properties: { by: { type: 'string' }, at: { type: 'string' }, note: { type: ['string', 'null'] } } },
            resolved: { type: ['object', 'null'], properties: { at: { type: 'string' }, reason: { type: 'string' } } },
            escalations: { type: 'integer' },
            notifications: { type: 'integer' },
            events: { type: 'array', description: 'GET /v1/alerts/{id} only.', items: { type: 'object' } },
          },
        },
        TokenUsage: {
          type: 'object',
          additionalProperties: false,
          description:
            'Inclusive totals: inputTokens includes cacheReadTokens and cacheWriteTokens; cacheWriteTokens includes cacheWrite1hTokens; ' +
            'outputTokens includes reasoningTokens.',
          properties: {
            inputTokens: tokenCount,
            cacheReadTokens: tokenCount,
            cacheWriteTokens: tokenCount,
            cacheWrite1hTokens: tokenCount,
            outputTokens: tokenCount,
            reasoningTokens: tokenCount,
          },
        },
        UsageEvent: {
          type: 'object',
          additionalProperties: false,
          required: ['provider', 'model', 'userId', 'usage'],
          description:
            'Every string is well-formed Unicode (no lone surrogate) without control characters (NUL, C0, DEL, C1), within its length; ' +
            'anything else is refused naming the field, never rewritten. Labels are trimmed of surrounding spaces; the provider is lower-cased.',
          properties: {
            requestId: { type: 'string', pattern: '^[A-Za-z0-9._:@/+=-]{1,200}$', description: 'Idempotency key; generated when absent.' },
            occurredAt: {
              type: 'string',
              format: 'date-time',
              description:
                'With a time zone; default now. From 2000-01-01, at most a day ahead, at most 7 days back unless the request is a backfill (`?backfill=true`).',
            },
            provider: { type: 'string', minLength: 1, maxLength: 100, examples: ['openai', 'anthropic', 'google'] },
            model: { type: 'string', minLength: 1, maxLength: 200, examples: ['gpt-4o-mini'] },
            userId: { type: 'string', pattern: '^[A-Za-z0-9._@+=:/-]{1,200}$', description: 'Names the budget scope `user:<userId>`.' },
            taskType: { type: 'string', minLength: 1, maxLength: 100, default: 'default' },
            team: { type: ['string', 'null'], pattern: '^[A-Za-z0-9._@+=:/-]{1,200}$' },
            project: { type: ['string', 'null'], pattern: '^[A-Za-z0-9._@+=:/-]{1,200}$' },
            tags: { type: 'object', propertyNames: { maxLength: 100 }, additionalProperties: { type: 'string', maxLength: 500 }, maxProperties: 50 },
            usage: ref('TokenUsage'),
            metadata: { type: 'object', description: 'A JSON object: at most 8 levels deep and 16 KiB serialised; finite numbers only; strings and keys under the text rule.' },
            estimated: { type: 'boolean', default: false, description: 'The token counts are an estimate (a stream broken off before the provider reported usage).' },
          },
        },
        Budget: {
          type: 'object',
          additionalProperties: false,
          required: ['period', 'amount', 'thresholds'],
          properties: {
            period: { type: 'string', description: '`day`, `month`, or a fixed length such as `30s`, `10m`, `1h`, `7d`.' },
            amount: { type: 'string', pattern: '^\\d{1,12}(\\.\\d{1,6})?$', description: 'Positive; at most 12 digits before the point and 6 after.', examples: ['25.00'] },
            currency: { enum: [...SUPPORTED_CURRENCIES], default: 'USD' },
            timezone: { type: 'string', description: 'IANA time zone of calendar periods, spelled as the time-zone database spells it (`Europe/Paris`, not `europe/paris`); default the server\'s configured one.' },
            thresholds: {
              type: 'object',
              additionalProperties: false,
              required: ['warning', 'critical'],
              properties: {
                info: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'Optional, below warning.' },
                warning: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
                critical: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
                emergency: { type: 'number', exclusiveMinimum: 0, maximum: 10, description: 'Default 1 (100% of the budget).' },
              },
            },
            enforcement: { enum: ['hard', 'soft'], default: 'soft', description: 'Pre-flight checks: hard denies a call whose worst case does not fit; soft admits it with downgrade advice (overshooting by at most one call).' },
            failMode: { enum: ['open', 'closed'], description: 'When Redis or Temporal cannot answer a pre-flight check: closed denies, open admits unreserved. Default closed for hard, open for soft.' },
          },
        },
        BudgetChange: {
          type: 'object',
          additionalProperties: false,
          required: ['budgets'],
          properties: {
            budgets: {
              type: 'array',
              maxItems: 8,
              description: 'The scope\'s complete list of periods, at most one budget per period; each item is a `Budget` in which only `period` is required when the scope already has that period.',
              items: {
                type: 'object',
                required: ['period'],
                properties: {
                  period: { type: 'string' },
                  amount: { type: 'string' },
                  currency: { enum: [...SUPPORTED_CURRENCIES] },
                  timezone: { type: 'string' },
                  thresholds: { type: 'object', description: 'Merged key by key into the current thresholds; `info` and `emergency` may be `null` (removed).' },
                  enforcement: { enum: ['hard', 'soft', null] },
                  failMode: { enum: ['open', 'closed', null] },
                },
                additionalProperties: false,
              },
            },
          },
        },
        BreakdownEntry: { type: 'object', properties: { key: { type: 'string' }, costUsd: { type: 'string' }, calls: { type: 'integer' } } },
        BudgetPeriodStatus: {
          type: 'object',
          properties: {
            period: { type: 'string' },
            timezone: { type: 'string' },
            periodKey: { type: 'string' },
            periodStart: { type: 'string', format: 'date-time' },
            periodEnd: { type: 'string', format: 'date-time' },
            amount: { type: 'string' },
            currency: { enum: [...SUPPORTED_CURRENCIES] },
            amountUsd: { type: 'string' },
            thresholds: { type: 'object', properties: { info: { type: 'number' }, warning: { type: 'number' }, critical: { type: 'number' }, emergency: { type: 'number' } } },
            spentUsd: { type: 'string' },
            remainingUsd: { type: 'string' },
            usageRatio: { type: 'number', description: 'spent / amount (display only).' },
            level: { enum: ['ok', 'info', 'warning', 'critical', 'emergency'] },
            totals: periodTotals,
          },
        },
        BudgetStatus: {
          type: 'object',
          properties: {
            scope: { type: 'string' },
            scopeKind: { enum: ['system', 'user', 'team', 'project'] },
            source: { enum: ['events', 'ledger'] },
            budgets: { type: 'array', items: ref('BudgetPeriodStatus') },
            updatedAt: { type: 'string', format: 'date-time' },
            counters: { type: 'object', additionalProperties: { type: 'integer' } },
          },
        },
        Report: {
          type: 'object',
          description: 'A cost report. Money is exact decimal strings in USD; percentages are display numbers.',
          properties: {
            schemaVersion: { const: 1 },
            kind: { enum: ['daily', 'monthly'] },
            period: { type: 'string' },
            timezone: { type: 'string' },
            periodStart: { type: 'string', format: 'date-time' },
            periodEnd: { type: 'string', format: 'date-time' },
            hours: { type: 'number', description: '23, 24 or 25 for a day.' },
            generatedAt: { type: 'string', format: 'date-time' },
            empty: { type: 'boolean', description: 'No usage in the period.' },
            totals: {
              type: 'object',
              properties: {
                costUsd: { type: 'string' },
                calls: { type: 'integer' },
                unpricedCalls: { type: 'integer' },
                tokens: ref('TokenUsage'),
                totalTokens: { type: 'integer' },
                avgCostPerCallUsd: { type: 'string' },
              },
            },
            previous: { type: 'object', properties: { period: { type: 'string' }, costUsd: { type: 'string' }, calls: { type: 'integer' }, avgCostPerCallUsd: { type: 'string' } } },
            change: {
              type: 'object',
              properties: { costUsd: { type: 'string' }, costPct: { type: ['number', 'null'] }, calls: { type: 'integer' }, callsPct: { type: ['number', 'null'] } },
            },
            byProvider: { type: 'array', items: breakdownRow },
            byModel: { type: 'array', items: { allOf: [breakdownRow, { type: 'object', properties: { provider: { type: 'string' }, model: { type: 'string' }, tier: { enum: ['premium', 'standard', 'economy', null] } } }] } },
            byTaskType: { type: 'array', items: breakdownRow },
            topUsers: { type: 'array', items: breakdownRow },
            series: {
              type: 'object',
              properties: {
                unit: { enum: ['hour', 'day'] },
                buckets: { type: 'array', items: { type: 'object', properties: { label: { type: 'string' }, start: { type: 'string', format: 'date-time' }, costUsd: { type: 'string' }, calls: { type: 'integer' } } } },
              },
            },
            byHourOfDay: {
              type: ['array', 'null'],
              description: 'Monthly reports: cost by local hour of the day (24 entries); null for daily reports.',
              items: { type: 'object', properties: { hour: { type: 'integer' }, label: { type: 'string' }, costUsd: { type: 'string' }, calls: { type: 'integer' } } },
            },
            budgets: { type: 'array', items: { type: 'object', properties: { scope: { type: 'string' }, period: { type: 'string' }, amountUsd: { type: 'string' }, spentUsd: { type: 'string' }, usagePct: { type: 'number' } } } },
            incidents: { type: 'array', items: { type: 'object' } },
            recommendations: {
              type: 'array',
              items: {
                type: 'object',
                properties: {
                  kind: { enum: ['expensive_provider', 'expensive_task_type', 'high_average_cost', 'cheaper_model'] },
                  subject: { type: 'string' },
                  message: { type: 'string' },
                  estimatedSavingUsd: { type: 'string' },
                  alternative: { type: 'string' },
                },
              },
            },
          },
        },
        AuthorizeRequest: {
          type: 'object',
          required: ['userId', 'provider', 'model'],
          additionalProperties: false,
          description: 'Give the estimate as inputTokens and maxOutputTokens, or as costUsd (the worst case itself).',
          properties: {
            userId: { type: 'string' },
            teamId: { type: 'string' },
            projectId: { type: 'string' },
            provider: { type: 'string', examples: ['openai'] },
            model: { type: 'string', examples: ['gpt-4o'] },
            taskType: { type: 'string' },
            complexity: { enum: ['simple', 'medium', 'complex'] },
            inputTokens: { type: 'integer', minimum: 0 },
            maxOutputTokens: { type: 'integer', minimum: 0 },
            costUsd: { type: 'string', examples: ['0.05'] },
            ttlSeconds: { type: 'integer', minimum: 1 },
            conversationId: { type: 'string', description: 'Keeps model advice stable within a conversation (hysteresis).' },
            perCallBudgetUsd: { type: 'string' },
          },
        },
        ScopeRemaining: {
          type: 'object',
          properties: {
            scope: { type: 'string' },
            period: { type: 'string' },
            enforcement: { enum: ['hard', 'soft'] },
            budgetUsd: { type: 'string' },
            remainingUsd: { type: 'string' },
            usedRatio: { type: 'number' },
          },
        },
        Advice: {
          type: 'object',
          properties: {
            tier: { enum: ['premium', 'standard', 'economy'] },
            provider: { type: 'string' },
            model: { type: 'string' },
            maxOutputTokens: { type: 'integer' },
            expectedCostUsd: { type: ['string', 'null'] },
            requestedTier: { enum: ['premium', 'standard', 'economy', null] },
            requestedCostUsd: { type: ['string', 'null'] },
            perCallBudgetUsd: { type: ['string', 'null'] },
            downgrade: { type: 'boolean' },
            reasons: { type: 'array', items: { type: 'string' } },
          },
        },
        AuthorizeResult: {
          type: 'object',
          properties: {
            decision: { enum: ['allow', 'downgrade', 'deny'] },
            reason: { enum: ['budget_exhausted', 'price_unknown', 'unavailable', 'near_budget', 'over_budget_soft', 'cheaper_fits', null] },
            holdId: { type: ['string', 'null'] },
            reservedUsd: { type: 'string' },
            expiresAt: { type: ['string', 'null'], format: 'date-time' },
            worstCaseUsd: { type: ['string', 'null'] },
            advice: { oneOf: [ref('Advice'), { type: 'null' }] },
            scopes: { type: 'array', items: ref('ScopeRemaining') },
            enforced: { type: 'boolean', description: 'False when a fail-open budget admitted the call unreserved (Redis or Temporal could not answer).' },
          },
        },
        Error: {
          type: 'object',
          required: ['error', 'message'],
          properties: {
            error: { enum: Object.keys(STATUS_OF_CODE), description: 'One code per HTTP status (see the description of this API).' },
            message: { type: 'string', description: 'What the problem is, in words.' },
            issues: {
              type: 'array',
              items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string' }, message: { type: 'string' } } },
            },
          },
        },
        ValidationError: {
          type: 'object',
          required: ['error', 'message', 'issues'],
          properties: {
            error: { const: 'validation' },
            message: { type: 'string' },
            issues: {
              type: 'array',
              items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string', examples: ['[3].usage.inputTokens'] }, message: { type: 'string' } } },
            },
          },
        },
      },
    },
  };
}

/** `/v1/budgets/:scope` -> `/v1/budgets/{scope}` */
export function openApiPath(fastifyUrl: string): string {
  return fastifyUrl.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}
