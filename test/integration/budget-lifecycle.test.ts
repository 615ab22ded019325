import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeAmount } from '../../src/domain/money.js';
import { budgetWorkflowId, statusQuery } from '../../src/messages.js';
import type { UsageBatch } from '../../src/domain/usage.js';
import { recordHistory } from './helpers/histories.js';
import { type Stack, eventually, sendUsage, startStack } from './helpers/stack.js';

let stack: Stack;

// A low history threshold makes the server suggest continue-as-new every few flushes; a 30-second
// budget period makes rollover observable on the real server.
beforeAll(async () => {
  stack = await startStack({
    temporalArgs: ['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=60'],
    configYaml: [
      'budgets:',
      '  - { scope: user, period: "30s", amount: "1", thresholds: { warning: 0.8, critical: 0.95 } }',
      '  - { scope: user, period: day, amount: "10", thresholds: { warning: 0.9, critical: 0.98 } }',
      '  - { scope: system, period: day, amount: "100", thresholds: { warning: 0.8, critical: 0.95 } }',
    ].join('\n'),
  });
});
afterAll(async () => {
  if (stack) {
    await recordHistory(stack.env.address, stack.client.workflow.getHandle(budgetWorkflowId('user:eve')), 'budget-user-eve-after-continue-as-new').catch((e: unknown) => console.warn('recordHistory failed:', e));
    await recordHistory(stack.env.address, stack.client.workflow.getHandle(budgetWorkflowId('user:finn')), 'budget-user-finn-after-rollover').catch((e: unknown) => console.warn('recordHistory failed:', e));
  }
  await stack?.stop();
});

const ev = (requestId: string, userId: string, occurredAt = new Date()) => ({
  requestId,
  occurredAt: occurredAt.toISOString(),
  provider: 'openai',
  model: 'gpt-4o-mini',
  userId,
  usage: { inputTokens: 1000, outputTokens: 100 },
});

const send = (scope: string, batch: UsageBatch) => sendUsage(stack, scope, batch);

async function runCount(workflowId: string): Promise<number> {
  let n = 0;
  for await (const _ of stack.client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) n++;
  return n;
}

describe('continue-as-new', () => {
  it('keeps totals and dedup memory across runs the server asked for', async () => {
    const handle = stack.client.workflow.getHandle(budgetWorkflowId('user:eve'));
    for (let b = 0; b < 30; b++) {
      await send('user:eve', { batchId: `eve:${b}`, events: [ev(`e${b}-0`, 'eve'), ev(`e${b}-1`, 'eve'), ev(`e${b}-2`, 'eve')] });
      // Wait for each flush so history grows flush by flush.
      await eventually(() => handle.query(statusQuery), (s) => s.counters.eventsCounted === (b + 1) * 3, 30_000, `batch ${b}`);
    }
    await eventually(() => runCount(budgetWorkflowId('user:eve')), (n) => n > 2, 30_000, 'several runs');

    // A batch from before the continue-as-new is still known; its events too (ledger).
    await send('user:eve', { batchId: 'eve:0', events: [ev('e0-0', 'eve')] });
    await send('user:eve', { batchId: 'eve:again', events: [ev('e1-0', 'eve'), ev('e-new', 'eve')] });
    const s = await eventually(() => handle.query(statusQuery), (x) => x.counters.eventsCounted === 91, 30_000, 'after resend');
    expect(s.counters.duplicateBatches).toBe(1);
    expect(s.counters.duplicateEvents).toBe(1);
    const ledger = await stack.pool.query(`SELECT count(*)::int AS n, sum(cost_usd)::text AS c FROM usage_ledger WHERE user_id = 'eve'`);
    expect(ledger.rows[0].n).toBe(91);
    const day = s.budgets.find((b) => b.period === 'day')!;
    expect(day.spentUsd).toBe(normalizeAmount(ledger.rows[0].c));
    expect(day.totals.calls).toBe(91);
  });
});

describe('period rollover', () => {
  it('resets a 30s budget on a durable timer, continues as new, and keeps late events out of the closed period', async () => {
    const handle = stack.client.workflow.getHandle(budgetWorkflowId('user:finn'));
    await send('user:finn', { batchId: 'finn:1', events: [ev('f1', 'finn')] });
    const before = await eventually(() => handle.query(statusQuery), (s) => s.counters.eventsCounted === 1, 30_000, 'finn counted');
    const short = before.budgets.find((b) => b.period === '30s')!;
    expect(short.spentUsd).toBe('0.00021');
    const firstRun = (await handle.describe()).runId;

    // No usage arrives: the timer alone rolls the period over.
    const after = await eventually(
      () => handle.query(statusQuery),
      (s) => s.budgets.find((b) => b.period === '30s')!.periodKey !== short.periodKey,
      45_000,
      '30s rollover',
    );
    expect(after.budgets.find((b) => b.period === '30s')).toMatchObject({ spentUsd: '0', level: 'ok' });
    expect(after.budgets.find((b) => b.period === 'day')!.spentUsd).toBe('0.00021');
    expect((await handle.describe()).runId).not.toBe(firstRun);

    // A late event for the closed period: recorded in the ledger, not counted into the new period.
    await send('user:finn', { batchId: 'finn:late', events: [ev('f-late', 'finn', new Date(Date.parse(short.periodStart) + 1000))] });
    const late = await eventually(() => handle.query(statusQuery), (s) => s.counters.eventsCounted === 2, 30_000, 'late counted');
    expect(late.counters.lateEvents).toBe(1);
    expect(late.budgets.find((b) => b.period === '30s')!.spentUsd).toBe('0');
    const ledger = await stack.pool.query(`SELECT count(*)::int AS n FROM usage_ledger WHERE user_id = 'finn'`);
    expect(ledger.rows[0].n).toBe(2);
  }, 120_000);
});
