/**
 * What a flush newly counted, summed per budget period: the flush activity sums the ledger's result
 * (hundreds of events) into one entry per period it touched, so the budget workflow adds a handful
 * of decimals per flush instead of walking every event in its sandbox, and the flush's result in the
 * workflow's history stays small whatever the batch size.
 *
 * Pure (no I/O, no Temporal): the activity and the workflow's older path both use it, and it is
 * unit-tested against the per-event arithmetic.
 */
import type { BreakdownEntry, PeriodTotals } from './budget-status.js';
import type { FlushResult, RejectedEvent } from './ledger.js';
import { Dec, normalizeAmount, parseAmount } from './money.js';
import { type PeriodSpec, periodAt } from './periods.js';
import { type TokenUsage, ZERO_USAGE } from './tokens.js';

/** A budget's current period, as the workflow tracks it when it asks for a flush. */
export interface FlushTarget {
  spec: string;
  timezone: string;
  key: string;
  startMs: number;
  endMs: number;
}

/** New usage for one period: the target's current period, or a later one (events stamped ahead). */
export interface PeriodDelta {
  spec: string;
  key: string;
  startMs: number;
  /** True for a period after the target's current one. */
  ahead: boolean;
  totals: PeriodTotals;
}

/** Unpriced usage in a flush, by (provider, model): what the unpriced-usage alert needs. */
export interface UnpricedUsage {
  provider: string;
  model: string;
  reason?: string;
  calls: number;
}

export interface FlushSummary {
  batchId: string;
  received: number;
  counted: number;
  duplicates: number;
  /** Counted events older than some target's current period: in the ledger, not in the budget. */
  late: number;
  rejected: RejectedEvent[];
  /** Events set aside as dead letters (absent in summaries recorded before dead letters existed). */
  deadLettered?: number;
  deltas: PeriodDelta[];
  unpriced: UnpricedUsage[];
}

interface Sums {
  delta: Omit<PeriodDelta, 'totals'>;
  cost: Dec;
  calls: number;
  unpriced: number;
  tokens: TokenUsage;
  provider: Map<string, { cost: Dec; calls: number }>;
  model: Map<string, { cost: Dec; calls: number }>;
  task: Map<string, { cost: Dec; calls: number }>;
}

function addTo(map: Map<string, { cost: Dec; calls: number }>, key: string, cost: Dec): void {
  const entry = map.get(key);
  if (entry) {
    entry.cost = entry.cost.plus(cost);
    entry.calls++;
  } else {
    map.set(key, { cost, calls: 1 });
  }
}

export function addTokens(into: TokenUsage, add: TokenUsage): void {
  into.inputTokens += add.inputTokens;
  into.cacheReadTokens += add.cacheReadTokens;
  into.cacheWriteTokens += add.cacheWriteTokens;
  into.cacheWrite1hTokens += add.cacheWrite1hTokens;
  into.outputTokens += add.outputTokens;
  into.reasoningTokens += add.reasoningTokens;
}

const entries = (map: Map<string, { cost: Dec; calls: number }>): BreakdownEntry[] =>
  [...map].map(([key, v]) => ({ key, costUsd: normalizeAmount(v.cost), calls: v.calls }));

/**
 * Sums a flush's newly counted events into the periods they belong to, for each target: its current
 * period, a later period (stamped ahead), or none (late: a closed period is never reopened).
 */
export function summarizeFlush(result: FlushResult, targets: readonly FlushTarget[]): FlushSummary {
  const sums = new Map<string, Sums>();
  const sumsFor = (spec: string, key: string, startMs: number, ahead: boolean): Sums => {
    const id = `${spec}\u0000${key}`;
    let s = sums.get(id);
    if (!s) {
      s = { delta: { spec, key, startMs, ahead }, cost: new Dec(0), calls: 0, unpriced: 0, tokens: { ...ZERO_USAGE }, provider: new Map(), model: new Map(), task: new Map() };
      sums.set(id, s);
    }
    return s;
  };
  const unpriced = new Map<string, UnpricedUsage>();
  let late = 0;
  for (const counted of result.counted) {
    const at = Date.parse(counted.occurredAt);
    const cost = parseAmount(counted.costUsd);
    let isLate = false;
    for (const t of targets) {
      let s: Sums;
      if (at >= t.startMs && at < t.endMs) {
        s = sumsFor(t.spec, t.key, t.startMs, false);
      } else if (at >= t.endMs) {
        const p = periodAt(t.spec as PeriodSpec, t.timezone, at);
        s = sumsFor(t.spec, p.key, p.startMs, true);
      } else {
        isLate = true;
        continue;
      }
      s.cost = s.cost.plus(cost);
      s.calls++;
      if (counted.unpriced) s.unpriced++;
      addTokens(s.tokens, counted.usage);
      addTo(s.provider, counted.provider, cost);
      addTo(s.model, counted.model, cost);
      addTo(s.task, counted.taskType, cost);
    }
    if (isLate) late++;
    if (counted.unpriced) {
      const id = `${counted.provider}/${counted.model}`;
      const seen = unpriced.get(id);
      if (seen) seen.calls++;
      else unpriced.set(id, { provider: counted.provider, model: counted.model, ...(counted.unpricedReason ? { reason: counted.unpricedReason } : {}), calls: 1 });
    }
  }
  return {
    batchId: result.batchId,
    received: result.received,
    counted: result.counted.length,
    duplicates: result.duplicates,
    late,
    rejected: result.rejected,
    ...(result.deadLettered ? { deadLettered: result.deadLettered } : {}),
    deltas: [...sums.values()].map((s) => ({
      ...s.delta,
      totals: {
        costUsd: normalizeAmount(s.cost),
        calls: s.calls,
        unpricedCalls: s.unpriced,
        tokens: s.tokens,
        byProvider: entries(s.provider),
        byModel: entries(s.model),
        byTaskType: entries(s.task),
      },
    })),
    unpriced: [...unpriced.values()],
  };
}
