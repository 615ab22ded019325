/**
 * The ingest tier on the real stack: CostTracker -> ingest shards `ingest/<n>` -> one flush (ledger
 * + exact rollups) -> a user's budget workflow hears only of material change, with exact totals.
 * Runs with shards that continue-as-new every few dozen history events, so every test also crosses
 * continue-as-new.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CostTracker } from '../../src/client/index.js';
import { encodeBatch, shardOf } from '../../src/domain/ingest.js';
import { Dec } from '../../src/domain/money.js';
import {
  INGEST_WORKFLOW_TYPE,
  ingestWorkflowId,
  budgetWorkflowId,
  ingestSignal,
  ingestStatusQuery,
  scopeTotalsSignal,
  statusQuery,
} from '../../src/messages.js';
import type { BudgetStatus } from '../../src/domain/budget-status.js';
import { recordHistory } from './helpers/histories.js';
import { rollupMismatches } from './helpers/worker-process.js';
import { temporalTarget } from './helpers/cluster.js';
import { eventually, type Stack, type StackApi, startApi, startStack } from './helpers/stack.js';

const KEY = 'cg_ingest_test_key_0123456789ab';
const SHARDS = 2;
// gpt-4o-mini at 1,000 input and 100 output tokens costs $0.00021; a user's day budget of $0.05
// makes a step (5%) of $0.0025, about 12 events.
const EVENT_USD = '0.00021';
const STEP_USD = '0.0025';
let stack: Stack;
let api: StackApi;
let app: FastifyInstance;
let tracker: CostTracker;

beforeAll(async () => {
  stack = await startStack({
    configYaml: `budgets:
  - { scope: user, period: day, amount: "0.05", thresholds: { warning: 0.5, critical: 0.9 } }
  - { scope: system, period: day, amount: "1000", thresholds: { warning: 0.8, critical: 0.95 } }
ingest: { shards: ${SHARDS}, lingerMs: 50, flushEvents: 300 }
`,
    temporalArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=60'],
  });
  api = await startApi(stack, KEY, { lingerMs: 20 });
  ({ app, tracker } = api);
});

afterAll(async () => {
  if (stack) {
    await recordHistory(stack.env.address, stack.client.workflow.getHandle(ingestWorkflowId(shardOf('hot', SHARDS))), 'ingest-shard').catch(() => undefined);
    await recordHistory(stack.env.address, stack.client.workflow.getHandle(budgetWorkflowId('user:hot')), 'budget-user-hot-totals-signals').catch(() => undefined);
  }
  await api?.close();
  await stack?.stop();
});

const event = (userId: string, i: number, over: Record<string, unknown> = {}) => ({
  requestId: `${userId}-${i}-${Math.random().toString(36).slice(2, 8)}`,
  provider: 'openai',
  model: 'gpt-4o-mini',
  userId,
  usage: { inputTokens: 1000, outputTokens: 100 },
  ...over,
});

async function ledgerOf(userId: string): Promise<{ calls: number; cost: string }> {
  const r = await stack.pool.query<{ n: number; cost: string }>(`SELECT count(*)::int AS n, coalesce(sum(cost_usd), 0)::text AS cost FROM usage_ledger WHERE user_id = $1`, [userId]);
  return { calls: r.rows[0]!.n, cost: new Dec(r.rows[0]!.cost).toFixed() };
}

const workflowStatus = (scope: string): Promise<BudgetStatus> => stack.client.workflow.getHandle(budgetWorkflowId(scope)).query(statusQuery);

describe('the ingest tier', () => {
  it('records a user\'s events once through its shard; a spend that never moves a step makes no budget workflow', async () => {
    await tracker.recordMany([0, 1, 2].map((i) => event('quiet', i)) as never);
    await eventually(() => ledgerOf('quiet'), (l) => l.calls === 3, 30_000, 'quiet recorded');
    await expect(stack.client.workflow.getHandle(budgetWorkflowId('user:quiet')).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    const shard = await stack.client.workflow.getHandle(ingestWorkflowId(shardOf('quiet', SHARDS))).query(ingestStatusQuery);
    expect(shard.counters.counted).toBeGreaterThanOrEqual(3);
    // The status answers all the same, with exact live totals.
    const res = await app.inject({ method: 'GET', url: '/v1/budgets/user:quiet', headers: { 'x-api-key': KEY } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ scope: 'user:quiet', workflow: 'none', live: { budgets: [{ period: 'day', spentUsd: '0.00063', totals: { calls: 3 } }] } });
  });

  it('tells the budget workflow in steps, with exact totals, never a step or more behind the ledger', async () => {
    for (let round = 0; round < 6; round++) {
      await tracker.recordMany(Array.from({ length: 10 }, (_, i) => event('stepper', round * 10 + i)) as never);
      const ledger = await eventually(() => ledgerOf('stepper'), (l) => l.calls === (round + 1) * 10, 30_000, 'stepper recorded');
      // Once the flush completed, the workflow's total is behind the ledger by less than one step.
      const behind = () => workflowStatus('user:stepper').then((s) => new Dec(ledger.cost).minus(s.budgets[0]!.spentUsd)).catch(() => new Dec(ledger.cost));
      await eventually(behind, (d) => d.greaterThanOrEqualTo(0) && d.lessThan(STEP_USD), 20_000, `within a step after round ${round}`);
    }
    const s = await workflowStatus('user:stepper');
    // 60 events of $0.00021 cross 5 steps of $0.0025: a handful of signals, not one per event or batch.
    expect(s.counters.totalsUpdates).toBeGreaterThanOrEqual(4);
    expect(s.counters.totalsUpdates).toBeLessThanOrEqual(6);
    expect(new Dec(s.budgets[0]!.spentUsd).modulo(EVENT_USD).toNumber()).toBe(0);
  });

  it('signals at once when a threshold is crossed: the incident opens from that flush', async () => {
    // $0.025 (50%) is 120 events: sent in one go, so the crossing is one flush or two.
    await tracker.recordMany(Array.from({ length: 125 }, (_, i) => event('hot', i)) as never);
    await eventually(() => ledgerOf('hot'), (l) => l.calls === 125, 30_000, 'hot recorded');
    const today = new Date().toISOString().slice(0, 10);
    const key = `user:hot|day|day:${today}@UTC|threshold`;
    const incident = await eventually(async () => (await stack.pool.query('SELECT level FROM alert_incidents WHERE condition_key = $1', [key])).rows[0], (r) => r !== undefined, 20_000, 'threshold incident');
    expect(incident.level).toBe('warning');
    const s = await workflowStatus('user:hot');
    expect(s.budgets[0]).toMatchObject({ level: 'warning', spentUsd: (await ledgerOf('hot')).cost });
  });

  it('a totals signal applied twice or late changes nothing', async () => {
    const handle = stack.client.workflow.getHandle(budgetWorkflowId('user:hot'));
    const before = await workflowStatus('user:hot');
    const day = before.budgets[0]!;
    const stale = { scope: 'user:hot', reason: 'step', readAtMs: 1, periods: [{ spec: 'day', key: day.periodKey, totals: { ...day.totals, costUsd: '0.001', calls: 1 } }] };
    await handle.signal(scopeTotalsSignal, stale);
    await handle.signal(scopeTotalsSignal, stale);
    const wrongScope = { ...stale, scope: 'user:other', readAtMs: Date.now() + 60_000 };
    await handle.signal(scopeTotalsSignal, wrongScope);
    const after = await eventually(() => workflowStatus('user:hot'), (s) => s.updatedAt >= before.updatedAt, 5_000, 'status');
    expect(after.budgets[0]!.spentUsd).toBe(day.spentUsd);
    expect(after.budgets[0]!.totals.calls).toBe(day.totals.calls);
  });

  it('a re-sent batch is ignored by its shard, a repeated event counts once, a malformed batch is dropped and a malformed event dead-lettered', async () => {
    const shardId = ingestWorkflowId(shardOf('dup', SHARDS));
    const e = { ...event('dup', 0), occurredAt: new Date().toISOString(), taskType: 'default' };
    const batch = encodeBatch(`dup-batch-${Date.now()}`, [e]);
    const send = (b: unknown) =>
      stack.client.workflow.signalWithStart(INGEST_WORKFLOW_TYPE, { workflowId: shardId, taskQueue: stack.taskQueue, args: [{ shard: shardOf('dup', SHARDS) }], signal: ingestSignal, signalArgs: [b as never] });
    const before = await stack.client.workflow.getHandle(shardId).query(ingestStatusQuery);
    await send(batch);
    await send(batch);
    await send({ ...batch, batchId: `${batch.batchId}-again` });
    await send({ v: 99, batchId: 'junk' });
    await send({ ...encodeBatch(`bad-${Date.now()}`, [{ ...e, requestId: 'dup-ok-1' }]), events: [[...encodeBatch('x', [{ ...e, requestId: 'dup-ok-1' }]).events[0]!], ['not', 'an', 'event']] });
    await eventually(() => ledgerOf('dup'), (l) => l.calls === 2, 30_000, 'dup recorded');
    const after = await eventually(
      () => stack.client.workflow.getHandle(shardId).query(ingestStatusQuery),
      (s) => s.pendingEvents === 0 && s.counters.deadLettered > before.counters.deadLettered,
      20_000,
      'shard settled',
    );
    expect(after.counters.duplicateBatches - before.counters.duplicateBatches).toBe(1);
    expect(after.counters.droppedBatches - before.counters.droppedBatches).toBe(1);
    expect(after.counters.duplicateEvents - before.counters.duplicateEvents).toBe(1);
    const dead = await stack.pool.query(`SELECT stage, payload FROM usage_dead_letters WHERE batch_id LIKE 'ingest/%' AND payload LIKE '%not%an%event%'`);
    expect(dead.rows).toHaveLength(1);
    expect(dead.rows[0].stage).toBe('validation');
  });

  // Needs the dev server's suggestContinueAsNew=60 (temporalArgs), which the cluster's own dynamic config does not set.
  it.skipIf(temporalTarget() === 'cluster')('shards continue as new under load without losing or repeating an event; totals stay exact', async () => {
    const users = Array.from({ length: 40 }, (_, i) => `can-${i}`);
    const firstRuns = await Promise.all([0, 1].map(async (n) => (await stack.client.workflow.getHandle(ingestWorkflowId(n)).describe()).runId));
    const receipts = [];
    for (let round = 0; round < 20; round++) receipts.push(...(await tracker.recordMany(users.map((u) => event(u, round)) as never)));
    const ids = receipts.map((r) => r.requestId);
    await eventually(async () => (await stack.pool.query('SELECT count(*)::int AS n FROM usage_ledger WHERE request_id = ANY($1)', [ids])).rows[0].n, (n) => n === ids.length, 60_000, 'all recorded');
    const runs = await Promise.all([0, 1].map(async (n) => (await stack.client.workflow.getHandle(ingestWorkflowId(n)).describe()).runId));
    expect(runs.some((r, i) => r !== firstRuns[i]), 'a shard continued as new').toBe(true);
    // Rollups equal their ledger rows, per user and for the system.
    expect(await rollupMismatches(stack)).toEqual([]);
    // 20 events of $0.00021 ($0.0042) cross one step of $0.0025: each user's workflow heard of it
    // once, and is behind its ledger by less than a step.
    for (const u of users) {
      const ledger = await ledgerOf(u);
      const s = await eventually(() => workflowStatus(`user:${u}`), (x) => x.counters.totalsUpdates === 1, 20_000, `${u} signalled`);
      const behind = new Dec(ledger.cost).minus(s.budgets[0]!.spentUsd);
      expect(behind.greaterThanOrEqualTo(0) && behind.lessThan(STEP_USD), `${u} behind by ${behind.toFixed()}`).toBe(true);
    }
  });
});
