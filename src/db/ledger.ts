/**
 * The usage ledger: persists a batch of priced events idempotently, in one transaction, and keeps
 * the exact rollups in the same statement as the insert.
 *
 * Idempotency has two layers:
 *  - per event: `request_id` is the ledger's primary key and rows go in with ON CONFLICT DO NOTHING,
 *    so an event delivered twice (in one batch, in two batches, from two clients) is counted once;
 *  - per batch: the batch's result is stored under its batch id in the same transaction. A retry of
 *    the same batch (an activity retried after its commit, whose completion was lost) finds it and
 *    returns the very same result instead of "0 newly counted", which would make the caller's
 *    running totals miss the batch.
 */
import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { ConflictError } from '../domain/errors.js';
import { addAmounts } from '../domain/money.js';
import type { PriceResult } from '../domain/pricing.js';
import { type TokenUsage, ZERO_USAGE } from '../domain/usage.js';
import type { UsageEvent } from '../domain/usage.js';

export interface PricedEvent {
  event: UsageEvent;
  price: PriceResult;
}

/** One newly counted event, as the ledger stored it. */
export interface CountedEvent {
  requestId: string;
  occurredAt: string;
  costUsd: string;
  unpriced: boolean;
}

export interface BatchTotals {
  calls: number;
  unpricedCalls: number;
  costUsd: string;
  tokens: TokenUsage;
}

export interface BatchResult {
  batchId: string;
  received: number;
  counted: number;
  duplicates: number;
  totals: BatchTotals;
  events: CountedEvent[];
}

/** Scopes each event's rollups go to: the system, its user, and its team and project when given. */
const SCOPES_SQL = `(VALUES ('system'), ('user:' || n.user_id), ('team:' || n.team), ('project:' || n.project)) AS s(scope)`;

const INSERT_SQL = `
WITH new_rows AS (
  INSERT INTO usage_ledger (
    request_id, batch_id, occurred_at, provider, model, matched_provider, matched_model, user_id, task_type,
    team, project, tags, input_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens,
    output_tokens, reasoning_tokens, cost_usd, cost_breakdown, price_source, price_effective_from,
    catalog_version, unpriced, unpriced_reason, metadata)
  SELECT r.request_id, $1, r.occurred_at, r.provider, r.model, r.matched_provider, r.matched_model, r.user_id,
         r.task_type, r.team, r.project, r.tags::jsonb, r.input_tokens, r.cache_read_tokens, r.cache_write_tokens,
         r.cache_write_1h_tokens, r.output_tokens, r.reasoning_tokens, r.cost_usd, r.cost_breakdown::jsonb,
         r.price_source, r.price_effective_from, r.catalog_version, r.unpriced, r.unpriced_reason, r.metadata::jsonb
  FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
              $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[],
              $17::bigint[], $18::bigint[], $19::numeric[], $20::text[], $21::text[], $22::text[], $23::text[],
              $24::boolean[], $25::text[], $26::text[])
       AS r(request_id, occurred_at, provider, model, matched_provider, matched_model, user_id, task_type, team,
            project, tags, input_tokens, cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens,
            reasoning_tokens, cost_usd, cost_breakdown, price_source, price_effective_from, catalog_version, unpriced,
            unpriced_reason, metadata)
  ORDER BY r.request_id
  ON CONFLICT (request_id) DO NOTHING
  RETURNING request_id, occurred_at, user_id, team, project, cost_usd, unpriced, input_tokens, cache_read_tokens,
            cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens
), rollup AS (
  INSERT INTO usage_rollups AS u (
    scope, period_kind, timezone, period_start, cost_usd, calls, unpriced_calls, input_tokens, cache_read_tokens,
    cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens)
  SELECT s.scope, k.kind, $27, date_trunc(k.kind, n.occurred_at, $27), sum(n.cost_usd), count(*),
         count(*) FILTER (WHERE n.unpriced), sum(n.input_tokens), sum(n.cache_read_tokens), sum(n.cache_write_tokens),
         sum(n.cache_write_1h_tokens), sum(n.output_tokens), sum(n.reasoning_tokens)
  FROM new_rows n
  CROSS JOIN LATERAL ${SCOPES_SQL}
  CROSS JOIN (VALUES ('hour'), ('day'), ('month')) AS k(kind)
  WHERE s.scope IS NOT NULL
  GROUP BY 1, 2, 4
  ORDER BY 1, 2, 4
  ON CONFLICT (scope, period_kind, timezone, period_start) DO UPDATE SET
    cost_usd = u.cost_usd + EXCLUDED.cost_usd,
    calls = u.calls + EXCLUDED.calls,
    unpriced_calls = u.unpriced_calls + EXCLUDED.unpriced_calls,
    input_tokens = u.input_tokens + EXCLUDED.input_tokens,
    cache_read_tokens = u.cache_read_tokens + EXCLUDED.cache_read_tokens,
    cache_write_tokens = u.cache_write_tokens + EXCLUDED.cache_write_tokens,
    cache_write_1h_tokens = u.cache_write_1h_tokens + EXCLUDED.cache_write_1h_tokens,
    output_tokens = u.output_tokens + EXCLUDED.output_tokens,
    reasoning_tokens = u.reasoning_tokens + EXCLUDED.reasoning_tokens,
    updated_at = now()
)
SELECT request_id, occurred_at, cost_usd::text AS cost_usd, unpriced, input_tokens::text, cache_read_tokens::text,
       cache_write_tokens::text, cache_write_1h_tokens::text, output_tokens::text, reasoning_tokens::text
FROM new_rows
ORDER BY request_id`;

/** sha256 of the batch's sorted request ids: the same batch id with other events is a caller bug. */
export function batchFingerprint(requestIds: readonly string[]): string {
  const h = createHash('sha256');
  for (const id of [...requestIds].sort()) h.update(id).update('\n');
  return h.digest('hex');
}

function columns(batch: readonly PricedEvent[]): unknown[] {
  const cols: unknown[][] = Array.from({ length: 25 }, () => new Array<unknown>(batch.length));
  batch.forEach(({ event: e, price: p }, i) => {
    const priced = p.priced ? p : null;
    const values: unknown[] = [
      e.requestId,
      e.occurredAt,
      e.provider,
      e.model,
      priced?.price.provider ?? null,
      priced?.price.model ?? null,
      e.userId,
      e.taskType,
      e.team,
      e.project,
      JSON.stringify(e.tags),
      e.usage.inputTokens,
      e.usage.cacheReadTokens,
      e.usage.cacheWriteTokens,
      e.usage.cacheWrite1hTokens,
      e.usage.outputTokens,
      e.usage.reasoningTokens,
      p.costUsd,
      JSON.stringify(priced ? priced.components : {}),
      priced?.price.source ?? null,
      priced?.price.effectiveFrom ?? null,
      priced?.price.catalogVersion ?? null,
      !p.priced,
      p.priced ? null : p.reason,
      JSON.stringify(e.metadata),
    ];
    values.forEach((v, c) => {
      cols[c]![i] = v;
    });
  });
  return cols;
}

interface ReturnedRow {
  request_id: string;
  occurred_at: Date;
  cost_usd: string;
  unpriced: boolean;
  input_tokens: string;
  cache_read_tokens: string;
  cache_write_tokens: string;
  cache_write_1h_tokens: string;
  output_tokens: string;
  reasoning_tokens: string;
}

function summarise(batchId: string, received: number, rows: readonly ReturnedRow[]): BatchResult {
  const tokens: TokenUsage = { ...ZERO_USAGE };
  const costs: string[] = [];
  let unpricedCalls = 0;
  const events = rows.map((r): CountedEvent => {
    tokens.inputTokens += Number(r.input_tokens);
    tokens.cacheReadTokens += Number(r.cache_read_tokens);
    tokens.cacheWriteTokens += Number(r.cache_write_tokens);
    tokens.cacheWrite1hTokens += Number(r.cache_write_1h_tokens);
    tokens.outputTokens += Number(r.output_tokens);
    tokens.reasoningTokens += Number(r.reasoning_tokens);
    if (r.unpriced) unpricedCalls++;
    costs.push(r.cost_usd);
    return { requestId: r.request_id, occurredAt: r.occurred_at.toISOString(), costUsd: r.cost_usd, unpriced: r.unpriced };
  });
  return {
    batchId,
    received,
    counted: rows.length,
    duplicates: received - rows.length,
    totals: { calls: rows.length, unpricedCalls, costUsd: addAmounts('0', ...costs), tokens },
    events,
  };
}

async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export interface PersistBatchInput {
  batchId: string;
  events: readonly PricedEvent[];
  /** Time zone of the rollups' calendar periods (the configured reporting time zone). */
  timezone: string;
}

/**
 * Persists a batch once. Returns the totals of the events this batch newly counted; a repeat of the
 * same batch id returns the stored result of the first time. Throws ConflictError when the batch id
 * was already used for a different set of events.
 */
export async function persistBatch(pool: Pool, input: PersistBatchInput): Promise<BatchResult> {
  const fingerprint = batchFingerprint(input.events.map((e) => e.event.requestId));
  return inTransaction(pool, async (client) => {
    // Claims the batch id. A concurrent attempt of the same batch waits here on the primary key
    // until the first commits (then finds its result) or rolls back (then proceeds itself).
    const claim = await client.query(
      `INSERT INTO usage_batches (batch_id, fingerprint, event_count) VALUES ($1, $2, $3)
       ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id`,
      [input.batchId, fingerprint, input.events.length],
    );
    if (claim.rowCount === 0) {
      const stored = await client.query<{ fingerprint: string; result: BatchResult }>(
        'SELECT fingerprint, result FROM usage_batches WHERE batch_id = $1',
        [input.batchId],
      );
      const row = stored.rows[0]!;
      if (row.fingerprint !== fingerprint) {
        throw new ConflictError(`batch id ${input.batchId} was already used for a different set of events`);
      }
      return row.result;
    }
    // First occurrence of a request id within the batch wins; later copies are duplicates.
    const seen = new Set<string>();
    const unique = input.events.filter((e) => !seen.has(e.event.requestId) && seen.add(e.event.requestId));
    const inserted = await client.query<ReturnedRow>(INSERT_SQL, [input.batchId, ...columns(unique), input.timezone]);
    const result = summarise(input.batchId, input.events.length, inserted.rows);
    await client.query('UPDATE usage_batches SET result = $2 WHERE batch_id = $1', [input.batchId, JSON.stringify(result)]);
    return result;
  });
}
