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

