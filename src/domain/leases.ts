/**
 * Budget leases and holds: the arithmetic of pre-flight checks. Pure (the budget workflow, the
 * grant activity and the authorizer share it).
 *
 * Money here is in integer micro-dollars (µ$, 1e-6 USD), the unit Redis counts in: a reservation
 * and an actual cost are rounded UP to the µ$ and a budget DOWN, so rounding never admits spend the
 * budget does not cover. Budgets above MAX_LEASE_USD ($90 million) are enforced as MAX_LEASE_USD.
 *
 * The invariant every operation keeps, per bucket (one budget of one scope, one period):
 *
 *     ledger spend S  +  open holds  +  lease available  (+ reserve for holds lost with Redis)  <=  budget
 *
 * A grant raises `available` by at most what the inequality leaves (read Redis first, then the
 * ledger: a hold settled in between is counted twice, never zero times). A reservation moves an
 * amount from available to open; a settlement, which runs only after its event is committed to the
 * ledger, removes the hold's amount from open and gives back what the call did not use (W - A);
 * a release or an expiry gives back all of it; a settlement after the release or expiry charges
 * its actual cost to available (so a late event is still paid for, once). So spend exceeds a budget
 * only by what a call spent beyond its own reservation (a caller that ran past its worst case, or
 * past its hold's expiry without renewing it) or, for a soft budget, by one request's worst case.
 */
import { Dec, toUsd, type ExchangeRates } from './money.js';
import type { Budget, Scope } from './budget.js';
import { periodAt } from './periods.js';

export const MICRO = 1_000_000;
/** Redis passes Lua numbers on as 14 significant digits: amounts stay below 10^14 µ$ ($90 million per budget). */
export const MAX_LEASE_USD = '90000000';
const MAX_MICRO = 90_000_000 * MICRO;

/** What a pre-flight check does with a budget: deny what does not fit, advise and overshoot by at most one call, or nothing. */
export type Enforcement = 'hard' | 'soft' | 'none';
/** The enforcements that take part in pre-flight decisions (they get a lease bucket). */
export type EnforcingMode = Exclude<Enforcement, 'none'>;
export type FailMode = 'open' | 'closed';
export const ENFORCEMENTS: readonly Enforcement[] = ['hard', 'soft', 'none'];
export const FAIL_MODES: readonly FailMode[] = ['open', 'closed'];

/**
 * A budget's enforcement and its fail mode (closed for hard, open otherwise, unless set). A budget
 * nobody made enforcing (`enforcement` unset) is `none`: it alerts and reports, and takes no part
 * in pre-flight decisions, so a spent alerting budget never refuses a call.
 */
export function enforcementOf(b: Pick<Budget, 'enforcement' | 'failMode'>): { enforcement: Enforcement; failMode: FailMode } {
  const enforcement = b.enforcement ?? 'none';
  return { enforcement, failMode: b.failMode ?? (enforcement === 'hard' ? 'closed' : 'open') };
}

/** Whether a budget takes part in pre-flight decisions (has a lease bucket). */
export function isEnforcing(b: Pick<Budget, 'enforcement'>): boolean {
  return enforcementOf({ enforcement: b.enforcement }).enforcement !== 'none';
}

/** USD decimal -> µ$, rounded up (a cost or a reservation). */
export function microUp(usd: string | Dec): number {
  const v = new Dec(usd).times(MICRO).ceil();
  return v.gt(MAX_MICRO) ? MAX_MICRO : Math.max(0, v.toNumber());
}

/** USD decimal -> µ$, rounded down (a budget). */
export function microDown(usd: string | Dec): number {
  const v = new Dec(usd).times(MICRO).floor();
  return v.gt(MAX_MICRO) ? MAX_MICRO : Math.max(0, v.toNumber());
}

/** µ$ (a safe integer) -> USD decimal string, exact ("1.5", "0.000001", "-0.25"). */
export function usdOf(micro: number): string {
  if (!Number.isSafeInteger(micro)) return new Dec(micro).div(MICRO).toFixed();
  const sign = micro < 0 ? '-' : '';
  const m = Math.abs(micro);
  const whole = Math.floor(m / MICRO);
  const fraction = String(m % MICRO).padStart(6, '0').replace(/0+$/, '');
  return `${sign}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** The Redis name of one budget's bucket for the period containing `ms`: scope, period spec, time zone and period start. */
export function bucketName(scope: Scope, budget: Pick<Budget, 'period' | 'timezone'>, ms: number): { name: string; startMs: number; endMs: number } {
  const p = periodAt(budget.period, budget.timezone, ms);
  return { name: `${scope}|${budget.period}|${budget.timezone}|${p.startMs}`, startMs: p.startMs, endMs: p.endMs };
}

/**
 * Hold ids: `h<epoch>.<reserved at, base 36>.<random>`. The reservation time travels in the id, so
 * a usage event that carries a hold id and no `occurredAt` is dated to its reservation (and counts
 * in the reservation's period, like the hold itself).
 */
const HOLD_ID_RE = /^h([0-9a-z]{1,16})\.([0-9a-z]{1,11})\.([0-9A-Za-z_-]{8,32})$/;

export function holdId(epoch: string, reservedAtMs: number, random: string): string {
  return `h${epoch}.${reservedAtMs.toString(36)}.${random}`;
}

export function isHoldId(value: string): boolean {
  return HOLD_ID_RE.test(value);
}

/** The reservation time of a hold id, or undefined when it is not one. */
export function holdReservedAtMs(id: string): number | undefined {
  const m = HOLD_ID_RE.exec(id);
  if (!m) return undefined;
  const ms = parseInt(m[2]!, 36);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** One bucket as the grant activity reads it from Redis (all µ$). */
export interface BucketSnapshot {
  available: number;
  open: number;
}

export interface GrantSettings {
  /** A grant tops the lease up to this fraction of the budget (at least what is asked for), within what remains. */
  sliceFraction: number;
}

export const DEFAULT_GRANT_SETTINGS: GrantSettings = { sliceFraction: 0.25 };

/**
 * How much to add to a bucket's available lease: enough for `needMicro` (what waiting requests ask
 * for) and up to a slice of the budget, never more than the invariant leaves.
 */
export function grantAmount(input: { budgetMicro: number; spentMicro: number; lostMicro: number; snapshot: BucketSnapshot; needMicro: number }, settings: GrantSettings): number {
  const { budgetMicro, spentMicro, lostMicro, snapshot, needMicro } = input;
  const headroom = budgetMicro - spentMicro - lostMicro - snapshot.open - snapshot.available;
  if (headroom <= 0) return 0;
  const slice = Math.floor(budgetMicro * settings.sliceFraction);
  const target = Math.max(needMicro, slice);
  // A negative available (spend charged to the lease beyond it) is made up first.
  const want = target - snapshot.available;
  return Math.max(0, Math.min(headroom, want));
}

/** A budget's amount in µ$ of USD (budgets in other currencies converted at the configured rates). */
export function budgetMicro(b: Pick<Budget, 'amount' | 'currency'>, rates: ExchangeRates): number {
  return microDown(toUsd(b.amount, b.currency, rates));
}

/** What a budget workflow remembers of its leases (durable, shown in its status and the UI). */
export interface LeaseRecord {
  /** The Redis epoch the last grant was made in (a different one means Redis lost its state). */
  epoch: string | null;
  /** µ$ outstanding (open + available) per bucket right after the last grant. */
  outstanding: Record<string, number>;
  /** Reserve held for holds Redis lost, per bucket, until `lostUntilMs`. */
  lost: Record<string, number>;
  lostUntilMs: number;
  grants: number;
  grantedMicro: number;
  lastGrantAtMs: number | null;
}

export const EMPTY_LEASE_RECORD: LeaseRecord = { epoch: null, outstanding: {}, lost: {}, lostUntilMs: 0, grants: 0, grantedMicro: 0, lastGrantAtMs: null };

/** The lost-hold reserve that still applies at `nowMs`. */
export function activeLost(record: LeaseRecord, nowMs: number): Record<string, number> {
  return nowMs < record.lostUntilMs ? record.lost : {};
}

/** A request for lease: what waiting pre-flight checks need (µ$ per budget of the scope). */
export interface LeaseRequest {
  needMicro: number;
}

/** A scope's leases as the status and the Temporal UI show them (amounts in USD). */
export interface LeaseStatus {
  epoch: string | null;
  grants: number;
  grantedUsd: string;
  lastGrantAt: string | null;
  /** Held back for holds Redis lost, until `lostUntil` (null when none). */
  lostReserveUsd: string;
  lostUntil: string | null;
  /** Pre-flight decisions on this scope (allow, downgrade, deny) as of the last grant; GET /v1/budgets/:scope has them live. */
  decisions?: Record<string, number>;
  buckets: Array<{ name: string; period: string; enforcement: EnforcingMode; budgetUsd: string; spentUsd: string; availableUsd: string; openUsd: string }>;
}
