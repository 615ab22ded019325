/**
 * The budget workflow's messages: one module that the workflow, the worker, the client library, the
 * API and the CLI all import, so names and payload types cannot drift apart.
 */
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Budget, BudgetChange, Scope, ScopeKind } from './domain/budget.js';
import type { AlertCondition, TrackedIncident } from './domain/alert-rules.js';
import type { AlertLevel } from './domain/notification.js';
import type { IngestBatch } from './domain/ingest.js';
import type { LeaseRecord } from './domain/leases.js';
import type { TokenUsage, UsageEventInput } from './domain/usage.js';

export const BUDGET_WORKFLOW_TYPE = 'budgetWorkflow';
export const INGEST_WORKFLOW_TYPE = 'ingestWorkflow';

/** Workflow id of a scope's budget workflow, e.g. `budget/user:alice`, `budget/system`. */
export function budgetWorkflowId(scope: Scope): string {
  return `budget/${scope}`;
}

/** A batch of usage events as sent to a budget workflow; `batchId` makes a re-send harmless. */
export interface UsageBatch {
  batchId: string;
  /** Raw events; each MUST carry its requestId (the sender assigns one before the first send). */
  events: (UsageEventInput & { requestId: string })[];
}

/**
 * Usage sent straight to a budget workflow: how clients sent it before the ingest tier. Still
 * handled (older clients, batches in flight during an upgrade); CostTracker now signals the
 * ingest shards.
 */
export const usageSignal = defineSignal<[UsageBatch]>('usage');

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
export const scopeTotalsSignal = defineSignal<[ScopeTotalsUpdate]>('totals');

/** Live state of a scope's budgets. */
export const statusQuery = defineQuery<BudgetStatus>('status');

/**
 * Replaces a scope's budgets. An update, not a signal, because the caller needs to know whether it
 * was rejected; the validator is synchronous (an async validator's rejection would be ignored).
 */
export const setBudgetUpdate = defineUpdate<BudgetStatus, [BudgetChange]>('setBudget');

/** Start input of a budget workflow; `carried` is set only by continue-as-new. */
export interface BudgetWorkflowInput {
  scope: Scope;
  carried?: CarriedState;
}

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
  buckets: Array<{ name: string; period: string; enforcement: 'hard' | 'soft'; budgetUsd: string; spentUsd: string; availableUsd: string; openUsd: string }>;
}

/**
 * Grants (or refreshes) this scope's leases: sent by pre-flight checks that found a lease missing,
 * expired or too small. Answers with the lease state after the grant.
 */
export const leaseUpdate = defineUpdate<LeaseStatus, [LeaseRequest]>('lease');

/**
 * Search attributes of budget workflows (registered idempotently at start-up, upserted by the
 * workflow on material change only): find every budget over 80% with
 * `CostDailyUsagePct > 80` in the Temporal UI.
 */
export const searchAttributes = {
  scopeKind: defineSearchAttributeKey('CostScopeKind', SearchAttributeType.KEYWORD),
  scopeId: defineSearchAttributeKey('CostScopeId', SearchAttributeType.KEYWORD),
  dailySpendUsd: defineSearchAttributeKey('CostDailySpendUsd', SearchAttributeType.DOUBLE),
  dailyUsagePct: defineSearchAttributeKey('CostDailyUsagePct', SearchAttributeType.DOUBLE),
  monthlySpendUsd: defineSearchAttributeKey('CostMonthlySpendUsd', SearchAttributeType.DOUBLE),
  alertLevel: defineSearchAttributeKey('CostAlertLevel', SearchAttributeType.KEYWORD),
  /** Open incidents of a budget's scope (set once the scope has had one): `CostOpenIncidents > 0`. */
  openIncidents: defineSearchAttributeKey('CostOpenIncidents', SearchAttributeType.INT),
} as const;

// ---------------------------------------------------------------------------------------------
// Ingest shards: `ingest/<n>` (workflows/ingest.ts).

/** Services signal cross-user batches of usage to an ingest shard (CostTracker, POST /v1/usage). */
export const ingestSignal = defineSignal<[IngestBatch]>('ingest');

export interface IngestWorkflowInput {
  shard: number;
  carried?: IngestCarriedState;
}

export interface IngestCounters {
  batches: number;
  duplicateBatches: number;
  droppedBatches: number;
  events: number;
  counted: number;
  duplicateEvents: number;
  deadLettered: number;
  flushes: number;
  signalsSent: number;
  /** Flushes that failed (PostgreSQL or Temporal unreachable) and were tried again after a pause. */
  flushRetries?: number;
}

/** Carried across continue-as-new: kept small (no pending events: the shard continues only when idle). */
export interface IngestCarriedState {
  flushSeq: number;
  recentBatchIds: string[];
  counters: IngestCounters;
  raised: string[];
}

export interface IngestStatus {
  shard: number;
  pendingBatches: number;
  pendingEvents: number;
  counters: IngestCounters;
  lastFlush: { flushId: string; atMs: number; events: number; durationMs: number } | null;
}
export const ingestStatusQuery = defineQuery<IngestStatus>('ingestStatus');

// ---------------------------------------------------------------------------------------------
// Alerts: one alert workflow per incident (workflows/alert.ts).

export const ALERT_WORKFLOW_TYPE = 'alertWorkflow';

/** Workflow id of an incident's alert workflow; the incident id is a hash of its condition key. */
export function alertWorkflowId(incidentId: string): string {
  return `alert/${incidentId}`;
}

/** How an incident notifies: snapshotted from the config when the incident opens. */
export interface AlertSettings {
  /** Channel names per level (only configured channels). */
  routing: Record<AlertLevel, string[]>;
  /** No second notification for the same (condition, level) within this interval. */
  repeatIntervalMs: number;
  /** Unacknowledged critical/emergency incidents re-notify after `delayMs`, adding `channels`. */
  escalation: { delayMs: number; channels: string[]; maxEscalations: number };
}

export interface AlertWorkflowInput {
  incidentId: string;
  condition: AlertCondition;
  settings: AlertSettings;
  /** The budget workflow to tell about acknowledgement and resolution (null for system-wide rules). */
  budgetWorkflowId: string | null;
  carried?: IncidentState;
}

export interface Acknowledgement {
  /** Who takes responsibility (a name or an e-mail address). */
  by: string;
  note?: string;
}

/** The condition again (a level change) or `null` when it no longer holds. */
export interface ConditionUpdate {
  condition: AlertCondition | null;
  reason?: string;
}

export type IncidentStatus = 'open' | 'acknowledged' | 'resolved';

/** An incident as the alert workflow sees it (query `incident`, update `acknowledge`). */
export interface IncidentState {
  incidentId: string;
  status: IncidentStatus;
  condition: AlertCondition;
  level: AlertLevel;
  openedAt: string;
  acknowledged: { by: string; at: string; note: string | null } | null;
  resolved: { at: string; reason: string } | null;
  escalations: number;
  /** Every channel notified so far (the resolved notice goes to these). */
  notifiedChannels: string[];
  /** Last notification time per level (ms), for the repeat interval. */
  lastNotifiedMs: Partial<Record<AlertLevel, number>>;
  /** Last time anything was sent, for the escalation delay. */
  lastNotificationMs: number | null;
  notifications: number;
}

/** Sent by the budget workflow when a condition changes level or clears. */
export const conditionSignal = defineSignal<[ConditionUpdate]>('condition');
/** Acknowledge from the Temporal UI ("Send a Signal", name `ack`, input `{"by": "you", "note": "..."}`). */
export const ackSignal = defineSignal<[Acknowledgement]>('ack');
/** Acknowledge from the API and CLI: an update, so the caller learns the incident's state (or why not). */
export const acknowledgeUpdate = defineUpdate<IncidentState, [Acknowledgement]>('acknowledge');
export const incidentQuery = defineQuery<IncidentState>('incident');

/** Alert workflow -> budget workflow: an incident was acknowledged or resolved. */
export interface IncidentChange {
  incidentId: string;
  key: string;
  status: IncidentStatus;
}
export const incidentChangedSignal = defineSignal<[IncidentChange]>('incidentChanged');
