import { describe, expect, it } from 'vitest';
import type { AlertChange, AlertCondition } from '../../src/domain/alert-rules.js';
import { emptyTotals, levelFor } from '../../src/domain/budget-state.js';
import { type UnpricedUsage, summarizeFlush } from '../../src/domain/flush-summary.js';
import type { CountedUsage } from '../../src/domain/ledger.js';
import { ScopeAlerts, type ScopeAlertSettings } from '../../src/domain/scope-alerts.js';
import { ZERO_USAGE } from '../../src/domain/usage.js';
import type { BudgetStatus } from '../../src/domain/budget-status.js';

const NOW = Date.parse('2026-11-28T12:00:00Z');
const settings: ScopeAlertSettings = {
  enabled: true,
  evaluateEveryMs: 60_000,
  forecast: { enabled: true, minElapsedFraction: 0.1, minCalls: 10 },
  spike: { enabled: true, windowMinutes: 60, factor: 3, floorUsd: '1', baselineDays: 7, minBaselineDays: 1, users: true },
};

function status(spent: string, scope = 'user:alice', calls = 1): BudgetStatus {
  const thresholds = { warning: 0.9, critical: 0.98 };
  const ratio = Number(spent) / 10;
  return {
    scope,
    scopeKind: scope === 'system' ? 'system' : 'user',
    source: 'events',
    updatedAt: '',
    counters: { batchesApplied: 0, duplicateBatches: 0, droppedBatches: 0, eventsCounted: 0, duplicateEvents: 0, rejectedEvents: 0, lateEvents: 0 },
    budgets: [
      {
        period: 'day',
        timezone: 'UTC',
        enforcement: 'none',
        failMode: 'open',
        periodKey: 'day:2026-11-28@UTC',
        periodStart: '2026-11-28T00:00:00.000Z',
        periodEnd: '2026-11-29T00:00:00.000Z',
        amount: '10',
        currency: 'USD',
        amountUsd: '10',
        thresholds,
        spentUsd: spent,
        remainingUsd: '0',
        usageRatio: ratio,
        level: levelFor(ratio, thresholds),
        totals: { ...emptyTotals(), costUsd: spent, calls },
      },
    ],
  };
}

function raisedCondition(change: AlertChange | undefined): AlertCondition {
  if (change?.kind !== 'raise') throw new Error(`expected a raise, got ${JSON.stringify(change)}`);
  return change.condition;
}

function unpriced(provider: string, model: string): CountedUsage {
  return { requestId: `${provider}-${model}-${Math.random()}`, occurredAt: '', costUsd: '0', unpriced: true, provider, model, taskType: 't', usage: { ...ZERO_USAGE }, unpricedReason: 'unknown_model' };
}

/** The unpriced usage of a flush, grouped as the flush activity returns it. */
function seen(...counted: CountedUsage[]): UnpricedUsage[] {
  return summarizeFlush({ batchId: 'b', received: counted.length, duplicates: 0, counted, rejected: [] }, []).unpriced;
}

describe('ScopeAlerts', () => {
  it('raises a threshold once, again only for a new level, and forgets it when its period is over', () => {
    const a = new ScopeAlerts('user:alice');
    const first = a.evaluate(status('9.1'), NOW, settings, null);
    expect(first.map((c) => c.kind === 'raise' && c.condition.level)).toEqual(['warning']);
    a.raised(raisedCondition(first[0]), 'i1');
    for (let n = 0; n < 1000; n++) expect(a.evaluate(status('9.2'), NOW + n, settings, null)).toEqual([]);
    expect(a.evaluate(status('9.9'), NOW, settings, null).map((c) => c.kind === 'raise' && c.condition.level)).toEqual(['critical']);
    expect(a.list()).toEqual([{ incidentId: 'i1', key: 'user:alice|day|day:2026-11-28@UTC|threshold', rule: 'threshold', level: 'warning', status: 'open' }]);
    // Next day: the incident resolves itself; the budget workflow forgets it without clearing it.
    expect(a.evaluate(status('0'), Date.parse('2026-11-29T00:00:01Z'), settings, null)).toEqual([]);
    expect(a.list()).toEqual([]);
  });

  it('learns acknowledgements and resolutions from the alert workflow, and carries its state', () => {
    const a = new ScopeAlerts('user:alice');
    const [c] = a.evaluate(status('9.1'), NOW, settings, null);
    a.raised(raisedCondition(c), 'i1');
    a.incidentChanged({ incidentId: 'i1', key: 'user:alice|day|day:2026-11-28@UTC|threshold', status: 'acknowledged' });
    expect(a.list()[0]!.status).toBe('acknowledged');
    const b = new ScopeAlerts('user:alice', structuredClone(a.carry()));
    expect(b.list()).toEqual(a.list());
    b.incidentChanged({ incidentId: 'i1', key: 'user:alice|day|day:2026-11-28@UTC|threshold', status: 'resolved' });
    expect(b.list()).toEqual([]);
  });

  it('checks spikes for a user only once its spend reaches the floor, and at most every evaluation interval', () => {
    const a = new ScopeAlerts('user:alice');
    expect(a.spikeDue(status('0.5'), NOW, settings)).toBe(false);
    expect(a.spikeDue(status('1'), NOW, settings)).toBe(true);
    a.evaluate(status('1'), NOW, settings, { windowUsd: '0', baselineUsd: [] });
    expect(a.spikeDue(status('1'), NOW + 59_999, settings)).toBe(false);
    expect(a.spikeDue(status('1'), NOW + 60_000, settings)).toBe(true);
    expect(new ScopeAlerts('system').spikeDue(status('0', 'system'), NOW, settings)).toBe(true);
  });

  it('raises and clears a spike, keeping a timer only while it is open', () => {
    const a = new ScopeAlerts('system');
    expect(a.nextCheckMs(settings)).toBe(Infinity);
    const [raise] = a.evaluate(status('0', 'system'), NOW, settings, { windowUsd: '10', baselineUsd: ['1'] });
    expect(raise).toMatchObject({ kind: 'raise', condition: { rule: 'spike' } });
    a.raised(raisedCondition(raise), 's1');
    expect(a.nextCheckMs(settings)).toBe(NOW + 60_000);
    // Checked without windows (not due): the spike is left alone.
    expect(a.evaluate(status('0', 'system'), NOW + 1, settings, null)).toEqual([]);
    const [clear] = a.evaluate(status('0', 'system'), NOW + 60_000, settings, { windowUsd: '2', baselineUsd: ['1'] });
    expect(clear).toEqual({ kind: 'clear', key: 'system|spike|2026-11-28|spike', incidentId: 's1' });
  });

  it('raises unpriced usage once per provider/model per day', () => {
    const a = new ScopeAlerts('user:alice');
    const found = a.unpriced(seen(unpriced('acme', 'm1'), unpriced('acme', 'm1'), unpriced('acme', 'm2')), NOW);
    expect(found.map((c) => [c.key, c.fields.find((f) => f.label === 'Calls seen')!.value])).toEqual([
      ['system|unpriced|2026-11-28|acme/m1', '2'],
      ['system|unpriced|2026-11-28|acme/m2', '1'],
    ]);
    for (const c of found) a.unpricedRaisedFor(c);
    expect(a.unpriced(seen(unpriced('acme', 'm1')), NOW + 1000)).toEqual([]);
    expect(a.unpriced(seen(unpriced('acme', 'm1')), Date.parse('2026-11-29T01:00:00Z'))).toHaveLength(1);
  });

  it('raises nothing when alerting is disabled', () => {
    expect(new ScopeAlerts('user:alice').evaluate(status('20'), NOW, { ...settings, enabled: false }, null)).toEqual([]);
  });
});
