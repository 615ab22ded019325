/**
 * Prometheus metrics against the real stack: a known workload goes through Temporal, the budget
 * workflows and the ledger activity; then GET /metrics (the API, with its key) must agree with the
 * ledger (SQL), stay unchanged when batches are re-sent or replayed, and pass `promtool check metrics`.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLedgerActivities } from '../../activities/ledger.js';
import { createLogger } from '../../src/lib/logger.js';
import { startMetricsServer } from '../../src/metrics/server.js';
import { budgetWorkflowId, statusQuery } from '../../src/messages.js';
import { createPricingEngine } from '../../src/pricing/index.js';
import { type PromSample, parsePromText, promtoolCheckMetrics, promtoolPath, seriesOf, sumOf } from '../prom-text.js';
import { type Stack, eventually, sendUsage, startStack, type StackApi, startApi } from './helpers/stack.js';

const KEY = 'cg_metrics_key_0123456789abcdef';
const CONFIG = `
budgets:
  - { scope: system, period: day, amount: "100", thresholds: { warning: 0.8, critical: 0.95 } }
  - { scope: system, period: month, amount: "2000", thresholds: { warning: 0.85, critical: 0.98 } }
  - { scope: user, period: day, amount: "10", thresholds: { warning: 0.9, critical: 0.98 } }
  - { scope: "team:infra", period: day, amount: "0.5", currency: EUR, thresholds: { warning: 0.8, critical: 0.95 } }
metrics:
  topUsers: 2
  scrapeCacheMs: 0
`;

let stack: Stack;
let api: StackApi;
let app: FastifyInstance;

beforeAll(async () => {
  stack = await startStack({ configYaml: CONFIG });
  api = await startApi(stack, KEY, { lingerMs: 20 });
  ({ app } = api);
});
afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const at = () => new Date(Date.now() - 2000).toISOString();
function ev(requestId: string, userId: string, over: Record<string, unknown> = {}) {
  return { requestId, occurredAt: at(), provider: 'openai', model: 'gpt-4o-mini', userId, usage: { inputTokens: 1000, outputTokens: 100 }, ...over };
}

/** The workload: 3 users, a team, an unpriced model, a duplicate event within a batch. */
const BATCHES = [
  { scope: 'user:alice', batch: { batchId: 'm-a1', events: [ev('ma1', 'alice'), ev('ma2', 'alice', { usage: { inputTokens: 5000, outputTokens: 900 } }), ev('ma1', 'alice')] } },
  { scope: 'user:alice', batch: { batchId: 'm-a2', events: [ev('ma3', 'alice', { model: 'gpt-4o', team: 'infra', taskType: 'analysis', metadata: { status: 'error' } })] } },
  { scope: 'user:bob', batch: { batchId: 'm-b1', events: [ev('mb1', 'bob', { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', team: 'infra', taskType: 'summarization', metadata: { status: 'ok' } })] } },
  { scope: 'user:carol', batch: { batchId: 'm-c1', events: [ev('mc1', 'carol', { provider: 'acme', model: 'mystery-1' }), ev('mc2', 'carol')] } },
  // About $11 and $9: ranked by amount, not as text ("9..." > "11..." as strings).
  { scope: 'user:erin', batch: { batchId: 'm-e1', events: [ev('me1', 'erin', { model: 'gpt-4o', usage: { inputTokens: 4_400_000, outputTokens: 0 } })] } },
  { scope: 'user:frank', batch: { batchId: 'm-f1', events: [ev('mf1', 'frank', { model: 'gpt-4o', usage: { inputTokens: 3_600_000, outputTokens: 0 } })] } },
];
const EVENTS = 8; // distinct request ids above

async function scrape(headers: Record<string, string> = { authorization: `Bearer ${KEY}` }): Promise<{ status: number; text: string; samples: PromSample[] }> {
  const res = await app.inject({ method: 'GET', url: '/metrics', headers });
  return { status: res.statusCode, text: res.body, samples: res.statusCode === 200 ? parsePromText(res.body) : [] };
}

interface LedgerTotals {
  calls: number;
  cost: number;
  unpriced: number;
  input: number;
  output: number;
}
async function ledgerTotals(where = 'true', params: unknown[] = []): Promise<LedgerTotals> {
  const { rows } = await stack.pool.query<LedgerTotals>(
    `SELECT count(*)::int AS calls, coalesce(sum(cost_usd), 0)::float8 AS cost, (count(*) FILTER (WHERE unpriced))::int AS unpriced,
            coalesce(sum(input_tokens), 0)::int AS input, coalesce(sum(output_tokens), 0)::int AS output
     FROM usage_ledger WHERE ${where}`,
    params,
  );
  return rows[0]!;
}

function expectCountersEqualLedger(samples: PromSample[], ledger: LedgerTotals) {
  expect(sumOf(samples, 'llm_api_calls_total')).toBe(ledger.calls);
  expect(sumOf(samples, 'llm_cost_usd_total')).toBeCloseTo(ledger.cost, 12);
  expect(sumOf(samples, 'costguard_unpriced_events_total')).toBe(ledger.unpriced);
  expect(sumOf(samples, 'llm_token_usage_sum', { kind: 'input' })).toBe(ledger.input);
  expect(sumOf(samples, 'llm_token_usage_sum', { kind: 'output' })).toBe(ledger.output);
  expect(sumOf(samples, 'llm_token_usage_count', { kind: 'input' })).toBe(ledger.calls);
  expect(sumOf(samples, 'costguard_ingestion_lag_seconds_count')).toBe(ledger.calls);
}

describe('GET /metrics after a known workload', () => {
  let first: PromSample[];

  beforeAll(async () => {
    for (const { scope, batch } of BATCHES) await sendUsage(stack, scope, batch);
    await eventually(scrape, (s) => sumOf(s.samples, 'llm_api_calls_total') === EVENTS, 60_000, 'every event counted in the metrics');
    first = (await scrape()).samples;
  });

  it('needs the API key, as a bearer token or x-api-key', async () => {
    expect((await scrape({})).status).toBe(401);
    expect((await scrape({ authorization: 'Bearer wrong-key-0123456789' })).status).toBe(401);
    const viaHeader = await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': KEY } });
    expect(viaHeader.statusCode).toBe(200);
    expect(viaHeader.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('counts cost, calls, tokens and unpriced events exactly as the ledger holds them', async () => {
    const ledger = await ledgerTotals();
    expect(ledger.calls).toBe(EVENTS);
    expect(ledger.unpriced).toBe(1);
    expectCountersEqualLedger(first, ledger);
    // Per provider and model, too.
    const { rows } = await stack.pool.query<{ provider: string; model: string; calls: number; cost: number }>(
      'SELECT provider, model, count(*)::int AS calls, sum(cost_usd)::float8 AS cost FROM usage_ledger GROUP BY 1, 2',
    );
    expect(rows).toHaveLength(4); // gpt-4o-mini, gpt-4o, claude, mystery-1
    for (const r of rows) {
      expect(sumOf(first, 'llm_api_calls_total', { provider: r.provider, model: r.model })).toBe(r.calls);
      expect(sumOf(first, 'llm_cost_usd_total', { provider: r.provider, model: r.model })).toBeCloseTo(r.cost, 12);
    }
    expect(sumOf(first, 'costguard_unpriced_events_total', { provider: 'acme', model: 'mystery-1' })).toBe(1);
    // The original labels: cost and calls by task type, calls by status (the wrappers' metadata.status;
    // none recorded, or `ok`, is `success`), tokens by model.
    const byTask = await stack.pool.query<{ task_type: string; calls: number; cost: number }>(
      'SELECT task_type, count(*)::int AS calls, sum(cost_usd)::float8 AS cost FROM usage_ledger GROUP BY 1',
    );
    expect(byTask.rows.map((r) => r.task_type).sort()).toEqual(['analysis', 'default', 'summarization']);
    for (const r of byTask.rows) {
      expect(sumOf(first, 'llm_api_calls_total', { task_type: r.task_type })).toBe(r.calls);
      expect(sumOf(first, 'llm_cost_usd_total', { task_type: r.task_type })).toBeCloseTo(r.cost, 12);
    }
    expect(sumOf(first, 'llm_api_calls_total', { status: 'error' })).toBe(1);
    expect(sumOf(first, 'llm_api_calls_total', { status: 'success' })).toBe(EVENTS - 1);
    expect(sumOf(first, 'llm_api_calls_total', { task_type: 'analysis', status: 'error', model: 'gpt-4o' })).toBe(1);
    for (const r of rows) expect(sumOf(first, 'llm_token_usage_count', { provider: r.provider, model: r.model, kind: 'input' })).toBe(r.calls);
    expect(sumOf(first, 'llm_token_usage_sum', { model: 'gpt-4o', kind: 'input' })).toBe(1000 + 4_400_000 + 3_600_000);
    // user_id is opt-in: not a label by default.
    expect(seriesOf(first, 'llm_cost_usd_total').every((s) => !('user_id' in s.labels))).toBe(true);
    // Operator metrics: each stored flush (a workflow may merge signalled batches into one flush)
    // has its size observed; none failed, none replayed.
    const stored = sumOf(first, 'costguard_flush_duration_seconds_count', { outcome: 'stored' });
    expect(stored).toBeGreaterThanOrEqual(5); // at least one flush per user workflow
    expect(sumOf(first, 'costguard_flush_batch_events_count')).toBe(stored);
    expect(sumOf(first, 'costguard_flush_batch_events_sum')).toBeGreaterThanOrEqual(EVENTS);
    expect(sumOf(first, 'costguard_flush_duration_seconds_count', { outcome: 'error' })).toBe(0);
    expect(sumOf(first, 'costguard_flush_duration_seconds_count', { outcome: 'replayed' })).toBe(0);
  });

  it('reads the state gauges from the ledger rollups: cost rate, budget usage, top users', async () => {
    const total = (await ledgerTotals()).cost;
    const byUser = await stack.pool.query<{ user_id: string; cost: number }>(
      'SELECT user_id, sum(cost_usd)::float8 AS cost FROM usage_ledger GROUP BY 1 ORDER BY 2 DESC, 1',
    );
    const infra = (await ledgerTotals('team = $1', ['infra'])).cost;
    const ratio = (type: string, scope: string) => seriesOf(first, 'budget_usage_ratio').find((s) => s.labels.budget_type === type && s.labels.scope === scope)?.value;
    expect(ratio('daily', 'system')).toBeCloseTo(total / 100, 12);
    expect(ratio('monthly', 'system')).toBeCloseTo(total / 2000, 12);
    expect(ratio('user_daily_max', 'user')).toBeCloseTo(byUser.rows[0]!.cost / 10, 12);
    expect(ratio('daily', 'team:infra')).toBeCloseTo(infra / (0.5 / 0.92), 9);
    // The original query budget_usage_ratio{budget_type="daily"} finds the system's daily budget,
    // beside the named scopes' daily budgets (told apart by scope), never the per-user maximum.
    const daily = seriesOf(first, 'budget_usage_ratio').filter((s) => s.labels.budget_type === 'daily');
    expect(daily.map((s) => s.labels.scope).sort()).toEqual(['system', 'team:infra']);
    // Every event happened within the last minute, so the rolling hour holds all of them unless the
    // hour turned in between; then the previous hour's share is less than all of it.
    const perHour = sumOf(first, 'llm_cost_per_hour_usd');
    expect(perHour).toBeLessThanOrEqual(total + 1e-12);
    expect(perHour).toBeGreaterThan(0);
    const top = seriesOf(first, 'costguard_top_user_cost_usd').sort((a, b) => Number(a.labels.rank) - Number(b.labels.rank));
    expect(byUser.rows.slice(0, 2).map((r) => r.user_id)).toEqual(['erin', 'frank']);
    expect(top.map((s) => [s.labels.rank, s.labels.user_id])).toEqual([['1', 'erin'], ['2', 'frank']]);
    expect(top[0]!.value).toBeCloseTo(byUser.rows[0]!.cost, 12);
  });

  it('counts nothing again when a batch is re-sent, replayed by a retried activity, or its events re-batched', async () => {
    const before = (await scrape()).samples;
    // 1. Re-sent to the workflow (a client retry): deduped by batch id before any activity runs.
    await sendUsage(stack, BATCHES[0]!.scope, BATCHES[0]!.batch);
    // 2. The ledger activity itself, on the same registry: a new batch, then the same batch again as
    //    Temporal retries it after a lost completion (it replays the stored result), then a new batch
    //    of events already counted.
    const activities = createLedgerActivities({
      pool: stack.pool,
      pricing: createPricingEngine(stack.config),
      timezone: stack.config.timezone,
      clock: Date.now,
      logger: createLogger('silent'),
      metrics: stack.metrics,
    });
    const direct = { batchId: 'm-direct', events: [ev('md1', 'dave', { usage: { inputTokens: 3000, outputTokens: 300 } })] };
    const stored = await activities.recordUsageBatch(direct);
    const replayed = await activities.recordUsageBatch(direct);
    expect(stored.counted).toHaveLength(1);
    expect(replayed).toEqual(stored); // the same result on every attempt...
    const rebatched = await activities.recordUsageBatch({ batchId: 'm-again', events: [ev('mb1', 'bob'), ev('mc2', 'carol')] });
    expect(rebatched.counted).toHaveLength(0);
    await eventually(
      () => stack.client.workflow.getHandle(budgetWorkflowId('user:alice')).query(statusQuery),
      (s) => s.counters.duplicateBatches === 1,
      30_000,
      'the re-sent batch seen by the workflow',
    );
    const after = (await scrape()).samples;
    // ...but the metrics count its event once, like the ledger.
    const ledger = await ledgerTotals();
    expect(ledger.calls).toBe(EVENTS + 1);
    expectCountersEqualLedger(after, ledger);
    expect(sumOf(after, 'costguard_flush_duration_seconds_count', { outcome: 'replayed' })).toBe(1);
    expect(sumOf(after, 'costguard_duplicate_events_total') - sumOf(before, 'costguard_duplicate_events_total')).toBe(2);
  });

  it('passes promtool check metrics', async (ctx) => {
    const promtool = promtoolPath();
    if (!promtool) {
      console.warn('promtool not installed (Debian package "prometheus"; scripts/setup.sh installs it as root): skipping promtool check metrics');
      ctx.skip();
      return;
    }
    const { text } = await scrape();
    const check = promtoolCheckMetrics(promtool, text);
    expect(check.output).toBe('');
    expect(check.status).toBe(0);
  });
});

describe('the worker metrics listener', () => {
  it('serves the same registry at /metrics without a key, and nothing else', async () => {
    const server = await startMetricsServer(stack.metrics, { host: '127.0.0.1', port: 0, logger: createLogger('silent') });
    try {
      const res = await fetch(server.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe(stack.metrics.contentType);
      const samples = parsePromText(await res.text());
      expect(sumOf(samples, 'llm_api_calls_total')).toBe(EVENTS + 1);
      expect((await fetch(server.url.replace('/metrics', '/'))).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
