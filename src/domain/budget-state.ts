/**
 * The budget workflow's state as a plain class: no Temporal, no I/O, so it is unit-tested directly.
 * The workflow function (workflows/budget.ts) only wires messages, timers and activities to it.
 */
import { enforcementOf } from './leases.js';
import type { TrackedIncident } from './alert-rules.js';
import { type Budget, type Scope, scopeKind } from './budget.js';
import type { BreakdownEntry, BudgetPeriodStatus, BudgetStatus, PeriodTotals, ScopeTotalsUpdate } from './budget-status.js';
import type { FieldIssue } from './errors.js';
import { type FlushSummary, addTokens, summarizeFlush } from './flush-summary.js';
import type { LeaseRecord, LeaseStatus } from './leases.js';
import type { FlushResult } from './ledger.js';
import { Dec, type ExchangeRates, normalizeAmount, parseAmount, toUsd } from './money.js';
import { type Period, periodAt } from './periods.js';
import { ZERO_USAGE } from './tokens.js';
import type { UsageBatch } from './usage.js';

export const BREAKDOWN_KEYS_KEPT = 50;
export const BREAKDOWN_KEYS_SHOWN = 10;
export const RECENT_BATCH_IDS = 2000;
export const OTHER = '(other)';

export type AlertLevel = BudgetPeriodStatus['level'];

/** State carried across continue-as-new (kept small: payload limit 2 MiB). */
export interface CarriedState {
  budgets: Budget[] | null;
  /** By budget period; `<period>#future:<key>` entries hold totals counted ahead for later periods. */
  periods: Record<string, { key: string; startMs?: number; totals: PeriodTotals }>;
  recentBatchIds: string[];
  flushSeq: number;
  counters: BudgetStatus['counters'];
  lastMaterial: Record<string, string>;
  /** Incidents this scope raised that are still open, by condition key (absent before alerts). */
  incidents?: Record<string, TrackedIncident>;
  /** Unpriced (provider/model) conditions already raised, with their day. */
  unpricedRaised?: string[];
  /** When the totals last applied from a `totals` signal were read, by period key. */
  totalsReadAtMs?: Record<string, number>;
  /** Pre-flight leases granted by this scope (absent before the first grant). */
  leases?: LeaseRecord;
  /** The buckets of the last grant, for the status. */
  leaseBuckets?: LeaseStatus['buckets'];
  /** Decisions as of the last grant. */
  leaseDecisions?: Record<string, number>;
}

/**
 * Cost avoided by the response cache in a period, carried next to a period's totals (read from the
 * rollups' `avoided_usd` and `cache_hits`), only when the period had cache hits. Never spend: budget
 * ratios, levels, alerts and forecasts read `costUsd` only.
 */
export interface AvoidedTotals {
  /** What the cache hits would have cost, USD (exact decimal string). */
  avoidedUsd?: string;
  /** Requests answered by the cache (counted in `calls` too). */
  cacheHits?: number;
}

export function emptyTotals(): PeriodTotals {
  return { costUsd: '0', calls: 0, unpricedCalls: 0, tokens: { ...ZERO_USAGE }, byProvider: [], byModel: [], byTaskType: [] };
}

/** Adds one call to a bounded breakdown: at most BREAKDOWN_KEYS_KEPT keys, the rest folded into "(other)". */
export function addToBreakdown(list: BreakdownEntry[], key: string, costUsd: string, calls = 1): BreakdownEntry[] {
  const existing = list.find((e) => e.key === key);
  if (existing) {
    existing.costUsd = normalizeAmount(parseAmount(existing.costUsd).plus(parseAmount(costUsd)));
    existing.calls += calls;
  } else {
    list.push({ key, costUsd: normalizeAmount(costUsd), calls });
  }
  if (list.length > BREAKDOWN_KEYS_KEPT) {
    list.sort((a, b) => (a.key === OTHER ? -1 : b.key === OTHER ? 1 : parseAmount(b.costUsd).comparedTo(parseAmount(a.costUsd))));
    const other = list.find((e) => e.key === OTHER);
    const smallest = list.pop()!;
    if (other) {
      other.costUsd = normalizeAmount(parseAmount(other.costUsd).plus(parseAmount(smallest.costUsd)));
      other.calls += smallest.calls;
    } else {
      list.unshift({ key: OTHER, costUsd: smallest.costUsd, calls: smallest.calls });
    }
  }
  return list;
}

export function topBreakdown(list: readonly BreakdownEntry[], n = BREAKDOWN_KEYS_SHOWN): BreakdownEntry[] {
  return [...list].sort((a, b) => parseAmount(b.costUsd).comparedTo(parseAmount(a.costUsd)) || a.key.localeCompare(b.key)).slice(0, n);
}

export function levelFor(ratio: number, thresholds: Budget['thresholds']): AlertLevel {
  if (ratio >= (thresholds.emergency ?? 1)) return 'emergency';
  if (ratio >= thresholds.critical) return 'critical';
  if (ratio >= thresholds.warning) return 'warning';
  if (thresholds.info !== undefined && ratio >= thresholds.info) return 'info';
  return 'ok';
}

export interface BudgetStateOptions {
  scope: Scope;
  budgets: Budget[];
  rates: ExchangeRates;
}

interface TrackedPeriod {
  period: Period;
  totals: PeriodTotals;
  /**
   * Totals already counted for later periods (events stamped ahead, up to a day), by period key, in
   * order. A short period (`10m`) may have several; they take over as their period begins.
   */
  future: Map<string, { startMs: number; totals: PeriodTotals }>;
}

export type AcceptOutcome = { outcome: 'accepted'; events: number } | { outcome: 'duplicate' } | { outcome: 'dropped'; issues: FieldIssue[] };

export class BudgetState {
  readonly scope: Scope;
  budgets: Budget[];
  private rates: ExchangeRates;
  private tracked = new Map<string, TrackedPeriod>(); // by budget period spec
  private pending: UsageBatch['events'] = [];
  private recentBatchIds: string[] = [];
  private recentBatchSet = new Set<string>();
  flushSeq = 0;
  counters: BudgetStatus['counters'] = {
    batchesApplied: 0,
    duplicateBatches: 0,
    droppedBatches: 0,
    eventsCounted: 0,
    duplicateEvents: 0,
    rejectedEvents: 0,
    lateEvents: 0,
  };
  lastMaterial: Record<string, string> = {};
  updatedAtMs = 0;
  /** When the totals of each period (by key) last applied from a `totals` signal were read. */
  private totalsReadAtMs: Record<string, number> = {};

  constructor(opts: BudgetStateOptions, now: number, carried?: CarriedState) {
    this.scope = opts.scope;
    this.budgets = carried?.budgets ?? opts.budgets;
    this.rates = opts.rates;
    if (carried) {
      this.flushSeq = carried.flushSeq;
      this.counters = { ...carried.counters };
      this.lastMaterial = { ...carried.lastMaterial };
      this.totalsReadAtMs = { ...carried.totalsReadAtMs };
      for (const id of carried.recentBatchIds) this.rememberBatch(id);
    }
    this.updatedAtMs = now;
    this.syncPeriods(now, carried?.periods ?? {});
  }

  /**
   * Starts tracking each budget's current period. Totals of a period that is still current are
   * kept: from the tracked state, from totals counted ahead for it, or from carried state.
   */
  private syncPeriods(now: number, previous: CarriedState['periods']): void {
    const next = new Map<string, TrackedPeriod>();
    for (const b of this.budgets) {
      const period = periodAt(b.period, b.timezone, now);
      const old = this.tracked.get(b.period);
      const future = new Map<string, { startMs: number; totals: PeriodTotals }>();
      for (const [key, f] of old?.future ?? []) future.set(key, f);
      for (const [name, value] of Object.entries(previous)) {
        if (name.startsWith(`${b.period}#future:`) && value.startMs !== undefined) future.set(value.key, { startMs: value.startMs, totals: value.totals });
      }
      let totals = emptyTotals();
      if (old && old.period.key === period.key) totals = old.totals;
      else if (future.has(period.key)) totals = future.get(period.key)!.totals;
      else if (previous[b.period]?.key === period.key) totals = previous[b.period]!.totals;
      // Keep only what is still ahead of the new current period.
      for (const [key, f] of future) if (f.startMs <= period.startMs) future.delete(key);
      next.set(b.period, { period, totals, future });
    }
    this.tracked = next;
  }

  get source(): BudgetStatus['source'] {
    return scopeKind(this.scope) === 'user' ? 'events' : 'ledger';
  }

  hasPending(): boolean {
    return this.pending.length > 0;
  }

  pendingCount(): number {
    return this.pending.length;
  }

  private rememberBatch(id: string): void {
    if (this.recentBatchSet.has(id)) return;
    this.recentBatchIds.push(id);
    this.recentBatchSet.add(id);
    while (this.recentBatchIds.length > RECENT_BATCH_IDS) this.recentBatchSet.delete(this.recentBatchIds.shift()!);
  }

  /**
   * A usage signal. Never throws: a malformed batch is dropped (and reported), a batch id seen
   * recently is ignored. Only the batch's shape is checked here (cheap, in the workflow thread);
   * each event is validated by the flush activity, which refuses invalid events one by one.
   */
  acceptBatch(batch: unknown, now: number): AcceptOutcome {
    const b = batch as Partial<UsageBatch> | null;
    if (typeof b !== 'object' || b === null || typeof b.batchId !== 'string' || b.batchId === '' || !Array.isArray(b.events)) {
      this.counters.droppedBatches++;
      return { outcome: 'dropped', issues: [{ path: '', message: 'expected { batchId: string, events: [...] }' }] };
    }
    if (this.recentBatchSet.has(b.batchId)) {
      this.counters.duplicateBatches++;
      return { outcome: 'duplicate' };
    }
    const userId = this.source === 'events' ? this.scope.slice('user:'.length) : null;
    for (let i = 0; i < b.events.length; i++) {
      const e = b.events[i] as { requestId?: unknown; userId?: unknown } | null;
      if (typeof e !== 'object' || e === null || typeof e.requestId !== 'string' || e.requestId === '') {
        this.counters.droppedBatches++;
        return { outcome: 'dropped', issues: [{ path: `events[${i}].requestId`, message: 'every event needs a requestId string' }] };
      }
      if (userId !== null && e.userId !== userId) {
        this.counters.droppedBatches++;
        return { outcome: 'dropped', issues: [{ path: `events[${i}].userId`, message: `event ${e.requestId} belongs to user:${String(e.userId)}, not ${this.scope}` }] };
      }
    }
    this.rememberBatch(b.batchId);
    // An event without a time happened when its batch arrived (not when a retried flush runs).
    const arrived = new Date(now).toISOString();
    for (const e of b.events as UsageBatch['events']) this.pending.push(e.occurredAt === undefined ? { ...e, occurredAt: arrived } : e);
    return { outcome: 'accepted', events: b.events.length };
  }

  /** Takes up to `max` pending events for one flush, with a batch id unique to this workflow chain. */
  takeFlush(chainId: string, max: number): { batchId: string; events: UsageBatch['events'] } {
    const events = this.pending.splice(0, max);
    this.flushSeq++;
    return { batchId: `${chainId}/flush-${this.flushSeq}`, events };
  }

  /** The pre-summary flush path (workflows started before `local-activities-v1`): same arithmetic. */
  applyFlush(result: FlushResult, now: number): FlushSummary {
    const summary = summarizeFlush(result, this.currentPeriods());
    this.applySummary(summary, now);
    return summary;
  }

  /**
   * Counts what the ledger newly counted (and only that), as summed per period by the flush. A delta
   * for a period this state no longer tracks (the budgets changed while the flush ran) is skipped:
   * a budget change re-reads the totals from the ledger after the flush.
   */
  applySummary(summary: FlushSummary, now: number): void {
    this.counters.batchesApplied++;
    this.counters.duplicateEvents += summary.duplicates;
    this.counters.rejectedEvents += summary.rejected.length;
    this.counters.eventsCounted += summary.counted;
    this.counters.lateEvents += summary.late;
    for (const d of summary.deltas) {
      const t = this.tracked.get(d.spec);
      if (!t) continue;
      let totals: PeriodTotals;
      if (d.key === t.period.key) {
        totals = t.totals;
      } else if (d.ahead && d.startMs > t.period.startMs) {
        let f = t.future.get(d.key);
        if (!f) {
          f = { startMs: d.startMs, totals: emptyTotals() };
          t.future.set(d.key, f);
        }
        totals = f.totals;
      } else {
        continue;
      }
      totals.costUsd = normalizeAmount(parseAmount(totals.costUsd).plus(parseAmount(d.totals.costUsd)));
      totals.calls += d.totals.calls;
      totals.unpricedCalls += d.totals.unpricedCalls;
      addTokens(totals.tokens, d.totals.tokens);
      for (const e of d.totals.byProvider) addToBreakdown(totals.byProvider, e.key, e.costUsd, e.calls);
      for (const e of d.totals.byModel) addToBreakdown(totals.byModel, e.key, e.costUsd, e.calls);
      for (const e of d.totals.byTaskType) addToBreakdown(totals.byTaskType, e.key, e.costUsd, e.calls);
    }
    this.updatedAtMs = now;
  }

  /**
   * Exact totals from an ingest shard (a `totals` signal). Applied per period only when newer than
   * what this state holds: read later than the totals last applied, or with more calls (within a
   * period, spend and calls only grow). So a repeated or late signal changes nothing, and exact
   * totals replace whatever this state summed itself. Totals of a later period (read just after a
   * boundary this workflow has not reached yet) are kept for it. Returns true if anything changed.
   */
  applyTotals(update: ScopeTotalsUpdate, now: number): boolean {
    let changed = false;
    for (const p of update.periods) {
      const t = this.tracked.get(p.spec);
      if (!t) continue;
      const lastRead = this.totalsReadAtMs[p.key] ?? -Infinity;
      if (p.key === t.period.key) {
        if (update.readAtMs > lastRead || p.totals.calls > t.totals.calls) {
          t.totals = p.totals;
          this.totalsReadAtMs[p.key] = Math.max(update.readAtMs, lastRead);
          changed = true;
        }
      } else {
        const start = periodStartOfKey(t, p.key);
        if (start === null) continue;
        const f = t.future.get(p.key);
        if (!f || update.readAtMs > lastRead || p.totals.calls > f.totals.calls) {
          t.future.set(p.key, { startMs: start, totals: p.totals });
          this.totalsReadAtMs[p.key] = Math.max(update.readAtMs, lastRead);
          changed = true;
        }
      }
    }
    if (changed) {
      this.counters.totalsUpdates = (this.counters.totalsUpdates ?? 0) + 1;
      this.updatedAtMs = now;
    }
    // Forget the read times of periods that are over.
    const live = new Set<string>();
    for (const t of this.tracked.values()) {
      live.add(t.period.key);
      for (const k of t.future.keys()) live.add(k);
    }
    for (const k of Object.keys(this.totalsReadAtMs)) if (!live.has(k)) delete this.totalsReadAtMs[k];
    return changed;
  }

  /** Ledger-sourced scopes: replace a period's totals with the exact figures read from the ledger. */
  setTotals(spec: string, periodKey: string, totals: PeriodTotals, now: number): void {
    const t = this.tracked.get(spec);
    if (t && t.period.key === periodKey) {
      t.totals = totals;
      this.updatedAtMs = now;
    }
  }

  /** The current periods, for the ledger reader. */
  currentPeriods(): { spec: string; timezone: string; key: string; startMs: number; endMs: number }[] {
    return [...this.tracked].map(([spec, t]) => ({
      spec,
      timezone: this.budgets.find((b) => b.period === spec)!.timezone,
      key: t.period.key,
      startMs: t.period.startMs,
      endMs: t.period.endMs,
    }));
  }

  /** The earliest end of a current period: when the workflow must roll over. */
  nextRolloverMs(): number {
    return Math.min(...[...this.tracked.values()].map((t) => t.period.endMs));
  }

  /** Moves every period whose end has passed to the period containing `now`. Returns the keys closed. */
  rollover(now: number): string[] {
    const closed = [...this.tracked.values()].filter((t) => now >= t.period.endMs).map((t) => t.period.key);
    if (closed.length > 0) this.syncPeriods(now, {});
    return closed;
  }

  setBudgets(budgets: Budget[], now: number): void {
    this.budgets = budgets;
    this.syncPeriods(now, {});
    this.updatedAtMs = now;
  }

  status(now: number): BudgetStatus {
    return {
      scope: this.scope,
      scopeKind: scopeKind(this.scope),
      source: this.source,
      budgets: this.budgets.map((b) => this.periodStatus(b)),
      updatedAt: new Date(this.updatedAtMs || now).toISOString(),
      counters: { ...this.counters },
    };
  }

  private periodStatus(b: Budget): BudgetPeriodStatus {
    const t = this.tracked.get(b.period)!;
    const amountUsd = toUsd(b.amount, b.currency, this.rates);
    const spent = parseAmount(t.totals.costUsd);
    const ratio = spent.dividedBy(parseAmount(amountUsd));
    const remaining = Dec.max(parseAmount(amountUsd).minus(spent), 0);
    return {
      period: b.period,
      timezone: b.timezone,
      periodKey: t.period.key,
      periodStart: new Date(t.period.startMs).toISOString(),
      periodEnd: new Date(t.period.endMs).toISOString(),
      amount: b.amount,
      currency: b.currency,
      amountUsd,
      thresholds: b.thresholds,
      ...enforcementOf(b),
      spentUsd: t.totals.costUsd,
      remainingUsd: normalizeAmount(remaining),
      usageRatio: ratio.toDecimalPlaces(6).toNumber(),
      level: levelFor(ratio.toNumber(), b.thresholds),
      totals: {
        ...t.totals,
        tokens: { ...t.totals.tokens },
        byProvider: topBreakdown(t.totals.byProvider),
        byModel: topBreakdown(t.totals.byModel),
        byTaskType: topBreakdown(t.totals.byTaskType),
      },
    };
  }

  carry(): CarriedState {
    const periods: CarriedState['periods'] = {};
    for (const [spec, t] of this.tracked) {
      periods[spec] = { key: t.period.key, totals: t.totals };
      for (const [key, f] of t.future) periods[`${spec}#future:${key}`] = { key, startMs: f.startMs, totals: f.totals };
    }
    return {
      budgets: this.budgets,
      periods,
      recentBatchIds: [...this.recentBatchIds],
      flushSeq: this.flushSeq,
      counters: { ...this.counters },
      lastMaterial: { ...this.lastMaterial },
      ...(Object.keys(this.totalsReadAtMs).length > 0 ? { totalsReadAtMs: { ...this.totalsReadAtMs } } : {}),
    };
  }
}

/** The start of the period `key` of a tracked budget when it is a later period of the same budget, else null. */
function periodStartOfKey(t: TrackedPeriod, key: string): number | null {
  const f = t.future.get(key);
  if (f) return f.startMs;
  // A key names its period: "<spec>:<...>"; the next period starts where the current one ends.
  return key.split(':')[0] === t.period.key.split(':')[0] && key > t.period.key ? t.period.endMs : null;
}

/** A `totals` signal's shape, checked before use (a signal handler must never throw). */
export function totalsUpdateProblem(update: unknown, scope: string): string | null {
  const u = update as Partial<ScopeTotalsUpdate> | null;
  if (typeof u !== 'object' || u === null) return 'expected { scope, reason, readAtMs, periods }';
  if (u.scope !== scope) return `totals for ${String(u.scope)} sent to ${scope}`;
  if (typeof u.readAtMs !== 'number' || !Number.isFinite(u.readAtMs)) return 'readAtMs must be a time in ms';
  if (!Array.isArray(u.periods)) return 'periods must be an array';
  for (const p of u.periods) {
    const t = (p as { totals?: Partial<PeriodTotals> } | null)?.totals;
    if (typeof p?.spec !== 'string' || typeof p?.key !== 'string' || typeof t !== 'object' || t === null) return 'each period needs spec, key and totals';
    if (typeof t.costUsd !== 'string' || !/^\d+(\.\d+)?$/.test(t.costUsd) || !Number.isInteger(t.calls) || typeof t.tokens !== 'object' || !Array.isArray(t.byModel) || !Array.isArray(t.byProvider) || !Array.isArray(t.byTaskType)) {
      return `malformed totals for ${p.key}`;
    }
  }
  return null;
}
