/**
 * The state gauges read on scrape (`llm_cost_per_hour_usd`, `budget_usage_ratio`,
 * `costguard_top_user_cost_usd`), from the ledger's exact rollups. Three small indexed queries per
 * snapshot, whatever the traffic (plus one that only asks where the local hour began): the shown
 * scopes' rows for the current and previous hour, day and month (primary key), today's user rows
 * (partial index of migration 0004, top N only), and the runtime budget overrides of the scopes
 * shown (primary key).
 *
 * Every period boundary is computed by PostgreSQL with the same `date_trunc(kind, t, zone)` that
 * built the rollups, so the rows read are exactly the rows written. The conditions are on the view's
 * grouping columns with parameters only, which PostgreSQL pushes below the view's GROUP BY.
 */
import type { Pool } from 'pg';
import type { Budget } from '../domain/budget.js';
import { readSavedBudgets } from './budgets.js';

export interface LedgerSnapshot {
  /** Cost of the current hour so far and of the whole previous hour (system scope), USD. */
  currentHourUsd: number;
  previousHourUsd: number;
  /** Fraction of the current hour elapsed, 0..1. */
  hourElapsed: number;
  /** Current day/month cost per scope, USD (exact decimal strings): `day|system`, `month|team:infra`. */
  periodCostUsd: Map<string, string>;
  /** Today's top users by cost, most first (exact decimal strings). */
  topUsers: { userId: string; costUsd: string }[];
  /** Budgets set at runtime (PUT /v1/budgets/:scope), which replace the configured ones. */
  overrides: Map<string, Budget[]>;
}

const PERIOD_SQL = `
SELECT scope, period_kind, cost_usd::text AS cost_usd,
       period_start = date_trunc('hour', $1::timestamptz, $2) AS current_hour
FROM usage_rollup_totals
WHERE timezone = $2 AND scope = ANY($3::text[]) AND (
      (period_kind = 'hour' AND period_start IN (date_trunc('hour', $1::timestamptz, $2),
                                                  date_trunc('hour', $1::timestamptz, $2) - interval '1 hour'))
   OR (period_kind = 'day' AND period_start = date_trunc('day', $1::timestamptz, $2))
   OR (period_kind = 'month' AND period_start = date_trunc('month', $1::timestamptz, $2)))`;

const TOP_USERS_SQL = `
SELECT substr(scope, 6) AS user_id, cost_usd::text AS cost
FROM usage_rollup_totals
WHERE period_kind = 'day' AND timezone = $2 AND period_start = date_trunc('day', $1::timestamptz, $2)
  AND scope LIKE 'user:%'
ORDER BY usage_rollup_totals.cost_usd DESC, scope
LIMIT $3`;

const HOUR_ELAPSED_SQL = `SELECT extract(epoch FROM $1::timestamptz - date_trunc('hour', $1::timestamptz, $2))::float8 AS s`;

export async function readLedgerSnapshot(
  pool: Pool,
  opts: { nowMs: number; timezone: string; scopes: readonly string[]; topUsers: number },
): Promise<LedgerSnapshot> {
  const now = new Date(opts.nowMs).toISOString();
  const scopes = [...new Set(['system', ...opts.scopes])];
  const [periods, top, overrides, elapsed] = await Promise.all([
    pool.query<{ scope: string; period_kind: string; cost_usd: string; current_hour: boolean }>(PERIOD_SQL, [now, opts.timezone, scopes]),
    opts.topUsers > 0
      ? pool.query<{ user_id: string; cost: string }>(TOP_USERS_SQL, [now, opts.timezone, opts.topUsers])
      : Promise.resolve({ rows: [] as { user_id: string; cost: string }[] }),
    readSavedBudgets(pool, scopes),
    pool.query<{ s: number }>(HOUR_ELAPSED_SQL, [now, opts.timezone]),
  ]);
  const snapshot: LedgerSnapshot = {
    currentHourUsd: 0,
    previousHourUsd: 0,
    hourElapsed: Math.min(1, Math.max(0, (elapsed.rows[0]?.s ?? 0) / 3600)),
    periodCostUsd: new Map(),
    topUsers: top.rows.map((r) => ({ userId: r.user_id, costUsd: r.cost })),
    overrides,
  };
  for (const row of periods.rows) {
    if (row.period_kind === 'hour') {
      if (row.scope !== 'system') continue;
      if (row.current_hour) snapshot.currentHourUsd = Number(row.cost_usd);
      else snapshot.previousHourUsd = Number(row.cost_usd);
    } else {
      snapshot.periodCostUsd.set(`${row.period_kind}|${row.scope}`, row.cost_usd);
    }
  }
  return snapshot;
}
