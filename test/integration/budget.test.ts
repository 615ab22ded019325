import { WorkflowUpdateFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRealtimeView } from '../../src/redis/realtime.js';
import { normalizeAmount } from '../../src/domain/money.js';
import { BUDGET_WORKFLOW_TYPE, budgetWorkflowId, searchAttributes, setBudgetUpdate, statusQuery } from '../../src/messages.js';
import type { BudgetStatus } from '../../src/domain/budget-status.js';
import type { UsageBatch } from '../../src/domain/usage.js';
import { recordHistory } from './helpers/histories.js';
import { type Stack, eventually, sendUsage, startStack } from './helpers/stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ configYaml: 'budgetWorkflow:\n  ledgerPollMs: 300\n' });
});
afterAll(async () => {
  if (stack) {
    for (const scope of ['user:alice', 'user:bob', 'system']) {
      await recordHistory(stack.env.address, stack.client.workflow.getHandle(budgetWorkflowId(scope)), `budget-${scope.replace(':', '-')}`).catch((e: unknown) => console.warn('recordHistory failed:', e));
    }
  }
  await stack?.stop();
});

function ev(requestId: string, userId: string, inputTokens = 1000, outputTokens = 100) {
  return { requestId, occurredAt: new Date().toISOString(), provider: 'openai', model: 'gpt-4o-mini', userId, usage: { inputTokens, outputTokens } };
}

const send = (scope: string, batch: UsageBatch) => sendUsage(stack, scope, batch);

async function status(scope: string): Promise<BudgetStatus> {
  return stack.client.workflow.getHandle(budgetWorkflowId(scope)).query(statusQuery);
}

async function ledger(userId?: string): Promise<{ cost: string; calls: number }> {
  const r = await stack.pool.query<{ cost: string; calls: number }>(
    `SELECT coalesce(sum(cost_usd), 0)::text AS cost, count(*)::int AS calls FROM usage_ledger ${userId ? 'WHERE user_id = $1' : ''}`,
    userId ? [userId] : [],
  );
  return { cost: normalizeAmount(r.rows[0]!.cost), calls: r.rows[0]!.calls };
}

describe('budget workflow (user scope)', () => {
  it('counts each event once: within a batch, across batches, and a re-sent batch', async () => {
    await send('user:alice', { batchId: 'c1:1', events: [ev('a1', 'alice'), ev('a2', 'alice'), ev('a1', 'alice')] });
    await send('user:alice', { batchId: 'c1:1', events: [ev('a1', 'alice'), ev('a2', 'alice'), ev('a1', 'alice')] });
    await send('user:alice', { batchId: 'c2:1', events: [ev('a2', 'alice'), ev('a3', 'alice', 2000, 200)] });
    const s = await eventually(() => status('user:alice'), (x) => x.counters.eventsCounted === 3 && x.counters.duplicateBatches === 1, 30_000, 'alice counted');
    // 2 x 0.00021 + 0.00042
    expect(s.budgets[0]).toMatchObject({ period: 'day', spentUsd: '0.00084', amount: '10', level: 'ok' });
    expect(s.budgets[0]!.totals.calls).toBe(3);
    expect(s.counters.duplicateEvents).toBe(2);
    expect(await ledger('alice')).toEqual({ cost: '0.00084', calls: 3 });
    const rollup = await stack.pool.query(`SELECT cost_usd::text AS c FROM usage_rollup_totals WHERE scope = 'user:alice' AND period_kind = 'day'`);
    expect(normalizeAmount(rollup.rows[0].c)).toBe('0.00084');
    // Redis: one sorted-set member per counted call, and the per-minute cost equals the ledger.
    const view = createRealtimeView(stack.redis, stack.redisPrefix);
    expect(await view.recentCalls('alice', 10)).toHaveLength(3);
    const minutes = await view.costPerMinute('user:alice', Date.now() - 5 * 60_000, Date.now());
    expect(normalizeAmount(minutes.reduce((s2, m) => s2 + Number(m.costUsd), 0).toFixed(8))).toBe('0.00084');
  });

  it('drops a malformed batch and refuses an invalid event, logging both, and keeps working', async () => {
    await send('user:bob', { batchId: 'bad:1', events: [{ ...ev('b1', 'bob'), usage: { inputTokens: -5 } }] } as UsageBatch);
    await send('user:bob', { batchId: 'bad:2', events: 'nonsense' } as unknown as UsageBatch);
    await send('user:bob', { batchId: 'good:1', events: [ev('b2', 'bob')] });
    const s = await eventually(() => status('user:bob'), (x) => x.counters.eventsCounted === 1 && x.counters.rejectedEvents === 1, 30_000, 'bob counted');
    expect(s.counters.droppedBatches).toBe(1); // the batch whose events are not an array
    expect(await ledger('bob')).toEqual({ cost: '0.00021', calls: 1 });
    expect(s.budgets[0]!.spentUsd).toBe('0.00021');
  });

  it('changes a budget through an update, rejecting a bad one synchronously', async () => {
    const handle = stack.client.workflow.getHandle(budgetWorkflowId('user:alice'));
    const rejected = await handle
      .executeUpdate(setBudgetUpdate, { args: [{ budgets: [{ period: 'day', amount: '-1', thresholds: { warning: 0.5, critical: 0.9 } }] }] })
      .catch((e: unknown) => e as Error & { cause?: Error });
    expect(rejected).toBeInstanceOf(WorkflowUpdateFailedError);
    expect((rejected as { cause?: Error }).cause?.message).toMatch(/budgets\.0\.amount: expected a positive decimal/);
    // A rejected update writes nothing to history.
    const history = await handle.fetchHistory();
    expect(history.events?.some((e) => e.workflowExecutionUpdateAcceptedEventAttributes && JSON.stringify(e).includes('"-1"'))).toBe(false);
    const updated = await handle.executeUpdate(setBudgetUpdate, {
      args: [{ budgets: [{ period: 'day', amount: '0.001', currency: 'EUR', thresholds: { warning: 0.5, critical: 0.9 } }] }],
    });
    // 0.001 EUR = 0.001 / 0.92 USD; spent 0.00084 USD is 77% of it
    expect(updated.budgets[0]).toMatchObject({ amount: '0.001', currency: 'EUR', level: 'warning', spentUsd: '0.00084' });
    expect(updated.budgets[0]!.amountUsd.startsWith('0.00108695652173913')).toBe(true);
    const saved = await stack.pool.query(`SELECT budgets FROM budget_configs WHERE scope = 'user:alice'`);
    expect(saved.rows[0].budgets[0]).toMatchObject({ amount: '0.001', currency: 'EUR' });
  });
});

describe('budget workflow search attributes', () => {
  it('publishes a spend change held back by the 10 s interval on its own timer, with no usage after it', async () => {
    // 1,000,000 input tokens of gpt-4o-mini: $0.15, 1% of the $10 daily budget. The workflow upserted
    // its attributes when it started, moments before this flush, so the change is held back.
    await send('user:vera', { batchId: 'v:1', events: [ev('v1', 'vera', 1_000_000, 0)] });
    const handle = stack.client.workflow.getHandle(budgetWorkflowId('user:vera'));
    await eventually(() => status('user:vera'), (x) => x.counters.eventsCounted === 1, 30_000, 'vera counted');
    const d = await eventually(() => handle.describe(), (x) => x.typedSearchAttributes.get(searchAttributes.dailySpendUsd) === 0.15, 30_000, 'the spend attribute');
    expect(d.typedSearchAttributes.get(searchAttributes.dailyUsagePct)).toBe(1);
    expect(d.typedSearchAttributes.get(searchAttributes.alertLevel)).toBe('ok');
    // Our upserts (patch markers add TemporalChangeVersion ones): the scope and the zeros at start,
    // then the held-back change, published when its timer fired.
    const history = await handle.fetchHistory();
    const ours = (history.events ?? [])
      .map((e) => Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {}).filter((k) => k.startsWith('Cost')).sort())
      .filter((keys) => keys.length > 0);
    expect(ours).toEqual([['CostScopeId', 'CostScopeKind'], ['CostAlertLevel', 'CostDailySpendUsd', 'CostDailyUsagePct'], ['CostDailySpendUsd', 'CostDailyUsagePct']]);
    expect((history.events ?? []).some((e) => e.timerFiredEventAttributes)).toBe(true);
  });
});

describe('budget workflow recreated mid-period', () => {
  it('starts from the ledger\'s totals, with breakdowns, and counts on from there', async () => {
    await send('user:gus', { batchId: 'gus:1', events: [ev('g1', 'gus'), ev('g2', 'gus')] });
    const handle = stack.client.workflow.getHandle(budgetWorkflowId('user:gus'));
    await eventually(() => status('user:gus'), (x) => x.counters.eventsCounted === 2, 30_000, 'gus counted');
    await handle.terminate('operator reset');
    await send('user:gus', { batchId: 'gus:2', events: [ev('g3', 'gus')] });
    const s = await eventually(() => status('user:gus'), (x) => x.budgets[0]!.totals.calls === 3, 30_000, 'gus reseeded');
    expect(s.budgets[0]!.spentUsd).toBe('0.00063');
    expect(s.budgets[0]!.totals.byModel).toEqual([{ key: 'gpt-4o-mini', costUsd: '0.00063', calls: 3 }]);
    expect(await ledger('gus')).toEqual({ cost: '0.00063', calls: 3 });
  });
});

describe('budget workflow (system scope)', () => {
  it('follows the ledger exactly from the rollups, with breakdowns', async () => {
    await stack.client.workflow.start(BUDGET_WORKFLOW_TYPE, {
      workflowId: budgetWorkflowId('system'),
      taskQueue: stack.taskQueue,
      args: [{ scope: 'system' }],
    });
    const total = await ledger();
    const s = await eventually(() => status('system'), (x) => x.budgets[0]?.spentUsd === total.cost, 30_000, 'system equals ledger');
    expect(s.source).toBe('ledger');
    expect(s.budgets.map((b) => b.period)).toEqual(['day', 'month']);
    expect(s.budgets[0]!.totals.calls).toBe(total.calls);
    expect(s.budgets[0]!.totals.byModel).toEqual([{ key: 'gpt-4o-mini', costUsd: total.cost, calls: total.calls }]);
    // More usage shows up within a few poll intervals.
    await send('user:carol', { batchId: 'carol:1', events: [ev('c1', 'carol', 10_000, 1_000)] });
    const after = await ledger();
    await eventually(() => status('system'), (x) => x.budgets[0]?.spentUsd === after.cost, 30_000, 'system follows');
  });
});
