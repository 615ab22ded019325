/**
 * What a budget workflow shows of its scope: a period's totals, a budget's live status and the
 * scope's whole status (the `status` query, GET /v1/budgets/:scope, the CLI, the alert rules and the
 * Temporal UI all read this one shape), and the exact totals an ingest shard sends it. Plain data,
 * so the domain, the workflows, the ledger and the clients share it without importing each other.
 */
import type { Enforcement, FailMode } from './leases.js';
import type { Budget, Scope, ScopeKind } from './budget.js';
import type { LeaseStatus } from './leases.js';
import type { TokenUsage } from './tokens.js';

export interface BreakdownEntry {
  key: string;
  costUsd: string;
  calls: number;
}

export interface PeriodTotals {
  costUsd: string;
  calls: number;
  unpricedCalls: number;
  tokens: TokenUsage;
  byProvider: BreakdownEntry[];
  byModel: BreakdownEntry[];
  byTaskType: BreakdownEntry[];
}

export interface BudgetPeriodStatus {
  period: string;
  timezone: string;
  periodKey: string;
  periodStart: string;
  periodEnd: string;
  amount: string;
  currency: Budget['currency'];
  amountUsd: string;
  thresholds: Budget['thresholds'];
  /** Pre-flight: hard denies what does not fit, soft advises, none (unset) takes no part in decisions. */
  enforcement: Enforcement;
  /** When Redis or Temporal cannot answer a check: closed denies, open admits unreserved. */
  failMode: FailMode;
  spentUsd: string;
  remainingUsd: string;
  /** spent / budget, for display and alerting (a ratio, not money). */
  usageRatio: number;
  level: 'ok' | 'info' | 'warning' | 'critical' | 'emergency';
  totals: PeriodTotals;
}

export interface BudgetStatus {
  scope: Scope;
  scopeKind: ScopeKind;
  /** Where totals come from: this workflow's own flushes, or the ledger's exact rollups. */
  source: 'events' | 'ledger';
  budgets: BudgetPeriodStatus[];
  updatedAt: string;
  counters: {
    batchesApplied: number;
    duplicateBatches: number;
    droppedBatches: number;
    eventsCounted: number;
    duplicateEvents: number;
    /** Events the flush activity refused as invalid (their batch's other events were counted). */
    rejectedEvents: number;
    lateEvents: number;
    /** Exact totals applied from the ingest shards' `totals` signals (absent before the ingest tier). */
    totalsUpdates?: number;
  };
  /** Pre-flight enforcement: this scope's leases as of the last grant (absent before the first). */
  leases?: LeaseStatus;
  /** Open incidents this scope raised (acknowledged ones included), from the status query. */
  incidents?: { incidentId: string; key: string; rule: string; level: string; status: 'open' | 'acknowledged' }[];
}

/**
 * Exact totals of a scope's current budget periods, sent by an ingest shard when the scope's spend
 * moved materially (a step of its smallest budget, a threshold or forecast boundary). Order-proof
 * and idempotent: within a period, spend and calls only grow, so totals with more calls are newer
 * and a repeat or an older one changes nothing.
 */
export interface ScopeTotalsUpdate {
  scope: Scope;
  /** Why the shard signalled: `step`, `threshold`, `forecast`, `first` (no memory of the scope). */
  reason: string;
  /** When the totals were read (ms). */
  readAtMs: number;
  periods: { spec: string; key: string; totals: PeriodTotals }[];
}
