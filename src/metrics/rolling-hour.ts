/** `llm_cost_per_hour_usd` from the ledger snapshot (pure: the snapshot is read by src/db/ledger-snapshot.ts). */
import type { LedgerSnapshot } from '../db/ledger-snapshot.js';

/**
 * Spend over the last 60 minutes, estimated from two hourly rollups: all of the current hour so
 * far, plus the share of the previous hour that still lies within the window (assuming it was spent
 * evenly). Exact at the top of each hour's end; smooth in between, with no per-event scan.
 */
export function rollingHourUsd(s: Pick<LedgerSnapshot, 'currentHourUsd' | 'previousHourUsd' | 'hourElapsed'>): number {
  return s.currentHourUsd + s.previousHourUsd * (1 - s.hourElapsed);
}
