/**
 * The zod schemas of the HTTP API's wire shapes, from which the OpenAPI document is generated
 * (src/api/openapi.ts) and, where the HTTP layer owns the check, requests are validated.
 *
 * Where an input is checked by the domain or the client library (usage events, budget changes,
 * pre-flight requests, acknowledgements: the CLI and the client library check them too, with the
 * messages the tests pin), the route's schema only documents it: `documentsOnly` marks it, and the
 * validator compiler lets the request through to that one check. Budgets are described by the
 * config file's own zod schema, token counts by `TOKEN_KINDS`.
 */
import { z } from 'zod';
import { budgetSchema } from '../config/index.js';
import { COMPLEXITIES } from '../domain/advice.js';
import { MAX_AMOUNT_DIGITS, MAX_AMOUNT_SCALE } from '../domain/budget.js';
import { SUPPORTED_CURRENCIES } from '../domain/money.js';
import { REPORT_KINDS } from '../domain/report-period.js';
import { SUMMARY_DEFAULT_HOURS, SUMMARY_MAX_HOURS } from '../domain/summary.js';
import { isHoldId } from '../domain/leases.js';
import { MAX_TOKENS, TOKEN_KINDS } from '../domain/usage.js';
import { STATUS_OF_CODE, clip } from './errors.js';

const documented = new WeakSet<object>();

/** Marks a schema as documentation only: the route validates the input itself (see above). */
export function documentsOnly<T extends z.ZodType>(schema: T): T {
  documented.add(schema);
  return schema;
}

export function isDocumentationOnly(schema: unknown): boolean {
  return typeof schema === 'object' && schema !== null && documented.has(schema);
}

const SCOPE_ID_PATTERN = '^[A-Za-z0-9._@+=:/-]{1,200}$';
const scopeId = z.string().regex(new RegExp(SCOPE_ID_PATTERN));
/**
 * A usage event's label as the API takes it: surrounding spaces are trimmed (the one documented
 * rewrite) before the length and character checks, so the pattern allows them around 1..max
 * characters (letters, digits and ._@+=:/- for ids that name a scope).
 */
const labelOf = (max: number) => z.string().regex(new RegExp(`^\\s*\\S(?:.{0,${max - 2}}\\S)?\\s*$`)).meta({ description: `1 to ${max} characters once surrounding spaces are trimmed.` });
/** An ISO-8601 date-time with an offset, seconds optional, as the API parses it (parseIsoTime). */
const isoTime = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})$/i).meta({ format: 'date-time' });
const scopeIdLabel = z.string().regex(/^\s*[A-Za-z0-9._@+=:/-]{1,200}\s*$/);
const money = (description = 'Exact decimal (never a float).') => z.string().meta({ description, examples: ['0.05'] });
const dateTime = z.iso.datetime({ offset: true });
const level = z.enum(['ok', 'info', 'warning', 'critical', 'emergency']);
/** A string of one of these values, typed as the domain types it (a plain string). */
const oneOf = (values: readonly string[]) => z.string().meta({ enum: [...values] });
const tier = z.enum(['premium', 'standard', 'economy']);

// Errors ---------------------------------------------------------------------------------------

const fieldIssue = z.object({
  path: z.string().meta({ examples: ['[3].usage.inputTokens'] }),
  message: z.string(),
});

/** Every 4xx and 5xx: `{ error, message, issues? }`. */
export const errorSchema = z
  .object({
    error: z.enum(Object.keys(STATUS_OF_CODE) as [string, ...string[]]).meta({ description: 'One code per HTTP status (see the description of this API).' }),
    message: z.string().meta({ description: 'What the problem is, in words.' }),
    issues: z.array(fieldIssue).optional(),
  })
  .meta({ id: 'Error' });

/** A 400: the issues name each bad field. */
const validationErrorSchema = z
  .object({ error: z.literal('validation'), message: z.string(), issues: z.array(fieldIssue) })
  .meta({ id: 'ValidationError' });

/** A response of the error shape, described. */
export const errorResponse = (description: string) => errorSchema.describe(description);
export const validationResponse = (description: string) => validationErrorSchema.describe(description);

// Usage ----------------------------------------------------------------------------------------

const tokenCount = z.int().min(0).max(MAX_TOKENS).default(0).meta({ description: 'A whole number; leave it out for 0 (null is refused).' });

const tokenUsageSchema = z
  .strictObject(Object.fromEntries(TOKEN_KINDS.map((kind) => [kind, tokenCount])) as Record<(typeof TOKEN_KINDS)[number], typeof tokenCount>)
  .meta({
    id: 'TokenUsage',
    description:
      'Inclusive totals: inputTokens includes cacheReadTokens and cacheWriteTokens; cacheWriteTokens includes cacheWrite1hTokens; ' +
      'outputTokens includes reasoningTokens.',
  });

export const usageEventSchema = z
  .strictObject({
    requestId: z.string().regex(/^[A-Za-z0-9._:@/+=-]{1,200}$/).optional().meta({ description: 'Idempotency key; generated when absent.' }),
    occurredAt: isoTime.optional().meta({
      description: 'With a time zone; default now. From 2000-01-01, at most a day ahead, at most 7 days back unless the request is a backfill (`?backfill=true`).',
    }),
    provider: labelOf(100).meta({ description: 'Lower-cased and trimmed.', examples: ['openai', 'anthropic', 'google'] }),
    model: labelOf(200).meta({ examples: ['gpt-4o-mini'] }),
    userId: scopeIdLabel.meta({ description: 'Names the budget scope `user:<userId>` (surrounding spaces trimmed).' }),
    taskType: labelOf(100).default('default'),
    team: scopeIdLabel.nullable().optional(),
    project: scopeIdLabel.nullable().optional(),
    tags: z.record(z.string().max(100), z.string().max(500)).optional().meta({ description: 'At most 50 tags.' }),
    usage: tokenUsageSchema,
    metadata: z.record(z.string(), z.unknown()).optional().meta({ description: 'A JSON object: at most 8 levels deep and 16 KiB serialised; finite numbers only; strings and keys under the text rule.' }),
    estimated: z.boolean().default(false).meta({ description: 'The token counts are an estimate (a stream broken off before the provider reported usage).' }),
    holdId: z.string().optional().meta({ description: 'The hold from POST /v1/authorize: settled with this call\'s cost.' }),
    cacheHit: z.boolean().optional().meta({ description: 'Answered by the response cache: recorded as cost avoided, not spend.' }),
  })
  .meta({
    id: 'UsageEvent',
    description:
      'Every string is well-formed Unicode (no lone surrogate) without control characters (NUL, C0, DEL, C1), within its length; ' +
      'anything else is refused naming the field, never rewritten. Labels are trimmed of surrounding spaces; the provider is lower-cased.',
  });

/** `?backfill=true`, or nothing: any other value is refused naming the parameter. */
export const usageQuerySchema = z.object({
  backfill: z
    .literal('true', {
      error: (issue) => {
        const value = issue.input;
        const shown = Array.isArray(value) ? `${value.length} values` : JSON.stringify(clip(String(value), 50));
        return `expected "true" or no backfill parameter, got ${shown}`;
      },
    })
    .optional()
    .transform((v) => v === 'true')
    .meta({
      description:
        '`true` to record events older than the usual window (importing past usage); any other value is a 400. ' +
        'Without it, an `occurredAt` too far in the past is refused.',
    }),
});

export const usageAcceptedSchema = z.object({
  accepted: z.int().meta({ description: 'Distinct events accepted (a requestId repeated in the request counts once).' }),
  requestIds: z.array(z.string()).meta({ description: 'One per array entry, in order.' }),
});

// Budgets --------------------------------------------------------------------------------------

export const scopeParamsSchema = z.object({
  scope: z
    .string()
    .regex(/^(system|(user|team|project):[A-Za-z0-9._@+=:/-]{1,200})$/)
    .meta({ description: 'A budget scope: `system`, `user:<id>`, `team:<id>` or `project:<id>` (the colon may be sent as `%3A`).', examples: ['user:alice', 'system'] }),
});

/**
 * A budget as the config file declares one, without its scope (the URL names it), and its amount a
 * decimal string only (the config file also takes a YAML number).
 */
const budgetWireSchema = budgetSchema
  .omit({ scope: true })
  .extend({
    amount: z
      .string()
      .regex(new RegExp(`^\\d{1,${MAX_AMOUNT_DIGITS}}(\\.\\d{1,${MAX_AMOUNT_SCALE}})?$`))
      .meta({ description: `Positive; at most ${MAX_AMOUNT_DIGITS} digits before the point and ${MAX_AMOUNT_SCALE} after.`, examples: ['25.00'] }),
  })
  .meta({ id: 'Budget' });

export const budgetChangeSchema = z
  .strictObject({
    budgets: z
      .array(
        budgetWireSchema
          .partial()
          .required({ period: true })
          .extend({
            enforcement: z.enum(['hard', 'soft', 'none']).nullable().optional(),
            failMode: z.enum(['open', 'closed']).nullable().optional(),
            thresholds: z.record(z.string(), z.number().nullable()).optional().meta({ description: 'Merged key by key into the current thresholds; `info` and `emergency` may be `null` (removed).' }),
          }),
      )
      .max(8)
      .meta({
        description:
          'The scope\'s complete list of periods, at most one budget per period; each item is a `Budget` in which only `period` is required when the scope already has that period.',
      }),
  })
  .meta({ id: 'BudgetChange' });

const breakdownEntry = z.object({ key: z.string(), costUsd: money(), calls: z.int() });

const budgetPeriodStatus = z.object({
  period: z.string(),
  timezone: z.string(),
  periodKey: z.string(),
  periodStart: dateTime,
  periodEnd: dateTime,
  amount: money(),
  currency: z.enum(SUPPORTED_CURRENCIES),
  amountUsd: money(),
  thresholds: z.object({ info: z.number().optional(), warning: z.number(), critical: z.number(), emergency: z.number().optional() }),
  enforcement: z.enum(['hard', 'soft', 'none']).meta({ description: 'Pre-flight: hard denies what does not fit, soft advises, none (the default) takes no part in decisions.' }),
  failMode: z.enum(['open', 'closed']),
  spentUsd: money(),
  remainingUsd: money(),
  usageRatio: z.number().meta({ description: 'spent / amount (display only).' }),
  level,
  totals: z.object({
    costUsd: money(),
    calls: z.int(),
    unpricedCalls: z.int(),
    tokens: tokenUsageSchema,
    byProvider: z.array(breakdownEntry),
    byModel: z.array(breakdownEntry),
    byTaskType: z.array(breakdownEntry),
  }),
});

export const budgetStatusSchema = z
  .object({
    scope: z.string(),
    scopeKind: z.enum(['system', 'user', 'team', 'project']),
    source: z.enum(['events', 'ledger']),
    budgets: z.array(budgetPeriodStatus),
    updatedAt: dateTime,
    counters: z.record(z.string(), z.int()),
  })
  .meta({ id: 'BudgetStatus' });

// Alerts ---------------------------------------------------------------------------------------

export const incidentParamsSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{12}$/).meta({ description: 'An incident id (12 hex digits), as listed by GET /v1/alerts or `costguard alerts list`.' }),
});

/** `status` is the HTTP layer's to check; `scope` and `limit` are checked by the alerts client. */
export const alertsQuerySchema = z.object({
  status: z.enum(['open', 'all'], { error: 'expected "open" or "all"' }).default('open'),
  scope: z.unknown().optional().meta({ type: 'string', description: 'Only incidents of this scope.' }),
  limit: z.unknown().optional().meta({ type: 'integer', minimum: 1, maximum: 1000, default: 100 }),
});

export const incidentSchema = z
  .object({
    id: z.string(),
    rule: oneOf(['threshold', 'forecast', 'spike', 'unpriced']),
    scope: z.string(),
    budgetPeriod: z.string().nullable(),
    periodKey: z.string().nullable(),
    level: oneOf(['info', 'warning', 'critical', 'emergency']),
    status: oneOf(['open', 'acknowledged', 'resolved']),
    title: z.string(),
    summary: z.string(),
    fields: z.array(z.object({ label: z.string(), value: z.string() })),
    openedAt: dateTime,
    updatedAt: dateTime,
    acknowledged: z.object({ by: z.string(), at: z.string(), note: z.string().nullable() }).nullable(),
    resolved: z.object({ at: z.string(), reason: z.string() }).nullable(),
    escalations: z.int(),
    notifications: z.int(),
    events: z.array(z.record(z.string(), z.unknown())).optional().meta({ description: 'GET /v1/alerts/{id} only.' }),
  })
  .meta({ id: 'Incident' });

export const acknowledgementSchema = z.strictObject({ by: z.string().max(200), note: z.string().max(2000).optional() });

// Reports --------------------------------------------------------------------------------------

export const reportParamsSchema = z.object({
  kind: z.enum(REPORT_KINDS),
  period: z
    .string()
    .regex(/^\d{4}-\d{2}(-\d{2})?$/)
    .meta({ description: '`YYYY-MM-DD` for a daily report, `YYYY-MM` for a monthly one.', examples: ['2026-03-08', '2026-03'] }),
});

export const reportQuerySchema = z.object({
  tz: z.string().optional().meta({ description: 'IANA time zone of the period; default the configured report time zone.', examples: ['America/New_York'] }),
});

const breakdownRow = z.object({ key: z.string(), costUsd: money(), calls: z.int(), totalTokens: z.int(), sharePct: z.number(), avgCostPerCallUsd: money() });
const costAndCalls = { costUsd: money(), calls: z.int() };

export const reportSchema = z
  .object({
    schemaVersion: z.literal(1),
    kind: z.enum(REPORT_KINDS),
    period: z.string(),
    timezone: z.string(),
    periodStart: dateTime,
    periodEnd: dateTime,
    hours: z.number().meta({ description: '23, 24 or 25 for a day.' }),
    generatedAt: dateTime,
    empty: z.boolean().meta({ description: 'No usage in the period.' }),
    totals: z.object({ ...costAndCalls, unpricedCalls: z.int(), tokens: tokenUsageSchema, totalTokens: z.int(), avgCostPerCallUsd: money() }),
    previous: z.object({ period: z.string(), ...costAndCalls, avgCostPerCallUsd: money() }),
    change: z.object({ costUsd: money(), costPct: z.number().nullable(), calls: z.int(), callsPct: z.number().nullable() }),
    byProvider: z.array(breakdownRow),
    byModel: z.array(breakdownRow.extend({ provider: z.string(), model: z.string(), tier: tier.nullable() })),
    byTaskType: z.array(breakdownRow),
    topUsers: z.array(breakdownRow),
    series: z.object({ unit: z.enum(['hour', 'day']), buckets: z.array(z.object({ label: z.string(), start: dateTime, ...costAndCalls })) }),
    byHourOfDay: z
      .array(z.object({ hour: z.int(), label: z.string(), ...costAndCalls }))
      .nullable()
      .meta({ description: 'Monthly reports: cost by local hour of the day (24 entries); null for daily reports.' }),
    budgets: z.array(z.object({ scope: z.string(), period: z.string(), amountUsd: money(), spentUsd: money(), usagePct: z.number() })),
    incidents: z.array(z.unknown().meta({ type: 'object' })),
    recommendations: z.array(
      z.object({
        kind: z.string(),
        rule: z.string().meta({ description: 'The rule that produced it: provider_share, task_type_share, high_average, cheaper_tier, or the original fixed amounts original_provider_cost, original_average_cost, original_task_type_average.' }),
        subject: z.string(),
        message: z.string(),
        estimatedSavingUsd: money().optional(),
        alternative: z.string().optional(),
      }),
    ),
  })
  .meta({ id: 'Report', description: 'A cost report. Money is exact decimal strings in USD; percentages are display numbers.' });

// Pre-flight -----------------------------------------------------------------------------------

const tokens = z.int().min(0);

export const authorizeRequestSchema = z
  .strictObject({
    userId: scopeId,
    teamId: scopeId.optional(),
    projectId: scopeId.optional(),
    provider: z.string().max(200).meta({ examples: ['openai'] }),
    model: z.string().max(200).meta({ examples: ['gpt-4o'] }),
    taskType: z.string().max(200).optional(),
    complexity: z.enum(COMPLEXITIES as [string, ...string[]]).optional(),
    inputTokens: tokens.optional(),
    maxOutputTokens: tokens.optional(),
    costUsd: money('The worst case itself, instead of token counts.').optional(),
    ttlSeconds: z.int().min(1).optional(),
    conversationId: z.string().max(200).optional().meta({ description: 'Keeps model advice stable within a conversation (hysteresis).' }),
    perCallBudgetUsd: money().optional(),
    allowDowngrade: z.boolean().optional().meta({ description: 'Default true. False: reserve the model asked for or deny; never admit a cheaper model instead (cheaper_fits).' }),
  })
  .meta({ id: 'AuthorizeRequest', description: 'Give the estimate as inputTokens and maxOutputTokens, or as costUsd (the worst case itself).' });

/** GET /v1/advice takes the pre-flight request's fields as query parameters (no ttlSeconds, no costUsd). */
export const adviceQuerySchema = authorizeRequestSchema.omit({ ttlSeconds: true, costUsd: true, allowDowngrade: true });

const scopeRemaining = z
  .object({ scope: z.string(), period: z.string(), enforcement: z.enum(['hard', 'soft']), budgetUsd: money(), remainingUsd: money(), usedRatio: z.number() })
  .meta({ id: 'ScopeRemaining' });

const advice = z
  .object({
    tier,
    provider: z.string(),
    model: z.string(),
    maxOutputTokens: z.int(),
    expectedCostUsd: money().nullable(),
    requestedTier: tier.nullable(),
    requestedCostUsd: money().nullable(),
    perCallBudgetUsd: money().nullable(),
    downgrade: z.boolean(),
    reasons: z.array(z.string()),
  })
  .meta({ id: 'Advice' });

export const authorizeResultSchema = z
  .object({
    decision: z.enum(['allow', 'downgrade', 'deny']),
    reason: z.enum(['budget_exhausted', 'price_unknown', 'unavailable', 'near_budget', 'over_budget_soft', 'cheaper_fits', 'advice']).nullable(),
    holdId: z.string().nullable(),
    reservedUsd: money(),
    expiresAt: dateTime.nullable(),
    worstCaseUsd: money().nullable(),
    advice: advice.nullable(),
    scopes: z.array(scopeRemaining),
    enforced: z.boolean().meta({ description: 'False when a fail-open budget admitted the call unreserved (Redis or Temporal could not answer).' }),
  })
  .meta({ id: 'AuthorizeResult' });

export const adviceResultSchema = z.object({ advice, scopes: z.array(scopeRemaining) });

const holdIdDescription = { description: 'A hold id as POST /v1/authorize returns it' };

/** DELETE and renew hand any id to the lease store, which answers `unknown` for one it never made. */
export const holdParamsSchema = z.object({ id: z.string().meta(holdIdDescription) });

/** GET refuses what cannot be a hold id. */
export const holdIdParamsSchema = z.object({
  id: z.string().refine(isHoldId, 'must be a hold id as POST /v1/authorize returns it').meta(holdIdDescription),
});

export const holdSchema = z.object({ holdId: z.string(), state: z.string(), reservedUsd: money(), expiresAt: dateTime });

/** `{}`, `{ "ttlSeconds": 60 }` or no body. */
export const renewBodySchema = z
  .strictObject(
    { ttlSeconds: z.int({ error: 'must be a whole number of seconds, at least 1' }).min(1, 'must be a whole number of seconds, at least 1').optional() },
    { error: 'expected {} or { "ttlSeconds": 60 }' },
  )
  .nullish();

// Rolling summaries ------------------------------------------------------------------------------

export const summaryQuerySchema = z.object({
  hours: z
    .string()
    .optional()
    .meta({ description: `The window: the last N hours, a whole number from 1 to ${SUMMARY_MAX_HOURS}; default ${SUMMARY_DEFAULT_HOURS}.`, examples: ['24'] }),
});

const summaryGroup = {
  costUsd: money(),
  calls: z.int(),
  unpricedCalls: z.int(),
  inputTokens: z.int(),
  outputTokens: z.int(),
  avgCostPerCallUsd: money('Exact quotient cost / calls, cut half-even at 24 places.'),
};

export const summarySchema = z
  .object({
    scope: z.string(),
    hours: z.int(),
    startTime: dateTime,
    endTime: dateTime,
    totals: z.object(summaryGroup),
    byProviderModel: z.array(z.object({ provider: z.string(), model: z.string(), ...summaryGroup })).meta({ description: 'Most expensive first (the original user summary).' }),
    byProvider: z.array(z.object({ provider: z.string(), ...summaryGroup })),
    byTaskType: z.array(z.object({ taskType: z.string(), ...summaryGroup })),
    byHour: z.array(z.object({ hour: dateTime, ...summaryGroup })).meta({ description: 'UTC hours with usage, newest first.' }),
    recent: z
      .object({
        source: z.literal('redis'),
        lastHourUsd: money(),
        perMinute: z.array(z.object({ minute: dateTime, costUsd: money() })),
        calls: z.array(z.record(z.string(), z.unknown())).optional().meta({ description: "A user's latest calls, newest first." }),
      })
      .nullable()
      .meta({ description: 'The last 60 minutes from the Redis real-time view; null for team and project scopes or when Redis did not answer within a second.' }),
  })
  .meta({ id: 'CostSummary' });
