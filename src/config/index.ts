/**
 * Configuration: environment variables plus an optional YAML or JSON file (COSTGUARD_CONFIG),
 * validated once at start-up by one zod schema and passed down as one object. Nothing else in the
 * code reads process.env. A bad value stops start-up with the key, the value and what was expected.
 */
import { type AdviceSettings, adviceSettingsProblem, resolveAdviceSettings } from '../domain/advice.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_EXCHANGE_RATES, type ExchangeRates, SUPPORTED_CURRENCIES, isDecimalString } from '../domain/money.js';
import { budgetAmountProblem } from '../domain/budget.js';
import { type OtelMapping, otelConfigSchema } from '../domain/otel.js';
import { fixedLengthMs, timeZoneProblem } from '../domain/periods.js';
import { RETENTION_MIN_DAYS } from '../domain/retention.js';
import { type AlertsConfig, alertsSchema, resolveAlerts } from './alerts.js';
import { type ChannelsConfig, channelsSchema, expandChannelSecrets } from '../channels/config.js';
import { DEFAULTS } from './defaults.js';
import { type ApiKey, parseApiKeyList, splitApiKeys } from '../api/keys.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const decimalAmount = (what: string) =>
  z.union([z.string(), z.number()]).transform((v, ctx): string => {
    const s = typeof v === 'number' ? String(v) : v.trim();
    if (!isDecimalString(s) || s.startsWith('-')) {
      ctx.addIssue({ code: 'custom', message: `expected ${what} as a non-negative decimal like "12.50"` });
      return z.NEVER;
    }
    return s;
  });

const positiveAmount = (what: string) =>
  decimalAmount(what).refine((s) => /[1-9]/.test(s), { message: `expected ${what} greater than zero` });

const currency = z.enum(SUPPORTED_CURRENCIES, { error: `expected one of ${SUPPORTED_CURRENCIES.join(', ')}` });

const timeZone = z.string().superRefine((tz, ctx) => {
  const problem = timeZoneProblem(tz);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** `day`, `month`, or a fixed length: a number and s, m, h or d ("30s", "10m", "1h", "7d"). */
export const PERIOD_RE = /^(day|month|\d+[smhd])$/;
const period = z.string().regex(PERIOD_RE, 'expected "day", "month" or a fixed length like "30s", "10m", "1h", "7d"');
const ratio = z.number({ error: 'expected a ratio such as 0.8' }).gt(0, 'expected a ratio above 0').max(10, 'expected a ratio of at most 10');

export const budgetSchema = z
  .object({
    scope: z.string().regex(/^(system|user|team|project)(:[^\s]+)?$/, 'expected "system", "user", "team", "project" or one of them with ":<id>"'),
    period,
    amount: positiveAmount('a budget amount').superRefine((a, ctx) => {
      const problem = budgetAmountProblem(a);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    currency: currency.default('USD'),
    timezone: timeZone.optional(),
    thresholds: z
      .object({ warning: ratio, critical: ratio, info: ratio.optional(), emergency: ratio.optional() })
      .strict()
      .refine((t) => t.warning < t.critical, { message: 'expected warning below critical' })
      .refine((t) => t.info === undefined || t.info < t.warning, { message: 'expected info below warning' })
      .refine((t) => t.emergency === undefined || t.emergency > t.critical, { message: 'expected emergency above critical' }),
    enforcement: z.enum(['hard', 'soft', 'none'], { error: 'expected "hard", "soft" or "none"' }).optional(),
    failMode: z.enum(['open', 'closed'], { error: 'expected "open" or "closed"' }).optional(),
  })
  .strict();
export type BudgetRule = z.infer<typeof budgetSchema>;

const per1k = (what: string) => decimalAmount(`${what} (USD per 1K tokens)`).optional();
export const priceOverrideSchema = z
  .object({
    provider: z.string().trim().min(1, 'expected a provider id such as "openai"'),
    model: z.string().trim().min(1, 'expected a model id such as "gpt-4o"'),
    effectiveFrom: z
      .string()
      .refine((s) => /^\d{4}-\d{2}-\d{2}(T.*)?$/.test(s) && !Number.isNaN(Date.parse(s)), {
        message: 'expected an ISO date such as "2025-01-01"',
      })
      .optional(),
    inputPer1k: decimalAmount('inputPer1k (USD per 1K tokens)'),
    outputPer1k: decimalAmount('outputPer1k (USD per 1K tokens)'),
    cacheReadPer1k: per1k('cacheReadPer1k'),
    cacheWritePer1k: per1k('cacheWritePer1k'),
    cacheWrite1hPer1k: per1k('cacheWrite1hPer1k'),
    reasoningPer1k: per1k('reasoningPer1k'),
  })
  .strict();

const exchangeRates = z
  .record(z.string(), positiveAmount('a rate (units of the currency per 1 USD)'))
  .superRefine((rates, ctx) => {
    for (const code of Object.keys(rates)) {
      if (!(SUPPORTED_CURRENCIES as readonly string[]).includes(code)) {
        ctx.addIssue({ code: 'custom', path: [code], message: `unsupported currency; expected one of ${SUPPORTED_CURRENCIES.join(', ')}` });
      }
    }
    if (rates.USD !== undefined && rates.USD !== '1') ctx.addIssue({ code: 'custom', path: ['USD'], message: 'expected 1 (rates are per 1 USD)' });
  })
  .transform((rates): ExchangeRates => ({ ...DEFAULT_EXCHANGE_RATES, ...rates, USD: '1' }));

/**
 * The HTTP API's abuse limits. Rate limits count requests per API key (by a hash of the key) in a
 * fixed window, with a budget by the key's scope; 0 turns the limit off for that scope. `admin` is
 * as generous as `ingest` because plain keys (configured before scopes existed) mean `admin` and
 * send usage.
 */
export const API_DEFAULTS = {
  /** The whole request (headers and body) must arrive within this; otherwise 408 and the connection closes. */
  requestTimeoutMs: 30_000,
  /** The request line and headers must arrive within this. */
  headersTimeoutMs: 10_000,
  rateLimit: { windowMs: 10_000, ingest: 10_000, read: 1_000, admin: 10_000 },
} as const;

const wholeMs = (min: number, max: number) =>
  z.number({ error: 'expected a whole number of milliseconds' }).int('expected a whole number of milliseconds').min(min, `expected at least ${min} ms`).max(max, `expected at most ${max} ms`);
const requestsPerWindow = z
  .number({ error: 'expected a whole number of requests (0 = no limit)' })
  .int('expected a whole number of requests (0 = no limit)')
  .min(0, 'expected 0 (no limit) or more')
  .max(10_000_000);

const apiFileSchema = z
  .object({
    /** `<scope>:<key>` or a plain (admin) key each; `${VAR}` is expanded from the environment. Added to API_KEYS. */
    keys: z
      .array(z.string({ error: 'expected a key as a string' }))
      .superRefine((keys, ctx) => {
        for (const problem of parseApiKeyList(keys).problems) ctx.addIssue({ code: 'custom', message: problem });
      })
      .default([]),
    requestTimeoutMs: wholeMs(1000, 600_000).default(API_DEFAULTS.requestTimeoutMs),
    headersTimeoutMs: wholeMs(1000, 600_000).default(API_DEFAULTS.headersTimeoutMs),
    rateLimit: z
      .object({
        windowMs: wholeMs(1000, 3_600_000).default(API_DEFAULTS.rateLimit.windowMs),
        ingest: requestsPerWindow.default(API_DEFAULTS.rateLimit.ingest),
        read: requestsPerWindow.default(API_DEFAULTS.rateLimit.read),
        admin: requestsPerWindow.default(API_DEFAULTS.rateLimit.admin),
      })
      .strict()
      .default(() => ({ ...API_DEFAULTS.rateLimit })),
  })
  .strict()
  .superRefine((api, ctx) => {
    if (api.headersTimeoutMs > api.requestTimeoutMs) {
      ctx.addIssue({ code: 'custom', path: ['headersTimeoutMs'], message: `expected at most requestTimeoutMs (${api.requestTimeoutMs})` });
    }
  })
  .default(() => ({ keys: [], requestTimeoutMs: API_DEFAULTS.requestTimeoutMs, headersTimeoutMs: API_DEFAULTS.headersTimeoutMs, rateLimit: { ...API_DEFAULTS.rateLimit } }));

/** The optional file. `channels` is validated by src/channels/config.ts after `${VAR}` expansion. */
export const fileSchema = z
  .object({
    timezone: timeZone.default(DEFAULTS.timezone),
    /** Removed (it changed nothing): amounts are shown in USD; refused with a message saying so, not silently ignored. */
    currency: z
      .unknown()
      .optional()
      .superRefine((v, ctx) => {
        if (v !== undefined) {
          ctx.addIssue({ code: 'custom', message: 'no longer a setting: every amount is shown in USD (budgets may be set in another currency, converted with exchangeRates; `costguard price --currency` converts a price); remove the key' });
        }
      }),
    exchangeRates: exchangeRates.default(() => ({ ...DEFAULT_EXCHANGE_RATES })),
    budgets: z.array(budgetSchema).default(() => DEFAULTS.budgets.map((b) => ({ ...b, thresholds: { ...b.thresholds } }))),
    pricing: z
      .object({
        /** `catalog`: genai-prices (current list prices); `original`: the original specification's table first (src/pricing/original-table.ts). */
        table: z.enum(['catalog', 'original'], { error: 'expected "catalog" or "original"' }).default('catalog'),
        overrides: z.array(priceOverrideSchema).default([]),
      })
      .strict()
      .default({ table: 'catalog', overrides: [] }),
    channels: channelsSchema,
    alerts: alertsSchema,
    reports: z
      .object({
        enabled: z.boolean({ error: 'expected true or false' }).default(DEFAULTS.reports.enabled),
        timezone: timeZone.optional(),
        channels: z.array(z.string().trim().min(1, 'expected a channel name')).optional(),
        topUsers: z.number({ error: 'expected a whole number' }).int('expected a whole number').min(1).max(100).default(DEFAULTS.reports.topUsers),
        catchupWindow: z
          .string()
          .regex(/^\d+[mhd]$/, 'expected a duration such as "30m", "12h" or "1d"')
          .refine((s) => fixedLengthMs(s) >= 60_000, { message: 'expected at least one minute' })
          .default(DEFAULTS.reports.catchupWindow),
      })
      .strict()
      .default(() => ({ ...DEFAULTS.reports })),
    budgetWorkflow: z
      .object({
        ledgerPollMs: z.number().int().min(200, 'expected at least 200 ms').max(600_000).default(DEFAULTS.budgetWorkflow.ledgerPollMs),
        maxFlushEvents: z.number().int().min(1).max(10_000).default(DEFAULTS.budgetWorkflow.maxFlushEvents),
      })
      .strict()
      .default(() => ({ ...DEFAULTS.budgetWorkflow })),
    /** Retention (`costguard prune`): off unless a number of days is given; see src/db/retention.ts. */
    retention: z
      .object({
        ledgerDays: z
          .number()
          .int()
          .min(RETENTION_MIN_DAYS.ledger, `expected at least ${RETENTION_MIN_DAYS.ledger} days (monthly reports compare with the month before)`)
          .nullable()
          .default(null),
        deliveryDays: z
          .number()
          .int()
          .min(RETENTION_MIN_DAYS.deliveries, `expected at least ${RETENTION_MIN_DAYS.deliveries} days (a delivery retried after its row is gone would send again)`)
          .nullable()
          .default(null),
      })
      .strict()
      .default(() => ({ ledgerDays: null, deliveryDays: null })),
    ingest: z
      .object({
        shards: z.number().int().min(1).max(256).default(DEFAULTS.ingest.shards),
        lingerMs: z.number().int().min(1).max(60_000).default(DEFAULTS.ingest.lingerMs),
        flushEvents: z.number().int().min(1).max(20_000).default(DEFAULTS.ingest.flushEvents),
        maxFlushEvents: z.number().int().min(1).max(20_000).default(DEFAULTS.ingest.maxFlushEvents),
        stepFraction: z.number().gt(0, 'expected a share above 0').max(1, 'expected a share of at most 1').default(DEFAULTS.ingest.stepFraction),
      })
      .strict()
      .refine((i) => i.flushEvents <= i.maxFlushEvents, { message: 'expected flushEvents <= maxFlushEvents' })
      .default(() => ({ ...DEFAULTS.ingest })),
    preflight: z
      .object({
        holdTtlMs: z.number().int().min(1000, 'expected at least 1000 ms').max(3_600_000).default(DEFAULTS.preflight.holdTtlMs),
        maxHoldTtlMs: z.number().int().min(1000, 'expected at least 1000 ms').max(86_400_000).default(DEFAULTS.preflight.maxHoldTtlMs),
        sliceFraction: z.number().gt(0, 'expected a share above 0').max(1, 'expected a share of at most 1').default(DEFAULTS.preflight.sliceFraction),
        refillTimeoutMs: z.number().int().min(100).max(60_000).default(DEFAULTS.preflight.refillTimeoutMs),
        unknownPriceUsd: positiveAmount('the reservation for an unpriced model (USD)').default(DEFAULTS.preflight.unknownPriceUsd),
        acceptedHoldTtlMs: z.number().int().min(1000, 'expected at least 1000 ms').max(86_400_000).default(DEFAULTS.preflight.acceptedHoldTtlMs),
      })
      .strict()
      .refine((f) => f.holdTtlMs <= f.maxHoldTtlMs, { message: 'expected holdTtlMs <= maxHoldTtlMs' })
      .default(() => ({ ...DEFAULTS.preflight })),
    cache: z
      .object({
        ttlSeconds: z
          .record(
            z.string().regex(/^[A-Za-z0-9._:-]{1,100}$/, 'expected a task type (or default) of letters, digits and ._:-'),
            z.number().int('expected whole seconds').min(1, 'expected at least 1 second').max(30 * 86_400, 'expected at most 30 days'),
          )
          .default(() => ({ ...DEFAULTS.cache.ttlSeconds })),
        shared: z.array(z.string().min(1).max(100)).max(1000).default(() => [...DEFAULTS.cache.shared]),
        minCostUsd: z.string().regex(/^\d{1,6}(\.\d{1,12})?$/, 'expected a USD amount as a decimal string, e.g. "0.001"').default(DEFAULTS.cache.minCostUsd),
        waitMs: z.number().int().min(0).max(600_000).default(DEFAULTS.cache.waitMs),
        maxEntryBytes: z.number().int().min(1024).max(64 * 1_048_576).default(DEFAULTS.cache.maxEntryBytes),
      })
      .strict()
      // The original's TTLs stay unless the file names the same task type.
      .transform((c) => ({ ...c, ttlSeconds: { ...DEFAULTS.cache.ttlSeconds, ...c.ttlSeconds } }))
      .default(() => ({ ...DEFAULTS.cache, ttlSeconds: { ...DEFAULTS.cache.ttlSeconds }, shared: [] })),
    /** Model advice (pre-flight downgrades, GET /v1/advice): tiers, the per-call rule, max_tokens caps; see src/domain/advice.ts. */
    advice: z
      .unknown()
      .optional()
      .superRefine((v, ctx) => {
        const problem = adviceSettingsProblem(v);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    metrics: z
      .object({
        userLabel: z.boolean({ error: 'expected true or false' }).default(DEFAULTS.metrics.userLabel),
        topUsers: z.number().int().min(0, 'expected 0 (off) or more').max(1000, 'expected at most 1000').default(DEFAULTS.metrics.topUsers),
        maxLabelValues: z.number().int().min(1).max(100_000).default(DEFAULTS.metrics.maxLabelValues),
        scrapeCacheMs: z.number().int().min(0).max(600_000).default(DEFAULTS.metrics.scrapeCacheMs),
      })
      .strict()
      .default(() => ({ ...DEFAULTS.metrics })),
    api: apiFileSchema,
    /** POST /v1/traces: which span and resource attributes give the user, team, project, task type and tags (src/domain/otel.ts). */
    otel: otelConfigSchema,
  })
  .strict()
  .superRefine((file, ctx) => {
    file.reports.channels?.forEach((name, i) => {
      if (!Object.hasOwn(file.channels, name)) {
        const known = Object.keys(file.channels);
        ctx.addIssue({
          code: 'custom',
          path: ['reports', 'channels', i],
          message: `expected the name of a channel under "channels" (${known.length ? `one of ${known.join(', ')}` : 'none is configured'})`,
        });
      }
    });
  });

/** The Temporal Web UI of a dev server at `address`: same host, the gRPC port + 1000 (7233 -> 8233). */
export function defaultTemporalUiUrl(address: string): string {
  const i = address.lastIndexOf(':');
  return `http://${address.slice(0, i)}:${Number(address.slice(i + 1)) + 1000}`;
}

const unsetIfEmpty = <T extends string>(v: T | undefined): Exclude<T, ''> | undefined => (v === '' || v === undefined ? undefined : (v as Exclude<T, ''>));

const port = z.coerce.number({ error: 'expected a port number' }).int('expected a whole port number').min(1).max(65535);

export const envSchema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL').default(DEFAULTS.databaseUrl),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'expected a redis:// URL').default(DEFAULTS.redisUrl),
  REDIS_KEY_PREFIX: z.string().min(1).default(DEFAULTS.redisKeyPrefix),
  TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port').default(DEFAULTS.temporalAddress),
  TEMPORAL_NAMESPACE: z.string().min(1).default(DEFAULTS.temporalNamespace),
  // Secure connections, under the names Temporal's own clients read (the CLI, the SDKs' env config).
  // Empty means unset, so a deployment can pass them through whether or not it uses TLS.
  /** true/false; default on when any TLS file, a server name or an API key is given. */
  TEMPORAL_TLS: z.enum(['true', 'false', '1', '0', ''], { error: 'expected true or false' }).optional().transform(unsetIfEmpty),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().optional().transform(unsetIfEmpty),
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().optional().transform(unsetIfEmpty),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().optional().transform(unsetIfEmpty),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional().transform(unsetIfEmpty),
  /** A Temporal Cloud style API key, sent as `Authorization: Bearer` on every call (implies TLS). */
  TEMPORAL_API_KEY: z.string().optional().transform(unsetIfEmpty),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(DEFAULTS.taskQueue),
  /** Alert workflows and their deliveries; default `<TEMPORAL_TASK_QUEUE>-alerts`. */
  TEMPORAL_ALERT_TASK_QUEUE: z.string().min(1).optional(),
  /** The Temporal Web UI, shown by `costguard start`; default the dev server's (gRPC port + 1000). npm start sets it. */
  TEMPORAL_UI_URL: z.string().regex(/^https?:\/\/[^\s]+$/, 'expected an http(s) URL like http://127.0.0.1:8233').optional(),
  API_HOST: z.string().min(1).default(DEFAULTS.apiHost),
  API_PORT: port.default(DEFAULTS.apiPort),
  METRICS_HOST: z.string().min(1).default(DEFAULTS.metricsHost),
  METRICS_PORT: z.coerce
    .number({ error: 'expected a port number, or 0 to disable' })
    .int('expected a whole port number')
    .min(0)
    .max(65535)
    .default(DEFAULTS.metricsPort),
  /** Comma-separated `<scope>:<key>` (scope ingest, read or admin) or plain keys (admin), each at least 16 characters. */
  API_KEYS: z
    .string()
    .default('')
    .transform((s, ctx): ApiKey[] => {
      const { keys, problems } = parseApiKeyList(splitApiKeys(s));
      for (const problem of problems) ctx.addIssue({ code: 'custom', message: `${problem} (expected comma-separated keys of at least 16 characters, each plain or as "<scope>:<key>")` });
      return keys;
    }),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `pretty` (human-readable), `json` (one object a line) or `auto`: pretty when stdout is a terminal. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty'], { error: 'expected auto, json or pretty' }).default('auto'),
  COSTGUARD_CONFIG: z.string().optional(),
  COSTGUARD_DATA_DIR: z.string().default('.data'),
});

export interface Config {
  databaseUrl: string;
  redis: { url: string; keyPrefix: string };
  /**
   * `taskQueue` runs the budget and report workflows; `alertTaskQueue` the alert workflows and their
   * deliveries, on a worker of their own, so ingestion load never holds a notification up.
   */
  temporal: { address: string; namespace: string; taskQueue: string; alertTaskQueue: string; uiUrl: string } & TemporalSecurity;
  api: ApiConfig;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  logFormat: z.infer<typeof envSchema>['LOG_FORMAT'];
  dataDir: string;
  configFile: string | null;
  timezone: string;
  exchangeRates: ExchangeRates;
  budgets: BudgetRule[];
  pricing: { table: 'catalog' | 'original'; overrides: z.infer<typeof priceOverrideSchema>[] };
  channels: ChannelsConfig;
  budgetWorkflow: { ledgerPollMs: number; maxFlushEvents: number };
  /** Days of ledger rows (and batch results) and of delivery log rows kept by `costguard prune`; null: kept for ever. */
  retention: { ledgerDays: number | null; deliveryDays: number | null };
  ingest: { shards: number; lingerMs: number; flushEvents: number; maxFlushEvents: number; stepFraction: number };
  /** Pre-flight checks (POST /v1/authorize): hold lifetimes, lease slices, the refill deadline. */
  preflight: PreflightConfig;
  /** Model advice: tiers, per-call thresholds, max_tokens caps per task type, hysteresis. */
  advice: AdviceSettings;
  /** The wrappers' response cache: TTL per task type, shared task types, what is worth storing. */
  cache: CacheConfig;
  alerts: AlertsConfig;
  reports: ReportsConfig;
  /** Prometheus: the worker's listener (port 0 = none) and what the registry exports. */
  metrics: { host: string; port: number; userLabel: boolean; topUsers: number; maxLabelValues: number; scrapeCacheMs: number };
  otel: OtelMapping;
}

export interface CacheConfig {
  /** Seconds an entry lives, per task type; `default` for task types not listed. */
  ttlSeconds: Record<string, number>;
  /** Task types whose entries every tenant shares (others are per tenant). */
  shared: string[];
  /** Answers that cost less (USD) are not stored. */
  minCostUsd: string;
  /** How long concurrent misses of one key wait for the single upstream call, ms. */
  waitMs: number;
  /** Answers larger than this (bytes) are not stored. */
  maxEntryBytes: number;
}

/** How Cost Guard's processes authenticate to Temporal (TEMPORAL_TLS* and TEMPORAL_API_KEY). */
export interface TemporalSecurity {
  /** null: a plain connection. Paths are read when connecting. */
  tls: { serverCaCertPath?: string; clientCertPath?: string; clientKeyPath?: string; serverName?: string } | null;
  apiKey: string | null;
}

/** The HTTP API: where it listens, its keys and its abuse limits (`api:` in the file, API_* variables). */
export interface PreflightConfig {
  /** A hold's lifetime unless the caller asks for another (renewable). */
  holdTtlMs: number;
  /** The longest lifetime a hold may be given; with acceptedHoldTtlMs, how long a reserve for holds lost with Redis is kept. */
  maxHoldTtlMs: number;
  /** A lease grant tops a budget's lease up to this share of the budget (at least what waiting checks need). */
  sliceFraction: number;
  /** How long a check waits for its budget workflow to grant a lease before its fail mode applies. */
  refillTimeoutMs: number;
  /** What a soft budget reserves for a call to a model without a price. */
  unknownPriceUsd: string;
  /** Once usage naming a hold is accepted for ingestion, the hold lives at least this much longer (so it settles rather than expires). */
  acceptedHoldTtlMs: number;
}

export interface ApiConfig {
  host: string;
  port: number;
  /** From API_KEYS, then the file's `api.keys`. */
  keys: ApiKey[];
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  /** Requests per key per `windowMs`, by the key's scope; 0 = no limit. */
  rateLimit: { windowMs: number; ingest: number; read: number; admin: number };
}

/** `reports:` in the config file. */
export interface ReportsConfig {
  /** Create (or update) the report schedules at start-up; when false, existing ones are deleted. */
  enabled: boolean;
  /** Time zone of the scheduled reports; default the top-level `timezone`. */
  timezone?: string | undefined;
  /** Channel names to deliver to; default every configured channel of type email or slack. */
  channels?: string[] | undefined;
  topUsers: number;
  /** A duration such as "1d" or "12h": how late a missed scheduled run may still start. */
  catchupWindow: string;
}

const SECRET_KEYS = /key|secret|token|pass|url|headers|authorization/i;

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function showValue(path: readonly PropertyKey[], value: unknown): string {
  if (value === undefined) return '(missing)';
  // Never echo a secret back, whatever its type: connection URLs carry passwords, keys are keys.
  if (path.some((p) => typeof p === 'string' && SECRET_KEYS.test(p))) return '(redacted)';
  // A channel's object holds its secrets: name the key, never print the whole object.
  if (path[0] === 'channels' && typeof value === 'object' && value !== null) return Array.isArray(value) ? '(a list)' : '(an object)';
  const s = JSON.stringify(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('');
}

function fail(source: string, error: z.ZodError, input: unknown): never {
  const lines = error.issues.map((issue) => {
    const path = issue.code === 'unrecognized_keys' ? issue.path : issue.path;
    const where = formatPath(path) || '(root)';
    if (issue.code === 'unrecognized_keys') return `  ${where}: unknown key(s) ${issue.keys.join(', ')}`;
    return `  ${where} = ${showValue(path, valueAt(input, path))}: ${issue.message}`;
  });
  throw new ConfigError(`Invalid configuration in ${source}:\n${lines.join('\n')}`);
}

/**
 * Parses a config file's text (YAML, of which JSON is a subset). `${VAR}` references under
 * `channels` are expanded from `env` first; one naming no variable stops start-up with its key path.
 */
export function parseConfigFile(text: string, source: string, env: Record<string, string | undefined> = {}): z.infer<typeof fileSchema> {
  let raw: unknown;
  try {
    raw = text.trim() === '' ? {} : parseYaml(text);
  } catch (err) {
    // The parser's own message quotes the offending line, which may hold a secret: give the position only.
    const pos = (err as { linePos?: { line: number; col: number }[] }).linePos?.[0];
    const code = (err as { code?: string }).code ?? 'syntax error';
    throw new ConfigError(
      `Invalid configuration in ${source}: not valid YAML/JSON${pos ? ` at line ${pos.line}, column ${pos.col}` : ''} (${code})`,
    );
  }
  raw ??= {};
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw) && 'channels' in raw) {
    const { value, missing } = expandChannelSecrets((raw as Record<string, unknown>).channels, env);
    if (missing.length > 0) {
      const lines = missing.map((m) => `  ${formatPath(m.path)}: environment variable ${m.variable} is not set (referenced as \${${m.variable}})`);
      throw new ConfigError(`Invalid configuration in ${source}:\n${lines.join('\n')}`);
    }
    raw = { ...(raw as Record<string, unknown>), channels: value };
  }
  raw = expandApiKeys(raw, env, source);
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) fail(source, parsed.error, raw);
  return parsed.data;
}

/** `${VAR}` in the file's `api.keys` (keys are secrets: best kept out of the file). */
function expandApiKeys(raw: unknown, env: Record<string, string | undefined>, source: string): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const api = (raw as Record<string, unknown>).api;
  if (api === null || typeof api !== 'object' || Array.isArray(api)) return raw;
  const keys = (api as Record<string, unknown>).keys;
  if (!Array.isArray(keys)) return raw;
  const { value, missing } = expandChannelSecrets(keys, env);
  if (missing.length > 0) {
    const lines = missing.map((m) => `  api.keys[${String(m.path[1])}]: environment variable ${m.variable} is not set (referenced as \${${m.variable}})`);
    throw new ConfigError(`Invalid configuration in ${source}:\n${lines.join('\n')}`);
  }
  return { ...(raw as Record<string, unknown>), api: { ...(api as Record<string, unknown>), keys: value } };
}

/** Loads and validates the whole configuration. `env` is injected so tests never touch process.env. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsedEnv = envSchema.safeParse(env);
  if (!parsedEnv.success) fail('the environment', parsedEnv.error, env);
  const e = parsedEnv.data;
  let file = fileSchema.parse({});
  if (e.COSTGUARD_CONFIG) {
    let text: string;
    try {
      text = readFileSync(e.COSTGUARD_CONFIG, 'utf8');
    } catch (err) {
      throw new ConfigError(`Cannot read COSTGUARD_CONFIG=${JSON.stringify(e.COSTGUARD_CONFIG)}: ${(err as Error).message}`);
    }
    file = parseConfigFile(text, e.COSTGUARD_CONFIG, env);
  }
  const apiKeys = mergeApiKeys(e.API_KEYS, file.api.keys, e.COSTGUARD_CONFIG ?? 'the config file');
  return {
    databaseUrl: e.DATABASE_URL,
    redis: { url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX },
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      alertTaskQueue: e.TEMPORAL_ALERT_TASK_QUEUE ?? `${e.TEMPORAL_TASK_QUEUE}-alerts`,
      uiUrl: e.TEMPORAL_UI_URL ?? defaultTemporalUiUrl(e.TEMPORAL_ADDRESS),
      ...temporalSecurity(e),
    },
    api: {
      host: e.API_HOST,
      port: e.API_PORT,
      keys: apiKeys,
      requestTimeoutMs: file.api.requestTimeoutMs,
      headersTimeoutMs: file.api.headersTimeoutMs,
      rateLimit: { ...file.api.rateLimit },
    },
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    dataDir: e.COSTGUARD_DATA_DIR,
    configFile: e.COSTGUARD_CONFIG ?? null,
    timezone: file.timezone,
    exchangeRates: file.exchangeRates,
    budgets: file.budgets,
    pricing: file.pricing,
    channels: file.channels,
    budgetWorkflow: file.budgetWorkflow,
    retention: file.retention,
    ingest: file.ingest,
    preflight: file.preflight,
    advice: resolveAdviceSettings(file.advice),
    cache: file.cache,
    alerts: checkRouting(resolveAlerts(file.alerts), file.channels, e.COSTGUARD_CONFIG ?? 'the defaults'),
    reports: file.reports,
    metrics: { host: e.METRICS_HOST, port: e.METRICS_PORT, ...file.metrics },
    otel: file.otel,
  };
}

/**
 * TLS is on when asked for, or when anything only TLS uses is given (a Temporal Cloud API key travels
 * over TLS only). A certificate needs its key and the other way round; TLS files with TEMPORAL_TLS=false
 * contradict each other. Both are refused rather than guessed.
 */
function temporalSecurity(e: z.infer<typeof envSchema>): TemporalSecurity {
  const files = {
    ...(e.TEMPORAL_TLS_SERVER_CA_CERT_PATH ? { serverCaCertPath: e.TEMPORAL_TLS_SERVER_CA_CERT_PATH } : {}),
    ...(e.TEMPORAL_TLS_CLIENT_CERT_PATH ? { clientCertPath: e.TEMPORAL_TLS_CLIENT_CERT_PATH } : {}),
    ...(e.TEMPORAL_TLS_CLIENT_KEY_PATH ? { clientKeyPath: e.TEMPORAL_TLS_CLIENT_KEY_PATH } : {}),
    ...(e.TEMPORAL_TLS_SERVER_NAME ? { serverName: e.TEMPORAL_TLS_SERVER_NAME } : {}),
  };
  const problems: string[] = [];
  if (!!files.clientCertPath !== !!files.clientKeyPath) {
    problems.push(`  ${files.clientCertPath ? 'TEMPORAL_TLS_CLIENT_KEY_PATH' : 'TEMPORAL_TLS_CLIENT_CERT_PATH'} = (missing): a client certificate and its key go together (mTLS needs both)`);
  }
  const explicit = e.TEMPORAL_TLS === undefined ? undefined : e.TEMPORAL_TLS === 'true' || e.TEMPORAL_TLS === '1';
  if (explicit === false && Object.keys(files).length > 0) {
    problems.push(`  TEMPORAL_TLS = "${e.TEMPORAL_TLS}": TLS is turned off, yet ${Object.keys(files).length === 1 ? 'a TLS setting is' : 'TLS settings are'} given (unset TEMPORAL_TLS or the TEMPORAL_TLS_* variables)`);
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration in the environment:\n${problems.join('\n')}`);
  const on = explicit ?? (Object.keys(files).length > 0 || e.TEMPORAL_API_KEY !== undefined);
  return { tls: on ? files : null, apiKey: e.TEMPORAL_API_KEY ?? null };
}

/** API_KEYS first, then the file's `api.keys` (already checked one by one); a key in both is refused. */
function mergeApiKeys(fromEnv: readonly ApiKey[], fromFile: readonly string[], source: string): ApiKey[] {
  const { keys: fileKeys } = parseApiKeyList(fromFile);
  const envKeys = new Set(fromEnv.map((k) => k.key));
  const twice = fileKeys.findIndex((k) => envKeys.has(k.key));
  if (twice !== -1) throw new ConfigError(`Invalid configuration in ${source}:\n  api.keys[${twice}] = (redacted): the same key is also in API_KEYS`);
  return [...fromEnv.map((k) => ({ ...k })), ...fileKeys];
}

/**
 * Routing given in the file must name configured channels (a typo would silently page nobody);
 * the default routing names the usual channels and skips those not configured.
 */
function checkRouting(alerts: AlertsConfig, channels: ChannelsConfig, source: string): AlertsConfig {
  const known = Object.keys(channels);
  const problems = alerts.explicitLevels.flatMap((level) =>
    alerts.routing[level].filter((n) => !known.includes(n)).map((n) => `  alerts.routing.${level}: unknown channel ${JSON.stringify(n)}; configured channels: ${known.join(', ') || '(none)'}`),
  );
  if (problems.length > 0) throw new ConfigError(`Invalid configuration in ${source}:\n${problems.join('\n')}`);
  return alerts;
}
