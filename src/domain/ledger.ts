/** What the ledger stores and returns for a batch (types only; the I/O is in src/db/ledger.ts). */
import type { PriceResult } from './pricing.js';
import type { TokenUsage, UsageEvent } from './usage.js';

export interface PricedEvent {
  event: UsageEvent;
  price: PriceResult;
}

/** One newly counted event, as the ledger stored it. */
export interface CountedEvent {
  requestId: string;
  occurredAt: string;
  costUsd: string;
  unpriced: boolean;
}

export interface BatchTotals {
  calls: number;
  unpricedCalls: number;
  costUsd: string;
  tokens: TokenUsage;
}

export interface BatchResult {
  batchId: string;
  received: number;
  counted: number;
  duplicates: number;
  totals: BatchTotals;
  events: CountedEvent[];
}


/** A counted event with what the budget workflow needs for its totals and breakdowns. */
export interface CountedUsage extends CountedEvent {
  provider: string;
  model: string;
  taskType: string;
  usage: TokenUsage;
  /** Why an unpriced event has no price (unknown_provider, unknown_model, unmetered_units). */
  unpricedReason?: string;
}

/** An event the flush activity refused (its batch's other events were persisted). */
export interface RejectedEvent {
  index: number;
  requestId: string | null;
  issues: { path: string; message: string }[];
}

/**
 * What the flush activity returns to the budget workflow: the ledger's result for the valid events,
 * each counted event with its normalized details, and the events refused as invalid. The same input
 * gives the same output on every attempt (the ledger part is stored; the rest is derived).
 */
export interface FlushResult {
  batchId: string;
  received: number;
  duplicates: number;
  counted: CountedUsage[];
  rejected: RejectedEvent[];
  /**
   * Events set aside as dead letters (refused as invalid, pricing threw, or the database refused
   * the row); the rest of the flush was counted. Absent in results recorded before dead letters.
   */
  deadLettered?: number;
}
