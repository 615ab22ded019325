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
  currency: 'USD',
  /** Budgets: system daily $100 (80/95%), system monthly $2000 (85/98%), per-user daily $10 (90/98%). */
  budgets: [
    { scope: 'system', period: 'day', amount: '100', currency: 'USD', thresholds: { warning: 0.8, critical: 0.95 } },
    { scope: 'system', period: 'month', amount: '2000', currency: 'USD', thresholds: { warning: 0.85, critical: 0.98 } },
    { scope: 'user', period: 'day', amount: '10', currency: 'USD', thresholds: { warning: 0.9, critical: 0.98 } },
  ],
  /** Ledger-sourced budget workflows (system, team, project) re-read their totals this often. */
  budgetWorkflow: { ledgerPollMs: 2000, maxFlushEvents: 1000 },
  /**
   * Prometheus: `user_id` on the cost/call counters is opt-in (one series per user); the top-N gauge
   * is the bounded alternative. Provider and model label values beyond `maxLabelValues` distinct
   * ones fold into "other". Ledger gauges computed on scrape are cached for `scrapeCacheMs`.
   */
  metrics: { userLabel: false, topUsers: 10, maxLabelValues: 200, scrapeCacheMs: 5000 },
  /** Alerts: do not resend the same alert within an hour; spike = last 60 min above 3x the usual hour. */
  alerts: { repeatIntervalMs: 60 * 60 * 1000, spike: { windowMinutes: 60, factor: 3, floorUsd: '1' } },
} as const;
