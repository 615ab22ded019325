/** Every default of Cost Guard in one place (the original specification's values where it has one). */
export const DEFAULTS = {
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/costguard',
  redisUrl: 'redis://127.0.0.1:6379',
  redisKeyPrefix: 'costguard:',
  temporalAddress: '127.0.0.1:7233',
  temporalNamespace: 'default',
  taskQueue: 'costguard',
  apiHost: '127.0.0.1',
  apiPort: 8080,
  /** The worker's Prometheus listener (the API also serves GET /metrics); port 0 disables it. */
  metricsHost: '127.0.0.1',
  metricsPort: 9464,
  logLevel: 'info',
  timezone: 'UTC',
  /** Budgets: system daily $100 (80/95%), system monthly $2000 (85/98%), per-user daily $10 (90/98%). */
  budgets: [
    { scope: 'system', period: 'day', amount: '100', currency: 'USD', thresholds: { warning: 0.8, critical: 0.95 } },
    { scope: 'system', period: 'month', amount: '2000', currency: 'USD', thresholds: { warning: 0.85, critical: 0.98 } },
    { scope: 'user', period: 'day', amount: '10', currency: 'USD', thresholds: { warning: 0.9, critical: 0.98 } },
  ],
  /** Ledger-sourced budget workflows (system, team, project) re-read their totals this often. */
  budgetWorkflow: { ledgerPollMs: 2000, maxFlushEvents: 1000 },
  /**
   * The ingest tier: `shards` ingest workflows take every usage signal. An idle shard flushes a
   * batch as soon as it arrives (latency first); batches arriving while it is busy are flushed
   * together once `flushEvents` are pending or the oldest has waited `lingerMs`, at most
   * `maxFlushEvents` at once. A shard tells a user's budget workflow of its spend only on material
   * change: a step of `stepFraction` of its smallest budget, or a threshold or forecast boundary.
   */
  ingest: { shards: 4, lingerMs: 200, flushEvents: 2000, maxFlushEvents: 5000, stepFraction: 0.05 },
  /** Pre-flight checks: holds live a minute unless renewed; a grant tops a lease up to a quarter of the budget. */
  /**
   * Pre-flight checks. `acceptedHoldTtlMs`: once usage naming a hold is accepted for ingestion, the
   * hold lives at least this much longer, so it settles with that usage instead of expiring first.
   */
  preflight: { holdTtlMs: 60_000, maxHoldTtlMs: 600_000, sliceFraction: 0.25, refillTimeoutMs: 3000, unknownPriceUsd: '0.10', acceptedHoldTtlMs: 600_000 },
  /**
   * The wrappers' response cache (src/client/cache, the original CacheOptimizer): TTL per task type
   * in seconds (the original's four, `default` for the rest), task types whose entries every tenant
   * shares, the smallest cost worth storing, how long concurrent misses wait for the one upstream
   * call (then they call upstream themselves) and the largest answer stored.
   */
  cache: {
    ttlSeconds: { default: 3600, news_analysis: 3600, technical_analysis: 300, strategy_generation: 1800, llm_response: 7200 } as Record<string, number>,
    shared: [] as string[],
    minCostUsd: '0.001',
    waitMs: 10_000,
    maxEntryBytes: 1_048_576,
  },
  /**
   * Prometheus: `user_id` on the cost/call counters is opt-in (one series per user); the top-N gauge
   * is the bounded alternative. Provider and model label values beyond `maxLabelValues` distinct
   * ones fold into "other". Ledger gauges computed on scrape are cached for `scrapeCacheMs`.
   */
  metrics: { userLabel: false, topUsers: 10, maxLabelValues: 200, scrapeCacheMs: 5000 },
  /** Notification channels: each HTTP request or SMTP exchange gives up after this long (then retried). */
  channels: { timeoutMs: 10_000 },
  /**
   * Scheduled reports: daily at 00:05 and monthly at 00:05 on the 1st, in `timezone` (default: the
   * configured one). A run missed by more than the catch-up window (worker or server down) is
   * skipped rather than sent late; `topUsers` is the length of the top-users list.
   */
  reports: { enabled: true, topUsers: 10, catchupWindow: '1d' },
  /**
   * Alerts: do not resend the same alert within an hour; an unacknowledged critical alert escalates
   * every 15 minutes (up to 3 times), adding SMS and push; spike = the last 60 minutes above 3x the
   * usual spend for that hour, and above $1. Time-based rules (forecast, spike) are re-checked every
   * minute; thresholds after every persisted batch. Routing names channels of `channels:`; names
   * not configured are skipped. The original's table: email, Slack and push at every level, SMS for
   * critical (and emergency, which the original never raises); `webhook` is ours.
   */
  alerts: {
    repeatIntervalMs: 60 * 60 * 1000,
    evaluateEveryMs: 60 * 1000,
    routing: {
      info: ['email', 'slack', 'push', 'webhook'],
      warning: ['email', 'slack', 'push', 'webhook'],
      critical: ['email', 'slack', 'sms', 'push', 'webhook'],
      emergency: ['email', 'slack', 'sms', 'push', 'webhook'],
    },
    escalation: { delayMs: 15 * 60 * 1000, channels: ['sms', 'push'], maxEscalations: 3 },
    forecast: { minElapsedFraction: 0.1, minCalls: 10 },
    spike: { windowMinutes: 60, factor: 3, floorUsd: '1', baselineDays: 7, minBaselineDays: 1 },
  },
} as const;
