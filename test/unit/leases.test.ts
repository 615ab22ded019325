import { describe, expect, it } from 'vitest';
import { budgetMicro, bucketName, enforcementOf, grantAmount, isEnforcing, holdId, holdReservedAtMs, isHoldId, microDown, microUp, usdOf } from '../../src/domain/leases.js';
import { parseUsageEvent } from '../../src/domain/usage.js';
import { validateBudgetChange } from '../../src/domain/budget.js';

describe('lease arithmetic', () => {
  it('rounds reservations and costs up, budgets down, to the micro-dollar', () => {
    expect(microUp('0.0000001')).toBe(1);
    expect(microUp('0.05')).toBe(50_000);
    expect(microDown('0.0000019')).toBe(1);
    expect(microDown('1')).toBe(1_000_000);
    expect(usdOf(1_234_567)).toBe('1.234567');
    // Amounts beyond $90 million (14 significant digits in Redis's Lua) are capped.
    expect(microDown('1000000000')).toBe(90_000_000 * 1_000_000);
  });

  it('converts a budget in another currency at the configured rate', () => {
    expect(budgetMicro({ amount: '92', currency: 'EUR' }, { USD: '1', EUR: '0.92', GBP: '0.79', JPY: '150', CNY: '7.2' })).toBe(100_000_000);
  });

  it('grants up to a slice of the budget, at least what is asked, never beyond what the invariant leaves', () => {
    const s = { sliceFraction: 0.25 };
    // Fresh: a quarter of $1.
    expect(grantAmount({ budgetMicro: 1_000_000, spentMicro: 0, lostMicro: 0, snapshot: { available: 0, open: 0 }, needMicro: 50_000 }, s)).toBe(250_000);
    // Asked for more than a slice: what is asked.
    expect(grantAmount({ budgetMicro: 1_000_000, spentMicro: 0, lostMicro: 0, snapshot: { available: 0, open: 0 }, needMicro: 600_000 }, s)).toBe(600_000);
    // Headroom: budget - spent - lost - open - available.
    expect(grantAmount({ budgetMicro: 1_000_000, spentMicro: 700_000, lostMicro: 100_000, snapshot: { available: 50_000, open: 100_000 }, needMicro: 500_000 }, s)).toBe(50_000);
    // Nothing left: nothing granted, whatever is asked.
    expect(grantAmount({ budgetMicro: 1_000_000, spentMicro: 900_000, lostMicro: 0, snapshot: { available: 0, open: 100_000 }, needMicro: 1 }, s)).toBe(0);
    // Spend charged beyond the lease (usage without a hold) is made up in one grant, within the budget.
    expect(grantAmount({ budgetMicro: 1_000_000, spentMicro: 900_000, lostMicro: 0, snapshot: { available: -650_000, open: 0 }, needMicro: 0 }, s)).toBe(750_000);
    // Already a slice available: nothing more.
    expect(grantAmount({ budgetMicro: 1_000_000, spentMicro: 0, lostMicro: 0, snapshot: { available: 300_000, open: 0 }, needMicro: 10 }, s)).toBe(0);
  });

  it('names a bucket by scope, period, time zone and period start', () => {
    const at = Date.UTC(2026, 10, 30, 15, 0, 0);
    expect(bucketName('user:alice', { period: 'day', timezone: 'UTC' }, at)).toEqual({ name: `user:alice|day|UTC|${Date.UTC(2026, 10, 30)}`, startMs: Date.UTC(2026, 10, 30), endMs: Date.UTC(2026, 11, 1) });
  });

  it('defaults: none (no part in decisions), failing open; soft fails open; hard fails closed', () => {
    expect(enforcementOf({})).toEqual({ enforcement: 'none', failMode: 'open' });
    expect(isEnforcing({})).toBe(false);
    expect(isEnforcing({ enforcement: 'none' })).toBe(false);
    expect(isEnforcing({ enforcement: 'soft' })).toBe(true);
    expect(enforcementOf({ enforcement: 'soft' })).toEqual({ enforcement: 'soft', failMode: 'open' });
    expect(enforcementOf({ enforcement: 'hard' })).toEqual({ enforcement: 'hard', failMode: 'closed' });
    expect(enforcementOf({ enforcement: 'hard', failMode: 'open' })).toEqual({ enforcement: 'hard', failMode: 'open' });
  });
});

describe('hold ids', () => {
  it('carry their reservation time, and a usage event without occurredAt is dated to it', () => {
    const at = Date.UTC(2026, 10, 30, 23, 59, 59, 500);
    const id = holdId('n1', at, 'AbCdEfGhIjKlMnOp');
    expect(isHoldId(id)).toBe(true);
    expect(holdReservedAtMs(id)).toBe(at);
    expect(isHoldId('h.x')).toBe(false);
    const r = parseUsageEvent({ requestId: 'r1', provider: 'openai', model: 'gpt-4o', userId: 'u', usage: { inputTokens: 1 }, holdId: id }, { now: at + 5000 });
    expect(r.ok && r.value.occurredAt).toBe(new Date(at).toISOString());
    expect(r.ok && r.value.holdId).toBe(id);
    // The schema path names a bad hold id.
    const bad = parseUsageEvent({ requestId: 'r1', provider: 'openai', model: 'gpt-4o', userId: 'u', usage: {}, holdId: 'nope' }, { now: at });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.issues[0]).toMatchObject({ path: 'holdId' });
  });
});

describe('budget changes with enforcement', () => {
  it('keeps enforcement and failMode, and names bad values', () => {
    const ok = validateBudgetChange({ budgets: [{ period: 'day', amount: '5', thresholds: { warning: 0.8, critical: 0.9 }, enforcement: 'hard', failMode: 'open' }] }, 'UTC');
    expect(ok.ok && ok.value[0]).toMatchObject({ enforcement: 'hard', failMode: 'open' });
    const bad = validateBudgetChange({ budgets: [{ period: 'day', amount: '5', thresholds: { warning: 0.8, critical: 0.9 }, enforcement: 'strict', failMode: 'maybe' }] }, 'UTC');
    expect(!bad.ok && bad.issues.map((i) => i.path)).toEqual(['budgets.0.enforcement', 'budgets.0.failMode']);
  });
});

describe('configuration', () => {
  it('takes preflight settings, hard budgets and advice, and names what is wrong', async () => {
    const { parseConfigFile } = await import('../../src/config/index.js');
    const file = parseConfigFile(
      `budgets:
  - { scope: user, period: day, amount: "5", thresholds: { warning: 0.8, critical: 0.95 }, enforcement: hard }
preflight: { holdTtlMs: 30000, sliceFraction: 0.5 }
advice: { maxTokensByTaskType: { summarization: 500 }, perCall: { economyBelowUsd: "0.02" } }
`,
      'test.yaml',
    );
    expect(file.budgets[0]).toMatchObject({ enforcement: 'hard' });
    expect(file.preflight).toMatchObject({ holdTtlMs: 30000, sliceFraction: 0.5, maxHoldTtlMs: 600_000, unknownPriceUsd: '0.10' });
    expect(() => parseConfigFile('preflight: { holdTtlMs: 700000 }\n', 'bad.yaml')).toThrow(/holdTtlMs <= maxHoldTtlMs/);
    expect(() => parseConfigFile('advice: { hysteresis: 2 }\n', 'bad.yaml')).toThrow(/advice.hysteresis must be a number in \[0, 1\)/);
    expect(() => parseConfigFile('budgets:\n  - { scope: user, period: day, amount: "5", thresholds: { warning: 0.8, critical: 0.95 }, enforcement: strict }\n', 'bad.yaml')).toThrow(/expected "hard", "soft" or "none"/);
  });
});
