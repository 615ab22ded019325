/**
 * The lease grant (a local activity of the budget workflow, run inside its `lease` update): reads
 * the scope's buckets from Redis, THEN its exact spend from the ledger, and tops each budget's
 * lease up within what the invariant of src/domain/leases.ts leaves. Reading Redis first means a
 * hold settled between the two reads is counted twice (in the ledger and as still open), never
 * zero times. Safe to retry: a grant computed from a fresh snapshot never exceeds the headroom.
 */
import type { Pool } from 'pg';
import type { Config } from '../src/config/index.js';
import { readScopeTotals } from '../src/db/scope-totals.js';
import type { Budget, Scope } from '../src/domain/budget.js';
import { type EnforcingMode, budgetMicro, bucketName, enforcementOf, grantAmount, isEnforcing, microUp } from '../src/domain/leases.js';
import { periodAt } from '../src/domain/periods.js';
import type { LeaseStore } from '../src/redis/leases.js';

export interface LeaseGrantInput {
  scope: Scope;
  budgets: Budget[];
  /** µ$ the waiting checks need from each budget of this scope. */
  needMicro: number;
  /** Lower available leases to what the (changed) budgets leave, grant nothing. */
  shrink?: boolean;
  /** The epoch of the workflow's last grant (null: never granted). */
  expectEpoch: string | null;
  /** If Redis lost its state since (the epoch differs): what was outstanding per bucket, to hold in reserve. */
  outstanding: Record<string, number>;
  /** Reserve for lost holds still in force, per bucket. */
  lost: Record<string, number>;
}

export interface LeaseGrantResult {
  epoch: string;
  /** The epoch differs from `expectEpoch`: Redis lost its state, `lost` now holds what was outstanding. */
  epochChanged: boolean;
  lost: Record<string, number>;
  /** How long a reserve for lost holds is kept (the longest a hold may live, and a margin for its event to arrive). */
  lostHoldMs: number;
  untilMs: number;
  grantedMicro: number;
  /** The scope's pre-flight decisions so far (allow, downgrade, deny), as Redis counts them. */
  decisions: Record<string, number>;
  buckets: Array<{ name: string; period: string; enforcement: EnforcingMode; budgetMicro: number; spentMicro: number; calls: number; grantedMicro: number; availableMicro: number; openMicro: number; endMs: number }>;
}

export interface LeaseActivityDeps {
  pool: Pool;
  config: Config;
  leases: () => LeaseStore;
}

/** After the longest hold could have expired, time for its usage event to reach the ledger. */
const LOST_MARGIN_MS = 30_000;
/** How long a scope without budgets keeps its (empty) lease before checking its budgets again. */
const NO_BUDGET_LEASE_MS = 60_000;
/** A lease is re-granted at least this often, so a budget or mode change made elsewhere is picked up. */
const MAX_LEASE_MS = 3_600_000;

function addMicro(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

export const createLeaseActivities = (deps: LeaseActivityDeps) => ({
  async grantLease(input: LeaseGrantInput): Promise<LeaseGrantResult> {
    const store = deps.leases();
    for (let attempt = 0; ; attempt++) {
      const now = Date.now();
      // Budgets without enforcement take no part in pre-flight decisions: they get no bucket.
      const plan = input.budgets.filter(isEnforcing).map((b) => ({ budget: b, ...bucketName(input.scope, b, now), failMode: enforcementOf(b).failMode, enforcement: enforcementOf(b).enforcement as EnforcingMode }));
      const snap = await store.snapshot(plan.map((p) => p.name));
      const epochChanged = input.expectEpoch !== null && snap.epoch !== input.expectEpoch;
      // A second loss while the reserve for the first is in force keeps both: holds lost the first
      // time may still settle.
      const lost = epochChanged ? addMicro(input.outstanding, input.lost) : input.lost;
      const totals = await readScopeTotals(
        deps.pool,
        deps.config.timezone,
        input.scope,
        plan.map((p) => ({ spec: p.budget.period, timezone: p.budget.timezone, ...periodAt(p.budget.period, p.budget.timezone, now) })),
      );
      const buckets = plan.map((p, i) => {
        const spent = microUp(totals[i]?.totals.costUsd ?? '0');
        const budget = budgetMicro(p.budget, deps.config.exchangeRates);
        const lostMicro = lost[p.name] ?? 0;
        const snapshot = snap.buckets[i] ?? { available: 0, open: 0, spent: 0, gen: 0 };
        // A shrink grants nothing: the script's cap lowers what is available to what the budget leaves.
        const grant = input.shrink ? 0 : grantAmount({ budgetMicro: budget, spentMicro: spent, lostMicro, snapshot, needMicro: input.needMicro }, { sliceFraction: deps.config.preflight.sliceFraction });
        return {
          name: p.name,
          period: p.budget.period,
          enforcement: p.enforcement,
          grant,
          budget,
          base: spent + lostMicro,
          mode: p.enforcement,
          failMode: p.failMode,
          endMs: p.endMs,
          startMs: p.startMs,
          calls: totals[i]?.totals.calls ?? 0,
          snapshotGen: snapshot.gen,
          snapshotSpent: snapshot.spent,
        };
      });
      const untilMs = Math.min(now + (plan.length === 0 ? NO_BUDGET_LEASE_MS : MAX_LEASE_MS), ...plan.map((p) => p.endMs));
      const applied = await store.grant({ scope: input.scope, epoch: snap.epoch, untilMs, buckets });
      if (!applied.ok) {
        // Redis lost its state, or another grant got in, between the snapshot and this grant: start over.
        if (attempt >= 5) throw new Error(applied.why === 'epoch' ? 'the Redis epoch kept changing during a lease grant' : 'other grants kept getting in first');
        continue;
      }
      return {
        epoch: snap.epoch,
        epochChanged,
        lost,
        lostHoldMs: Math.max(deps.config.preflight.maxHoldTtlMs, deps.config.preflight.acceptedHoldTtlMs) + LOST_MARGIN_MS,
        untilMs,
        grantedMicro: buckets.reduce((sum, b) => sum + b.grant, 0),
        decisions: await store.decisions(input.scope).catch(() => ({})),
        buckets: buckets.map((b, i) => ({
          name: b.name,
          period: b.period,
          enforcement: b.enforcement,
          budgetMicro: b.budget,
          spentMicro: b.base - (lost[b.name] ?? 0),
          calls: b.calls,
          grantedMicro: b.grant,
          availableMicro: applied.buckets[i]?.available ?? 0,
          openMicro: applied.buckets[i]?.open ?? 0,
          endMs: b.endMs,
        })),
      };
    }
  },
});

export type LeaseActivities = ReturnType<typeof createLeaseActivities>;
