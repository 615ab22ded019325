/**
 * Every workflow's messages: workflow types and ids, start inputs and results, signals, queries,
 * updates and search attributes, in one module that the workflows, the worker, the client library,
 * the API and the CLI all import, so names and payload types cannot drift apart. The payloads'
 * shapes are the domain's (src/domain/); nothing in src/domain/ imports this module.
 */
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AlertCondition } from './domain/alert-rules.js';
import type { BudgetChange, Scope } from './domain/budget.js';
import type { CarriedState } from './domain/budget-state.js';
import type { BudgetStatus, ScopeTotalsUpdate } from './domain/budget-status.js';
import type { Acknowledgement, AlertSettings, ConditionUpdate, IncidentChange, IncidentState } from './domain/incident.js';
import type { IngestBatch, IngestCarriedState, IngestStatus } from './domain/ingest.js';
import type { LeaseRequest, LeaseStatus } from './domain/leases.js';
import type { ReportKind } from './domain/report-period.js';
import type { UsageBatch } from './domain/usage.js';

export const BUDGET_WORKFLOW_TYPE = 'budgetWorkflow';
export const INGEST_WORKFLOW_TYPE = 'ingestWorkflow';

/** Workflow id of an ingest shard, `ingest/<n>` (a user's shard is `shardOf` in src/domain/ingest.ts). */
export function ingestWorkflowId(shard: number): string {
  return `ingest/${shard}`;
}

/** Workflow id of a scope's budget workflow, e.g. `budget/user:alice`, `budget/system`. */
export function budgetWorkflowId(scope: Scope): string {
  return `budget/${scope}`;
}

/**
 * Usage sent straight to a budget workflow: how clients sent it before the ingest tier. Still
 * handled (older clients, batches in flight during an upgrade); CostTracker now signals the
 * ingest shards.
 */
export const usageSignal = defineSignal<[UsageBatch]>('usage');

/** Exact totals of a scope's current budget periods, from an ingest shard (see ScopeTotalsUpdate). */
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

export const ingestStatusQuery = defineQuery<IngestStatus>('ingestStatus');

// ---------------------------------------------------------------------------------------------
// Alerts: one alert workflow per incident (workflows/alert.ts).

export const ALERT_WORKFLOW_TYPE = 'alertWorkflow';

/** Workflow id of an incident's alert workflow; the incident id is a hash of its condition key. */
export function alertWorkflowId(incidentId: string): string {
  return `alert/${incidentId}`;
}

export interface AlertWorkflowInput {
  incidentId: string;
  condition: AlertCondition;
  settings: AlertSettings;
  /** The budget workflow to tell about acknowledgement and resolution (null for system-wide rules). */
  budgetWorkflowId: string | null;
  carried?: IncidentState;
}

/** Sent by the budget workflow when a condition changes level or clears. */
export const conditionSignal = defineSignal<[ConditionUpdate]>('condition');
/** Acknowledge from the Temporal UI ("Send a Signal", name `ack`, input `{"by": "you", "note": "..."}`). */
export const ackSignal = defineSignal<[Acknowledgement]>('ack');
/** Acknowledge from the API and CLI: an update, so the caller learns the incident's state (or why not). */
export const acknowledgeUpdate = defineUpdate<IncidentState, [Acknowledgement]>('acknowledge');
export const incidentQuery = defineQuery<IncidentState>('incident');

/** Alert workflow -> budget workflow: an incident was acknowledged or resolved. */
export const incidentChangedSignal = defineSignal<[IncidentChange]>('incidentChanged');

// ---------------------------------------------------------------------------------------------
// Reports: one run per period (workflows/report.ts), started by the report schedules or on demand.

export const REPORT_WORKFLOW_TYPE = 'reportWorkflow';

export interface ReportWorkflowInput {
  kind: ReportKind;
  /** `YYYY-MM-DD` (daily) or `YYYY-MM` (monthly); absent: the previous period (scheduled runs). */
  period?: string;
  /** IANA time zone; absent: `reports.timezone`, else the configured `timezone`. */
  timezone?: string;
  /** Deliver to the report channels (default true). */
  deliver?: boolean;
}

export interface ReportWorkflowResult {
  kind: ReportKind;
  period: string;
  timezone: string;
  empty: boolean;
  generations: number;
  deliveries: { channel: string; status: 'sent' | 'already_sent' }[];
}

/**
 * Temporal's own search attribute on a scheduled run: its nominal time, which a report run reports
 * on the period before (built in, so never registered with `searchAttributes`).
 */
export const scheduledStartTimeAttribute = defineSearchAttributeKey('TemporalScheduledStartTime', SearchAttributeType.DATETIME);
