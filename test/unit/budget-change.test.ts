import { describe, expect, it } from 'vitest';
import { validateBudgetChange } from '../../src/domain/budget.js';

const good = { period: 'day', amount: '25.00', thresholds: { warning: 0.8, critical: 0.95 } };

function issuesOf(input: unknown): string[] {
  const r = validateBudgetChange(input, 'UTC');
  if (r.ok) throw new Error(`expected issues, got ${JSON.stringify(r.value)}`);
  return r.issues.map((i) => `${i.path}: ${i.message}`);
}

describe('validateBudgetChange', () => {
  it('accepts a change, filling the currency and the default time zone, and keeps optional thresholds', () => {
    const r = validateBudgetChange(
      {
        budgets: [
          good,
          { period: '10m', amount: '1000', currency: 'JPY', timezone: 'Asia/Tokyo', thresholds: { info: 0.5, warning: 0.8, critical: 0.9, emergency: 1.5 } },
        ],
      },
      'Europe/Paris',
    );
    expect(r).toEqual({
      ok: true,
      value: [
        { period: 'day', amount: '25.00', currency: 'USD', timezone: 'Europe/Paris', thresholds: { warning: 0.8, critical: 0.95 } },
        { period: '10m', amount: '1000', currency: 'JPY', timezone: 'Asia/Tokyo', thresholds: { warning: 0.8, critical: 0.9, info: 0.5, emergency: 1.5 } },
      ],
    });
    expect(validateBudgetChange({ budgets: [] }, 'UTC')).toEqual({ ok: true, value: [] });
  });

  it('names every bad field of every budget', () => {
    expect(
      issuesOf({
        budgets: [
          { period: 'fortnight', amount: '-5', currency: 'XYZ', timezone: 'Mars/Olympus', thresholds: { warning: 0.8, critical: 0.95 } },
          { period: 'day', amount: 25, thresholds: { warning: 1.2, critical: 'high' } },
        ],
      }),
    ).toEqual([
      'budgets.0.period: expected "day", "month" or a fixed length like "30s", "10m", "1h", "7d"',
      'budgets.0.amount: expected a positive decimal string like "25.00"',
      'budgets.0.currency: expected one of USD, EUR, GBP, JPY, CNY',
      'budgets.0.timezone: expected an IANA time zone such as "UTC" or "Europe/Paris"',
      'budgets.1.amount: expected a decimal string like "25.00"',
      'budgets.1.thresholds.warning: expected a ratio below 1 (emergency is 100%)',
      'budgets.1.thresholds.critical: expected a ratio such as 0.95',
    ]);
  });

  it.each([
    [{ ...good, amount: '0.00' }, 'budgets.0.amount: expected a positive decimal string like "25.00"'],
    [{ ...good, amount: '1e3' }, 'budgets.0.amount: expected a positive decimal string like "25.00"'],
    [{ ...good, thresholds: { warning: 0.95, critical: 0.8 } }, 'budgets.0.thresholds: expected warning below critical'],
    [{ ...good, thresholds: { warning: 0.8, critical: 0.95, info: 0.9 } }, 'budgets.0.thresholds: expected info below warning'],
    [{ ...good, thresholds: { warning: 0.8, critical: 0.95, emergency: 0.9 } }, 'budgets.0.thresholds: expected emergency above critical'],
    [{ ...good, thresholds: { warning: 0.8, critical: 0.95, emergency: 11 } }, 'budgets.0.thresholds.emergency: expected a ratio of at most 10'],
    [{ ...good, thresholds: { warning: 0, critical: 0.95 } }, 'budgets.0.thresholds.warning: expected a ratio above 0'],
    [{ ...good, thresholds: { warning: Number.NaN, critical: 0.95 } }, 'budgets.0.thresholds.warning: expected a ratio such as 0.8'],
    [{ ...good, thresholds: { warning: 0.8, critical: 0.95, level: 2 } }, 'budgets.0.thresholds: unknown field(s) level'],
    [{ ...good, thresholds: [0.8, 0.95] }, 'budgets.0.thresholds: expected { warning, critical } ratios such as { "warning": 0.8, "critical": 0.95 }'],
    [{ ...good, limit: 5 }, 'budgets.0: unknown field(s) limit'],
    ['day', 'budgets.0: expected a budget: { period, amount, currency, timezone, thresholds }'],
  ])('refuses %j', (budget, expected) => {
    expect(issuesOf({ budgets: [budget] })).toEqual([expected]);
  });

  it('refuses duplicate periods, more than 8 budgets, unknown fields and a change that is not an object', () => {
    expect(issuesOf({ budgets: [good, good] })).toEqual(['budgets.1.period: duplicate period day']);
    const nine = ['30s', '1m', '10m', '1h', '6h', '1d', '7d', 'day', 'month'].map((period) => ({ ...good, period }));
    expect(issuesOf({ budgets: nine })).toEqual(['budgets: at most 8 budgets per scope']);
    expect(issuesOf({ budgets: [good], scope: 'user:a' })).toEqual([': unknown field(s) scope']);
    expect(issuesOf({ budget: good })).toEqual([': unknown field(s) budget', 'budgets: expected an array of budgets']);
    expect(issuesOf(null)).toEqual([': expected { "budgets": [...] }']);
    expect(issuesOf([good])).toEqual([': expected { "budgets": [...] }']);
  });
});
