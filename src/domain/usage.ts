/**
 * Usage events and the one token-counting convention Cost Guard enforces.
 *
 * THE CONVENTION (inclusive totals, the same as OpenAI's usage and the genai-prices catalog):
 *   - `inputTokens` is ALL input tokens of the call, INCLUDING tokens read from the prompt cache
 *     (`cacheReadTokens`) and tokens written to it (`cacheWriteTokens`);
 *   - `cacheWrite1hTokens` is the part of `cacheWriteTokens` written with the 1-hour TTL (the rest
 *     used the 5-minute TTL);
 *   - `outputTokens` is ALL output tokens, INCLUDING `reasoningTokens`.
 * So cacheRead + cacheWrite <= input, cacheWrite1h <= cacheWrite and reasoning <= output, and an
 * event that breaks this is rejected rather than guessed at. Anthropic reports `input_tokens`
 * WITHOUT its cache tokens: convert with `fromAnthropicUsage`, which adds them back. Passing
 * Anthropic's `input_tokens` straight through would under-count; adding OpenAI's `cached_tokens`
 * on top of `prompt_tokens` would double-count. Both adapters are tested against the catalog's own
 * usage extractors.
 */
import { z } from 'zod';
import { type FieldIssue, ValidationError } from './errors.js';
import { METADATA_RULE, jsonProblem, textProblem } from './text.js';
import { MAX_FUTURE_MS, MAX_PAST_MS, MAX_TOKENS, MIN_OCCURRED_AT_MS, TOKEN_KINDS, type TokenUsage, ZERO_USAGE } from './tokens.js';

import { holdReservedAtMs, isHoldId } from './leases.js';

export { MAX_FUTURE_MS, MAX_PAST_MS, MAX_TOKENS, MIN_OCCURRED_AT_MS, TOKEN_KINDS, type TokenUsage, ZERO_USAGE } from './tokens.js';

/** A usage event after validation: every field present and checked. */
export interface UsageEvent {
  requestId: string;
  occurredAt: string; // ISO-8601 UTC, millisecond precision
  provider: string;
  model: string;
  userId: string;
  taskType: string;
  team: string | null;
  project: string | null;
  tags: Record<string, string>;
  usage: TokenUsage;
  metadata: Record<string, unknown>;
  /** The token counts are an estimate (e.g. a stream broken off before the provider reported usage). */
  estimated: boolean;
  /** The pre-flight hold this call was authorized under (POST /v1/authorize): the event settles it. */
  holdId?: string;
  /**
   * The call was answered by the response cache (src/client/cache): recorded as cost avoided (the
   * ledger's `cache_hit` kind, cost 0, `avoided_usd` = what the call would have cost), never as spend.
   * Present only when true.
   */
  cacheHit?: true;
}

/** What callers send: `requestId`, `occurredAt`, `taskType` and the optional token kinds may be omitted. */
export interface UsageEventInput {
  requestId?: string;
  occurredAt?: string | Date;
  provider: string;
  model: string;
  userId: string;
  taskType?: string;
  team?: string | null;
  project?: string | null;
  tags?: Record<string, string>;
  usage: Partial<TokenUsage>;
  metadata?: Record<string, unknown>;
  estimated?: boolean;
  /** The hold from POST /v1/authorize or CostTracker.authorize(): settled with this call's cost. Without `occurredAt`, the call is dated to its reservation. */
  holdId?: string;
  /** Answered by the response cache: the usage is what the call would have used; recorded as cost avoided, not spend. */
  cacheHit?: boolean;
}

/** A batch of usage events as sent to a budget workflow; `batchId` makes a re-send harmless. */
export interface UsageBatch {
  batchId: string;
  /** Raw events; each MUST carry its requestId (the sender assigns one before the first send). */
  events: (UsageEventInput & { requestId: string })[];
}

function describe(value: unknown): string {
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : typeof value;
}

const tokenCount = z.unknown().optional().transform((value, ctx): number => {
  if (value === undefined) return 0;
  if (value === null) {
    ctx.addIssue({ code: 'custom', message: 'must be a whole number of tokens, got null (leave the field out for 0)' });
    return z.NEVER;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    ctx.addIssue({ code: 'custom', message: `must be a number of tokens, got ${describe(value)}` });
    return z.NEVER;
  }
  if (!Number.isInteger(value) || value < 0 || value > MAX_TOKENS) {
    ctx.addIssue({ code: 'custom', message: `must be a whole number from 0 to ${MAX_TOKENS}, got ${describe(value)}` });
    return z.NEVER;
  }
  return value;
});

/**
 * A label (provider, model, task type, ids): a string under the text rule (src/domain/text.ts),
 * checked as given, then trimmed of surrounding spaces (the one documented rewrite), 1..max long.
 * The fast path and the schema both use this, so they agree by construction.
 */
function checkLabel(v: unknown, what: string, max: number): string | { problem: string } {
  if (typeof v !== 'string') return { problem: `${what} must be a string, got ${describe(v)}` };
  const raw = textProblem(v, { max: max + 1000, min: 0 });
  if (raw) return { problem: `${what} ${raw}` };
  const s = v.trim();
  if (s.length === 0) return { problem: `${what} must not be empty` };
  if (s.length > max) return { problem: `${what} must be at most ${max} characters` };
  return s;
}

const label = (what: string, max: number) =>
  z.unknown().transform((v, ctx): string => {
    const r = checkLabel(v, what, max);
    if (typeof r === 'string') return r;
    ctx.addIssue({ code: 'custom', message: r.problem });
    return z.NEVER;
  });

const requestIdSchema = z
  .string({ error: (i) => `must be a string, got ${describe(i.input)}` })
  .regex(/^[A-Za-z0-9._:@/+=-]{1,200}$/, 'must be 1-200 characters of letters, digits and ._:@/+=-');

const usageSchema = z
  .object(
    {
      inputTokens: tokenCount,
      cacheReadTokens: tokenCount,
      cacheWriteTokens: tokenCount,
      cacheWrite1hTokens: tokenCount,
      outputTokens: tokenCount,
      reasoningTokens: tokenCount,
    },
    { error: (i) => `must be an object of token counts, got ${describe(i.input)}` },
  )
  .strict()
  .superRefine((u, ctx) => {
    if (u.cacheReadTokens + u.cacheWriteTokens > u.inputTokens) {
      ctx.addIssue({
        code: 'custom',
        path: ['cacheReadTokens'],
        message:
          `cacheReadTokens (${u.cacheReadTokens}) + cacheWriteTokens (${u.cacheWriteTokens}) exceed inputTokens (${u.inputTokens}); ` +
          'inputTokens must include cached tokens (see the usage convention; Anthropic usage needs fromAnthropicUsage)',
      });
    }
    if (u.cacheWrite1hTokens > u.cacheWriteTokens) {
      ctx.addIssue({
        code: 'custom',
        path: ['cacheWrite1hTokens'],
        message: `cacheWrite1hTokens (${u.cacheWrite1hTokens}) exceeds cacheWriteTokens (${u.cacheWriteTokens}), which must include it`,
      });
    }
    if (u.reasoningTokens > u.outputTokens) {
      ctx.addIssue({
        code: 'custom',
        path: ['reasoningTokens'],
        message: `reasoningTokens (${u.reasoningTokens}) exceeds outputTokens (${u.outputTokens}), which must include it`,
      });
    }
  });

const MAX_TAGS = 50;

/** Tags: at most 50, keys up to 100 and values up to 500 characters, all under the text rule. */
function tagsProblem(t: unknown): { path: string; message: string } | null {
  const proto = typeof t === 'object' && t !== null && !Array.isArray(t) ? Object.getPrototypeOf(t) : undefined;
  if (proto !== Object.prototype && proto !== null) return { path: '', message: 'must be an object of string values' };
  const keys = Object.keys(t as object);
  if (keys.length > MAX_TAGS) return { path: '', message: `at most ${MAX_TAGS} tags` };
  for (const k of keys) {
    const kp = textProblem(k, { max: 100, min: 0 });
    if (kp) return { path: JSON.stringify(k.slice(0, 40)), message: `key ${kp}` };
    if (k === '__proto__') return { path: k, message: 'key "__proto__" is not allowed' };
    const v = (t as Record<string, unknown>)[k];
    if (typeof v !== 'string') return { path: k, message: `must be a string, got ${describe(v)}` };
    const vp = textProblem(v, { max: 500, min: 0 });
    if (vp) return { path: k, message: vp };
  }
  return null;
}

const tagsSchema = z.unknown().transform((t, ctx): Record<string, string> => {
  const p = tagsProblem(t);
  if (!p) return { ...(t as Record<string, string>) };
  ctx.addIssue({ code: 'custom', path: p.path === '' ? [] : [p.path], message: p.message });
  return z.NEVER;
});

const metadataSchema = z.unknown().transform((m, ctx): Record<string, unknown> => {
  const p = jsonProblem(m, METADATA_RULE);
  if (!p) return { ...(m as Record<string, unknown>) };
  ctx.addIssue({ code: 'custom', path: p.path === '' ? [] : [p.path], message: p.message });
  return z.NEVER;
});

/** Ids that become part of a scope (`user:<id>`, `team:<id>`): letters, digits and ._@+=:/- only. */
const scopeIdLabel = (what: string) =>
  label(what, 200).refine((v) => v.length === 0 || /^[A-Za-z0-9._@+=:/-]+$/.test(v), { message: `${what} may contain only letters, digits and ._@+=:/-` });

/**
 * Built once (a zod schema is costly to build; building one per event made validation 40x slower).
 * `occurredAt` comes out as epoch ms or undefined; the "not more than a day ahead" check needs the
 * caller's clock and runs after parsing (parseUsageEvent).
 */
const eventSchema = z
  .object(
    {
      requestId: requestIdSchema.optional(),
      occurredAt: z
        .union([z.string(), z.date()], { error: (i) => `must be an ISO-8601 time, got ${describe(i.input)}` })
        .optional()
        .transform((v, ctx): number | undefined => {
          if (v === undefined) return undefined;
          const ms = v instanceof Date ? v.getTime() : parseIsoTime(v);
          if (Number.isNaN(ms)) {
            ctx.addIssue({ code: 'custom', message: `must be an ISO-8601 time with a time zone, got ${describe(v)}` });
            return z.NEVER;
          }
          return ms;
        }),
      provider: label('provider', 100).transform((s) => s.toLowerCase()),
      model: label('model', 200),
      userId: scopeIdLabel('userId'),
      taskType: label('taskType', 100).optional().default('default'),
      team: scopeIdLabel('team').nullish().transform((v) => v ?? null),
      project: scopeIdLabel('project').nullish().transform((v) => v ?? null),
      tags: tagsSchema.optional().default({}),
      usage: usageSchema,
      metadata: metadataSchema.optional().default({}),
      estimated: z.boolean({ error: (i) => `must be true or false, got ${describe(i.input)}` }).optional().default(false),
      holdId: z
        .string({ error: (i) => `must be a hold id, got ${describe(i.input)}` })
        .refine(isHoldId, { message: 'must be a hold id as POST /v1/authorize returns it (h<epoch>.<time>.<random>)' })
        .optional(),
      cacheHit: z.boolean({ error: (i) => `must be true or false, got ${describe(i.input)}` }).optional(),
    },
    { error: (i) => `must be a usage event object, got ${describe(i.input)}` },
  )
  .strict();

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):?(\d{2}))$/i;

/**
 * Milliseconds since the epoch, or NaN: only full ISO-8601 date-times with an explicit offset, and
 * only real ones (Date.parse would quietly turn 2025-02-30 into March 2nd).
 */
export function parseIsoTime(value: string): number {
  const m = ISO_RE.exec(value);
  if (!m) return Number.NaN;
  const [year, month, day, hour, minute, second = 0, offH = 0, offM = 0] = m.slice(1).map((x) => (x === undefined ? undefined : Number(x)));
  const date = new Date(Date.UTC(year!, month! - 1, day!));
  const real =
    date.getUTCFullYear() === year && date.getUTCMonth() === month! - 1 && date.getUTCDate() === day &&
    hour! <= 23 && minute! <= 59 && second <= 59 && offH <= 23 && offM <= 59;
  return real ? Date.parse(value) : Number.NaN;
}

export function zodIssues(error: z.ZodError, prefix = ''): FieldIssue[] {
  return error.issues.map((issue) => ({
    path: [prefix, ...issue.path.map(String)].filter(Boolean).join('.'),
    message: issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message,
  }));
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

type SchemaOutput = z.output<typeof eventSchema>;

const EVENT_KEYS = new Set(['requestId', 'occurredAt', 'provider', 'model', 'userId', 'taskType', 'team', 'project', 'tags', 'usage', 'metadata', 'estimated', 'holdId', 'cacheHit']);
const REQUEST_ID_RE = /^[A-Za-z0-9._:@/+=-]{1,200}$/;
const SCOPE_ID_RE = /^[A-Za-z0-9._@+=:/-]+$/;

/** An object literal (or JSON), without a `__proto__` key of its own. */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype && !Object.hasOwn(v, '__proto__');
}

/** A trimmed label of 1..max characters, or undefined. */
function plainLabel(v: unknown, max: number): string | undefined {
  const r = checkLabel(v, '', max);
  return typeof r === 'string' ? r : undefined;
}

/** A team or project id: null when absent, undefined when not a valid id. */
function plainScopeId(v: unknown): string | null | undefined {
  if (v === undefined || v === null) return null;
  const id = plainLabel(v, 200);
  return id !== undefined && SCOPE_ID_RE.test(id) ? id : undefined;
}

function plainTokens(v: unknown): number | undefined {
  if (v === undefined) return 0;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_TOKENS ? v : undefined;
}

/**
 * The common case, checked by hand: an event `eventSchema` accepts, giving the same output.
 * Returns undefined for anything else, and the schema then decides (and names each bad field).
 * zod takes about 25 us per event (7 to 28 us measured, with the machine's load), a share of every
 * flush and of CostTracker.record(); this takes 1 to 2 us. A property test and a table of borderline
 * values (test/unit/usage.test.ts) check that both agree.
 */
function parsePlainEvent(input: unknown): SchemaOutput | undefined {
  if (!isPlainObject(input)) return undefined;
  for (const key in input) if (!EVENT_KEYS.has(key)) return undefined;
  const { requestId, occurredAt, team, project, tags, usage, metadata } = input;
  if (requestId !== undefined && (typeof requestId !== 'string' || !REQUEST_ID_RE.test(requestId))) return undefined;
  let occurredAtMs: number | undefined;
  if (typeof occurredAt === 'string') occurredAtMs = parseIsoTime(occurredAt);
  else if (occurredAt instanceof Date) occurredAtMs = occurredAt.getTime();
  else if (occurredAt !== undefined) return undefined;
  if (Number.isNaN(occurredAtMs)) return undefined;
  const provider = plainLabel(input.provider, 100);
  const model = plainLabel(input.model, 200);
  const userId = plainLabel(input.userId, 200);
  const taskType = input.taskType === undefined ? 'default' : plainLabel(input.taskType, 100);
  if (provider === undefined || model === undefined || userId === undefined || taskType === undefined || !SCOPE_ID_RE.test(userId)) return undefined;
  const teamId = plainScopeId(team);
  const projectId = plainScopeId(project);
  if (teamId === undefined || projectId === undefined) return undefined;
  let tagsOut: Record<string, string> = {};
  if (tags !== undefined) {
    if (tagsProblem(tags) !== null) return undefined;
    tagsOut = { ...(tags as Record<string, string>) };
  }
  let metadataOut: Record<string, unknown> = {};
  if (metadata !== undefined) {
    if (jsonProblem(metadata, METADATA_RULE) !== null) return undefined;
    metadataOut = { ...(metadata as Record<string, unknown>) };
  }
  const { estimated, holdId, cacheHit } = input;
  if (estimated !== undefined && typeof estimated !== 'boolean') return undefined;
  if (cacheHit !== undefined && typeof cacheHit !== 'boolean') return undefined;
  if (holdId !== undefined && (typeof holdId !== 'string' || !isHoldId(holdId))) return undefined;
  if (!isPlainObject(usage)) return undefined;
  for (const key in usage) if (!(TOKEN_KINDS as readonly string[]).includes(key)) return undefined;
  const u: TokenUsage = { ...ZERO_USAGE };
  for (const kind of TOKEN_KINDS) {
    const n = plainTokens(usage[kind]);
    if (n === undefined) return undefined;
    u[kind] = n;
  }
  if (u.cacheReadTokens + u.cacheWriteTokens > u.inputTokens || u.cacheWrite1hTokens > u.cacheWriteTokens || u.reasoningTokens > u.outputTokens) return undefined;
  // One object literal: spreading the optional requestId into it made this line cost 15 us.
  return {
    requestId,
    occurredAt: occurredAtMs,
    provider: provider.toLowerCase(),
    model,
    userId,
    taskType,
    team: teamId,
    project: projectId,
    tags: tagsOut,
    usage: u,
    metadata: metadataOut,
    estimated: estimated ?? false,
    holdId,
    cacheHit,
  };
}

/** The schema's verdict on one event: its output, or the issues it names. */
function parseBySchema(input: unknown, path?: string): ParseResult<SchemaOutput> {
  const parsed = eventSchema.safeParse(input);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, issues: zodIssues(parsed.error, path) };
}

/**
 * Validates one event. `generateId` supplies a request id when the caller gave none (the client
 * library does this before sending so a retry reuses it). `now` is injected: this module has no clock.
 * `schemaOnly` skips the hand-written fast path (the property test compares the two).
 */
export interface ParseUsageOptions {
  now: number;
  generateId?: () => string;
  path?: string;
  /** Skip the hand-written fast path (the property test compares the two). */
  schemaOnly?: boolean;
  /**
   * How far back `occurredAt` may be (default MAX_PAST_MS, 7 days). Older events are refused unless
   * `backfill` is set (an explicit flag of the API and the client): then anything from
   * MIN_OCCURRED_AT_MS (2000-01-01) on is accepted. Never more than MAX_FUTURE_MS ahead.
   */
  maxAgeMs?: number;
  backfill?: boolean;
}

/**
 * Validates one event. `generateId` supplies a request id when the caller gave none (the client
 * library does this before sending so a retry reuses it). `now` is injected: this module has no clock.
 */
export function parseUsageEvent(input: unknown, opts: ParseUsageOptions): ParseResult<UsageEvent> {
  let v = opts.schemaOnly ? undefined : parsePlainEvent(input);
  if (v === undefined) {
    const parsed = parseBySchema(input, opts.path);
    if (!parsed.ok) return parsed;
    v = parsed.value;
  }
  const occurredAtMs = v.occurredAt ?? (v.holdId !== undefined ? holdReservedAtMs(v.holdId) : undefined) ?? opts.now;
  const at = (message: string): ParseResult<UsageEvent> => ({ ok: false, issues: [{ path: [opts.path, 'occurredAt'].filter(Boolean).join('.'), message }] });
  if (occurredAtMs > opts.now + MAX_FUTURE_MS) return at(`is more than a day in the future (${new Date(occurredAtMs).toISOString()})`);
  if (occurredAtMs < MIN_OCCURRED_AT_MS) return at(`is before ${new Date(MIN_OCCURRED_AT_MS).toISOString()} (${new Date(occurredAtMs).toISOString()})`);
  const maxAgeMs = opts.maxAgeMs ?? MAX_PAST_MS;
  if (!opts.backfill && occurredAtMs < opts.now - maxAgeMs) {
    return at(
      `is more than ${formatAge(maxAgeMs)} in the past (${new Date(occurredAtMs).toISOString()}); ` +
        'to record older usage, send it as a backfill (POST /v1/usage?backfill=true, or CostTracker option backfill: true)',
    );
  }
  let requestId = v.requestId;
  if (requestId === undefined) {
    if (!opts.generateId) {
      return { ok: false, issues: [{ path: [opts.path, 'requestId'].filter(Boolean).join('.'), message: 'is required' }] };
    }
    requestId = opts.generateId();
  }
  return {
    ok: true,
    value: {
      requestId,
      occurredAt: new Date(occurredAtMs).toISOString(),
      provider: v.provider,
      model: v.model,
      userId: v.userId,
      taskType: v.taskType,
      team: v.team,
      project: v.project,
      tags: v.tags,
      usage: v.usage,
      metadata: v.metadata,
      estimated: v.estimated,
      ...(v.holdId !== undefined ? { holdId: v.holdId } : {}),
      ...(v.cacheHit === true ? { cacheHit: true as const } : {}),
    },
  };
}

function formatAge(ms: number): string {
  const days = ms / 86_400_000;
  return Number.isInteger(days) ? `${days} day${days === 1 ? '' : 's'}` : `${Math.round(ms / 3_600_000)} hours`;
}

/** Validates every event of a batch; all or nothing, with each bad field named as `[i].field`. */
export function parseUsageEvents(inputs: readonly unknown[], opts: Omit<ParseUsageOptions, 'path'>): ParseResult<UsageEvent[]> {
  const events: UsageEvent[] = [];
  const issues: FieldIssue[] = [];
  inputs.forEach((input, i) => {
    const r = parseUsageEvent(input, { ...opts, path: `[${i}]` });
    if (r.ok) events.push(r.value);
    else issues.push(...r.issues);
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: events };
}

export function assertUsageEvents(inputs: readonly unknown[], opts: Omit<ParseUsageOptions, 'path'>): UsageEvent[] {
  const r = parseUsageEvents(inputs, opts);
  if (!r.ok) throw new ValidationError(r.issues, 'invalid usage event');
  return r.value;
}

/** Validates token counts alone (the `costguard price` command). */
export function parseTokenUsage(input: unknown, path = 'usage'): ParseResult<TokenUsage> {
  const parsed = usageSchema.safeParse(input);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, issues: zodIssues(parsed.error, path) };
}

const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const obj = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};

/**
 * OpenAI's usage (Chat Completions or Responses): `prompt_tokens`/`input_tokens` already include
 * `cached_tokens` and `cache_write_tokens`, and `completion_tokens`/`output_tokens` already include `reasoning_tokens`.
 */
export function fromOpenAIUsage(raw: unknown): Partial<TokenUsage> {
  const u = obj(raw);
  const inDetails = obj(u.prompt_tokens_details ?? u.input_tokens_details);
  const outDetails = obj(u.completion_tokens_details ?? u.output_tokens_details);
  return {
    inputTokens: num(u.prompt_tokens ?? u.input_tokens),
    cacheReadTokens: num(inDetails.cached_tokens),
    cacheWriteTokens: num(inDetails.cache_write_tokens),
    outputTokens: num(u.completion_tokens ?? u.output_tokens),
    reasoningTokens: num(outDetails.reasoning_tokens),
  };
}

/**
 * Anthropic's Messages usage: `input_tokens` EXCLUDES `cache_read_input_tokens` and
 * `cache_creation_input_tokens`, so they are added back to get the inclusive total.
 */
export function fromAnthropicUsage(raw: unknown): Partial<TokenUsage> {
  const u = obj(raw);
  const cacheRead = num(u.cache_read_input_tokens);
  const cacheWrite = num(u.cache_creation_input_tokens);
  const creation = obj(u.cache_creation);
  return {
    inputTokens: num(u.input_tokens) + cacheRead + cacheWrite,
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    cacheWrite1hTokens: num(creation.ephemeral_1h_input_tokens),
    outputTokens: num(u.output_tokens),
    reasoningTokens: num(obj(u.output_tokens_details).thinking_tokens),
  };
}
