import { describe, expect, it } from 'vitest';
import { type Budget } from '../../src/domain/budget.js';
import { BudgetState, emptyTotals } from '../../src/domain/budget-state.js';
import { DEFAULT_EXCHANGE_RATES } from '../../src/domain/money.js';
import { highestLevel, renderBudgetMarkdown, visibilityUpdates } from '../../src/domain/visibility.js';
import type { BudgetPeriodStatus, BudgetStatus } from '../../src/domain/budget-status.js';
import { at } from './helpers.js';

const COUNTERS: BudgetStatus['counters'] = { batchesApplied: 0, duplicateBatches: 0, droppedBatches: 0, eventsCounted: 0, duplicateEvents: 0, rejectedEvents: 0, lateEvents: 0 };

/** One budget's status; `spentUsd` of `amountUsd` sets the ratio as BudgetState would (6 places). */
function budget(period: string, spentUsd: string, amountUsd: string, level: BudgetPeriodStatus['level'] = 'ok'): BudgetPeriodStatus {
  const ratio = Number((Number(spentUsd) / Number(amountUsd)).toFixed(6));
  return {
    period,
    timezone: 'UTC',
    enforcement: 'none',
    failMode: 'open',
    periodKey: `${period}:key`,
    periodStart: '2026-03-10T00:00:00.000Z',
    periodEnd: '2026-03-11T00:00:00.000Z',
    amount: amountUsd,
    currency: 'USD',
    amountUsd,
    thresholds: { warning: 0.8, critical: 0.95 },
    spentUsd,
    remainingUsd: '0',
    usageRatio: ratio,
    level,
    totals: { ...emptyTotals(), costUsd: spentUsd },
  };
}

function status(...budgets: BudgetPeriodStatus[]): BudgetStatus {
  return { scope: 'user:alice', scopeKind: 'user', source: 'events', budgets, updatedAt: '2026-03-10T12:00:00.000Z', counters: { ...COUNTERS } };
}

const changedOf = (s: BudgetStatus, last: Record<string, string> = {}, spendBy: 'cent' | 'percent' = 'percent') => visibilityUpdates(s, last, spendBy).changed;

describe('visibilityUpdates', () => {
  it('the first time, sets every attribute', () => {
    const updates = visibilityUpdates(status(budget('day', '2.345', '10'), budget('month', '40.5', '200')), {});
    expect(updates.changed).toEqual([
      { key: 'dailySpendUsd', value: 2.34 },
      { key: 'dailyUsagePct', value: 23 },
      { key: 'monthlySpendUsd', value: 40.5 },
      { key: 'alertLevel', value: 'ok' },
    ]);
    expect(updates.material).toEqual({ dailySpendUsd: '23%', dailyUsagePct: '23', monthlySpendUsd: '20%', alertLevel: 'ok' });
    expect(visibilityUpdates(status(budget('day', '2.345', '10'), budget('month', '40.5', '200')), {}, 'cent').material).toEqual({ dailySpendUsd: '2.34', dailyUsagePct: '23', monthlySpendUsd: '40.50', alertLevel: 'ok' });
  });

  it('open incidents: nothing until a first one, then the count, down to 0 again', () => {
    const incident = { incidentId: 'abc', key: 'k', rule: 'threshold', level: 'warning', status: 'open' as const };
    const base = status(budget('day', '9', '10'));
    const { material } = visibilityUpdates({ ...base, incidents: [] }, {});
    expect(material.openIncidents).toBeUndefined();
    const one = visibilityUpdates({ ...base, incidents: [incident] }, material);
    expect(one.changed).toEqual([{ key: 'openIncidents', value: 1 }]);
    expect(visibilityUpdates({ ...base, incidents: [] }, one.material).changed).toEqual([{ key: 'openIncidents', value: 0 }]);
  });

  it('re-run with the material it returned, changes nothing', () => {
    const s = status(budget('day', '2.345', '10'), budget('month', '40.5', '200'));
    const { material } = visibilityUpdates(s, {});
    expect(visibilityUpdates(s, material)).toEqual({ changed: [], material });
  });

  it('by percent: spend within the same whole percent of its budget changes nothing', () => {
    const { material } = visibilityUpdates(status(budget('day', '1.001', '10'), budget('month', '50.001', '200')), {});
    expect(changedOf(status(budget('day', '1.099', '10'), budget('month', '51.99', '200')), material)).toEqual([]);
  });

  it('by percent: the next whole percent upserts the spend with its current amount', () => {
    const { material } = visibilityUpdates(status(budget('day', '1.001', '10'), budget('month', '50.001', '200')), {});
    expect(changedOf(status(budget('day', '1.1', '10'), budget('month', '50.001', '200')), material)).toEqual([
      { key: 'dailySpendUsd', value: 1.1 },
      { key: 'dailyUsagePct', value: 11 },
    ]);
    expect(changedOf(status(budget('day', '1.001', '10'), budget('month', '52.019', '200')), material)).toEqual([{ key: 'monthlySpendUsd', value: 52.02 }]);
  });

  it('by the cent (workflows started before visibility-by-percent-v1): below a cent changes nothing', () => {
    const { material } = visibilityUpdates(status(budget('day', '1.001', '10'), budget('month', '50.001', '200')), {}, 'cent');
    expect(changedOf(status(budget('day', '1.004', '10'), budget('month', '50.004', '200')), material, 'cent')).toEqual([]);
  });

  it('by the cent: reaching the next cent changes the spend only', () => {
    const { material } = visibilityUpdates(status(budget('day', '1.001', '10'), budget('month', '50.001', '200')), {}, 'cent');
    expect(changedOf(status(budget('day', '1.006', '10'), budget('month', '50.001', '200')), material, 'cent')).toEqual([{ key: 'dailySpendUsd', value: 1.01 }]);
    expect(changedOf(status(budget('day', '1.001', '10'), budget('month', '50.019', '200')), material, 'cent')).toEqual([{ key: 'monthlySpendUsd', value: 50.02 }]);
  });

  it('usage is reported in whole percent: 23.9% to 23.99% changes nothing, 24% does', () => {
    const { material } = visibilityUpdates(status(budget('day', '2.39', '10')), {}, 'cent');
    expect(material.dailyUsagePct).toBe('23');
    // 2.399 -> 2.40 in cents, but the usage is still 23%.
    expect(changedOf(status(budget('day', '2.399', '10')), material, 'cent')).toEqual([{ key: 'dailySpendUsd', value: 2.4 }]);
    expect(changedOf(status(budget('day', '2.4', '10')), material, 'cent')).toEqual([
      { key: 'dailySpendUsd', value: 2.4 },
      { key: 'dailyUsagePct', value: 24 },
    ]);
  });

  it.each([
    ['29', 29],
    ['57', 57],
    ['58', 58],
    ['100', 100],
    ['150', 150],
  ])('spent %s of 100 USD shows %i percent used', (spent, pct) => {
    const { material, changed } = visibilityUpdates(status(budget('day', spent, '100')), {});
    expect(changed.find((c) => c.key === 'dailyUsagePct')).toEqual({ key: 'dailyUsagePct', value: pct });
    expect(material.dailyUsagePct).toBe(String(pct));
  });

  it('a level change alone is reported', () => {
    const { material } = visibilityUpdates(status(budget('day', '7.99', '10', 'ok')), {});
    expect(changedOf(status(budget('day', '7.99', '10', 'warning')), material)).toEqual([{ key: 'alertLevel', value: 'warning' }]);
  });

  it('the level is the highest of all budgets', () => {
    const s = status(budget('day', '1', '10', 'ok'), budget('month', '190', '200', 'critical'));
    expect(highestLevel(s)).toBe('critical');
    expect(visibilityUpdates(s, {}).material.alertLevel).toBe('critical');
    expect(highestLevel(status())).toBe('ok');
  });

  it('without a day budget, the shortest other budget stands in for "daily"', () => {
    const s = status(budget('7d', '70', '100'), budget('1h', '3', '10'), budget('month', '90', '400'));
    expect(visibilityUpdates(s, {}).material).toMatchObject({ dailySpendUsd: '30%', dailyUsagePct: '30', monthlySpendUsd: '22%' });
  });

  it('the day budget is "daily" wherever it is in the list', () => {
    const s = status(budget('1h', '3', '10'), budget('day', '5', '10'));
    expect(visibilityUpdates(s, {}).material).toMatchObject({ dailySpendUsd: '50%', dailyUsagePct: '50' });
  });

  it('only a monthly budget: no daily attributes', () => {
    expect(changedOf(status(budget('month', '12.5', '100')))).toEqual([
      { key: 'monthlySpendUsd', value: 12.5 },
      { key: 'alertLevel', value: 'ok' },
    ]);
  });

  it('does not modify the material it was given', () => {
    const last = { dailySpendUsd: '1.00', dailyUsagePct: '10', alertLevel: 'ok' };
    visibilityUpdates(status(budget('day', '2', '10')), last);
    expect(last).toEqual({ dailySpendUsd: '1.00', dailyUsagePct: '10', alertLevel: 'ok' });
  });

  it('from a real BudgetState: 29 USD spent of a 100 USD day is 29%', () => {
    const day: Budget = { period: 'day', amount: '100', currency: 'USD', timezone: 'UTC', thresholds: { warning: 0.8, critical: 0.95 } };
    const now = at('2026-03-10T12:00:00Z');
    const state = new BudgetState({ scope: 'user:alice', budgets: [day], rates: DEFAULT_EXCHANGE_RATES }, now);
    expect(state.acceptBatch({ batchId: 'b1', events: [{ requestId: 'r1', occurredAt: '2026-03-10T11:00:00Z', provider: 'openai', model: 'gpt-4o', userId: 'alice', usage: { inputTokens: 1 } }] }, now).outcome).toBe('accepted');
    const f = state.takeFlush('chain', 10);
    state.applyFlush({
      batchId: f.batchId, received: 1, duplicates: 0, rejected: [],
      counted: [{
        requestId: 'r1', occurredAt: '2026-03-10T11:00:00.000Z', costUsd: '29', unpriced: false, provider: 'openai', model: 'gpt-4o', taskType: 'default',
        usage: { inputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0, reasoningTokens: 0 },
      }],
    }, now);
    expect(visibilityUpdates(state.status(now), {}).material).toEqual({ dailySpendUsd: '29%', dailyUsagePct: '29', alertLevel: 'ok' });
  });
});

describe('renderBudgetMarkdown', () => {
  it('renders the scope, one table row per budget with the level in bold, the source and the counters', () => {
    const day = budget('day', '8.5', '10', 'warning');
    day.remainingUsd = '1.5';
    day.totals.calls = 3;
    day.totals.byModel = [
      { key: 'gpt-4o', costUsd: '6', calls: 2 },
      { key: 'claude-sonnet-4', costUsd: '2.5', calls: 1 },
    ];
    const month = { ...budget('month', '40.123456789', '200'), timezone: 'Europe/Paris', remainingUsd: '159.876543211', periodEnd: '2026-03-31T22:00:00.000Z' };
    const s = status(day, month);
    s.counters = { batchesApplied: 4, duplicateBatches: 1, droppedBatches: 2, eventsCounted: 3, duplicateEvents: 5, rejectedEvents: 0, lateEvents: 6 };
    expect(renderBudgetMarkdown(s)).toBe(
      [
        '### Budget: `user:alice`',
        '',
        '| period | spent | budget | used | remaining | level | resets at |',
        '|---|---:|---:|---:|---:|---|---|',
        '| day (UTC) | 8.5000 USD | 10.00 USD | 85.0% | 1.5000 USD | **warning** | 2026-03-11T00:00:00.000Z |',
        '| month (Europe/Paris) | 40.1235 USD | 200.00 USD | 20.1% | 159.8765 USD | **ok** | 2026-03-31T22:00:00.000Z |',
        '',
        'Totals from this workflow\'s own flushes; updated 2026-03-10T12:00:00.000Z.',
        '',
        '**Top models (day)**: gpt-4o 6.0000 USD, claude-sonnet-4 2.5000 USD',
        '',
        'Batches applied 4, duplicate batches 1, dropped 2; events counted 3, duplicate events 5, late 6.',
      ].join('\n'),
    );
  });

  it('a ledger scope with no usage: no top models line, and the ledger named as the source', () => {
    const s: BudgetStatus = { ...status(budget('day', '0', '25')), scope: 'system', scopeKind: 'system', source: 'ledger' };
    const md = renderBudgetMarkdown(s);
    expect(md).toContain('### Budget: `system`');
    expect(md).toContain('| day (UTC) | 0.0000 USD | 25.00 USD | 0.0% | 0.0000 USD | **ok** | 2026-03-11T00:00:00.000Z |');
    expect(md).toContain('Totals from the ledger rollups; updated 2026-03-10T12:00:00.000Z.');
    expect(md).not.toContain('Top models');
  });

  it('shows the used percentage of a ratio that is not exact in binary (29%) as 29.0%', () => {
    expect(renderBudgetMarkdown(status(budget('day', '29', '100')))).toContain('| 29.0% |');
  });

  it('one row per budget', () => {
    const md = renderBudgetMarkdown(status(budget('day', '1', '10'), budget('1h', '1', '10'), budget('month', '1', '10', 'emergency')));
    expect(md.split('\n').filter((l) => /^\| (day|1h|month) /.test(l))).toHaveLength(3);
    expect(md).toContain('**emergency**');
  });
});
