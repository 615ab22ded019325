/**
 * The OpenAPI 3.1 document of the HTTP API, served at GET /v1/openapi.json. Hand-written rather than
 * generated from route schemas: request validation is ours (zod, naming each bad field), and fastify's
 * own schema validation would answer first in a different shape. `buildApi` refuses to start if a
 * route is missing here, so the document cannot fall behind the routes.
 */
import { MAX_TOKENS } from '../domain/usage.js';
import { SUPPORTED_CURRENCIES } from '../domain/money.js';

export const MAX_EVENTS_PER_REQUEST = 10_000;

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ 'application/json': { schema } });
const errorResponse = (description: string) => ({ description, content: json(ref('Error')) });

const tokenCount = { type: 'integer', minimum: 0, maximum: MAX_TOKENS, default: 0 };

const scopeParameter = {
  name: 'scope',
  in: 'path',
  required: true,
  description: 'A budget scope: `system`, `user:<id>`, `team:<id>` or `project:<id>` (the colon may be sent as `%3A`).',
  schema: { type: 'string', pattern: '^(system|(user|team|project):[A-Za-z0-9._@+=:/-]{1,200})$' },
  examples: { user: { value: 'user:alice' }, system: { value: 'system' } },
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

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Cost Guard API',
      version: '1',
      description:
        'Exact LLM cost metering with durable budgets. Money is always a decimal string (never a float). ' +
        'Every route except `GET /healthz` needs an API key, sent as `x-api-key: <key>` or `Authorization: Bearer <key>`. ' +
        'Errors are JSON `{ error, message }` with `error` one of `validation` (400/415), `unauthorized` (401), ' +
        '`not_found` (404), `conflict` (409), `unavailable` (503), `internal` (500); validation errors also list `issues`.',
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
          description:
            'All events are validated first: if any is invalid the answer is 400 naming each bad field (`[3].usage.inputTokens`) ' +
            'and nothing is recorded. Otherwise the events are sent to their budget workflows and the answer, 202, comes only ' +
            'once Temporal has durably accepted every one of them. Events without a `requestId` get one (returned in order); ' +
            'send your own to make retries safe: an event is counted once per `requestId`, however often it is sent.',
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
                properties: { accepted: { type: 'integer' }, requestIds: { type: 'array', items: { type: 'string' } } },
              }),
            },
            '400': { description: 'Invalid events or body; nothing was recorded', content: json(ref('ValidationError')) },
            '401': errorResponse('Missing or invalid API key'),
            '413': errorResponse('Body larger than 32 MiB'),
            '415': errorResponse('Body is not application/json'),
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
          responses: {
            '200': { description: 'The status', content: json(ref('BudgetStatus')) },
            '400': { description: 'Not a scope', content: json(ref('ValidationError')) },
            '401': errorResponse('Missing or invalid API key'),
            '404': errorResponse('No budget workflow for this scope (no usage and no budget set yet)'),
            '503': errorResponse('Temporal unavailable'),
          },
        },
        put: {
          operationId: 'setBudgets',
          summary: 'Replace a scope\'s budgets (starts its budget workflow if needed)',
          requestBody: { required: true, content: json(ref('BudgetChange')) },
          responses: {
            '200': { description: 'The status with the new budgets', content: json(ref('BudgetStatus')) },
            '400': { description: 'Invalid change (each bad field named), or rejected by the budget workflow', content: json(ref('ValidationError')) },
            '401': errorResponse('Missing or invalid API key'),
            '503': errorResponse('Temporal unavailable'),
          },
        },
      },
      '/v1/openapi.json': {
        get: {
          operationId: 'openApi',
          summary: 'This document',
          responses: { '200': { description: 'OpenAPI 3.1 document', content: json({ type: 'object' }) }, '401': errorResponse('Missing or invalid API key') },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics of this process (text exposition format 0.0.4)',
          description:
            'For Prometheus: configure the scrape job with `authorization: { credentials: <key> }` (sent as `Authorization: Bearer`). ' +
            'Names, labels and their mapping from the original metric names are in the README ("Metrics").',
          responses: {
            '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
            '401': errorResponse('Missing or invalid API key'),
          },
        },
      },
    },
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
        bearer: { type: 'http', scheme: 'bearer' },
      },
      schemas: {
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
          properties: {
            requestId: { type: 'string', pattern: '^[A-Za-z0-9._:@/+=-]{1,200}$', description: 'Idempotency key; generated when absent.' },
            occurredAt: { type: 'string', format: 'date-time', description: 'With a time zone; default now; at most a day ahead.' },
            provider: { type: 'string', examples: ['openai', 'anthropic', 'google'] },
            model: { type: 'string', examples: ['gpt-4o-mini'] },
            userId: { type: 'string', pattern: '^[A-Za-z0-9._@+=:/-]{1,200}$', description: 'Names the budget scope `user:<userId>`.' },
            taskType: { type: 'string', default: 'default' },
            team: { type: ['string', 'null'] },
            project: { type: ['string', 'null'] },
            tags: { type: 'object', additionalProperties: { type: 'string' }, maxProperties: 50 },
            usage: ref('TokenUsage'),
            metadata: { type: 'object', description: 'Free-form JSON, at most 16 KiB.' },
          },
        },
        Budget: {
          type: 'object',
          additionalProperties: false,
          required: ['period', 'amount', 'thresholds'],
          properties: {
            period: { type: 'string', description: '`day`, `month`, or a fixed length such as `30s`, `10m`, `1h`, `7d`.' },
            amount: { type: 'string', pattern: '^\\d+(\\.\\d+)?$', examples: ['25.00'] },
            currency: { enum: [...SUPPORTED_CURRENCIES], default: 'USD' },
            timezone: { type: 'string', description: 'IANA time zone of calendar periods; default the server\'s configured one.' },
            thresholds: {
              type: 'object',
              additionalProperties: false,
              required: ['warning', 'critical'],
              properties: { warning: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 }, critical: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 } },
            },
          },
        },
        BudgetChange: {
          type: 'object',
          additionalProperties: false,
          required: ['budgets'],
          properties: { budgets: { type: 'array', maxItems: 8, items: ref('Budget'), description: 'The scope\'s complete list; at most one per period.' } },
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
            thresholds: { type: 'object', properties: { warning: { type: 'number' }, critical: { type: 'number' } } },
            spentUsd: { type: 'string' },
            remainingUsd: { type: 'string' },
            usageRatio: { type: 'number', description: 'spent / amount (display only).' },
            level: { enum: ['ok', 'warning', 'critical', 'emergency'] },
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
        Error: {
          type: 'object',
          required: ['error', 'message'],
          properties: { error: { type: 'string' }, message: { type: 'string' } },
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
