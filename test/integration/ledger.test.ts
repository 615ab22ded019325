import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLedgerActivities } from '../../activities/ledger.js';
import { persistBatch, persistFlush, type PricedEvent } from '../../src/db/ledger.js';
import { migrate } from '../../src/db/migrate.js';
import { addAmounts, normalizeAmount } from '../../src/domain/money.js';
import { PricingEngine } from '../../src/domain/pricing.js';
import { type UsageEvent, assertUsageEvents } from '../../src/domain/usage.js';
import { createLogger } from '../../src/lib/logger.js';
import { loadCatalog } from '../../src/pricing/genai-catalog.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

const NOW = Date.parse('2026-03-15T12:00:00Z');
const TZ = 'UTC';
let db: TestDatabase;
const pricing = new PricingEngine(loadCatalog(), [{ provider: 'openai', model: 'gpt-4', inputPer1k: '0.03', outputPer1k: '0.06' }]);

function event(requestId: string, over: Partial<Record<string, unknown>> = {}): Record<string, unknown> {
  return {
    requestId,
    occurredAt: '2026-03-15T10:00:00Z',
    provider: 'openai',
    model: 'gpt-4o-mini',
    userId: 'alice',
    usage: { inputTokens: 1000, outputTokens: 100 },
    ...over,
  };
}

function priced(raw: Record<string, unknown>[]): PricedEvent[] {
  return assertUsageEvents(raw, { now: NOW, backfill: true }).map((e: UsageEvent) => ({
    event: e,
    price: pricing.price({ provider: e.provider, model: e.model, occurredAtMs: Date.parse(e.occurredAt), usage: e.usage }),
  }));
}

async function ledgerSum(where = 'true', params: unknown[] = []) {
  const r = await db.pool.query<{ cost: string | null; calls: string }>(
    `SELECT sum(cost_usd)::text AS cost, count(*)::text AS calls FROM usage_ledger WHERE ${where}`,
    params,
  );
  return { cost: normalizeAmount(r.rows[0]!.cost ?? '0'), calls: Number(r.rows[0]!.calls) };
}

async function rollup(scope: string, kind: string, start: string) {
  const r = await db.pool.query<{ cost_usd: string; calls: string }>(
    `SELECT cost_usd::text, calls::text FROM usage_rollup_totals WHERE scope = $1 AND period_kind = $2 AND period_start = $3 AND timezone = $4`,
    [scope, kind, start, TZ],
  );
  return r.rows[0] ? { cost: normalizeAmount(r.rows[0].cost_usd), calls: Number(r.rows[0].calls) } : null;
}

beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});
afterAll(async () => {
  await db?.drop();
});

describe('migrations', () => {
  it('apply from empty, and a second run is a no-op', async () => {
    const first = await migrate(db.url);
    expect(first.applied).toEqual(['0001_usage_ledger', '0002_budget_configs', '0003_notification_deliveries', '0004_alerts', '0005_reports', '0006_rollup_day_index', '0007_dead_letters_and_estimates', '0008_cache_hits']);
    const second = await migrate(db.url);
    expect(second.applied).toEqual([]);
    const tables = await db.pool.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(['alert_events', 'alert_incidents', 'alert_notification_claims', 'budget_configs', 'notification_deliveries', 'reports', 'schema_migrations', 'usage_batches', 'usage_dead_letters', 'usage_ledger', 'usage_rollup_totals', 'usage_rollups']);
  });

  it('two concurrent runs on an empty database apply each migration exactly once', async () => {
    const fresh = await createTestDatabase({ migrate: false });
    try {
      const results = await Promise.all([migrate(fresh.url), migrate(fresh.url)]);
      expect(results.flatMap((r) => r.applied).sort()).toEqual(['0001_usage_ledger', '0002_budget_configs', '0003_notification_deliveries', '0004_alerts', '0005_reports', '0006_rollup_day_index', '0007_dead_letters_and_estimates', '0008_cache_hits']);
    } finally {
      await fresh.drop();
    }
  });
});

describe('persistBatch', () => {
  beforeEach(async () => {
    await db.pool.query('TRUNCATE usage_ledger, usage_rollups, usage_batches');
  });

  it('inserts a batch and returns the exact totals of what it counted', async () => {
    const result = await persistBatch(db.pool, {
      batchId: 'b1',
      timezone: TZ,
      events: priced([event('r1'), event('r2', { model: 'gpt-4', usage: { inputTokens: 2000, outputTokens: 500 } })]),
    });
    expect(result).toMatchObject({ batchId: 'b1', received: 2, counted: 2, duplicates: 0 });
    // gpt-4o-mini: 1000 x 0.15/M + 100 x 0.6/M = 0.00021; gpt-4 override: 2 x 0.03 + 0.5 x 0.06 = 0.09
    expect(result.totals.costUsd).toBe('0.09021');
    expect(result.totals.tokens).toMatchObject({ inputTokens: 3000, outputTokens: 600 });
    expect(await ledgerSum()).toEqual({ cost: '0.09021', calls: 2 });
    const row = await db.pool.query('SELECT * FROM usage_ledger WHERE request_id = $1', ['r2']);
    expect(row.rows[0]).toMatchObject({ price_source: 'override', matched_model: 'gpt-4', catalog_version: 'config', unpriced: false });
  });

  it('counts a duplicate within a batch once', async () => {
    const result = await persistBatch(db.pool, { batchId: 'b2', timezone: TZ, events: priced([event('dup'), event('dup'), event('x')]) });
    expect(result).toMatchObject({ received: 3, counted: 2, duplicates: 1 });
    expect(await ledgerSum()).toEqual({ cost: '0.00042', calls: 2 });
    expect(await rollup('system', 'day', '2026-03-15T00:00:00Z')).toEqual({ cost: '0.00042', calls: 2 });
  });

  it('counts an event repeated across batches once, and the second batch reports only what is new', async () => {
    await persistBatch(db.pool, { batchId: 'b3', timezone: TZ, events: priced([event('a'), event('b')]) });
    const second = await persistBatch(db.pool, { batchId: 'b4', timezone: TZ, events: priced([event('b'), event('c')]) });
    expect(second).toMatchObject({ received: 2, counted: 1, duplicates: 1 });
    expect(second.events.map((e) => e.requestId)).toEqual(['c']);
    expect(second.totals.costUsd).toBe('0.00021');
    expect(await ledgerSum()).toEqual({ cost: '0.00063', calls: 3 });
    expect(await rollup('user:alice', 'month', '2026-03-01T00:00:00Z')).toEqual({ cost: '0.00063', calls: 3 });
  });

  it('returns the first result again when the same batch is retried after its commit', async () => {
    // The activity committed, then its completion was lost; Temporal retries it with the same input.
    const events = priced([event('p'), event('q'), event('p')]);
    const first = await persistBatch(db.pool, { batchId: 'retry-me', timezone: TZ, events });
    const retry = await persistBatch(db.pool, { batchId: 'retry-me', timezone: TZ, events });
    expect(retry).toEqual(first);
    expect(retry.counted).toBe(2);
    expect(await ledgerSum()).toEqual({ cost: '0.00042', calls: 2 });
    expect(await rollup('system', 'hour', '2026-03-15T10:00:00Z')).toEqual({ cost: '0.00042', calls: 2 });
  });

  it('returns the same result to two concurrent attempts of one batch, counting it once', async () => {
    const events = priced(Array.from({ length: 50 }, (_, i) => event(`c${i}`)));
    const [a, b] = await Promise.all([
      persistBatch(db.pool, { batchId: 'concurrent', timezone: TZ, events }),
      persistBatch(db.pool, { batchId: 'concurrent', timezone: TZ, events }),
    ]);
    expect(a).toEqual(b);
    expect(a.counted).toBe(50);
    expect(await ledgerSum()).toEqual({ cost: '0.0105', calls: 50 });
  });

  it('refuses a batch id reused for different events, and writes nothing', async () => {
    await persistBatch(db.pool, { batchId: 'reused', timezone: TZ, events: priced([event('m1')]) });
    await expect(persistBatch(db.pool, { batchId: 'reused', timezone: TZ, events: priced([event('m2')]) })).rejects.toThrow(
      /already used for a different set of events/,
    );
    expect(await ledgerSum()).toEqual({ cost: '0.00021', calls: 1 });
  });

  it('lets only one of two concurrent batches sharing an id but not events commit', async () => {
    const outcomes = await Promise.allSettled([
      persistBatch(db.pool, { batchId: 'race', timezone: TZ, events: priced([event('k1'), event('k2')]) }),
      persistBatch(db.pool, { batchId: 'race', timezone: TZ, events: priced([event('k3')]) }),
    ]);
    const ok = outcomes.filter((o) => o.status === 'fulfilled');
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(String(failed[0]?.reason)).toMatch(/already used for a different set of events/);
    const winner = (ok[0] as PromiseFulfilledResult<{ counted: number; totals: { costUsd: string } }>).value;
    expect(await ledgerSum()).toEqual({ cost: winner.totals.costUsd, calls: winner.counted });
  });

  it('records an unknown model as unpriced with its reason, never dropped', async () => {
    const result = await persistBatch(db.pool, {
      batchId: 'unpriced',
      timezone: TZ,
      events: priced([event('u1', { model: 'no-such-model-9000' }), event('u2')]),
    });
    expect(result.totals).toMatchObject({ calls: 2, unpricedCalls: 1, costUsd: '0.00021' });
    const row = await db.pool.query('SELECT unpriced, unpriced_reason, cost_usd::text FROM usage_ledger WHERE request_id = $1', ['u1']);
    expect(row.rows[0]).toMatchObject({ unpriced: true, cost_usd: '0' });
    expect(row.rows[0].unpriced_reason).toMatch(/unknown model "no-such-model-9000"/);
    const r = await db.pool.query(`SELECT unpriced_calls::int FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'day'`);
    expect(r.rows[0]).toEqual({ unpriced_calls: 1 });
  });

  it('keeps every rollup equal to the sum of its ledger rows under concurrent overlapping batches', async () => {
    const users = ['u1', 'u2', 'u3'];
    const models = ['gpt-4o-mini', 'gpt-4o', 'gpt-4', 'claude-3-5-sonnet-20241022'];
    const providers: Record<string, string> = { 'claude-3-5-sonnet-20241022': 'anthropic' };
    const batches = Array.from({ length: 12 }, (_, b) =>
      priced(
        Array.from({ length: 40 }, (_, i) => {
          const n = b * 25 + i; // batches overlap by 15 events
          const model = models[n % models.length]!;
          return event(`ev${n}`, {
            userId: users[n % users.length],
            model,
            provider: providers[model] ?? 'openai',
            team: n % 2 ? 'search' : undefined,
            occurredAt: new Date(Date.parse('2026-02-27T20:00:00Z') + n * 47 * 60_000).toISOString(),
            usage: { inputTokens: 1000 + n, cacheReadTokens: n % 500, outputTokens: 10 + n },
          });
        }),
      ),
    );
    const results = await Promise.all(batches.map((events, b) => persistBatch(db.pool, { batchId: `ov${b}`, timezone: TZ, events })));
    const distinct = 11 * 25 + 40;
    expect(results.reduce((s, r) => s + r.counted, 0)).toBe(distinct);
    expect(addAmounts('0', ...results.map((r) => r.totals.costUsd))).toBe((await ledgerSum()).cost);

    // Every rollup row equals the ledger sum over its scope and period, exactly.
    const mismatches = await db.pool.query(`
      WITH expected AS (
        SELECT s.scope, k.kind, date_trunc(k.kind, l.occurred_at, '${TZ}') AS period_start, sum(l.cost_usd) AS cost, count(*) AS calls,
               sum(l.input_tokens) AS input_tokens
        FROM usage_ledger l
        CROSS JOIN LATERAL (VALUES ('system', false), ('user:' || l.user_id, false), ('team:' || l.team, false),
          ('project:' || l.project, false), ('system|provider:' || l.provider, true), ('system|model:' || l.model, true),
          ('system|task:' || l.task_type, true)) s(scope, facet)
        CROSS JOIN (VALUES ('hour'), ('day'), ('month')) k(kind)
        WHERE s.scope IS NOT NULL AND NOT (s.facet AND k.kind = 'hour') GROUP BY 1, 2, 3)
      SELECT * FROM expected e FULL JOIN usage_rollup_totals r
        ON r.scope = e.scope AND r.period_kind = e.kind AND r.period_start = e.period_start AND r.timezone = '${TZ}'
      WHERE r.cost_usd IS DISTINCT FROM e.cost OR r.calls IS DISTINCT FROM e.calls OR r.input_tokens IS DISTINCT FROM e.input_tokens`);
    expect(mismatches.rows).toEqual([]);
    const months = await db.pool.query(`SELECT count(*)::int AS n FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'month'`);
    expect(months.rows[0].n).toBe(2); // the data spans February and March
  });

  it('puts periods on calendar boundaries of the configured time zone', async () => {
    // 2025-10-25 22:30 UTC is 00:30 on the 26th in Paris (UTC+2 until 03:00 that night, when
    // clocks go back): the event belongs to Paris' 26th, which began at 22:00 UTC and lasts 25 hours.
    await persistBatch(db.pool, {
      batchId: 'tz',
      timezone: 'Europe/Paris',
      events: priced([event('tz1', { occurredAt: '2025-10-25T22:30:00Z' }), event('tz2', { occurredAt: '2025-10-26T22:59:00Z' })]),
    });
    const r = await db.pool.query<{ period_start: Date }>(
      `SELECT period_start FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'day' AND timezone = 'Europe/Paris'`,
    );
    expect(r.rows.map((x) => x.period_start.toISOString())).toEqual(['2025-10-25T22:00:00.000Z']); // Paris midnight, UTC+2
  });
});

describe('persistFlush (a budget workflow flush, run as a local activity)', () => {
  beforeEach(async () => {
    await db.pool.query('TRUNCATE usage_ledger, usage_rollups, usage_batches');
  });

  it('returns what it inserted, with duplicates of other batches left out', async () => {
    await persistFlush(db.pool, { batchId: 'other', timezone: TZ, events: priced([event('d1')]) });
    const { result, inserted } = await persistFlush(db.pool, { batchId: 'f1', timezone: TZ, events: priced([event('d1'), event('n1'), event('n1')]) });
    expect(result).toMatchObject({ batchId: 'f1', received: 3, counted: 1, duplicates: 2 });
    expect(result.events.map((e) => e.requestId)).toEqual(['n1']);
    expect(inserted.map((e) => e.requestId)).toEqual(['n1']);
    expect(result.totals).toMatchObject({ calls: 1, costUsd: '0.00021', tokens: { inputTokens: 1000, outputTokens: 100 } });
  });

  it('counts a first attempt whose result was lost when the next attempt comes with more events', async () => {
    // Attempt 1 of flush-7 committed [a, b]; its workflow task timed out, and the replay took the
    // signals that arrived since: flush-7 is now [a, b, c]. The result must hold all three.
    const first = await persistFlush(db.pool, { batchId: 'chain/flush-7', timezone: TZ, events: priced([event('a'), event('b')]) });
    const second = await persistFlush(db.pool, { batchId: 'chain/flush-7', timezone: TZ, events: priced([event('a'), event('b'), event('c')]) });
    expect(first.result.events.map((e) => e.requestId)).toEqual(['a', 'b']);
    expect(second.result.events.map((e) => e.requestId)).toEqual(['a', 'b', 'c']);
    expect(second.result).toMatchObject({ received: 3, counted: 3, duplicates: 0 });
    expect(second.result.totals.costUsd).toBe('0.00063');
    expect(second.inserted.map((e) => e.requestId)).toEqual(['c']);
    // The same attempt again returns the same result and writes nothing.
    const third = await persistFlush(db.pool, { batchId: 'chain/flush-7', timezone: TZ, events: priced([event('a'), event('b'), event('c')]) });
    expect(third.result).toEqual(second.result);
    expect(third.inserted).toEqual([]);
    expect(await ledgerSum()).toEqual({ cost: '0.00063', calls: 3 });
    expect(await rollup('user:alice', 'day', '2026-03-15T00:00:00Z')).toEqual({ cost: '0.00063', calls: 3 });
  });

  it('gives concurrent attempts of one flush the whole flush, counting each event once', async () => {
    const small = priced(Array.from({ length: 40 }, (_, i) => event(`k${String(i).padStart(2, '0')}`)));
    const large = priced(Array.from({ length: 60 }, (_, i) => event(`k${String(i).padStart(2, '0')}`)));
    const [a, b] = await Promise.all([
      persistFlush(db.pool, { batchId: 'twin', timezone: TZ, events: small }),
      persistFlush(db.pool, { batchId: 'twin', timezone: TZ, events: large }),
    ]);
    expect(b.result.counted).toBe(60);
    expect(a.result.counted).toBe(40);
    expect(a.inserted.length + b.inserted.length).toBe(60);
    expect(await ledgerSum()).toEqual({ cost: '0.0126', calls: 60 });
    expect(await rollup('system', 'day', '2026-03-15T00:00:00Z')).toEqual({ cost: '0.0126', calls: 60 });
  });
});

describe('recordUsageBatch activity', () => {
  const logger = createLogger('silent');
  const activities = () => createLedgerActivities({ pool: db.pool, pricing, timezone: TZ, clock: () => NOW, logger });

  beforeEach(async () => {
    await db.pool.query('TRUNCATE usage_ledger, usage_rollups, usage_batches');
  });

  it('prices and persists raw events, returning each counted event with its details', async () => {
    const result = await activities().recordUsageBatch({ batchId: 'act1', events: [event('a1'), event('a2', { provider: 'OpenAI', taskType: 'chat' })] });
    expect(result).toMatchObject({ received: 2, duplicates: 0, rejected: [] });
    expect(result.counted).toEqual([
      { requestId: 'a1', occurredAt: '2026-03-15T10:00:00.000Z', costUsd: '0.00021', unpriced: false, provider: 'openai', model: 'gpt-4o-mini', taskType: 'default',
        usage: { inputTokens: 1000, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 100, reasoningTokens: 0 } },
      { requestId: 'a2', occurredAt: '2026-03-15T10:00:00.000Z', costUsd: '0.00021', unpriced: false, provider: 'openai', model: 'gpt-4o-mini', taskType: 'chat',
        usage: { inputTokens: 1000, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 100, reasoningTokens: 0 } },
    ]);
  });

  it.each([
    ['negative tokens', { usage: { inputTokens: -1 } }, '[0].usage.inputTokens'],
    ['fractional tokens', { usage: { inputTokens: 1.5 } }, '[0].usage.inputTokens'],
    ['NaN tokens', { usage: { outputTokens: Number.NaN } }, '[0].usage.outputTokens'],
    ['absurd tokens', { usage: { inputTokens: 2e9 } }, '[0].usage.inputTokens'],
    ['cache above input', { usage: { inputTokens: 10, cacheReadTokens: 20 } }, '[0].usage.cacheReadTokens'],
    ['empty provider', { provider: '  ' }, '[0].provider'],
    ['empty model', { model: '' }, '[0].model'],
    ['unparseable time', { occurredAt: 'yesterday' }, '[0].occurredAt'],
    ['time two days ahead', { occurredAt: '2026-03-17T12:00:00Z' }, '[0].occurredAt'],
  ])('refuses an event with %s, naming the field, writes nothing of it, and keeps its batch-mates', async (_name, over, path) => {
    const result = await activities().recordUsageBatch({ batchId: `bad-${_name}`, events: [event('bad', over), event('good')] });
    expect(result.rejected).toHaveLength(1);
    expect(result.rejected[0]).toMatchObject({ index: 0, requestId: 'bad' });
    expect(result.rejected[0]!.issues.map((i) => i.path)).toContain(path);
    expect(result.counted.map((c) => c.requestId)).toEqual(['good']);
    expect(await ledgerSum()).toEqual({ cost: '0.00021', calls: 1 });
    // A retry refuses the same event and returns the same result.
    expect(await activities().recordUsageBatch({ batchId: `bad-${_name}`, events: [event('bad', over), event('good')] })).toEqual(result);
  });

  it('refuses a batch without a batch id or events array as non-retryable', async () => {
    const err = await activities().recordUsageBatch({ batchId: '', events: [] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ type: 'ValidationError', nonRetryable: true });
    const noTargets = await activities().flushUsage({ batchId: 'x', events: [], targets: undefined as never }).catch((e: unknown) => e);
    expect(noTargets).toMatchObject({ type: 'ValidationError', nonRetryable: true });
  });

  it('flushUsage sums what it newly counted per target period, with late and unpriced usage apart', async () => {
    const day = { spec: 'day', timezone: 'UTC', key: 'day:2026-03-15@UTC', startMs: Date.parse('2026-03-15T00:00:00Z'), endMs: Date.parse('2026-03-16T00:00:00Z') };
    const summary = await activities().flushUsage({
      batchId: 'sum1',
      targets: [day],
      events: [
        event('s1'),
        event('s2', { model: 'gpt-4', usage: { inputTokens: 2000, outputTokens: 500 }, taskType: 'chat' }),
        event('s3', { occurredAt: '2026-03-14T23:00:00Z' }),
        event('s4', { occurredAt: '2026-03-16T01:00:00Z' }),
        event('s5', { provider: 'acme', model: 'mystery-1' }),
        event('s1'),
      ],
    });
    expect(summary).toMatchObject({ batchId: 'sum1', received: 6, counted: 5, duplicates: 1, late: 1, rejected: [] });
    expect(summary.unpriced).toEqual([{ provider: 'acme', model: 'mystery-1', reason: 'unknown_provider', calls: 1 }]);
    const current = summary.deltas.find((d) => !d.ahead)!;
    expect(current).toMatchObject({ spec: 'day', key: 'day:2026-03-15@UTC', totals: { costUsd: '0.09021', calls: 3, unpricedCalls: 1 } });
    expect(current.totals.byModel).toEqual([
      { key: 'gpt-4o-mini', costUsd: '0.00021', calls: 1 },
      { key: 'gpt-4', costUsd: '0.09', calls: 1 },
      { key: 'mystery-1', costUsd: '0', calls: 1 },
    ]);
    expect(summary.deltas.find((d) => d.ahead)).toMatchObject({ key: 'day:2026-03-16@UTC', totals: { costUsd: '0.00021', calls: 1 } });
    expect(await ledgerSum()).toEqual({ cost: '0.09063', calls: 5 });
  });
});
