import { describe, expect, it } from 'vitest';
import { type Budget, mergeBudgetChange } from '../../src/domain/budget.js';

const current: Budget[] = [
  { period: 'day', amount: '10', currency: 'EUR', timezone: 'Europe/Paris', thresholds: { info: 0.5, warning: 0.8, critical: 0.95 }, enforcement: 'hard', failMode: 'open' },
  { period: 'month', amount: '200', currency: 'USD', timezone: 'UTC', thresholds: { warning: 0.85, critical: 0.98 } },
];

const merge = (change: unknown) => mergeBudgetChange(current, change, 'UTC');
const issuesOf = (change: unknown) => {
  const r = merge(change);
  if (r.ok) throw new Error(`expected issues, got ${JSON.stringify(r.value)}`);
  return r.issues.map((i) => `${i.path}: ${i.message}`);
};

describe('mergeBudgetChange (PUT /v1/budgets/:scope)', () => {
  it('a period that exists keeps every omitted field: only the amount changes', () => {
    expect(merge({ budgets: [{ period: 'day', amount: '25' }, { period: 'month' }] })).toEqual({
      ok: true,
      value: [{ ...current[0], amount: '25' }, current[1]],
    });
  });

  it('thresholds merge key by key; null removes an optional field or threshold', () => {
    const r = merge({ budgets: [{ period: 'day', thresholds: { warning: 0.7, info: null }, enforcement: null }, { period: 'month' }] });
    expect(r).toEqual({
      ok: true,
      value: [{ period: 'day', amount: '10', currency: 'EUR', timezone: 'Europe/Paris', thresholds: { warning: 0.7, critical: 0.95 }, failMode: 'open' }, current[1]],
    });
  });

  it('periods not listed are removed; an empty list removes them all', () => {
    expect(merge({ budgets: [{ period: 'month', amount: '300' }] })).toEqual({ ok: true, value: [{ ...current[1], amount: '300' }] });
    expect(merge({ budgets: [] })).toEqual({ ok: true, value: [] });
  });

  it('a new period needs amount and thresholds, each named; currency and timezone default', () => {
    expect(issuesOf({ budgets: [{ period: 'day' }, { period: '7d' }] })).toEqual([
      'budgets.1.amount: required for a new period (the scope has no "7d" budget to keep it from)',
      'budgets.1.thresholds: required for a new period (the scope has no "7d" budget to keep it from)',
    ]);
    expect(issuesOf({ budgets: [{ period: '1h', amount: '5' }] })).toEqual(['budgets.0.thresholds: required for a new period (the scope has no "1h" budget to keep it from)']);
    expect(merge({ budgets: [{ period: '1h', amount: '5', thresholds: { warning: 0.5, critical: 0.9 } }] })).toEqual({
      ok: true,
      value: [{ period: '1h', amount: '5', currency: 'USD', timezone: 'UTC', thresholds: { warning: 0.5, critical: 0.9 } }],
    });
  });

  it('bad values are named in the change\'s own indices, merged values included', () => {
    expect(issuesOf({ budgets: [{ period: 'month', amount: '-1' }, { period: 'day', thresholds: { warning: 0.99 } }, { period: 'fortnight', amount: 'x', thresholds: { warning: 0.9, critical: 2 } }] })).toEqual([
      'budgets.0.amount: expected a positive decimal string like "25.00"',
      'budgets.1.thresholds: expected warning below critical',
      'budgets.2.period: expected "day", "month" or a fixed length like "30s", "10m", "1h", "7d"',
      'budgets.2.amount: expected a positive decimal string like "25.00"',
      'budgets.2.thresholds.critical: expected a ratio below 1 (emergency is 100%)',
    ]);
    expect(issuesOf({ budgets: [{ period: 'day', amount: null, currency: 'XYZ', thresholds: { critical: null } }] })).toEqual([
      'budgets.0.amount: expected a decimal string like "25.00"',
      'budgets.0.currency: expected one of USD, EUR, GBP, JPY, CNY',
      'budgets.0.thresholds.critical: expected a ratio such as 0.95',
    ]);
    expect(issuesOf({ budgets: [{ period: 'day', colour: 'red' }] })).toEqual(['budgets.0: unknown field(s) colour']);
    expect(issuesOf({ budget: [] })).toEqual([': unknown field(s) budget', 'budgets: expected an array of budgets']);
  });
});
