/**
 * Spend of a scope in a window of minutes, now and on earlier days, read from the ledger rows (the
 * spike rule's input), with the window's top contributors. Parameterised SQL only.
 */
import type { Pool } from 'pg';
import type { SpendWindows } from '../domain/alert-rules.js';
import { type Scope, scopeId, scopeKind } from '../domain/budget.js';
import { normalizeAmount } from '../domain/money.js';

export interface SpendWindowQuery {
  scope: Scope;
  windowMinutes: number;
  /** Earlier days to read the same window on. */
  baselineDays: number;
  nowMs: number;
}

/** The ledger column naming a scope's rows (null: every row, the system's). */
function scopeColumn(scope: Scope): { column: string | null; id: string } {
  const kind = scopeKind(scope);
  const column = kind === 'user' ? 'user_id' : kind === 'team' ? 'team' : kind === 'project' ? 'project' : null;
  return { column, id: scopeId(scope) };
}

/**
 * Spend of the window [now - windowMinutes, now) shifted back 0..baselineDays days (by days ago,
 * exact decimal strings; a day without rows is '0'), and the start of the scope's first hour
 * rollup (null: the scope has none yet).
 */
export async function readSpendByDay(pool: Pool, q: SpendWindowQuery): Promise<{ byDay: Map<number, string>; firstHourMs: number | null }> {
  const { column, id } = scopeColumn(q.scope);
  const windows = await pool.query<{ d: number; cost: string }>(
    `SELECT d, coalesce(sum(l.cost_usd), 0)::text AS cost
     FROM generate_series(0, $3::int) AS d
     LEFT JOIN usage_ledger l
       ON l.occurred_at >= $1::timestamptz - d * interval '1 day' - $2::int * interval '1 minute'
      AND l.occurred_at < $1::timestamptz - d * interval '1 day'
      AND ($4::text IS NULL OR ${column ? `l.${column} = $4` : 'true'})
     GROUP BY d ORDER BY d`,
    [new Date(q.nowMs).toISOString(), q.windowMinutes, q.baselineDays, column ? id : null],
  );
  const first = await pool.query<{ first: Date | null }>(
    `SELECT min(period_start) AS first FROM usage_rollups WHERE scope = $1 AND period_kind = 'hour'`,
    [q.scope],
  );
  return {
    byDay: new Map(windows.rows.map((r) => [Number(r.d), normalizeAmount(r.cost)])),
    firstHourMs: first.rows[0]?.first?.getTime() ?? null,
  };
}

/**
 * The largest contributor by cost of each kind (model, user, task type) to the spend of the window
 * [now - windowMinutes, now), for a scope's ledger rows. Ties go to the name that sorts first, so
 * the answer is stable.
 */
export async function readTopContributors(pool: Pool, q: Omit<SpendWindowQuery, 'baselineDays'>): Promise<NonNullable<SpendWindows['top']>> {
  const { column, id } = scopeColumn(q.scope);
  const { rows } = await pool.query<{ dim: 'model' | 'user' | 'taskType'; key: string; cost: string }>(
    `WITH w AS (
       SELECT model, user_id, task_type, cost_usd FROM usage_ledger
       WHERE occurred_at >= $1::timestamptz - $2::int * interval '1 minute' AND occurred_at < $1::timestamptz
         AND cost_usd > 0 AND ($3::text IS NULL OR ${column ? `${column} = $3` : 'true'})
     ), g AS (
       SELECT CASE WHEN GROUPING(model) = 0 THEN 'model' WHEN GROUPING(user_id) = 0 THEN 'user' ELSE 'taskType' END AS dim,
              coalesce(model, user_id, task_type) AS key, sum(cost_usd) AS cost
       FROM w GROUP BY GROUPING SETS ((model), (user_id), (task_type))
     )
     SELECT DISTINCT ON (dim) dim, key, cost::text AS cost FROM g ORDER BY dim, cost DESC, key`,
    [new Date(q.nowMs).toISOString(), q.windowMinutes, column ? id : null],
  );
  const top: NonNullable<SpendWindows['top']> = {};
  for (const r of rows) top[r.dim] = { key: r.key === '' ? '(none)' : r.key, costUsd: normalizeAmount(r.cost) };
  return top;
}
