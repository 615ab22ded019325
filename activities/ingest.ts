/**
 * The ingest shards' flush (a local activity of workflows/ingest.ts): decode the shard's pending
 * batches, validate, price and persist them in one statement per flush (ledger + exact rollups,
 * isolating any event tied to its own failure), update the Redis view, and tell each user's budget
 * workflow of its spend only when it moved materially (src/domain/materiality.ts), with the exact
 * totals of its budget periods.
 *
 * Safe to retry and to run again with more events under the same flush id: the ledger part reads
 * back what an earlier attempt committed (persistFlush), and the totals signals carry exact,
 * order-proof totals, so a signal sent twice changes nothing.
 */
import type { Client } from '@temporalio/client';
import type { Config } from '../src/config/index.js';
import { loadBudgets } from '../src/db/budgets.js';
import { readScopeTotals } from '../src/db/scope-totals.js';
import { type UserDayTotal, readUserDays } from '../src/db/ledger.js';
import type { Budget, Scope } from '../src/domain/budget.js';
import { type IngestBatch, type WireEvent, decodeBatch } from '../src/domain/ingest.js';
import { type MaterialReason, materialReason, rollupPeriods } from '../src/domain/materiality.js';
import { Dec, normalizeAmount } from '../src/domain/money.js';
import { periodAt } from '../src/domain/periods.js';
import type { UnpricedUsage } from '../src/domain/flush-summary.js';
import { BUDGET_WORKFLOW_TYPE, type BudgetWorkflowInput, budgetWorkflowId, scopeTotalsSignal } from '../src/messages.js';
import type { ScopeTotalsUpdate } from '../src/domain/budget-status.js';
import { type LedgerActivityDeps, asIngestFlush, createFlushRecorder, withTimeout } from './ledger.js';
import { microUp } from '../src/domain/leases.js';
import type { LeaseStore, RecordedHoldEvent } from '../src/redis/leases.js';

export interface IngestActivityDeps extends LedgerActivityDeps {
  config: Config;
  /** Signals budget workflows (signal-with-start). */
  temporal: () => Client;
  /** Pre-flight holds, settled by the events that carry them once those are committed. */
  leases?: () => LeaseStore;
}

export interface IngestFlushInput {
  flushId: string;
  shard: number;
  batches: IngestBatch[];
}

/** What a flush returns to its shard: a few hundred bytes whatever the flush size (it is recorded in history). */
export interface IngestFlushResult {
  flushId: string;
  received: number;
  counted: number;
  duplicates: number;
  rejected: number;
  deadLettered: number;
  costUsd: string;
  /** Unpriced (provider, model) pairs seen: at most UNPRICED_PER_PROVIDER per provider, UNPRICED_LISTED in all. */
  unpriced: UnpricedUsage[];
  /** Further unpriced models seen per provider, beyond those listed (counted, not named). */
  unpricedUnlisted: Record<string, number>;
  /** Budget workflows told of material change, by reason. */
  signals: Record<MaterialReason, number>;
}

const UNPRICED_LISTED = 200;
/** One more than an incident names (UNPRICED_MODELS_LISTED), so the shard knows there are more. */
const UNPRICED_PER_PROVIDER = 21;
const BUDGET_CACHE_MS = 10_000;
const BUDGET_CACHE_MAX = 50_000;
const SIGNAL_CONCURRENCY = 16;
const LEASE_TIMEOUT_MS = 2000;

/** Runs `work` over `items`, at most `limit` at once. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(runners);
}

export const createIngestActivities = (deps: IngestActivityDeps) => {
  const { timed } = createFlushRecorder(deps);
  // Budgets of the scopes a shard touches, for the materiality test only (the totals a signal
  // carries are read fresh): a budget changed with PUT /v1/budgets reaches the shards within
  // BUDGET_CACHE_MS, and its own workflow at once.
  const budgetCache = new Map<Scope, { budgets: Budget[]; atMs: number }>();

  async function budgetsOf(scopes: readonly Scope[]): Promise<Map<Scope, Budget[]>> {
    const now = deps.clock();
    const out = new Map<Scope, Budget[]>();
    const missing: Scope[] = [];
    for (const scope of scopes) {
      const hit = budgetCache.get(scope);
      if (hit && now - hit.atMs < BUDGET_CACHE_MS) out.set(scope, hit.budgets);
      else missing.push(scope);
    }
    if (missing.length > 0) {
      const loaded = await loadBudgets(deps.pool, deps.config, missing);
      if (budgetCache.size + loaded.size > BUDGET_CACHE_MAX) budgetCache.clear();
      for (const [scope, budgets] of loaded) {
        budgetCache.set(scope, { budgets, atMs: now });
        out.set(scope, budgets);
      }
    }
    return out;
  }

  /** Signals one scope's budget workflow with the exact totals of its current budget periods. */
  async function signalTotals(scope: Scope, budgets: readonly Budget[], reason: MaterialReason): Promise<void> {
    const now = deps.clock();
    const ranges = budgets.map((b) => ({ spec: b.period, timezone: b.timezone, ...periodAt(b.period, b.timezone, now) }));
    const periods = await readScopeTotals(deps.pool, deps.config.timezone, scope, ranges);
    const update: ScopeTotalsUpdate = { scope, reason, readAtMs: now, periods };
    const input: BudgetWorkflowInput = { scope };
    await deps.temporal().workflow.signalWithStart(BUDGET_WORKFLOW_TYPE, {
      workflowId: budgetWorkflowId(scope),
      taskQueue: deps.config.temporal.taskQueue,
      args: [input],
      signal: scopeTotalsSignal,
      signalArgs: [update],
      staticSummary: `Cost Guard budget for ${scope}`,
    });
    deps.metrics?.recordBudgetSignal(reason);
  }

  /** The scopes among `days` whose change is material, with why. */
  async function materialScopes(days: readonly UserDayTotal[]): Promise<{ scope: Scope; budgets: Budget[]; reason: MaterialReason }[]> {
    const byScope = new Map<Scope, UserDayTotal[]>();
    for (const d of days) byScope.set(d.scope, [...(byScope.get(d.scope) ?? []), d]);
    if (byScope.size === 0) return [];
    const budgets = await budgetsOf([...byScope.keys()]);
    const now = deps.clock();
    const settings = { stepFraction: deps.config.ingest.stepFraction, forecast: { enabled: deps.config.alerts.enabled && deps.config.alerts.forecast.enabled, minElapsedFraction: deps.config.alerts.forecast.minElapsedFraction } };
    const periods = rollupPeriods(deps.config.timezone, now);
    const out: { scope: Scope; budgets: Budget[]; reason: MaterialReason }[] = [];
    for (const [scope, changes] of byScope) {
      const b = budgets.get(scope) ?? [];
      const reason = materialReason(
        b,
        changes.map((c) => ({ kind: c.kind, startMs: c.dayStartMs, totalUsd: c.totalUsd, deltaUsd: c.deltaUsd })),
        { rollupTimezone: deps.config.timezone, nowMs: now, rates: deps.config.exchangeRates, settings, periods },
      );
      if (reason) out.push({ scope, budgets: b, reason });
    }
    return out;
  }

  /**
   * Records these committed events in the pre-flight leases: every event is charged to the lease of
   * every scope it counts in; an event naming an open hold also settles it (its reservation goes
   * back, once). A retried flush is recognised for events with a hold (the hold remembers its
   * events); usage without a hold is charged again then (conservative: the next grant, computed
   * from the ledger, gives it back). Best effort and bounded: with Redis unreachable a hold expires
   * instead, and its bucket is re-read from the ledger at the next grant.
   */
  let chargesPausedUntil = 0;
  async function settleHolds(counted: ReadonlyArray<{ requestId: string; costUsd: string; occurredAt: string }>, events: ReadonlyMap<string, WireEvent>): Promise<void> {
    if (!deps.leases) return;
    const holds: RecordedHoldEvent[] = [];
    // Usage without a hold is summed per scope and second of its time, so a script call stays small.
    const charges = new Map<string, { scope: string; atMs: number; costMicro: number }>();
    for (const c of counted) {
      const e = events.get(c.requestId);
      if (!e) continue;
      const cost = microUp(c.costUsd);
      const atMs = Date.parse(c.occurredAt);
      const scopes = ['system', `user:${e.userId}`, ...(e.team ? [`team:${e.team}`] : []), ...(e.project ? [`project:${e.project}`] : [])];
      if (e.holdId !== undefined) {
        holds.push({ holdId: e.holdId, requestId: c.requestId, atMs, actualMicro: cost, scopes });
        continue;
      }
      if (cost === 0) continue;
      const second = Math.floor(atMs / 1000) * 1000;
      for (const scope of scopes) {
        const key = `${scope}\u0000${second}`;
        const charge = charges.get(key);
        if (charge) charge.costMicro += cost;
        else charges.set(key, { scope, atMs: second, costMicro: cost });
      }
    }
    // Events with a hold are tried three times (2 s each); usage without one once, and not at all
    // for 30 s after a failure, so a Redis outage does not slow the flushes down.
    const withCharges = charges.size > 0 && deps.clock() >= chargesPausedUntil;
    if (holds.length === 0 && !withCharges) return;
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await withTimeout(deps.leases().record(holds, withCharges ? [...charges.values()] : []), LEASE_TIMEOUT_MS, 'recording usage in the leases timed out');
        r.statuses.forEach((status) => deps.metrics?.recordHoldFinish(status));
        return;
      } catch (err) {
        if (holds.length === 0 || attempt >= 3) {
          if (withCharges) chargesPausedUntil = deps.clock() + 30_000;
          deps.logger.warn({ err: (err as Error).message, holds: holds.length, charges: charges.size }, 'could not record usage in the pre-flight leases (holds will expire instead; the next grant reads the ledger)');
          return;
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  }

  return {
    /** What a shard needs to know at start: its flush thresholds and whether alerting is on. */
    async loadIngestSettings(): Promise<{ lingerMs: number; flushEvents: number; maxFlushEvents: number; alertsEnabled: boolean }> {
      const i = deps.config.ingest;
      return { lingerMs: i.lingerMs, flushEvents: i.flushEvents, maxFlushEvents: i.maxFlushEvents, alertsEnabled: deps.config.alerts.enabled };
    },

    /**
     * One flush of an ingest shard. Signals material changes after the commit; a failed signal
     * fails the attempt (retried: the ledger part is read back, the signals sent again).
     */
    async ingestFlush(input: IngestFlushInput): Promise<IngestFlushResult> {
      const events: unknown[] = [];
      const byId = new Map<string, WireEvent>();
      for (const batch of input.batches) {
        for (const e of decodeBatch(batch)) {
          events.push('malformed' in e ? { malformed: e.malformed, raw: e.raw } : e);
          if (!('malformed' in e)) byId.set(e.requestId, e);
        }
      }
      return timed({ batchId: input.flushId, events }, asIngestFlush(input.shard), async (result, userDays) => {
        // A flush run again after its commit inserts nothing: its users' totals come from the
        // rows it finds (read back), so the signals the first attempt may not have sent go out.
        const days = userDays.length > 0 || result.counted.length === 0 ? userDays : await readUserDays(deps.pool, result.counted.map((c) => c.requestId), deps.config.timezone);
        // Holds settle only now, after the commit: until then their reservation still counts.
        await settleHolds(result.counted, byId);
        const material = await materialScopes(days);
        await eachLimited(material, SIGNAL_CONCURRENCY, (m) => signalTotals(m.scope, m.budgets, m.reason));
        const unpriced = new Map<string, UnpricedUsage>();
        const listedPerProvider = new Map<string, number>();
        const unlisted = new Map<string, Set<string>>();
        let cost = new Dec(0);
        for (const c of result.counted) {
          cost = cost.plus(c.costUsd);
          if (!c.unpriced) continue;
          const key = `${c.provider}/${c.model}`;
          const u = unpriced.get(key);
          if (u) u.calls++;
          else if (unpriced.size < UNPRICED_LISTED && (listedPerProvider.get(c.provider) ?? 0) < UNPRICED_PER_PROVIDER) {
            unpriced.set(key, { provider: c.provider, model: c.model, ...(c.unpricedReason ? { reason: c.unpricedReason } : {}), calls: 1 });
            listedPerProvider.set(c.provider, (listedPerProvider.get(c.provider) ?? 0) + 1);
          } else {
            const set = unlisted.get(c.provider) ?? new Set<string>();
            set.add(c.model);
            unlisted.set(c.provider, set);
          }
        }
        const signals: Record<MaterialReason, number> = { step: 0, threshold: 0, forecast: 0 };
        for (const m of material) signals[m.reason]++;
        return {
          flushId: input.flushId,
          received: result.received,
          counted: result.counted.length,
          duplicates: result.duplicates,
          rejected: result.rejected.length,
          deadLettered: result.deadLettered ?? 0,
          costUsd: normalizeAmount(cost),
          unpriced: [...unpriced.values()],
          unpricedUnlisted: Object.fromEntries([...unlisted].map(([p, set]) => [p, set.size])),
          signals,
        };
      });
    },
  };
};

export type IngestActivities = ReturnType<typeof createIngestActivities>;
