/**
 * Rolling summary SQL: the ledger rows of one scope whose `occurred_at` is in [start, end], grouped
 * as the original's summaries group them (provider and model; hour; provider; task type), in one
 * read-only REPEATABLE READ transaction so that every group describes the same rows.
 * Parameterised SQL only; the scope's column comes from a fixed map, never from input.
 */
import type { Pool } from 'pg';
import { scopeId, scopeKind } from '../domain/budget.js';
import { normalizeAmount } from '../domain/money.js';
import type { SummaryAggregates, SummaryGroupRow } from '../domain/summary.js';

/** The ledger column that holds each scope kind's id (system: every row). */
const SCOPE_COLUMN = { user: 'user_id', team: 'team', project: 'project' } as const;

interface Row {
  grp: 'total' | 'provider_model' | 'provider' | 'task' | 'hour';
  provider: string | null;
  model: string | null;
  task_type: string | null;
  hour: Date | null;
  cost_usd: string;
  calls: string;
  unpriced_calls: string;
  input_tokens: string;
  output_tokens: string;
}

const group = (r: Row): SummaryGroupRow => ({
  costUsd: normalizeAmount(r.cost_usd),
  calls: Number(r.calls),
  unpricedCalls: Number(r.unpriced_calls),
  inputTokens: Number(r.input_tokens),
  outputTokens: Number(r.output_tokens),
});

/** The window's aggregates for `scope` (`system`, `user:<id>`, `team:<id>`, `project:<id>`); calls only (cache hits are no calls). */
export async function readSummaryAggregates(pool: Pool, scope: string, startMs: number, endMs: number): Promise<SummaryAggregates> {
  const kind = scopeKind(scope);
  const params: unknown[] = [new Date(startMs), new Date(endMs)];
  let where = "occurred_at >= $1 AND occurred_at <= $2 AND kind = 'call'";
  if (kind !== 'system') {
    params.push(scopeId(scope));
    where += ` AND ${SCOPE_COLUMN[kind as keyof typeof SCOPE_COLUMN]} = $3`;
  }
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows } = await client.query<Row>(
      `SELECT CASE
                WHEN GROUPING(provider, model, task_type, hour) = 15 THEN 'total'
                WHEN GROUPING(model) = 0 THEN 'provider_model'
                WHEN GROUPING(provider) = 0 THEN 'provider'
                WHEN GROUPING(task_type) = 0 THEN 'task'
                ELSE 'hour' END AS grp,
              provider, model, task_type, hour,
              coalesce(sum(cost_usd), 0)::text AS cost_usd,
              count(*)::text AS calls,
              count(*) FILTER (WHERE unpriced)::text AS unpriced_calls,
              coalesce(sum(input_tokens), 0)::text AS input_tokens,
              coalesce(sum(output_tokens), 0)::text AS output_tokens
         FROM (SELECT *, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour FROM usage_ledger WHERE ${where}) w
        GROUP BY GROUPING SETS ((), (provider, model), (provider), (task_type), (hour))`,
      params,
    );
    await client.query('COMMIT');
    const out: SummaryAggregates = {
      totals: { costUsd: '0', calls: 0, unpricedCalls: 0, inputTokens: 0, outputTokens: 0 },
      byProviderModel: [],
      byProvider: [],
      byTaskType: [],
      byHour: [],
    };
    for (const r of rows) {
      if (r.grp === 'total') out.totals = group(r);
      else if (r.grp === 'provider_model') out.byProviderModel.push({ provider: r.provider!, model: r.model!, ...group(r) });
      else if (r.grp === 'provider') out.byProvider.push({ provider: r.provider!, ...group(r) });
      else if (r.grp === 'task') out.byTaskType.push({ taskType: r.task_type!, ...group(r) });
      else out.byHour.push({ hour: r.hour!.toISOString(), ...group(r) });
    }
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
