/**
 * Report SQL: aggregates straight from `usage_ledger` for the report's own period and time zone
 * (the rollups exist only in the configured time zone, and a report may ask for another), stores
 * reports (one per kind, period and time zone) and reads open incidents. Parameterised SQL only.
 */
import type { Pool, PoolClient } from 'pg';
import { normalizeAmount } from '../domain/money.js';
import type { ModelUsageGroup, OpenIncident, Report, ReportData, UsageGroup } from '../domain/report.js';
import type { ReportKind, ReportPeriod } from '../domain/report-period.js';
import { TOKEN_SUMS, type TokenColumnsRow, tokensOf } from './tokens.js';

const SUMS = `
  coalesce(sum(cost_usd), 0)::text AS cost_usd,
  count(*)::text AS calls,
  count(*) FILTER (WHERE unpriced)::text AS unpriced_calls,
  ${TOKEN_SUMS}`;

interface SumRow extends Partial<TokenColumnsRow> {
  cost_usd: string;
  calls: string;
  unpriced_calls: string;
}

function group(key: string, r: SumRow): UsageGroup {
  return {
    key,
    costUsd: normalizeAmount(r.cost_usd),
    calls: Number(r.calls),
    unpricedCalls: Number(r.unpriced_calls),
    tokens: tokensOf(r),
  };
}

/** What the report reads from the ledger: the report's data without its period labels. */
export type LedgerAggregates = Omit<ReportData, 'period' | 'previous' | 'budgets' | 'generatedAt' | 'incidents'> & { previous: { costUsd: string; calls: number } };

/**
 * Calls only: a response-cache hit (kind cache_hit, cost 0) is not a call, and its tokens were not
 * processed; hits are read apart, as the cost the cache saved (`cache`).
 */
const RANGE = "occurred_at >= $1 AND occurred_at < $2 AND kind = 'call'";

/**
 * Everything a report reads from the ledger, in one read-only REPEATABLE READ transaction so that
 * totals, breakdowns and buckets describe the same rows even while usage keeps arriving.
 *
 * Buckets: a daily report numbers the hours from local midnight, `floor((occurred_at - start) / 1h)`,
 * so a 23- or 25-hour day has 23 or 25 buckets and the repeated hour is not merged; a monthly report
 * numbers local calendar days.
 */
export async function readLedgerAggregates(
  pool: Pool,
  period: ReportPeriod,
  previous: ReportPeriod,
  opts: { topUsers: number },
): Promise<LedgerAggregates> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const range = [new Date(period.startMs), new Date(period.endMs)];
    const sets = await client.query<SumRow & { grp: string; provider: string | null; model: string | null; task_type: string | null }>(
      `SELECT CASE
                WHEN GROUPING(provider, model, task_type) = 7 THEN 'total'
                WHEN GROUPING(model) = 0 THEN 'model'
                WHEN GROUPING(provider) = 0 THEN 'provider'
                ELSE 'task' END AS grp,
              provider, model, task_type, ${SUMS}
         FROM usage_ledger WHERE ${RANGE}
        GROUP BY GROUPING SETS ((), (provider), (provider, model), (task_type))`,
      range,
    );
    let totals = group('total', { cost_usd: '0', calls: '0', unpriced_calls: '0' });
    const byProvider: UsageGroup[] = [];
    const byModel: ModelUsageGroup[] = [];
    const byTaskType: UsageGroup[] = [];
    for (const r of sets.rows) {
      if (r.grp === 'total') totals = group('total', r);
      else if (r.grp === 'provider') byProvider.push(group(r.provider!, r));
      else if (r.grp === 'model') byModel.push({ ...group(`${r.provider!}/${r.model!}`, r), provider: r.provider!, model: r.model! });
      else byTaskType.push(group(r.task_type!, r));
    }
    const users = await client.query<SumRow & { user_id: string }>(
      `SELECT user_id, ${SUMS} FROM usage_ledger WHERE ${RANGE}
        GROUP BY user_id ORDER BY sum(cost_usd) DESC, user_id LIMIT $3`,
      [...range, opts.topUsers],
    );
    const bucketExpr =
      period.kind === 'daily'
        ? `floor(extract(epoch FROM (occurred_at - $1::timestamptz)) / 3600)::int`
        : `((occurred_at AT TIME ZONE $3)::date - ($1::timestamptz AT TIME ZONE $3)::date)`;
    const buckets = await client.query<{ idx: number; cost_usd: string; calls: string }>(
      `SELECT ${bucketExpr} AS idx, sum(cost_usd)::text AS cost_usd, count(*)::text AS calls
         FROM usage_ledger WHERE ${RANGE} GROUP BY 1 ORDER BY 1`,
      period.kind === 'daily' ? range : [...range, period.timezone],
    );
    const hourOfDay =
      period.kind === 'monthly'
        ? await client.query<{ hour: number; cost_usd: string; calls: string }>(
            `SELECT extract(hour FROM (occurred_at AT TIME ZONE $3))::int AS hour, sum(cost_usd)::text AS cost_usd, count(*)::text AS calls
               FROM usage_ledger WHERE ${RANGE} GROUP BY 1 ORDER BY 1`,
            [...range, period.timezone],
          )
        : undefined;
    const prev = await client.query<{ cost_usd: string; calls: string }>(
      `SELECT coalesce(sum(cost_usd), 0)::text AS cost_usd, count(*)::text AS calls FROM usage_ledger WHERE ${RANGE}`,
      [new Date(previous.startMs), new Date(previous.endMs)],
    );
    const hits = await client.query<{ hits: string; avoided: string }>(
      `SELECT count(*)::text AS hits, coalesce(sum(avoided_usd), 0)::text AS avoided FROM usage_ledger
        WHERE occurred_at >= $1 AND occurred_at < $2 AND kind = 'cache_hit'`,
      range,
    );
    await client.query('COMMIT');
    return {
      cache: { hits: Number(hits.rows[0]!.hits), avoidedUsd: normalizeAmount(hits.rows[0]!.avoided) },
      totals,
      byProvider,
      byModel,
      byTaskType,
      topUsers: users.rows.map((r) => group(r.user_id, r)),
      byBucket: buckets.rows.map((r) => ({ index: Number(r.idx), costUsd: normalizeAmount(r.cost_usd), calls: Number(r.calls) })),
      ...(hourOfDay ? { byHourOfDay: hourOfDay.rows.map((r) => ({ hour: Number(r.hour), costUsd: normalizeAmount(r.cost_usd), calls: Number(r.calls) })) } : {}),
      previous: { costUsd: normalizeAmount(prev.rows[0]!.cost_usd), calls: Number(prev.rows[0]!.calls) },
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Incidents still open (or acknowledged, not resolved) that were opened before the period ended.
 * The `alert_incidents` table belongs to alerting (migration 0004); until it exists there are none.
 * Kept in this one function so a change of that table's shape is one edit.
 */
export async function readOpenIncidents(db: Pool | PoolClient, periodEndMs: number, limit = 50): Promise<OpenIncident[]> {
  const exists = await db.query<{ ok: boolean }>(`SELECT to_regclass('alert_incidents') IS NOT NULL AS ok`);
  if (!exists.rows[0]?.ok) return [];
  const { rows } = await db.query<{ id: string; scope: string; rule: string; level: OpenIncident['level']; status: OpenIncident['status']; opened_at: Date; title: string }>(
    `SELECT id::text AS id, scope, rule, level, status, opened_at, title
       FROM alert_incidents
      WHERE status IN ('open', 'acknowledged') AND opened_at < $1
      ORDER BY opened_at, id LIMIT $2`,
    [new Date(periodEndMs), limit],
  );
  return rows.map((r) => ({ id: r.id, scope: r.scope, rule: r.rule, level: r.level, status: r.status, openedAt: r.opened_at.toISOString(), title: r.title }));
}

export interface StoredReport {
  report: Report;
  html: string;
  generatedAt: string;
  /** How many times this period's report was generated (1 the first time). */
  generations: number;
}

/** Stores a report: inserted the first time, replaced in place afterwards (never duplicated). */
export async function saveReport(pool: Pool, report: Report, html: string): Promise<{ generations: number }> {
  const { rows } = await pool.query<{ generations: number }>(
    `INSERT INTO reports (kind, period_key, timezone, period_start, period_end, body, html, generated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (kind, period_key, timezone) DO UPDATE
       SET body = EXCLUDED.body, html = EXCLUDED.html, generated_at = EXCLUDED.generated_at,
           period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
           generations = reports.generations + 1
     RETURNING generations`,
    [report.kind, report.period, report.timezone, report.periodStart, report.periodEnd, JSON.stringify(report), html, report.generatedAt],
  );
  return { generations: rows[0]!.generations };
}

export async function loadReport(pool: Pool, kind: ReportKind, period: string, timezone: string): Promise<StoredReport | null> {
  const { rows } = await pool.query<{ body: Report; html: string; generated_at: Date; generations: number }>(
    'SELECT body, html, generated_at, generations FROM reports WHERE kind = $1 AND period_key = $2 AND timezone = $3',
    [kind, period, timezone],
  );
  const r = rows[0];
  return r ? { report: r.body, html: r.html, generatedAt: r.generated_at.toISOString(), generations: r.generations } : null;
}
