/**
 * The budget workflow's messages: one module that the workflow, the worker, the client library, the
 * API and the CLI all import, so names and payload types cannot drift apart.
 */
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Budget, BudgetChange, Scope, ScopeKind } from './domain/budget.js';
import type { TokenUsage, UsageEventInput } from './domain/usage.js';

export const BUDGET_WORKFLOW_TYPE = 'budgetWorkflow';

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

/** Services signal usage here (through CostTracker or the HTTP API). */
export const usageSignal = defineSignal<[UsageBatch]>('usage');

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
  level: 'ok' | 'warning' | 'critical' | 'emergency';
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
  };
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
}

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
} as const;
