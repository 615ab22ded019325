/**
 * Prometheus metrics (prom-client) on a registry of their own: each worker or API process builds one
 * with `createMetrics` and injects it (activities, API), so tests get isolated registries and nothing
 * touches prom-client's global one.
 *
 * Two kinds of metrics, kept apart on purpose:
 *  - EVENT counters and histograms (`llm_cost_usd_total{provider, model, task_type}`,
 *    `llm_api_calls_total{provider, model, task_type, status}`, `llm_token_usage{provider, model, kind}`:
 *    the original specification's labels; ingestion lag, batch size, unpriced...) are fed by the
 *    ledger activity from what its commit
 *    NEWLY counted, so an event counts once per process even when the activity is retried or a batch
 *    is re-sent. They are per process: sum them across workers in PromQL.
 *  - STATE gauges (`llm_cost_per_hour_usd`, `budget_usage_ratio`, `costguard_top_user_cost_usd`)
 *    are read from the ledger's exact rollups on scrape (cached `metrics.scrapeCacheMs`), so every
 *    process reports the same value: take `max` across instances, never `sum`. When the rollups
 *    cannot be read the labelled ones are absent and `llm_cost_per_hour_usd` is NaN (unknown).
 *
 * Money in metrics is a float (prom-client's only number type). That is acceptable for graphs and
 * alert rules; the ledger, rollups and budgets stay exact decimals and are the record.
 */
import type { Pool } from 'pg';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/index.js';
import type { Budget } from '../domain/budget.js';
import { Dec } from '../domain/money.js';
import type { Logger } from '../lib/logger.js';
import { type BudgetGauge, budgetGauges, usageRatio } from './budget-gauges.js';
import { type LedgerSnapshot, readLedgerSnapshot } from '../db/ledger-snapshot.js';
import { rollingHourUsd } from './rolling-hour.js';

/** The value a bounded label takes once its distinct values are used up. */
export const OTHER_LABEL_VALUE = 'other';

/** prom-client default metrics whose names break Prometheus conventions (gauges ending in _total). */
const NON_CONFORMING_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** The original specification's token buckets (tokens per call, per direction). */
export const TOKEN_BUCKETS = [100, 500, 1000, 2000, 4000, 8000, 16000];
const LAG_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const BATCH_BUCKETS = [1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const FLUSH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** One event the ledger newly counted, as the metrics need it. */
export interface CountedEventSample {
  provider: string;
  model: string;
  userId: string;
  taskType: string;
  /**
   * The call's outcome as the caller recorded it (the SDK wrappers' `metadata.status`: `ok`,
   * `incomplete`, `aborted`, `error`); absent counts as `success`, the original's value, as does `ok`.
   */
  status?: unknown;
  /** Exact decimal string from the ledger. */
  costUsd: string;
  unpriced: boolean;
  inputTokens: number;
  outputTokens: number;
  occurredAt: string;
  /** Answered by the response cache: counted as cost avoided (never as cost, a call or processed tokens). */
  cacheHit?: boolean;
  /** A cache hit's would-be cost, exact decimal string (the ledger's avoided_usd). */
  avoidedUsd?: string;
}

/** What one ledger flush did, reported by the attempt that inserted events or stored the batch first. */
export interface FlushSample {
  /**
   * The batch as sent: events received (valid or not), refused, duplicates. Only from the batch's
   * first attempt; null from a retried flush that adds just the events it inserted itself.
   */
  batch: { received: number; rejected: number; duplicates: number } | null;
  /** The events this attempt inserted. */
  counted: readonly CountedEventSample[];
  /** When the commit finished (ms since the epoch): ingestion lag is measured to here. */
  persistedAtMs: number;
}

/** The `status` label of a call recorded without one, and of the wrappers' `ok`: the original's value. */
const SUCCESS_STATUS = 'success';

/** The `status` label for a recorded status: a short string, `ok` read as `success`; anything else is `other`. */
function callStatus(status: unknown): string {
  if (status === undefined || status === null || status === 'ok') return SUCCESS_STATUS;
  return typeof status === 'string' && /^[A-Za-z0-9_.-]{1,32}$/.test(status) ? status : OTHER_LABEL_VALUE;
}

/** `stored`: this attempt committed the batch; `replayed`: it found the stored result; `error`: it threw. */
export type FlushOutcome = 'stored' | 'replayed' | 'error';

/** The channel activity's outcomes (activities/channels.ts DeliveryOutcome). */
export type NotificationOutcome = 'sent' | 'already_sent' | 'retryable_error' | 'config_error';

export interface CostGuardMetrics {
  readonly registry: Registry;
  /** The Content-Type of `render()`'s text. */
  readonly contentType: string;
  /** The exposition text of every metric (runs the scrape-time ledger queries, cached). */
  render(): Promise<string>;
  /** Names of the metric families this registry exports (histograms without their suffixes). */
  metricNames(): string[];
  /**
   * Counts what a flush newly stored. Call it ONLY when this attempt stored the batch
   * (`persistBatchOnce(...).firstTime`): a retried or re-sent batch must add nothing.
   */
  recordFlush(sample: FlushSample): void;
  /** Counts one response cache lookup in this process (hit, miss, wait_hit, wait_timeout, error). */
  recordCacheLookup(result: string): void;
  /** Observes one attempt of the ledger activity, whatever its outcome. */
  observeFlushDuration(seconds: number, outcome: FlushOutcome): void;
  /**
   * Counts one notification delivery attempt: `costguard_alert_notifications_total{channel,
   * channel_type, outcome}`. Meant as the channel activities' `onDelivery` callback:
   * `onDelivery: (channel, channelType, outcome) => metrics.recordNotification(channel, channelType, outcome)`.
   * Channel names come from the configuration, so the label set stays bounded.
   */
  recordNotification(channel: string, channelType: string, outcome: NotificationOutcome): void;
  /** Counts one event newly set aside as a dead letter: `costguard_dead_letter_events_total{stage}`. */
  recordDeadLetter(stage: 'validation' | 'pricing' | 'persist'): void;
  /** Counts one failed write of the Redis real-time view (retried with the next flush). */
  recordRealtimeError(): void;
  /** Counts an ingest shard's signals to budget workflows, by reason (step, threshold, forecast). */
  recordBudgetSignal(reason: string): void;
  /** Counts one pre-flight decision (allow, downgrade, deny) with its reason and whether it reserved. */
  recordPreflight(decision: string, reason: string): void;
  /** Counts a hold's settlement or release by outcome (settled, released, late, duplicate, unknown). */
  recordHoldFinish(status: string): void;
}

export interface MetricsOptions {
  config: Pick<Config, 'metrics' | 'timezone' | 'budgets' | 'exchangeRates'>;
  /** The ledger database: without it the state gauges are registered but stay empty. */
  pool?: Pool;
  logger?: Logger;
  clock?: () => number;
  /** Node process metrics (CPU, memory, event loop, GC): on by default. */
  processMetrics?: boolean;
}

/**
 * Keeps a label's distinct values bounded: the first `max` values seen pass, later new ones become
 * "other". Provider and model come from callers and could otherwise grow without limit.
 */
export class BoundedLabel {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}
  value(v: string): string {
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.max) return OTHER_LABEL_VALUE;
    this.seen.add(v);
    return v;
  }
}

export function createMetrics(opts: MetricsOptions): CostGuardMetrics {
  const { config } = opts;
  const clock = opts.clock ?? Date.now;
  const registry = new Registry();
  if (opts.processMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    // Gauges named like counters, which `promtool check metrics` rejects; each is the sum of the
    // by-type gauge that stays (nodejs_active_handles{type}, ...): sum() that instead.
    for (const name of NON_CONFORMING_DEFAULT_METRICS) registry.removeSingleMetric(name);
  }
  const userLabel = config.metrics.userLabel;
  const eventLabels = userLabel ? ['provider', 'model', 'user_id'] : ['provider', 'model'];
  // The original specification's labels: cost by task type, calls by task type and status.
  const costLabels = [...eventLabels, 'task_type'];
  const callLabels = [...costLabels, 'status'];
  // Every caller-supplied label value is bounded the same way (metrics.maxLabelValues, then "other").
  const providers = new BoundedLabel(config.metrics.maxLabelValues);
  const models = new BoundedLabel(config.metrics.maxLabelValues);
  const users = new BoundedLabel(config.metrics.maxLabelValues);
  const taskTypes = new BoundedLabel(config.metrics.maxLabelValues);
  const statuses = new BoundedLabel(config.metrics.maxLabelValues);
  const registers = [registry];

  const cost = new Counter({
    name: 'llm_cost_usd_total',
    help: 'Cost of the LLM calls newly recorded in the ledger, USD (original name: llm_total_cost_usd).',
    labelNames: costLabels,
    registers,
  });
  const calls = new Counter({
    name: 'llm_api_calls_total',
    help: 'LLM calls newly recorded in the ledger (each idempotency key once), priced or not; status as the caller recorded it (success when none).',
    labelNames: callLabels,
    registers,
  });
  const avoided = new Counter({
    name: 'costguard_cost_avoided_usd_total',
    help: 'Cost avoided by the response cache: what the cache hits newly recorded in the ledger would have cost, USD. Not spend.',
    labelNames: eventLabels,
    registers,
  });
  const cacheHits = new Counter({
    name: 'costguard_cache_hits_total',
    help: 'Requests answered by the response cache, newly recorded in the ledger (not in llm_api_calls_total).',
    labelNames: eventLabels,
    registers,
  });
  const cacheLookups = new Counter({
    name: 'costguard_response_cache_lookups_total',
    help: 'Response cache lookups in this process by result: hit, miss, wait_hit (a concurrent miss served by the one upstream call), wait_timeout, error.',
    labelNames: ['result'],
    registers,
  });
  const tokens = new Histogram({
    name: 'llm_token_usage',
    help: 'Tokens per LLM call, by kind (input includes cache tokens; output includes reasoning).',
    labelNames: ['provider', 'model', 'kind'],
    buckets: TOKEN_BUCKETS,
    registers,
  });
  const unpriced = new Counter({
    name: 'costguard_unpriced_events_total',
    help: 'Calls recorded without a price (unknown provider or model); each also counts in llm_api_calls_total.',
    labelNames: ['provider', 'model'],
    registers,
  });
  const duplicates = new Counter({
    name: 'costguard_duplicate_events_total',
    help: 'Events whose idempotency key the ledger had already counted (client retries, re-sent batches).',
    registers,
  });
  const rejected = new Counter({
    name: 'costguard_rejected_events_total',
    help: 'Events the ledger activity refused as invalid (their batch-mates were recorded).',
    registers,
  });
  const deadLetters = new Counter({
    name: 'costguard_dead_letter_events_total',
    help: 'Usage events set aside as dead letters (costguard deadletter list), by stage: validation, pricing, persist.',
    labelNames: ['stage'],
    registers,
  });
  const realtimeErrors = new Counter({
    name: 'costguard_realtime_errors_total',
    help: 'Failed writes of the Redis real-time view (kept and retried with the next flush; the ledger and totals are unaffected).',
    registers,
  });
  const preflight = new Counter({
    name: 'costguard_preflight_decisions_total',
    help: 'Pre-flight checks (POST /v1/authorize, CostTracker.authorize) by decision (allow, downgrade, deny) and reason (none, budget_exhausted, price_unknown, unavailable, near_budget, ...).',
    labelNames: ['decision', 'reason'],
    registers,
  });
  const holdFinishes = new Counter({
    name: 'costguard_hold_settlements_total',
    help: 'Pre-flight holds finished, by outcome: settled by their usage event, released, late (usage after an expiry or release), again (usage naming a hold another event settled), duplicate (the same event again), unknown.',
    labelNames: ['status'],
    registers,
  });
  const budgetSignals = new Counter({
    name: 'costguard_budget_signals_total',
    help: 'Signals from the ingest shards to budget workflows, by reason: a step of the budget, a threshold or a forecast boundary.',
    labelNames: ['reason'],
    registers,
  });
  const lag = new Histogram({
    name: 'costguard_ingestion_lag_seconds',
    help: 'Seconds from an event\'s occurredAt to its commit in the ledger.',
    buckets: LAG_BUCKETS,
    registers,
  });
  const batchSize = new Histogram({
    name: 'costguard_flush_batch_events',
    help: 'Events per ledger flush (one activity call), as received.',
    buckets: BATCH_BUCKETS,
    registers,
  });
  const flushDuration = new Histogram({
    name: 'costguard_flush_duration_seconds',
    help: 'Duration of each ledger activity attempt (price + persist + Redis), by outcome.',
    labelNames: ['outcome'],
    buckets: FLUSH_BUCKETS,
    registers,
  });
  const notifications = new Counter({
    name: 'costguard_alert_notifications_total',
    help: 'Alert notification delivery attempts by channel, channel type and outcome.',
    labelNames: ['channel', 'channel_type', 'outcome'],
    registers,
  });
  const collectErrors = new Counter({
    name: 'costguard_metrics_collect_errors_total',
    help: 'Scrapes whose ledger gauges could not be read (the gauges are then absent from that scrape).',
    registers,
  });

  // State gauges: one shared snapshot per scrape (and per scrapeCacheMs), never stale on error.
  let cached: { at: number; value: Promise<LedgerSnapshot | null> } | undefined;
  const aggregateScopes = config.budgets.filter((b) => b.scope.includes(':')).map((b) => b.scope);
  const snapshot = (): Promise<LedgerSnapshot | null> => {
    const pool = opts.pool;
    if (!pool) return Promise.resolve(null);
    const now = clock();
    if (cached && now - cached.at <= config.metrics.scrapeCacheMs) return cached.value;
    const value = readLedgerSnapshot(pool, {
      nowMs: now,
      timezone: config.timezone,
      scopes: aggregateScopes,
      topUsers: config.metrics.topUsers,
    }).catch((err: unknown) => {
      collectErrors.inc();
      opts.logger?.warn({ err }, 'metrics: could not read the ledger rollups; state gauges omitted from this scrape');
      cached = undefined;
      return null;
    });
    cached = { at: now, value };
    return value;
  };

  /** The budget rules shown: configured ones, with a scope's runtime override replacing its own. */
  const shownBudgets = (s: LedgerSnapshot): BudgetGauge[] => {
    const rules: (Pick<Budget, 'period' | 'amount'> & Partial<Budget> & { scope: string })[] = [];
    for (const b of config.budgets) if (!s.overrides.has(b.scope)) rules.push(b);
    for (const [scope, budgets] of s.overrides) for (const b of budgets) rules.push({ ...b, scope });
    return budgetGauges(rules, config.timezone, config.exchangeRates);
  };

  new Gauge({
    name: 'llm_cost_per_hour_usd',
    help: 'System-wide spend over the last 60 minutes, USD, from the hourly rollups (current hour + the previous hour\'s remaining share).',
    registers,
    async collect() {
      const s = await snapshot();
      // An unlabelled gauge is always exported: NaN says "unknown" where 0 would claim no spend.
      this.set(s ? rollingHourUsd(s) : Number.NaN);
    },
  });
  new Gauge({
    name: 'budget_usage_ratio',
    help: 'Spend of the current period over the budget (1 = fully spent). budget_type: daily or monthly, scope: system, team:infra...; budget_type user_daily_max (scope user) is the top user against the per-user budget.',
    labelNames: ['budget_type', 'scope'],
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      if (!s) return;
      for (const g of shownBudgets(s)) {
        // The per-user maximum needs the top-N query; without it (topUsers: 0) it is not shown.
        if (g.scope === 'user' && config.metrics.topUsers === 0) continue;
        const spent = g.scope === 'user' ? (s.topUsers[0]?.costUsd ?? '0') : (s.periodCostUsd.get(`${g.periodKind}|${g.scope}`) ?? '0');
        this.set({ budget_type: g.budgetType, scope: g.scope }, usageRatio(spent, g.amountUsd));
      }
    },
  });
  new Gauge({
    name: 'costguard_top_user_cost_usd',
    help: 'Today\'s top users by spend (calendar day in the reporting time zone), USD; rank 1 spent most.',
    labelNames: ['rank', 'user_id'],
    registers,
    async collect() {
      this.reset();
      const s = await snapshot();
      s?.topUsers.forEach((u, i) => this.set({ rank: String(i + 1), user_id: u.userId }, Number(u.costUsd)));
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    metricNames: () => registry.getMetricsAsArray().map((m) => m.name),

    recordFlush(sample) {
      if (sample.batch) {
        if (sample.batch.rejected > 0) rejected.inc(sample.batch.rejected);
        if (sample.batch.duplicates > 0) duplicates.inc(sample.batch.duplicates);
        batchSize.observe(sample.batch.received);
      }
      // Sum each label set's cost exactly first, so the float sees one addition per batch and series.
      // One entry per call series (the cost labels plus status); the cost series are summed from
      // them after the loop, so each event builds one key.
      const perCall = new Map<string, { costLabels: Record<string, string>; costKey: string; status: string; cost: Dec; calls: number }>();
      const perHitSeries = new Map<string, { labels: Record<string, string>; avoided: Dec; hits: number }>();
      for (const e of sample.counted) {
        const provider = providers.value(e.provider);
        const model = models.value(e.model);
        const labels: Record<string, string> = userLabel ? { provider, model, user_id: users.value(e.userId) } : { provider, model };
        if (e.cacheHit) {
          // Cost avoided, not spend: no cost, no API call, no processed tokens.
          const key = JSON.stringify(labels);
          const hit = perHitSeries.get(key) ?? { labels, avoided: new Dec(0), hits: 0 };
          hit.avoided = hit.avoided.plus(e.avoidedUsd ?? '0');
          hit.hits += 1;
          perHitSeries.set(key, hit);
          lag.observe(Math.max(0, (sample.persistedAtMs - Date.parse(e.occurredAt)) / 1000));
          continue;
        }
        const taskType = taskTypes.value(e.taskType);
        const status = statuses.value(callStatus(e.status));
        const costKey = `${provider}\u0000${model}\u0000${labels.user_id ?? ''}\u0000${taskType}`;
        const callKey = `${costKey}\u0000${status}`;
        let series = perCall.get(callKey);
        if (!series) {
          series = { costLabels: { ...labels, task_type: taskType }, costKey, status, cost: new Dec(0), calls: 0 };
          perCall.set(callKey, series);
        }
        series.cost = series.cost.plus(e.costUsd);
        series.calls += 1;
        tokens.observe({ provider, model, kind: 'input' }, e.inputTokens);
        tokens.observe({ provider, model, kind: 'output' }, e.outputTokens);
        if (e.unpriced) unpriced.inc({ provider, model });
        lag.observe(Math.max(0, (sample.persistedAtMs - Date.parse(e.occurredAt)) / 1000));
      }
      const perCost = new Map<string, { labels: Record<string, string>; cost: Dec }>();
      for (const series of perCall.values()) {
        calls.inc({ ...series.costLabels, status: series.status }, series.calls);
        const c = perCost.get(series.costKey);
        if (c) c.cost = c.cost.plus(series.cost);
        else perCost.set(series.costKey, { labels: series.costLabels, cost: series.cost });
      }
      for (const { labels, cost: c } of perCost.values()) cost.inc(labels, c.toNumber());
      for (const { labels, avoided: a, hits: n } of perHitSeries.values()) {
        avoided.inc(labels, a.toNumber());
        cacheHits.inc(labels, n);
      }
    },

    recordCacheLookup(result) {
      cacheLookups.inc({ result });
    },

    observeFlushDuration(seconds, outcome) {
      flushDuration.observe({ outcome }, seconds);
    },

    recordNotification(channel, channelType, outcome) {
      notifications.inc({ channel, channel_type: channelType, outcome });
    },

    recordDeadLetter(stage) {
      deadLetters.inc({ stage });
    },

    recordRealtimeError() {
      realtimeErrors.inc();
    },

    recordBudgetSignal(reason) {
      budgetSignals.inc({ reason });
    },

    recordPreflight(decision, reason) {
      preflight.inc({ decision, reason });
    },

    recordHoldFinish(status) {
      holdFinishes.inc({ status });
    },
  };
}
