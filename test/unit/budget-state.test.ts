import { describe, expect, it } from 'vitest';
import { type Budget } from '../../src/domain/budget.js';
import {
  BREAKDOWN_KEYS_KEPT,
  BREAKDOWN_KEYS_SHOWN,
  BudgetState,
  OTHER,
  RECENT_BATCH_IDS,
} from '../../src/domain/budget-state.js';
import { summarizeFlush } from '../../src/domain/flush-summary.js';
import { type CountedUsage, type FlushResult } from '../../src/domain/ledger.js';
import { DEFAULT_EXCHANGE_RATES } from '../../src/domain/money.js';
import type { BudgetPeriodStatus, PeriodTotals } from '../../src/domain/budget-status.js';
import type { CarriedState } from '../../src/domain/budget-state.js';
import { at, dec } from './helpers.js';

const SCOPE = 'user:alice';
const CHAIN = 'budget/user:alice/run-1';
const NOW = at('2026-03-10T12:00:00Z');

const THRESHOLDS = { warning: 0.8, critical: 0.95 };
const DAY: Budget = { period: 'day', amount: '10', currency: 'USD', timezone: 'UTC', thresholds: THRESHOLDS };
const MONTH: Budget = { period: 'month', amount: '200', currency: 'USD', timezone: 'UTC', thresholds: THRESHOLDS };

function newState(budgets: Budget[] = [DAY, MONTH], now = NOW, carried?: CarriedState): BudgetState {
  return new BudgetState({ scope: SCOPE, budgets, rates: DEFAULT_EXCHANGE_RATES }, now, carried);
}

/** A raw event as a service sends it. */
function rawEvent(requestId: string, occurredAt: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId,
    occurredAt,
    provider: 'openai',
    model: 'gpt-4o-mini',
    userId: 'alice',
    taskType: 'chat',
    usage: { inputTokens: 1000, cacheReadTokens: 200, outputTokens: 100, reasoningTokens: 40 },
    ...over,
  };
}

/** Sends a batch that must be accepted. */
function send(state: BudgetState, batchId: string, events: Record<string, unknown>[], now = NOW): void {
  expect(state.acceptBatch({ batchId, events }, now)).toEqual({ outcome: 'accepted', events: events.length });
}

/**
 * Flushes everything pending and applies what "the ledger" answered: each event whose requestId is in
 * `costs` was newly counted at that cost; the others were duplicates. Counted events carry their
 * details normalized as the flush activity does.
 */
function flush(state: BudgetState, costs: Record<string, string>, opts: { now?: number; unpriced?: string[] } = {}): FlushResult {
  const f = state.takeFlush(CHAIN, 10_000);
  const counted: CountedUsage[] = f.events
    .filter((e) => e.requestId in costs)
    .map((e) => ({
      requestId: e.requestId,
      occurredAt: new Date(e.occurredAt as string).toISOString(),
      costUsd: costs[e.requestId]!,
      unpriced: opts.unpriced?.includes(e.requestId) ?? false,
      provider: e.provider.toLowerCase(),
      model: e.model,
      taskType: e.taskType ?? 'default',
      usage: { inputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0, reasoningTokens: 0, ...e.usage },
    }));
  const result: FlushResult = { batchId: f.batchId, received: f.events.length, duplicates: f.events.length - counted.length, counted, rejected: [] };
  state.applyFlush(result, opts.now ?? NOW);
  return result;
}

function budgetStatus(state: BudgetState, period: string, now = NOW): BudgetPeriodStatus {
  const b = state.status(now).budgets.find((s) => s.period === period);
  if (!b) expect.fail(`no ${period} budget in the status`);
  return b;
}

const spent = (state: BudgetState, period: string, now = NOW) => budgetStatus(state, period, now).spentUsd;

/** The full (unbounded-view) totals of a period, as carried across continue-as-new. */
function fullTotals(state: BudgetState, period: string): PeriodTotals {
  const p = state.carry().periods[period];
  if (!p) expect.fail(`no ${period} period carried`);
  return p.totals;
}

/** What Temporal does to the carried state: it is serialised as JSON. */
const overTheWire = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

describe('BudgetState.acceptBatch', () => {
  it('accepts a valid batch: its events wait, as sent, for the next flush', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z'), rawEvent('r2', '2026-03-10T11:30:00+01:00', { provider: 'OpenAI' })]);
    expect(state.pendingCount()).toBe(2);
    expect(state.hasPending()).toBe(true);
    const f = state.takeFlush(CHAIN, 10);
    expect(f.events.map((e) => [e.requestId, e.occurredAt, e.provider, e.taskType])).toEqual([
      ['r1', '2026-03-10T11:00:00Z', 'openai', 'chat'],
      ['r2', '2026-03-10T11:30:00+01:00', 'OpenAI', 'chat'],
    ]);
  });

  it('an event without occurredAt is stamped with the time the batch arrived', () => {
    const state = newState();
    const { occurredAt: _omit, ...noTime } = rawEvent('r1', '');
    send(state, 'b1', [noTime]);
    expect(state.takeFlush(CHAIN, 10).events[0]!.occurredAt).toBe('2026-03-10T12:00:00.000Z');
  });

  it('ignores a batch id seen before, and counts it', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    expect(state.acceptBatch({ batchId: 'b1', events: [rawEvent('r1', '2026-03-10T11:00:00Z')] }, NOW)).toEqual({ outcome: 'duplicate' });
    // Even with different content: the id is what makes a re-send harmless.
    expect(state.acceptBatch({ batchId: 'b1', events: [rawEvent('r9', '2026-03-10T11:00:00Z')] }, NOW)).toEqual({ outcome: 'duplicate' });
    expect(state.pendingCount()).toBe(1);
    expect(state.status(NOW).counters).toMatchObject({ duplicateBatches: 2, droppedBatches: 0 });
  });

  it('still remembers the batch id after its events were flushed', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    flush(state, { r1: '0.5' });
    expect(state.acceptBatch({ batchId: 'b1', events: [rawEvent('r1', '2026-03-10T11:00:00Z')] }, NOW)).toEqual({ outcome: 'duplicate' });
    expect(state.hasPending()).toBe(false);
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['undefined', undefined],
    ['a string', 'b1'],
    ['a number', 42],
    ['an array', [rawEvent('r1', '2026-03-10T11:00:00Z')]],
    ['an empty object', {}],
    ['a missing batchId', { events: [rawEvent('r1', '2026-03-10T11:00:00Z')] }],
    ['an empty batchId', { batchId: '', events: [rawEvent('r1', '2026-03-10T11:00:00Z')] }],
    ['a numeric batchId', { batchId: 7, events: [rawEvent('r1', '2026-03-10T11:00:00Z')] }],
    ['events missing', { batchId: 'b1' }],
    ['events not an array', { batchId: 'b1', events: rawEvent('r1', '2026-03-10T11:00:00Z') }],
    ['events a string', { batchId: 'b1', events: 'r1' }],
  ])('drops (never throws) a batch that is %s', (_what, batch) => {
    const state = newState();
    const outcome = state.acceptBatch(batch, NOW);
    expect(outcome).toEqual({ outcome: 'dropped', issues: [{ path: '', message: 'expected { batchId: string, events: [...] }' }] });
    expect(state.pendingCount()).toBe(0);
    expect(state.status(NOW).counters).toMatchObject({ droppedBatches: 1, duplicateBatches: 0 });
  });

  it('leaves the validation of event contents to the flush activity (the shape is all it checks)', () => {
    const state = newState();
    const outcome = state.acceptBatch(
      { batchId: 'b1', events: [rawEvent('r1', '2026-03-10T11:00:00Z'), rawEvent('r2', '2026-03-10T11:00:00Z', { usage: { inputTokens: -5 } })] },
      NOW,
    );
    expect(outcome).toEqual({ outcome: 'accepted', events: 2 });
    expect(state.pendingCount()).toBe(2);
  });

  it.each<[string, unknown, string]>([
    ['no requestId', { ...rawEvent('r1', '2026-03-10T11:00:00Z'), requestId: undefined }, 'events[0].requestId'],
    ['an empty requestId', { ...rawEvent('r1', '2026-03-10T11:00:00Z'), requestId: '' }, 'events[0].requestId'],
    ['null for an event', null, 'events[0].requestId'],
  ])('drops a batch whose event has %s', (_what, event, path) => {
    const state = newState();
    const outcome = state.acceptBatch({ batchId: 'b1', events: [event] }, NOW);
    expect(outcome.outcome).toBe('dropped');
    expect(outcome.outcome === 'dropped' && outcome.issues.map((i) => i.path)).toContain(path);
    expect(state.pendingCount()).toBe(0);
    expect(state.status(NOW).counters.droppedBatches).toBe(1);
  });

  it('drops a batch carrying another user\'s event, saying whose it is', () => {
    const state = newState();
    const outcome = state.acceptBatch(
      { batchId: 'b1', events: [rawEvent('r1', '2026-03-10T11:00:00Z'), rawEvent('r2', '2026-03-10T11:00:00Z', { userId: 'bob' })] },
      NOW,
    );
    expect(outcome).toEqual({ outcome: 'dropped', issues: [{ path: 'events[1].userId', message: 'event r2 belongs to user:bob, not user:alice' }] });
    expect(state.pendingCount()).toBe(0);
    expect(state.status(NOW).counters.droppedBatches).toBe(1);
  });

  it('a dropped batch does not burn its id: the corrected re-send is accepted', () => {
    const state = newState();
    expect(state.acceptBatch({ batchId: 'b1', events: [rawEvent('r1', '2026-03-10T11:00:00Z', { userId: 'mallory' })] }, NOW).outcome).toBe('dropped');
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    expect(state.status(NOW).counters).toMatchObject({ droppedBatches: 1, duplicateBatches: 0 });
  });

  it('drops counted batch by batch across a mix of shapes', () => {
    const state = newState();
    const outcomes = [null, 'x', { batchId: 'a' }, { batchId: 'b', events: [null] }, { batchId: 'c', events: [rawEvent('r', '2026-03-10T11:00:00Z', { userId: 'eve' })] }].map(
      (b) => state.acceptBatch(b, NOW).outcome,
    );
    expect(outcomes).toEqual(['dropped', 'dropped', 'dropped', 'dropped', 'dropped']);
    expect(state.status(NOW).counters).toEqual({ batchesApplied: 0, duplicateBatches: 0, droppedBatches: 5, eventsCounted: 0, duplicateEvents: 0, rejectedEvents: 0, lateEvents: 0 });
  });
});

describe('BudgetState.takeFlush', () => {
  it('gives each flush its own batch id and at most `max` events, oldest first', () => {
    const state = newState();
    send(state, 'b1', ['r1', 'r2', 'r3'].map((id) => rawEvent(id, '2026-03-10T11:00:00Z')));
    send(state, 'b2', ['r4', 'r5'].map((id) => rawEvent(id, '2026-03-10T11:00:00Z')));
    const first = state.takeFlush(CHAIN, 2);
    const second = state.takeFlush(CHAIN, 2);
    const third = state.takeFlush(CHAIN, 2);
    expect([first.batchId, second.batchId, third.batchId]).toEqual([`${CHAIN}/flush-1`, `${CHAIN}/flush-2`, `${CHAIN}/flush-3`]);
    expect([first, second, third].map((f) => f.events.map((e) => e.requestId))).toEqual([['r1', 'r2'], ['r3', 'r4'], ['r5']]);
    expect(state.hasPending()).toBe(false);
  });

  it('keeps numbering after continue-as-new, so a new run never reuses a flush id', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    flush(state, { r1: '1' });
    flush(state, {});
    const next = newState([DAY, MONTH], NOW, overTheWire(state.carry()));
    send(next, 'b2', [rawEvent('r2', '2026-03-10T11:00:00Z')]);
    expect(next.takeFlush(CHAIN, 10).batchId).toBe(`${CHAIN}/flush-3`);
  });
});

describe('BudgetState.applyFlush', () => {
  it('counts only what the ledger newly counted, at the ledger\'s cost', () => {
    const state = newState();
    send(state, 'b1', ['r1', 'r2', 'r3'].map((id) => rawEvent(id, '2026-03-10T11:00:00Z')));
    flush(state, { r1: '0.000123', r3: '0.00000456' }, { unpriced: ['r3'] });
    const day = budgetStatus(state, 'day');
    expect(day.spentUsd).toBe('0.00012756');
    expect(day.totals.calls).toBe(2);
    expect(day.totals.unpricedCalls).toBe(1);
    expect(day.totals.tokens).toEqual({ inputTokens: 2000, cacheReadTokens: 400, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 200, reasoningTokens: 80 });
    expect(state.status(NOW).counters).toEqual({ batchesApplied: 1, duplicateBatches: 0, droppedBatches: 0, eventsCounted: 2, duplicateEvents: 1, rejectedEvents: 0, lateEvents: 0 });
  });

  it('sums exactly in decimal: 0.1 + 0.2 is 0.3', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z'), rawEvent('r2', '2026-03-10T11:00:00Z')]);
    flush(state, { r1: '0.1', r2: '0.2' });
    expect(spent(state, 'day')).toBe('0.3');
    expect(spent(state, 'month')).toBe('0.3');
  });

  it('a flush the ledger had already counted adds nothing', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    flush(state, {});
    expect(spent(state, 'day')).toBe('0');
    expect(budgetStatus(state, 'day').totals.calls).toBe(0);
    expect(state.status(NOW).counters).toMatchObject({ batchesApplied: 1, eventsCounted: 0, duplicateEvents: 1 });
  });

  it('puts an event in the period of its occurredAt: yesterday\'s event is late for the day, counted in the month', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('today', '2026-03-10T11:00:00Z'), rawEvent('yesterday', '2026-03-09T23:59:59.999Z')]);
    flush(state, { today: '1', yesterday: '2' });
    expect(spent(state, 'day')).toBe('1');
    expect(spent(state, 'month')).toBe('3');
    expect(state.status(NOW).counters).toMatchObject({ eventsCounted: 2, lateEvents: 1 });
  });

  it('an event of a closed month changes no current total', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('old', '2026-02-28T23:59:59Z')]);
    flush(state, { old: '5' });
    expect([spent(state, 'day'), spent(state, 'month')]).toEqual(['0', '0']);
    expect(state.status(NOW).counters).toMatchObject({ eventsCounted: 1, lateEvents: 1 });
  });

  it('an event at the first instant of the current day is not late', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T00:00:00.000Z')]);
    flush(state, { r1: '1' });
    expect(spent(state, 'day')).toBe('1');
    expect(state.status(NOW).counters.lateEvents).toBe(0);
  });

  it('keeps an event stamped in the next period for when that period begins', () => {
    const now = at('2026-03-10T23:59:50Z');
    const state = newState([DAY, MONTH], now);
    send(state, 'b1', [rawEvent('now', '2026-03-10T23:59:49Z'), rawEvent('ahead', '2026-03-11T00:00:05Z')], now);
    flush(state, { now: '1', ahead: '2' }, { now });
    expect(spent(state, 'day', now)).toBe('1');
    expect(spent(state, 'month', now)).toBe('3');

    const midnight = at('2026-03-11T00:00:00Z');
    expect(state.rollover(midnight)).toEqual(['day:2026-03-10@UTC']);
    const day = budgetStatus(state, 'day', midnight);
    expect([day.periodKey, day.spentUsd, day.totals.calls]).toEqual(['day:2026-03-11@UTC', '2', 1]);
    expect(spent(state, 'month', midnight)).toBe('3');
  });

  it('keeps events stamped in two different future periods of a short budget', () => {
    // A client clock 15 and 25 minutes ahead (allowed: up to a day) with a 10-minute budget.
    const tenMinutes: Budget = { ...DAY, period: '10m' };
    const state = newState([tenMinutes]);
    send(state, 'b1', [rawEvent('plus15', '2026-03-10T12:15:00Z'), rawEvent('plus25', '2026-03-10T12:25:00Z')]);
    flush(state, { plus15: '1', plus25: '2' });
    expect(spent(state, '10m')).toBe('0');

    state.rollover(at('2026-03-10T12:10:00Z'));
    expect(spent(state, '10m')).toBe('1');
    state.rollover(at('2026-03-10T12:20:00Z'));
    expect(spent(state, '10m')).toBe('2');
  });
});

describe('BudgetState.applySummary (the local-activity flush path)', () => {
  it('gives the same totals as applying the flush event by event, for any split of the flush', () => {
    const events = Array.from({ length: 60 }, (_, i) =>
      rawEvent(`r${i}`, i % 7 === 0 ? '2026-03-09T23:00:00Z' : i % 11 === 0 ? '2026-03-11T01:00:00Z' : '2026-03-10T11:00:00Z', {
        model: ['gpt-4o-mini', 'gpt-4o', 'o3'][i % 3],
        taskType: ['chat', 'rag'][i % 2],
      }),
    );
    const costs = Object.fromEntries(events.map((e, i) => [e.requestId as string, `0.0${(i * 7919) % 1000}1`]));
    const whole = newState();
    send(whole, 'b1', events);
    flush(whole, costs);
    // The same events in three flushes, each summed by the activity and applied as a summary.
    const split = newState();
    for (const [n, part] of [events.slice(0, 13), events.slice(13, 40), events.slice(40)].entries()) {
      send(split, `s${n}`, part);
      const f = split.takeFlush(CHAIN, 10_000);
      const counted = f.events.map((e) => ({
        requestId: e.requestId,
        occurredAt: new Date(e.occurredAt as string).toISOString(),
        costUsd: costs[e.requestId]!,
        unpriced: false,
        provider: e.provider,
        model: e.model,
        taskType: e.taskType ?? 'default',
        usage: { inputTokens: 1000, cacheReadTokens: 200, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 100, reasoningTokens: 40 },
      }));
      const result = { batchId: f.batchId, received: counted.length, duplicates: 0, counted, rejected: [] };
      split.applySummary(overTheWire(summarizeFlush(result, split.currentPeriods())), NOW);
    }
    expect(split.carry().periods).toEqual(whole.carry().periods);
    expect(split.status(NOW).counters).toEqual({ ...whole.status(NOW).counters, batchesApplied: 3 });
  });

  it('skips a delta for a period it no longer tracks (the budgets changed while the flush ran)', () => {
    const state = newState([DAY]);
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    const f = state.takeFlush(CHAIN, 10);
    const targets = state.currentPeriods();
    state.setBudgets([{ ...DAY, period: '1h' }], NOW);
    const counted = [{ requestId: 'r1', occurredAt: '2026-03-10T11:00:00.000Z', costUsd: '1', unpriced: false, provider: 'openai', model: 'm', taskType: 't', usage: { inputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 1, reasoningTokens: 0 } }];
    state.applySummary(summarizeFlush({ batchId: f.batchId, received: 1, duplicates: 0, counted, rejected: [] }, targets), NOW);
    expect(spent(state, '1h')).toBe('0');
    expect(state.status(NOW).counters.eventsCounted).toBe(1);
  });
});

describe('BudgetState.rollover', () => {
  it('does nothing before the end of the period', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    flush(state, { r1: '4' });
    expect(state.rollover(at('2026-03-10T23:59:59.999Z'))).toEqual([]);
    expect(budgetStatus(state, 'day').periodKey).toBe('day:2026-03-10@UTC');
    expect(spent(state, 'day')).toBe('4');
  });

  it('at the end of the day resets the day\'s totals, returns the closed key, and keeps the month', () => {
    const state = newState();
    expect(state.nextRolloverMs()).toBe(at('2026-03-11T00:00:00Z'));
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    flush(state, { r1: '4' });
    const midnight = at('2026-03-11T00:00:00Z');
    expect(state.rollover(midnight)).toEqual(['day:2026-03-10@UTC']);
    const day = budgetStatus(state, 'day', midnight);
    expect([day.periodKey, day.periodStart, day.periodEnd, day.spentUsd, day.totals.calls, day.level]).toEqual([
      'day:2026-03-11@UTC',
      '2026-03-11T00:00:00.000Z',
      '2026-03-12T00:00:00.000Z',
      '0',
      0,
      'ok',
    ]);
    expect(day.totals.byModel).toEqual([]);
    expect(spent(state, 'month', midnight)).toBe('4');
    expect(state.nextRolloverMs()).toBe(at('2026-03-12T00:00:00Z'));
  });

  it('at the end of the month closes both the day and the month', () => {
    const state = newState([DAY, MONTH], at('2026-03-31T20:00:00Z'));
    send(state, 'b1', [rawEvent('r1', '2026-03-31T19:00:00Z')], at('2026-03-31T20:00:00Z'));
    flush(state, { r1: '4' });
    expect(state.rollover(at('2026-04-01T00:00:00Z'))).toEqual(['day:2026-03-31@UTC', 'month:2026-03@UTC']);
    expect([spent(state, 'day'), spent(state, 'month')]).toEqual(['0', '0']);
  });

  it('follows the budget\'s time zone: a Paris day ends at 23:00Z in winter', () => {
    const paris: Budget = { ...DAY, timezone: 'Europe/Paris' };
    const state = newState([paris]);
    expect(state.nextRolloverMs()).toBe(at('2026-03-10T23:00:00Z'));
    expect(state.rollover(at('2026-03-10T22:59:59.999Z'))).toEqual([]);
    expect(state.rollover(at('2026-03-10T23:00:00Z'))).toEqual(['day:2026-03-10@Europe/Paris']);
  });
});

describe('BudgetState: breakdowns', () => {
  it('breaks the spend down by provider, model and task type', () => {
    const state = newState();
    send(state, 'b1', [
      rawEvent('r1', '2026-03-10T11:00:00Z', { model: 'gpt-4o', taskType: 'chat' }),
      rawEvent('r2', '2026-03-10T11:00:00Z', { model: 'gpt-4o', taskType: 'summarise' }),
      rawEvent('r3', '2026-03-10T11:00:00Z', { provider: 'anthropic', model: 'claude-sonnet-4', taskType: 'chat' }),
    ]);
    flush(state, { r1: '0.25', r2: '0.5', r3: '1.125' });
    const totals = budgetStatus(state, 'day').totals;
    expect(totals.byProvider).toEqual([
      { key: 'anthropic', costUsd: '1.125', calls: 1 },
      { key: 'openai', costUsd: '0.75', calls: 2 },
    ]);
    expect(totals.byModel).toEqual([
      { key: 'claude-sonnet-4', costUsd: '1.125', calls: 1 },
      { key: 'gpt-4o', costUsd: '0.75', calls: 2 },
    ]);
    expect(totals.byTaskType).toEqual([
      { key: 'chat', costUsd: '1.375', calls: 2 },
      { key: 'summarise', costUsd: '0.5', calls: 1 },
    ]);
  });

  it(`keeps at most ${BREAKDOWN_KEYS_KEPT} keys plus "${OTHER}", whose entries still add up to the total`, () => {
    const state = newState();
    // 60 models; model i costs i/1000 USD, sent cheapest first.
    const models = Array.from({ length: 60 }, (_, i) => `m${String(i + 1).padStart(2, '0')}`);
    send(state, 'b1', models.map((m) => rawEvent(`r-${m}`, '2026-03-10T11:00:00Z', { model: m })));
    flush(state, Object.fromEntries(models.map((m, i) => [`r-${m}`, dec(i + 1).dividedBy(1000).toFixed()])));

    const full = fullTotals(state, 'day');
    expect(full.costUsd).toBe('1.83');
    expect(full.byModel).toHaveLength(BREAKDOWN_KEYS_KEPT + 1);
    // The ten cheapest were folded into "(other)": 0.001 + ... + 0.010.
    expect(full.byModel.find((e) => e.key === OTHER)).toEqual({ key: OTHER, costUsd: '0.055', calls: 10 });
    expect(full.byModel.filter((e) => e.key !== OTHER).map((e) => e.key).sort()).toEqual(models.slice(10));
    const sum = full.byModel.reduce((s, e) => s.plus(e.costUsd), dec(0));
    expect(sum.toFixed()).toBe(full.costUsd);
    expect(full.byModel.reduce((n, e) => n + e.calls, 0)).toBe(60);
    // Providers and task types were not affected.
    expect(full.byProvider).toEqual([{ key: 'openai', costUsd: '1.83', calls: 60 }]);

    // The status shows the top ten, most expensive first ("(other)" sorts before m55 on a tie).
    const shown = budgetStatus(state, 'day').totals.byModel;
    expect(shown).toHaveLength(BREAKDOWN_KEYS_SHOWN);
    expect(shown.map((e) => `${e.key}=${e.costUsd}`)).toEqual([
      'm60=0.06', 'm59=0.059', 'm58=0.058', 'm57=0.057', 'm56=0.056', '(other)=0.055', 'm55=0.055', 'm54=0.054', 'm53=0.053', 'm52=0.052',
    ]);
  });

  it('a model folded into "(other)" that is used again keeps the sum equal to the total', () => {
    const state = newState();
    const models = Array.from({ length: 55 }, (_, i) => `m${String(i + 1).padStart(2, '0')}`);
    send(state, 'b1', models.map((m) => rawEvent(`r-${m}`, '2026-03-10T11:00:00Z', { model: m })));
    flush(state, Object.fromEntries(models.map((m, i) => [`r-${m}`, dec(i + 1).dividedBy(1000).toFixed()])));
    send(state, 'b2', [rawEvent('again', '2026-03-10T11:30:00Z', { model: 'm01' })]);
    flush(state, { again: '3' });
    const full = fullTotals(state, 'day');
    expect(full.byModel.length).toBeLessThanOrEqual(BREAKDOWN_KEYS_KEPT + 1);
    expect(full.byModel.reduce((s, e) => s.plus(e.costUsd), dec(0)).toFixed()).toBe(full.costUsd);
    expect(full.costUsd).toBe('4.54');
    expect(budgetStatus(state, 'day').totals.byModel[0]).toEqual({ key: 'm01', costUsd: '3', calls: 1 });
  });
});

describe('BudgetState.status', () => {
  /** A state whose day budget (10 USD) has `cost` spent. */
  function spending(cost: string, budgets: Budget[] = [DAY, MONTH]): BudgetState {
    const state = newState(budgets);
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    flush(state, { r1: cost });
    return state;
  }

  it('describes the scope, the budget and its period', () => {
    const status = spending('2.5').status(NOW);
    expect({ ...status, budgets: undefined }).toEqual({
      scope: 'user:alice',
      scopeKind: 'user',
      source: 'events',
      budgets: undefined,
      updatedAt: '2026-03-10T12:00:00.000Z',
      counters: { batchesApplied: 1, duplicateBatches: 0, droppedBatches: 0, eventsCounted: 1, duplicateEvents: 0, rejectedEvents: 0, lateEvents: 0 },
    });
    const day = status.budgets[0]!;
    expect({ ...day, totals: undefined }).toEqual({
      period: 'day',
      timezone: 'UTC',
      periodKey: 'day:2026-03-10@UTC',
      periodStart: '2026-03-10T00:00:00.000Z',
      periodEnd: '2026-03-11T00:00:00.000Z',
      amount: '10',
      currency: 'USD',
      amountUsd: '10',
      thresholds: { warning: 0.8, critical: 0.95 },
      enforcement: 'none',
      failMode: 'open',
      spentUsd: '2.5',
      remainingUsd: '7.5',
      usageRatio: 0.25,
      level: 'ok',
      totals: undefined,
    });
    expect(status.budgets.map((b) => b.period)).toEqual(['day', 'month']);
    expect(status.budgets[1]!.usageRatio).toBe(0.0125);
  });

  it.each([
    ['0', 'ok', 0, '10'],
    ['7.999999', 'ok', 0.8, '2.000001'],
    ['8', 'warning', 0.8, '2'],
    ['9.49', 'warning', 0.949, '0.51'],
    ['9.5', 'critical', 0.95, '0.5'],
    ['9.999999999', 'critical', 1, '0.000000001'],
    ['10', 'emergency', 1, '0'],
    ['12.5', 'emergency', 1.25, '0'],
  ])('spent %s of 10 USD: %s, ratio %d, remaining %s', (cost, level, ratio, remaining) => {
    const day = budgetStatus(spending(cost), 'day');
    expect([day.spentUsd, day.level, day.usageRatio, day.remainingUsd]).toEqual([cost, level, ratio, remaining]);
  });

  it('7.9999999 of 10 is still below the 0.8 warning threshold even though the ratio shows 0.8', () => {
    expect(budgetStatus(spending('7.9999999'), 'day').level).toBe('ok');
  });

  it('converts a budget in EUR to USD at the configured rate (92 EUR = 100 USD at 0.92)', () => {
    const eur: Budget = { ...DAY, amount: '92', currency: 'EUR' };
    const day = budgetStatus(spending('80', [eur]), 'day');
    expect([day.amount, day.currency, day.amountUsd, day.usageRatio, day.level, day.remainingUsd]).toEqual(['92', 'EUR', '100', 0.8, 'warning', '20']);
  });

  it('a budget of 10 EUR is 10/0.92 USD, cut to 24 places', () => {
    const eur: Budget = { ...DAY, amount: '10', currency: 'EUR' };
    const day = budgetStatus(spending('5.434782608695652173913043', [eur]), 'day');
    expect(day.amountUsd).toBe('10.869565217391304347826087');
    expect(day.remainingUsd).toBe('5.434782608695652173913044');
    expect(day.usageRatio).toBe(0.5);
  });

  it('uses the exchange rates it was given', () => {
    const state = new BudgetState({ scope: SCOPE, budgets: [{ ...DAY, amount: '100', currency: 'GBP' }], rates: { ...DEFAULT_EXCHANGE_RATES, GBP: '0.5' } }, NOW);
    expect(budgetStatus(state, 'day').amountUsd).toBe('200');
  });

  it('team scopes read their totals from the ledger', () => {
    const state = new BudgetState({ scope: 'team:research', budgets: [DAY], rates: DEFAULT_EXCHANGE_RATES }, NOW);
    expect([state.status(NOW).scopeKind, state.status(NOW).source]).toEqual(['team', 'ledger']);
  });
});

describe('BudgetState: continue-as-new (carry)', () => {
  it('restores totals, breakdowns, counters and material', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z'), rawEvent('r2', '2026-03-10T11:00:00Z', { model: 'gpt-4o' })]);
    flush(state, { r1: '0.75', r2: '1.5' });
    expect(state.acceptBatch(null, NOW).outcome).toBe('dropped');
    state.lastMaterial = { dailySpendUsd: '2.25' };
    const later = at('2026-03-10T13:00:00Z');
    const next = newState([DAY, MONTH], later, overTheWire(state.carry()));
    const before = state.status(NOW);
    const after = next.status(later);
    expect(after.budgets).toEqual(before.budgets);
    expect(after.counters).toEqual({ batchesApplied: 1, duplicateBatches: 0, droppedBatches: 1, eventsCounted: 2, duplicateEvents: 0, rejectedEvents: 0, lateEvents: 0 });
    expect(next.lastMaterial).toEqual({ dailySpendUsd: '2.25' });
    expect(spent(next, 'day', later)).toBe('2.25');
  });

  it('a batch id seen before continue-as-new is still a duplicate after', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    flush(state, { r1: '1' });
    const next = newState([DAY, MONTH], NOW, overTheWire(state.carry()));
    expect(next.acceptBatch({ batchId: 'b1', events: [rawEvent('r1', '2026-03-10T11:00:00Z')] }, NOW)).toEqual({ outcome: 'duplicate' });
    expect(next.hasPending()).toBe(false);
    expect(next.status(NOW).counters.duplicateBatches).toBe(1);
  });

  it('keeps the next period\'s totals across continue-as-new', () => {
    const now = at('2026-03-10T23:59:50Z');
    const state = newState([DAY, MONTH], now);
    send(state, 'b1', [rawEvent('ahead', '2026-03-11T00:00:05Z')], now);
    flush(state, { ahead: '2' }, { now });
    const carried = overTheWire(state.carry());

    // Still in the old day: the carried next totals wait for it to end.
    const sameDay = newState([DAY, MONTH], now, carried);
    expect(spent(sameDay, 'day', now)).toBe('0');
    sameDay.rollover(at('2026-03-11T00:00:00Z'));
    expect(spent(sameDay, 'day')).toBe('2');

    // The new run starts after midnight (the worker was down): the next totals are the current ones.
    const afterMidnight = newState([DAY, MONTH], at('2026-03-11T00:00:30Z'), carried);
    expect(budgetStatus(afterMidnight, 'day').periodKey).toBe('day:2026-03-11@UTC');
    expect(spent(afterMidnight, 'day')).toBe('2');
  });

  it('a new run that starts in a later period begins from zero', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    flush(state, { r1: '3' });
    const next = newState([DAY, MONTH], at('2026-03-12T08:00:00Z'), overTheWire(state.carry()));
    expect(budgetStatus(next, 'day').periodKey).toBe('day:2026-03-12@UTC');
    expect(spent(next, 'day')).toBe('0');
    expect(spent(next, 'month')).toBe('3');
  });

  it('the carried budgets win over the ones loaded at start', () => {
    const state = newState();
    state.setBudgets([{ ...DAY, amount: '20' }], NOW);
    const next = newState([DAY, MONTH], NOW, overTheWire(state.carry()));
    expect(next.status(NOW).budgets.map((b) => [b.period, b.amount])).toEqual([['day', '20']]);
  });
});

describe('BudgetState.setBudgets', () => {
  it('replaces the budgets and keeps the totals of a budget whose period did not change', () => {
    const state = newState();
    send(state, 'b1', [rawEvent('r1', '2026-03-10T11:00:00Z')]);
    flush(state, { r1: '9' });
    expect(budgetStatus(state, 'day').level).toBe('warning');
    state.setBudgets([{ ...DAY, amount: '100', thresholds: { warning: 0.5, critical: 0.9 } }, MONTH], NOW);
    const day = budgetStatus(state, 'day');
    expect([day.amount, day.spentUsd, day.usageRatio, day.level, day.remainingUsd]).toEqual(['100', '9', 0.09, 'ok', '91']);
    expect(spent(state, 'month')).toBe('9');
  });

  it('drops a removed budget from the status', () => {
    const state = newState();
    state.setBudgets([MONTH], NOW);
    expect(state.status(NOW).budgets.map((b) => b.period)).toEqual(['month']);
    expect(state.nextRolloverMs()).toBe(at('2026-04-01T00:00:00Z'));
  });
});

describe('BudgetState: recent batch ids', () => {
  it(`remembers the last ${RECENT_BATCH_IDS} batch ids, no more`, () => {
    const state = newState();
    for (let i = 0; i <= RECENT_BATCH_IDS; i++) send(state, `b${i}`, []);
    const carried = state.carry();
    expect(carried.recentBatchIds).toHaveLength(RECENT_BATCH_IDS);
    expect(carried.recentBatchIds[0]).toBe('b1');
    expect(carried.recentBatchIds.at(-1)).toBe(`b${RECENT_BATCH_IDS}`);
    // The oldest was forgotten; the second oldest is still known.
    expect(state.acceptBatch({ batchId: 'b1', events: [] }, NOW)).toEqual({ outcome: 'duplicate' });
    expect(state.acceptBatch({ batchId: 'b0', events: [] }, NOW)).toEqual({ outcome: 'accepted', events: 0 });
  });
});
