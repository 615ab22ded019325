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
import type { Pool } from 'pg';
import { ConflictError } from '../domain/errors.js';
import { addTokens } from '../domain/flush-summary.js';
import { Dec, normalizeAmount } from '../domain/money.js';
import type { BatchResult, CountedEvent, PricedEvent } from '../domain/ledger.js';
import { TOKEN_KINDS } from '../domain/tokens.js';
import { type TokenUsage, ZERO_USAGE } from '../domain/usage.js';
import { TOKEN_COLUMNS, TOKEN_COLUMN_LIST, tokenSql, tokensOfKinds } from './tokens.js';

export type { BatchResult, BatchTotals, CountedEvent, PricedEvent } from '../domain/ledger.js';

/**
 * Rollup rows each new ledger row adds to: the system, its user, its team and project when given
 * (hour, day and month), and the system-wide breakdown facets `system|provider:<p>`,
 * `system|model:<m>` and `system|task:<t>` (day and month only).
 */
const SCOPES_SQL = `(VALUES ('system', false), ('user:' || n.user_id, false), ('team:' || n.team, false),
                    ('project:' || n.project, false), ('system|provider:' || n.provider, true),
                    ('system|model:' || n.model, true), ('system|task:' || n.task_type, true)) AS s(scope, facet)`;

/**
 * The ledger columns a batch inserts, in parameter order from $2 (one array each, unnested), with
 * the array's type and the cast its value needs. The token columns come from TOKEN_KINDS.
 */
const INSERT_COLUMNS: readonly (readonly [column: string, type: string, cast?: string])[] = [
  ['request_id', 'text'], ['occurred_at', 'timestamptz'], ['provider', 'text'], ['model', 'text'],
  ['matched_provider', 'text'], ['matched_model', 'text'], ['user_id', 'text'], ['task_type', 'text'],
  ['team', 'text'], ['project', 'text'], ['tags', 'text', 'jsonb'],
  ...TOKEN_KINDS.map((k) => [TOKEN_COLUMNS[k], 'bigint'] as const),
  ['cost_usd', 'numeric'], ['cost_breakdown', 'text', 'jsonb'], ['price_source', 'text'], ['price_effective_from', 'text'],
  ['catalog_version', 'text'], ['unpriced', 'boolean'], ['unpriced_reason', 'text'], ['metadata', 'text', 'jsonb'],
  ['estimated', 'boolean'], ['kind', 'text'], ['avoided_usd', 'numeric'],
];

/** The `n`th parameter after the batch id and the columns: 1 is the rollups' time zone, then each statement's own. */
const after = (n: number) => `$${INSERT_COLUMNS.length + 1 + n}`;
const TIMEZONE_PARAM = after(1);

/**
 * The ledger insert of a batch's rows ($1 batch id, then INSERT_COLUMNS), for a `new_rows` CTE. A
 * response-cache hit (`kind` 'cache_hit') comes with cost 0 and its would-be cost in `avoided_usd`
 * (see `columns`).
 */
const insertRows = (guard: string) => `
  INSERT INTO usage_ledger (batch_id, ${INSERT_COLUMNS.map(([c]) => c).join(', ')})
  SELECT $1, ${INSERT_COLUMNS.map(([c, , cast]) => (cast ? `r.${c}::${cast}` : `r.${c}`)).join(', ')}
  FROM unnest(${INSERT_COLUMNS.map(([, type], i) => `$${i + 2}::${type}[]`).join(', ')})
       AS r(${INSERT_COLUMNS.map(([c]) => c).join(', ')})
  ${guard}
  ORDER BY r.request_id
  ON CONFLICT (request_id) DO NOTHING
  RETURNING request_id, occurred_at, user_id, team, project, provider, model, task_type, cost_usd, unpriced, ${TOKEN_COLUMN_LIST},
            kind, avoided_usd
`;

/** The tokens of the new rows `n` the providers processed (a cache hit's were not), per kind. */
const callTokenSums = (each: (sum: string, column: string) => string, separator = ', ') =>
  tokenSql((c) => each(`sum(CASE WHEN n.kind = 'call' THEN n.${c} ELSE 0 END)`, c), separator);

/**
 * The rollup sums of a set of new ledger rows `n`: cost, calls (every answered request, cache hits
 * included), unpriced calls, the tokens the providers processed (cache hits' tokens left out: no
 * provider processed them), cost avoided and cache hits. In the rollup column order.
 */
const ROLLUP_SUMS = `sum(n.cost_usd), count(*), count(*) FILTER (WHERE n.unpriced),
         ${callTokenSums((sum) => sum)},
         sum(n.avoided_usd), count(*) FILTER (WHERE n.kind = 'cache_hit')`;

const ROLLUP_COLUMNS = `cost_usd, calls, unpriced_calls, ${TOKEN_COLUMN_LIST}, avoided_usd, cache_hits`;

/** Adds a new rollup row's sums to an existing one (`u` is the table's alias). */
const ROLLUP_ADD = `ON CONFLICT (scope, period_kind, timezone, period_start, shard) DO UPDATE SET
    cost_usd = u.cost_usd + EXCLUDED.cost_usd,
    calls = u.calls + EXCLUDED.calls,
    unpriced_calls = u.unpriced_calls + EXCLUDED.unpriced_calls,
    ${tokenSql((c) => `${c} = u.${c} + EXCLUDED.${c}`, ',\n    ')},
    avoided_usd = u.avoided_usd + EXCLUDED.avoided_usd,
    cache_hits = u.cache_hits + EXCLUDED.cache_hits,
    updated_at = now()`;

/** Hour/day/month rollups of exactly the rows in `new_rows` (in TIMEZONE_PARAM's time zone), for a `rollup` CTE. */
const rollupRows = (shardParam: string) => `
  INSERT INTO usage_rollups AS u (scope, period_kind, timezone, period_start, shard, ${ROLLUP_COLUMNS})
  SELECT s.scope, k.kind, ${TIMEZONE_PARAM}, date_trunc(k.kind, n.occurred_at, ${TIMEZONE_PARAM}), ${shardParam}::smallint, ${ROLLUP_SUMS}
  FROM new_rows n
  CROSS JOIN LATERAL ${SCOPES_SQL}
  CROSS JOIN (VALUES ('hour'), ('day'), ('month')) AS k(kind)
  WHERE s.scope IS NOT NULL AND NOT (s.facet AND k.kind = 'hour')
  GROUP BY 1, 2, 4
  ORDER BY 1, 2, 4
  ${ROLLUP_ADD}
`;

/**
 * One statement does the whole batch, so it is atomic without an explicit transaction and costs a
 * single round trip:
 *  - `existing`: the batch's stored result, if this batch id was already persisted;
 *  - `new_rows`: the ledger insert (skipped entirely for a known batch), sorted by request id so
 *    concurrent batches take index locks in the same order; duplicates are skipped by the key;
 *  - `rollup`: hour/day/month rollups of exactly the rows inserted, upserted in key order;
 *  - `batch`: the batch's result, stored under its id.
 * A concurrent attempt of the same batch blocks on the first one's uncommitted ledger keys, then
 * finds them committed and inserts nothing; its `batch` insert then conflicts and the caller reads
 * the stored result. The final check aborts the statement (rolling everything back) in the one
 * case that must not commit: new rows inserted while the batch id was taken by other events.
 */
export const PERSIST_SQL = `
WITH existing AS (
  SELECT fingerprint, result FROM usage_batches WHERE batch_id = $1
), new_rows AS (
${insertRows('WHERE NOT EXISTS (SELECT 1 FROM existing)')}), rollup AS (
${rollupRows(after(4))}), summary AS (
  SELECT json_build_object(
    'counted', count(*),
    'unpricedCalls', count(*) FILTER (WHERE unpriced),
    'costUsd', coalesce(sum(cost_usd), 0)::text,
    ${tokenSql((c, k) => `'${k}', coalesce(sum(${c}), 0)`, ',\n    ')},
    'events', coalesce(json_agg(json_build_array(request_id, occurred_at, cost_usd::text, unpriced) ORDER BY request_id), '[]'::json)
  ) AS result
  FROM new_rows
), batch AS (
  INSERT INTO usage_batches (batch_id, fingerprint, event_count, result)
  SELECT $1, ${after(2)}, ${after(3)}, result::jsonb FROM summary WHERE NOT EXISTS (SELECT 1 FROM existing)
  ON CONFLICT (batch_id) DO NOTHING
  RETURNING result
)
SELECT (SELECT result FROM batch) AS stored,
       (SELECT fingerprint FROM existing) AS existing_fingerprint,
       (SELECT result FROM existing) AS existing_result,
       costguard_check(
         EXISTS (SELECT 1 FROM batch) OR NOT EXISTS (SELECT 1 FROM new_rows),
         'batch id ' || $1 || ' was already used for a different set of events') AS checked`;

/**
 * A budget workflow's flush (see `persistFlush`): the insert and its rollups in one statement, which
 * returns the rows it inserted. No stored result: the flush's result is read from the ledger.
 */
export const FLUSH_SQL = `
WITH new_rows AS (
${insertRows('')}), rollup AS (
${rollupRows(after(2))})
SELECT request_id, occurred_at, cost_usd::text AS cost_usd, unpriced FROM new_rows`;

/** Rollup rows per (scope, period): concurrent batches spread over them instead of queueing on one. */
export const ROLLUP_SHARDS = 8;

/** The shard a batch adds to (stable: a retry adds to the same rows, though it adds nothing). */
export function rollupShard(batchId: string): number {
  let h = 0;
  for (let i = 0; i < batchId.length; i++) h = (Math.imul(h, 31) + batchId.charCodeAt(i)) | 0;
  return Math.abs(h) % ROLLUP_SHARDS;
}

/** sha256 of the batch's sorted request ids: the same batch id with other events is a caller bug. */
export function batchFingerprint(requestIds: readonly string[]): string {
  const h = createHash('sha256');
  for (const id of [...requestIds].sort()) h.update(id).update('\n');
  return h.digest('hex');
}

/** The batch as one array per INSERT_COLUMNS entry, in its order. */
export function columns(batch: readonly PricedEvent[]): unknown[] {
  const cols: unknown[][] = Array.from({ length: INSERT_COLUMNS.length }, () => new Array<unknown>(batch.length));
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
    ];
    for (const k of TOKEN_KINDS) values.push(e.usage[k]);
    values.push(
      e.cacheHit ? '0' : p.costUsd,
      JSON.stringify(priced ? priced.components : {}),
      priced?.price.source ?? null,
      priced?.price.effectiveFrom ?? null,
      priced?.price.catalogVersion ?? null,
      !p.priced,
      p.priced ? null : p.reason,
      JSON.stringify(e.metadata),
      e.estimated ?? false,
      // A cache hit: no spend, its would-be cost as cost avoided.
      e.cacheHit ? 'cache_hit' : 'call',
      e.cacheHit ? p.costUsd : '0',
    );
    values.forEach((v, c) => {
      cols[c]![i] = v;
    });
  });
  return cols;
}

/** The stored form of a batch result (jsonb): compact, then expanded by `toBatchResult`. */
interface StoredResult extends TokenUsage {
  counted: number;
  unpricedCalls: number;
  costUsd: string;
  events: [string, string, string, boolean][];
}

/** The same stored row gives the same result on every attempt: first time and every retry alike. */
function toBatchResult(batchId: string, received: number, stored: StoredResult): BatchResult {
  return {
    batchId,
    received,
    counted: stored.counted,
    duplicates: received - stored.counted,
    totals: {
      calls: stored.counted,
      unpricedCalls: stored.unpricedCalls,
      costUsd: normalizeAmount(stored.costUsd),
      tokens: tokensOfKinds(stored),
    },
    events: stored.events.map(([requestId, occurredAt, costUsd, unpriced]) => ({
      requestId,
      occurredAt: new Date(occurredAt).toISOString(),
      costUsd: normalizeAmount(costUsd),
      unpriced,
    })),
  };
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
  return (await persistBatchOnce(pool, input)).result;
}

/** What a persist call did: the batch's result, and whether THIS call stored it. */
export interface PersistOutcome {
  result: BatchResult;
  /**
   * True only for the call whose statement inserted the batch's `usage_batches` row, i.e. the one
   * that committed its ledger rows. A retry, a re-sent batch or a concurrent twin gets the stored
   * result with `firstTime: false`. Per-process side effects that must happen once per event (the
   * Prometheus counters) key on this: the result itself is identical either way.
   */
  firstTime: boolean;
}

/** `persistBatch`, also telling whether this call is the one that stored the batch. */
export async function persistBatchOnce(pool: Pool, input: PersistBatchInput): Promise<PersistOutcome> {
  // First occurrence of a request id within the batch wins; later copies are duplicates.
  const seen = new Set<string>();
  const unique = input.events.filter((e) => !seen.has(e.event.requestId) && seen.add(e.event.requestId));
  const fingerprint = batchFingerprint([...seen]);
  const conflict = () => new ConflictError(`batch id ${input.batchId} was already used for a different set of events`);
  let row: { stored: StoredResult | null; existing_fingerprint: string | null; existing_result: StoredResult | null };
  try {
    // Named: each connection parses and plans the statement once.
    const res = await pool.query({
      name: 'costguard_persist_batch_v5',
      text: PERSIST_SQL,
      values: [input.batchId, ...columns(unique), input.timezone, fingerprint, input.events.length, rollupShard(input.batchId)],
    });
    row = res.rows[0];
  } catch (err) {
    if ((err as { hint?: string }).hint === 'costguard_check') throw conflict();
    throw err;
  }
  if (row.stored) return { result: toBatchResult(input.batchId, input.events.length, row.stored), firstTime: true };
  let existing = row.existing_fingerprint !== null ? { fingerprint: row.existing_fingerprint, result: row.existing_result } : null;
  if (!existing) {
    // A concurrent attempt committed the batch after this statement's snapshot was taken.
    const again = await pool.query<{ fingerprint: string; result: StoredResult }>(
      'SELECT fingerprint, result FROM usage_batches WHERE batch_id = $1',
      [input.batchId],
    );
    existing = again.rows[0] ?? null;
  }
  if (!existing || existing.fingerprint !== fingerprint || !existing.result) throw conflict();
  return { result: toBatchResult(input.batchId, input.events.length, existing.result), firstTime: false };
}

/** What `persistFlush` did: the flush's result, and the events this call inserted itself. */
export interface FlushOutcome {
  result: BatchResult;
  /** Rows this call inserted (a retry finds earlier attempts' rows in `result` but not here). */
  inserted: CountedEvent[];
}

type CountedRow = { request_id: string; occurred_at: Date; cost_usd: string; unpriced: boolean };

const toCounted = (r: CountedRow): CountedEvent => ({
  requestId: r.request_id,
  occurredAt: new Date(r.occurred_at).toISOString(),
  costUsd: normalizeAmount(r.cost_usd),
  unpriced: r.unpriced,
});

/**
 * Persists a budget workflow's flush, run as a local activity. The same flush id can come again
 * with MORE events: when the workflow task that ran the flush did not complete (its worker died, or
 * it timed out), the next attempt replays the workflow with the signals that arrived since, so the
 * flush takes a longer run of the same pending events (never another set: the events it takes are
 * the oldest pending, in signal order). Its result is therefore not stored but read back: every
 * event of the flush that the ledger holds under this flush id, whichever attempt inserted it. So a
 * flush whose first attempt committed and whose result was lost is still counted, exactly once,
 * when the workflow applies the attempt that completes.
 *
 * Events skipped as already in the ledger are looked up in a second statement (with a fresh
 * snapshot, so it sees rows a concurrent attempt of the same flush committed while this one waited
 * on their keys); the ones under this flush id are the flush's own, the others are duplicates.
 */
export async function persistFlush(pool: Pool, input: PersistBatchInput): Promise<FlushOutcome> {
  const seen = new Set<string>();
  const unique = input.events.filter((e) => !seen.has(e.event.requestId) && seen.add(e.event.requestId));
  const rows = await insertFlushRows(pool, input.batchId, unique, input.timezone);
  return flushOutcome(input, unique, rows.counted, rows.inserted);
}

/** One flush statement for `events` (unique by request id): the rows it inserted and the flush's rows among the rest. */
async function insertFlushRows(
  pool: Pool,
  batchId: string,
  events: readonly PricedEvent[],
  timezone: string,
  ingestShard?: number,
): Promise<{ inserted: CountedEvent[]; counted: CountedEvent[]; userDays: UserDayTotal[] }> {
  let inserted: CountedEvent[];
  let userDays: UserDayTotal[] = [];
  if (ingestShard === undefined) {
    const res = await pool.query<CountedRow>({
      name: 'costguard_persist_flush_v4',
      text: FLUSH_SQL,
      values: [batchId, ...columns(events), timezone, rollupShard(batchId)],
    });
    inserted = res.rows.map(toCounted);
  } else {
    const res = await pool.query<CountedRow & { user_days: UserDayRow[] | null }>({
      name: 'costguard_persist_ingest_v3',
      text: INGEST_SQL,
      values: [batchId, ...columns(events), timezone, ingestShard],
    });
    inserted = [];
    for (const r of res.rows) {
      if (r.request_id === null) userDays = (r.user_days ?? []).map(toUserDay);
      else inserted.push(toCounted(r));
    }
  }
  let counted = inserted;
  if (inserted.length < events.length) {
    const fresh = new Set(inserted.map((e) => e.requestId));
    const skipped = events.map((e) => e.event.requestId).filter((id) => !fresh.has(id));
    const earlier = await pool.query<CountedRow>(
      'SELECT request_id, occurred_at, cost_usd::text AS cost_usd, unpriced FROM usage_ledger WHERE request_id = ANY($1::text[]) AND batch_id = $2',
      [skipped, batchId],
    );
    counted = [...inserted, ...earlier.rows.map(toCounted)];
  }
  return { inserted, counted, userDays };
}

function flushOutcome(input: PersistBatchInput, unique: readonly PricedEvent[], countedRows: CountedEvent[], inserted: CountedEvent[], poisoned = 0): FlushOutcome {
  const counted = [...countedRows].sort((a, b) => (a.requestId < b.requestId ? -1 : a.requestId > b.requestId ? 1 : 0));
  const byId = new Map(unique.map((e) => [e.event.requestId, e.event]));
  const tokens = { ...ZERO_USAGE };
  let cost = new Dec(0);
  for (const c of counted) {
    cost = cost.plus(c.costUsd);
    addTokens(tokens, byId.get(c.requestId)!.usage);
  }
  return {
    result: {
      batchId: input.batchId,
      received: input.events.length,
      counted: counted.length,
      duplicates: input.events.length - counted.length - poisoned,
      totals: { calls: counted.length, unpricedCalls: counted.filter((c) => c.unpriced).length, costUsd: normalizeAmount(cost), tokens },
      events: counted,
    },
    inserted,
  };
}

const TRANSIENT_SQLSTATE_CLASSES = new Set(['08', '40', '53', '55', '57', '58', 'XX']);
const DETERMINISTIC_SQLSTATE_CLASSES = new Set(['22', '23', '42', '54']);

/**
 * True when an error of a flush statement is tied to its input, so repeating the same statement
 * would fail the same way: PostgreSQL's data exceptions (22: a NUL byte, invalid JSON, a number
 * out of range), integrity violations (23: a CHECK), syntax or type errors from the data (42) and
 * program limits (54: an index row too large); and a TypeError or RangeError while building the
 * statement's parameters. Connection loss, timeouts, lock and resource errors are not: they are
 * retried (PostgreSQL being down must never lose accepted usage).
 */
export function isDeterministicDbError(err: unknown): boolean {
  if (err instanceof TypeError || err instanceof RangeError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || code.length !== 5) return false;
  const cls = code.slice(0, 2);
  return DETERMINISTIC_SQLSTATE_CLASSES.has(cls) && !TRANSIENT_SQLSTATE_CLASSES.has(cls);
}

/** A PostgreSQL error as one line, without the failing values (they may be what is poisoned). */
export function describeDbError(err: unknown): string {
  const e = err as { code?: string; message?: string; constraint?: string; column?: string };
  const parts = [e.message ?? String(err)];
  if (e.code) parts.push(`SQLSTATE ${e.code}`);
  if (e.constraint) parts.push(`constraint ${e.constraint}`);
  if (e.column) parts.push(`column ${e.column}`);
  return parts.join('; ');
}

/** A flush whose poisoned events were set aside: the outcome for the others, and each poisoned event with its error. */
export interface IsolatedFlushOutcome extends FlushOutcome {
  poisoned: { event: PricedEvent; error: string }[];
  /** Ingest flushes only: each user day the flush added to, with its exact new total. */
  userDays: UserDayTotal[];
}

/**
 * `persistFlush`, isolating events the database refuses: when the flush's statement fails for a
 * reason tied to its input (isDeterministicDbError), the events are split in halves and each half
 * persisted on its own, down to single events; an event that fails alone is returned in
 * `poisoned` (the caller dead-letters it) and every other event is persisted and counted, exactly
 * once, under the same flush id. A poisoned event costs about 2 log2(n) statements. Any other error
 * (PostgreSQL unreachable) is thrown for the caller to retry; a retry finds what was committed
 * through the flush id, so nothing counts twice.
 */
export async function persistFlushIsolating(pool: Pool, input: PersistBatchInput & { ingestShard?: number }): Promise<IsolatedFlushOutcome> {
  const seen = new Set<string>();
  const unique = input.events.filter((e) => !seen.has(e.event.requestId) && seen.add(e.event.requestId));
  const inserted: CountedEvent[] = [];
  const counted: CountedEvent[] = [];
  const userDays: UserDayTotal[] = [];
  const poisoned: IsolatedFlushOutcome['poisoned'] = [];
  const run = async (events: readonly PricedEvent[]): Promise<void> => {
    if (events.length === 0) return;
    try {
      const rows = await insertFlushRows(pool, input.batchId, events, input.timezone, input.ingestShard);
      inserted.push(...rows.inserted);
      counted.push(...rows.counted);
      userDays.push(...rows.userDays);
    } catch (err) {
      if (!isDeterministicDbError(err)) throw err;
      if (events.length === 1) {
        poisoned.push({ event: events[0]!, error: describeDbError(err) });
        return;
      }
      const mid = events.length >> 1;
      await run(events.slice(0, mid));
      await run(events.slice(mid));
    }
  };
  await run(unique);
  return { ...flushOutcome(input, unique, counted, inserted, poisoned.length), poisoned, userDays: mergeUserDays(userDays) };
}

/**
 * A user's day (or month) in the rollups' time zone after a flush: the exact total (every rollup shard row of
 * the scope, read in the flush's own statement) and what this flush added to it.
 */
export interface UserDayTotal {
  scope: string;
  /** `day` or `month`, in the rollups' time zone. */
  kind: 'day' | 'month';
  dayStartMs: number;
  totalUsd: string;
  deltaUsd: string;
}

type UserDayRow = { scope: string; kind: 'day' | 'month'; day: string; total: string; delta: string };

const toUserDay = (r: UserDayRow): UserDayTotal => ({ scope: r.scope, kind: r.kind, dayStartMs: Date.parse(r.day), totalUsd: normalizeAmount(r.total), deltaUsd: normalizeAmount(r.delta) });

/**
 * Day and month totals of the users of these (already committed) events, with their cost in them
 * as the change: what an ingest flush run again after its commit signals (it inserts nothing, so
 * its statement returns no user days).
 */
export async function readUserDays(pool: Pool, requestIds: readonly string[], timezone: string): Promise<UserDayTotal[]> {
  const r = await pool.query<{ scope: string; kind: 'day' | 'month'; day: Date; total: string; delta: string }>(
    `WITH mine AS (
       SELECT 'user:' || user_id AS scope, k.kind, date_trunc(k.kind, occurred_at, $2) AS day, sum(cost_usd) AS delta
       FROM usage_ledger CROSS JOIN (VALUES ('day'), ('month')) AS k(kind)
       WHERE request_id = ANY($1::text[]) GROUP BY 1, 2, 3)
     SELECT m.scope, m.kind, m.day, coalesce(t.cost_usd, 0)::text AS total, m.delta::text AS delta
     FROM mine m LEFT JOIN usage_rollup_totals t ON t.scope = m.scope AND t.period_kind = m.kind AND t.timezone = $2 AND t.period_start = m.day`,
    [requestIds, timezone],
  );
  return r.rows.map((row) => ({ scope: row.scope, kind: row.kind, dayStartMs: row.day.getTime(), totalUsd: normalizeAmount(row.total), deltaUsd: normalizeAmount(row.delta) }));
}

/** Sub-flushes of an isolated flush add to the same day rows in turn: the last total, the summed delta. */
function mergeUserDays(days: readonly UserDayTotal[]): UserDayTotal[] {
  const byKey = new Map<string, UserDayTotal>();
  for (const d of days) {
    const k = `${d.scope}\u0000${d.kind}\u0000${d.dayStartMs}`;
    const prev = byKey.get(k);
    if (!prev) byKey.set(k, { ...d });
    else {
      const total = new Dec(d.totalUsd).greaterThan(prev.totalUsd) ? d.totalUsd : prev.totalUsd;
      byKey.set(k, { ...prev, totalUsd: total, deltaUsd: normalizeAmount(new Dec(prev.deltaUsd).plus(d.deltaUsd)) });
    }
  }
  return [...byKey.values()];
}

/**
 * An ingest shard's flush: the ledger insert and its rollups in one statement, like FLUSH_SQL, with
 * the rollup rows written under the shard's own index (each shard adds to rows of its own: the
 * system and team rows every shard touches are never contended), and, for every user day the flush
 * touched, the day's exact new total (this row plus the scope's rows under other shards, read in
 * the same statement) and what this flush added. Returns the inserted rows, then one row whose
 * `user_days` holds those totals (its request_id is NULL).
 */
export const INGEST_SQL = `
WITH new_rows AS (
${insertRows('')}), deltas AS (
  SELECT s.scope, k.kind, date_trunc(k.kind, n.occurred_at, ${TIMEZONE_PARAM}) AS period_start, sum(n.cost_usd) AS cost_usd, count(*) AS calls,
         count(*) FILTER (WHERE n.unpriced) AS unpriced_calls,
         ${callTokenSums((sum, c) => `${sum} AS ${c}`, ',\n         ')},
         sum(n.avoided_usd) AS avoided_usd, count(*) FILTER (WHERE n.kind = 'cache_hit') AS cache_hits
  FROM new_rows n
  CROSS JOIN LATERAL ${SCOPES_SQL}
  CROSS JOIN (VALUES ('hour'), ('day'), ('month')) AS k(kind)
  WHERE s.scope IS NOT NULL AND NOT (s.facet AND k.kind = 'hour')
  GROUP BY 1, 2, 3
), rollup AS (
  INSERT INTO usage_rollups AS u (scope, period_kind, timezone, period_start, shard, ${ROLLUP_COLUMNS})
  SELECT d.scope, d.kind, ${TIMEZONE_PARAM}, d.period_start, ${after(2)}::smallint, d.cost_usd, d.calls, d.unpriced_calls,
         ${tokenSql((c) => `d.${c}`)}, d.avoided_usd, d.cache_hits
  FROM deltas d
  ORDER BY 1, 2, 4
  ${ROLLUP_ADD}
  RETURNING scope, period_kind, period_start, shard, cost_usd
), user_days AS (
  SELECT r.scope, r.period_kind AS kind, r.period_start AS day,
         (r.cost_usd + coalesce((SELECT sum(o.cost_usd) FROM usage_rollups o
                                 WHERE o.scope = r.scope AND o.period_kind = r.period_kind AND o.timezone = ${TIMEZONE_PARAM}
                                   AND o.period_start = r.period_start AND o.shard <> r.shard), 0))::text AS total,
         d.cost_usd::text AS delta
  FROM rollup r
  JOIN deltas d ON d.scope = r.scope AND d.kind = r.period_kind AND d.period_start = r.period_start
  WHERE r.period_kind IN ('day', 'month') AND r.scope LIKE 'user:%'
)
SELECT request_id, occurred_at, cost_usd::text AS cost_usd, unpriced, NULL::json AS user_days FROM new_rows
UNION ALL
SELECT NULL, NULL, NULL, NULL, (SELECT coalesce(json_agg(user_days), '[]'::json) FROM user_days)`;
