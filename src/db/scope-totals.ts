/**
 * Exact period totals of a scope, read from PostgreSQL: the totals of any budget period from the
 * rollups when the period lines up with them, else from the ledger rows. Used by the budget
 * workflows' activities, the ingest shards (for the totals they signal) and the API's live status.
 */
import type { Pool } from 'pg';
import { type Scope, scopeId, scopeKind } from '../domain/budget.js';
import { type AvoidedTotals, emptyTotals, topBreakdown } from '../domain/budget-state.js';
import { normalizeAmount } from '../domain/money.js';
import { localTime } from '../domain/periods.js';
import type { BreakdownEntry, PeriodTotals } from '../domain/budget-status.js';
import { TOKEN_SUMS, type TokenColumnsRow, tokenSql, tokensOf } from './tokens.js';

export interface PeriodRange {
  spec: string;
  timezone: string;
  key: string;
  startMs: number;
  endMs: number;
}

const HOUR_MS = 3_600_000;

/** True when `ms` starts an hour of the rollups' time zone (so hour rollups add up to the range). */
function onRollupHour(ms: number, timeZone: string): boolean {
  const t = localTime(ms, timeZone);
  return t.minute === 0 && t.second === 0 && ms % 1000 === 0;
}

interface TotalsRow extends Partial<TokenColumnsRow> {
  cost: string | null;
  calls: string | null;
  unpriced: string | null;
  avoided: string | null;
  cache_hits: string | null;
}

const SUMS = `coalesce(sum(cost_usd), 0)::text AS cost, coalesce(sum(calls), 0)::text AS calls,
  coalesce(sum(unpriced_calls), 0)::text AS unpriced, ${TOKEN_SUMS},
  coalesce(sum(avoided_usd), 0)::text AS avoided, coalesce(sum(cache_hits), 0)::text AS cache_hits`;

/** The same sums from ledger rows, as the rollups count them (a cache hit's tokens are not processed tokens). */
const LEDGER_SUMS = `coalesce(sum(cost_usd), 0)::text AS cost, count(*)::text AS calls,
  count(*) FILTER (WHERE unpriced)::text AS unpriced,
  ${tokenSql((c) => `coalesce(sum(${c}) FILTER (WHERE kind = 'call'), 0)::text AS ${c}`)},
  coalesce(sum(avoided_usd), 0)::text AS avoided, count(*) FILTER (WHERE kind = 'cache_hit')::text AS cache_hits`;

function toTotals(r: TotalsRow | undefined): PeriodTotals & AvoidedTotals {
  const t: PeriodTotals & AvoidedTotals = emptyTotals();
  if (!r) return t;
  t.costUsd = normalizeAmount(r.cost ?? '0');
  t.calls = Number(r.calls ?? 0);
  t.unpricedCalls = Number(r.unpriced ?? 0);
  t.tokens = tokensOf(r);
  // Only when the cache answered: totals without cache hits keep their shape.
  const hits = Number(r.cache_hits ?? 0);
  if (hits > 0) {
    t.cacheHits = hits;
    t.avoidedUsd = normalizeAmount(r.avoided ?? '0');
  }
  return t;
}

/** SQL condition selecting a scope's ledger rows. */
function ledgerFilter(scope: Scope, firstParam: number): { sql: string; params: string[] } {
  switch (scopeKind(scope)) {
    case 'system':
      return { sql: 'true', params: [] };
    case 'user':
      return { sql: `user_id = $${firstParam}`, params: [scopeId(scope)] };
    case 'team':
      return { sql: `team = $${firstParam}`, params: [scopeId(scope)] };
    case 'project':
      return { sql: `project = $${firstParam}`, params: [scopeId(scope)] };
  }
}

/** Top breakdowns of a scope's ledger rows in a time range (a user's rows come by index). */
async function ledgerBreakdowns(pool: Pool, scope: Scope, startMs: number, endMs: number): Promise<Pick<PeriodTotals, 'byProvider' | 'byModel' | 'byTaskType'>> {
  const filter = ledgerFilter(scope, 3);
  const r = await pool.query<{ dim: string; key: string; cost: string; calls: string }>(
    `SELECT dim, key, sum(cost_usd)::text AS cost, count(*)::text AS calls FROM usage_ledger
     CROSS JOIN LATERAL (VALUES ('provider', provider), ('model', model), ('task', task_type)) AS d(dim, key)
     WHERE occurred_at >= $1 AND occurred_at < $2 AND ${filter.sql}
     GROUP BY dim, key`,
    [new Date(startMs), new Date(endMs), ...filter.params],
  );
  const lists: Record<string, BreakdownEntry[]> = { provider: [], model: [], task: [] };
  for (const row of r.rows) lists[row.dim]!.push({ key: row.key, costUsd: normalizeAmount(row.cost), calls: Number(row.calls) });
  return { byProvider: topBreakdown(lists.provider!), byModel: topBreakdown(lists.model!), byTaskType: topBreakdown(lists.task!) };
}


/**
 * Exact totals of a scope for each period, from the rollups when the period lines up with them
 * (its day/month row in the rollups' own time zone, or whole hours), else from the ledger rows
 * (short fixed periods). Breakdowns: the system's from the rollup facets, a user's and short
 * periods' from the ledger rows; none for team/project calendar periods.
 */
export async function readScopeTotals(pool: Pool, rollupTz: string, scope: Scope, periods: readonly PeriodRange[]): Promise<{ key: string; spec: string; totals: PeriodTotals }[]> {
    const out: { key: string; spec: string; totals: PeriodTotals }[] = [];
    for (const p of periods) {
      let totals: PeriodTotals;
      const calendar = p.spec === 'day' || p.spec === 'month';
      if (calendar && p.timezone === rollupTz) {
        const r = await pool.query<TotalsRow>(
          `SELECT ${SUMS} FROM usage_rollup_totals WHERE scope = $1 AND period_kind = $2 AND timezone = $3 AND period_start = $4`,
          [scope, p.spec, rollupTz, new Date(p.startMs)],
        );
        totals = toTotals(r.rows[0]);
        if (scope === 'system') {
          const facets = await pool.query<{ scope: string; cost: string; calls: string }>(
            `SELECT scope, cost_usd::text AS cost, calls::text AS calls FROM usage_rollup_totals
             WHERE scope LIKE 'system|%' AND period_kind = $1 AND timezone = $2 AND period_start = $3`,
            [p.spec, rollupTz, new Date(p.startMs)],
          );
          const lists: Record<string, BreakdownEntry[]> = { provider: [], model: [], task: [] };
          for (const f of facets.rows) {
            const [dimension, ...rest] = f.scope.slice('system|'.length).split(':');
            lists[dimension!]?.push({ key: rest.join(':'), costUsd: normalizeAmount(f.cost), calls: Number(f.calls) });
          }
          totals.byProvider = topBreakdown(lists.provider!);
          totals.byModel = topBreakdown(lists.model!);
          totals.byTaskType = topBreakdown(lists.task!);
        }
      } else if (p.endMs - p.startMs >= HOUR_MS && onRollupHour(p.startMs, rollupTz) && onRollupHour(p.endMs, rollupTz)) {
        const r = await pool.query<TotalsRow>(
          `SELECT ${SUMS} FROM usage_rollup_totals WHERE scope = $1 AND period_kind = 'hour' AND timezone = $2
             AND period_start >= $3 AND period_start < $4`,
          [scope, rollupTz, new Date(p.startMs), new Date(p.endMs)],
        );
        totals = toTotals(r.rows[0]);
      } else {
        const filter = ledgerFilter(scope, 3);
        const r = await pool.query<TotalsRow>(
          `SELECT ${LEDGER_SUMS} FROM usage_ledger WHERE occurred_at >= $1 AND occurred_at < $2 AND ${filter.sql}`,
          [new Date(p.startMs), new Date(p.endMs), ...filter.params],
        );
        totals = { ...toTotals(r.rows[0]), ...(await ledgerBreakdowns(pool, scope, p.startMs, p.endMs)) };
      }
      if (scopeKind(scope) === 'user' && totals.calls > 0 && totals.byModel.length === 0) {
        Object.assign(totals, await ledgerBreakdowns(pool, scope, p.startMs, p.endMs));
      }
      out.push({ key: p.key, spec: p.spec, totals });
    }
    return out;
  }
