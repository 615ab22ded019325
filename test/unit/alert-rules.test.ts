import { describe, expect, it } from 'vitest';
import {
  type AlertRuleSettings,
  budgetConditions,
  detectSpike,
  diffConditions,
  forecastCondition,
  forecastSpend,
  periodProgress,
  spikeCondition,
  spikeMultiplier,
  thresholdCondition,
  unpricedCondition,
} from '../../src/domain/alert-rules.js';
import { emptyTotals, levelFor } from '../../src/domain/budget-state.js';
import type { BudgetPeriodStatus, BudgetStatus } from '../../src/domain/budget-status.js';
import { at } from './helpers.js';

const settings: AlertRuleSettings = {
  forecast: { enabled: true, minElapsedFraction: 0.1, minCalls: 10 },
  spike: { enabled: true, windowMinutes: 60, factor: 3, floorUsd: '1', baselineDays: 7, minBaselineDays: 1, users: true },
};

const DAY_START = '2026-11-28T00:00:00.000Z';
const DAY_END = '2026-11-29T00:00:00.000Z';

/** A daily $10 budget status with `spent` and `calls` (level from the default user thresholds). */
function day(spent: string, calls = 100, amount = '10'): BudgetPeriodStatus {
  const ratio = Number(spent) / Number(amount);
  const thresholds = { warning: 0.9, critical: 0.98 };
  return {
    period: 'day',
    timezone: 'UTC',
    enforcement: 'none',
    failMode: 'open',
    periodKey: 'day:2026-11-28@UTC',
    periodStart: DAY_START,
    periodEnd: DAY_END,
    amount,
    currency: 'USD',
    amountUsd: amount,
    thresholds,
    spentUsd: spent,
    remainingUsd: String(Math.max(0, Number(amount) - Number(spent))),
    usageRatio: ratio,
    level: levelFor(ratio, thresholds),
    totals: { ...emptyTotals(), costUsd: spent, calls },
  };
}

function status(...budgets: BudgetPeriodStatus[]): BudgetStatus {
  return {
    scope: 'user:alice',
    scopeKind: 'user',
    source: 'events',
    budgets,
    updatedAt: DAY_START,
    counters: { batchesApplied: 0, duplicateBatches: 0, droppedBatches: 0, eventsCounted: 0, duplicateEvents: 0, rejectedEvents: 0, lateEvents: 0 },
  };
}

describe('threshold rule', () => {
  it('follows the levels of the budget: nothing below warning, then warning, critical, emergency at 100%', () => {
    expect(thresholdCondition('user:alice', day('8.99'))).toBeNull();
    expect(thresholdCondition('user:alice', day('9'))?.level).toBe('warning');
    expect(thresholdCondition('user:alice', day('9.80'))?.level).toBe('critical');
    expect(thresholdCondition('user:alice', day('10'))?.level).toBe('emergency');
    expect(thresholdCondition('user:alice', day('12'))?.level).toBe('emergency');
  });

  it('keeps one key per (scope, budget period, period) whatever the level, so the incident escalates in place', () => {
    const keys = ['9', '9.80', '10'].map((s) => thresholdCondition('user:alice', day(s))!.key);
    expect(new Set(keys)).toEqual(new Set(['user:alice|day|day:2026-11-28@UTC|threshold']));
  });

  it('supports an info threshold and an emergency ratio other than 100%', () => {
    const t = { info: 0.5, warning: 0.8, critical: 0.95, emergency: 1.2 };
    expect(levelFor(0.49, t)).toBe('ok');
    expect(levelFor(0.5, t)).toBe('info');
    expect(levelFor(1.1, t)).toBe('critical');
    expect(levelFor(1.2, t)).toBe('emergency');
  });

  it('names the scope, the spend and the budget in the title and fields, with exact money', () => {
    const c = thresholdCondition('user:alice', day('9.500001'))!;
    expect(c.title).toBe('Daily budget of user:alice at 95.0%');
    expect(c.fields).toContainEqual({ label: 'Spent', value: '9.5000 USD' });
    expect(c.fields).toContainEqual({ label: 'Budget', value: '10.00 USD' });
    expect(c.periodEndMs).toBe(at(DAY_END));
  });
});

describe('threshold messages: where the period is and the projected end-of-period spend', () => {
  it('says "hour X of Y" for a day, "day X of Y" for a month, minutes and shares for short periods', () => {
    expect(periodProgress(day('1'), at('2026-11-28T14:30:00Z'))).toBe('hour 15 of 24');
    expect(periodProgress({ periodStart: '2026-11-01T00:00:00.000Z', periodEnd: '2026-12-01T00:00:00.000Z' }, at('2026-11-12T08:00:00Z'))).toBe('day 12 of 30');
    expect(periodProgress({ periodStart: '2026-11-01T00:00:00.000Z', periodEnd: '2026-11-01T00:10:00.000Z' }, at('2026-11-01T00:02:30Z'))).toBe('minute 3 of 10');
    expect(periodProgress({ periodStart: '2026-11-01T00:00:00.000Z', periodEnd: '2026-11-01T00:00:30.000Z' }, at('2026-11-01T00:00:12Z'))).toBe('40% of the period');
    // The last instant of a period is still in it.
    expect(periodProgress(day('1'), at(DAY_END) - 1)).toBe('hour 24 of 24');
  });

  it('the summary and fields give the progress and, once a projection is allowed, the projected spend', () => {
    const c = thresholdCondition('user:alice', day('9'), at('2026-11-28T18:00:00Z'), settings.forecast)!;
    expect(c.title).toBe('Daily budget of user:alice at 90.0%');
    expect(c.summary).toBe(
      'user:alice has spent 9.0000 USD of its day budget of 10.00 USD (90.0%); 1.0000 USD remains until 2026-11-29T00:00:00.000Z (hour 19 of 24). ' +
        'At this period\'s rate so far it will reach about 12.0000 USD by the end of the period.',
    );
    expect(c.fields).toContainEqual({ label: 'Progress', value: 'hour 19 of 24' });
    expect(c.fields).toContainEqual({ label: 'Projected', value: '12.0000 USD by 2026-11-29T00:00:00.000Z' });
  });

  it('no projection too early in the period or from too few calls; the progress is still given', () => {
    const early = thresholdCondition('user:alice', day('9'), at('2026-11-28T01:00:00Z'), settings.forecast)!;
    expect(early.summary).toContain('(hour 2 of 24).');
    expect(early.summary).not.toContain('will reach');
    expect(early.fields.map((f) => f.label)).not.toContain('Projected');
    expect(thresholdCondition('user:alice', day('9', 3), at('2026-11-28T18:00:00Z'), settings.forecast)!.fields.map((f) => f.label)).not.toContain('Projected');
  });

  it('budgetConditions passes the time and the forecast settings', () => {
    const [t] = budgetConditions(status(day('12')), at('2026-11-28T12:00:00Z'), settings);
    expect(t!.summary).toBe('user:alice has spent 12.0000 USD, over its day budget of 10.00 USD (hour 13 of 24). At this period\'s rate so far it will reach about 24.0000 USD by the end of the period.');
  });
});

describe('forecast rule', () => {
  const f = settings.forecast;

  it('projects the period-to-date rate to the end of the period', () => {
    // $3 in the first 6 hours of a day: $12 by midnight.
    const r = forecastSpend(day('3'), at('2026-11-28T06:00:00Z'), f);
    expect(r).toEqual({ projectedUsd: '12', reason: 'ok' });
  });

  it('does not fire from too little data: too early in the period, or too few calls', () => {
    expect(forecastSpend(day('3'), at('2026-11-28T02:00:00Z'), f).reason).toBe('too_early'); // 8% of the day
    expect(forecastSpend(day('3', 9), at('2026-11-28T06:00:00Z'), f).reason).toBe('too_few_calls');
    expect(forecastCondition('user:alice', day('3', 9), at('2026-11-28T06:00:00Z'), f)).toBeNull();
  });

  it('fires a warning marked as a forecast when the projection reaches the budget, and not below it', () => {
    const c = forecastCondition('user:alice', day('3'), at('2026-11-28T06:00:00Z'), f)!;
    expect(c.level).toBe('warning');
    expect(c.rule).toBe('forecast');
    expect(c.title).toMatch(/^Forecast: /);
    expect(c.fields).toContainEqual({ label: 'Projected', value: '12.0000 USD' });
    // $2 in 6 hours projects $8 < $10.
    expect(forecastCondition('user:alice', day('2'), at('2026-11-28T06:00:00Z'), f)).toBeNull();
  });

  it('respects the reset: a new period starts from its own spend only', () => {
    // Yesterday's overrun is not in this period's status; 1 cent after 12 hours projects 2 cents.
    expect(forecastSpend(day('0.01'), at('2026-11-28T12:00:00Z'), f).projectedUsd).toBe('0.02');
  });

  it('leaves an actual overrun to the threshold rule', () => {
    expect(forecastCondition('user:alice', day('10.5'), at('2026-11-28T12:00:00Z'), f)).toBeNull();
  });

  it('follows a synthetic day: quiet morning, burst at noon, forecast fires once the rate projects over', () => {
    const fired: string[] = [];
    // Cumulative spend by hour: 0.2/h until 11:00, then 1.5/h.
    let spent = 0;
    for (let h = 1; h <= 20; h++) {
      spent += h <= 11 ? 0.2 : 1.5;
      const c = forecastCondition('user:alice', day(spent.toFixed(2)), at(`2026-11-28T${String(h).padStart(2, '0')}:00:00Z`), f);
      if (c) fired.push(`${h}`);
    }
    // At 13:00: spent 5.2 over 13h -> 9.6 (no); 14:00: 6.7 over 14h -> 11.49 (yes).
    expect(fired[0]).toBe('14');
  });
});

describe('spike rule', () => {
  const s = settings.spike;

  it('fires above factor x the usual spend for the window, the usual being the mean of previous days', () => {
    expect(detectSpike({ windowUsd: '6.01', baselineUsd: ['2', '2', '2'] }, s)).toEqual({ spiking: true, usualUsd: '2', limitUsd: '6' });
    expect(detectSpike({ windowUsd: '6', baselineUsd: ['2', '2', '2'] }, s).spiking).toBe(false);
  });

  it('never fires below the absolute floor, however large the ratio', () => {
    expect(detectSpike({ windowUsd: '0.9', baselineUsd: ['0.01'] }, s)).toEqual({ spiking: false, usualUsd: '0.01', limitUsd: '1' });
    expect(detectSpike({ windowUsd: '1.01', baselineUsd: ['0.01'] }, s).spiking).toBe(true);
  });

  it('has no "usual" without enough history', () => {
    expect(detectSpike({ windowUsd: '100', baselineUsd: [] }, s)).toEqual({ spiking: false, usualUsd: null, limitUsd: null });
    expect(detectSpike({ windowUsd: '100', baselineUsd: ['1'] }, { ...s, minBaselineDays: 3 }).spiking).toBe(false);
  });

  it('on a synthetic week: steady traffic stays quiet, a 4x hour fires, a 2.5x hour does not', () => {
    const week = ['3.1', '2.9', '3.0', '3.2', '2.8', '3.0', '3.0']; // mean 3.0
    expect(spikeCondition('system', { windowUsd: '3.3', baselineUsd: week }, at('2026-11-28T15:00:00Z'), s)).toBeNull();
    expect(spikeCondition('system', { windowUsd: '7.5', baselineUsd: week }, at('2026-11-28T15:00:00Z'), s)).toBeNull();
    const c = spikeCondition('system', { windowUsd: '12', baselineUsd: week }, at('2026-11-28T15:00:00Z'), s)!;
    expect(c).toMatchObject({ rule: 'spike', level: 'warning', key: 'system|spike|2026-11-28|spike' });
    expect(c.summary).toContain('more than 3x the usual 3.0000 USD');
    expect(c.title).toBe('Spending spike on system: 12.0000 USD in the last 60 minutes, 4.0x the baseline');
  });

  it('names the multiplier and the top model, user and task type of the window', () => {
    const w = {
      windowUsd: '10.2',
      baselineUsd: ['3', '3'],
      top: { model: { key: 'gpt-4', costUsd: '7.5' }, user: { key: 'alice', costUsd: '5.1' }, taskType: { key: 'analysis', costUsd: '9' } },
    };
    const c = spikeCondition('team:infra', w, at('2026-11-28T15:00:00Z'), s)!;
    expect(c.title).toBe('Spending spike on team:infra: 10.2000 USD in the last 60 minutes, 3.4x the baseline');
    expect(c.summary).toBe(
      'team:infra spent 10.2000 USD in the last 60 minutes, 3.4x the baseline (more than 3x the usual 3.0000 USD for this time of day, mean of the previous 2 days). ' +
        'Top contributors: model gpt-4 (7.5000 USD, 73%); user alice (5.1000 USD, 50%); task type analysis (9.0000 USD, 88%).',
    );
    expect(c.fields).toEqual(expect.arrayContaining([
      { label: 'Multiplier', value: '3.4x the baseline' },
      { label: 'Top model', value: 'gpt-4 (7.5000 USD, 73%)' },
      { label: 'Top user', value: 'alice (5.1000 USD, 50%)' },
      { label: 'Top task type', value: 'analysis (9.0000 USD, 88%)' },
    ]));
    // A user scope's top user is itself: left out.
    expect(spikeCondition('user:alice', w, at('2026-11-28T15:00:00Z'), s)!.fields.map((f) => f.label)).not.toContain('Top user');
  });

  it('a window read before contributors were recorded (replayed history) still makes a message; no baseline spend says so', () => {
    const c = spikeCondition('system', { windowUsd: '5', baselineUsd: ['0'] }, at('2026-11-28T15:00:00Z'), s)!;
    expect(c.title).toBe('Spending spike on system: 5.0000 USD in the last 60 minutes');
    expect(c.summary).toBe('system spent 5.0000 USD in the last 60 minutes, with no spend at this time of day on the previous 1 days (above the 1.0000 USD floor).');
    expect(spikeMultiplier('10', '3')).toBe('3.3x');
    expect(spikeMultiplier('1', '0')).toBeNull();
  });
});

describe('unpriced rule', () => {
  it('opens one system-wide condition per provider/model per day, naming both', () => {
    const c = unpricedCondition('acme', 'mystery-1', 'unknown_provider', 3, at('2026-11-28T10:00:00Z'));
    expect(c.key).toBe('system|unpriced|2026-11-28|acme/mystery-1');
    expect(c.title).toBe('Unpriced usage: acme/mystery-1');
    expect(c.fields).toContainEqual({ label: 'Reason', value: 'unknown_provider' });
  });
});

describe('diffConditions', () => {
  const now = at('2026-11-28T12:00:00Z');
  it('raises new conditions and higher or lower levels, says nothing for unchanged ones, clears what no longer holds', () => {
    const warn = budgetConditions(status(day('9', 5)), now, settings);
    expect(warn.map((c) => c.level)).toEqual(['warning']);
    const open = new Map([[warn[0]!.key, { level: 'warning' as const, rule: 'threshold' as const, incidentId: 'i1', periodEndMs: null, acknowledged: false }]]);
    expect(diffConditions(open, warn, ['threshold', 'forecast'])).toEqual([]);
    const crit = budgetConditions(status(day('9.9', 5)), now, settings);
    expect(diffConditions(open, crit, ['threshold', 'forecast'])).toEqual([{ kind: 'raise', condition: crit[0] }]);
    expect(diffConditions(open, [], ['threshold'])).toEqual([{ kind: 'clear', key: warn[0]!.key, incidentId: 'i1' }]);
    // A rule that was not evaluated this time clears nothing.
    expect(diffConditions(open, [], ['spike'])).toEqual([]);
  });
});
