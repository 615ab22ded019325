/**
 * Retention of the ledger and the delivery log (config `retention:`, run by `costguard prune`): off
 * by default, since the ledger is the record. The minimums keep what the running system still
 * reads: monthly reports compare a month with the month before (62 days cover both), and the
 * delivery log must outlive any retry of a delivery (Temporal retries within hours, not a week).
 */
export const RETENTION_MIN_DAYS = { ledger: 62, deliveries: 7 } as const;

const DAY_MS = 86_400_000;

export interface RetentionSettings {
  ledgerDays: number | null;
  deliveryDays: number | null;
}

/** What is pruned: rows older than each cutoff (null: that table is kept whole). */
export interface RetentionCutoffs {
  ledgerBefore: Date | null;
  deliveriesBefore: Date | null;
}

export function retentionCutoffs(settings: RetentionSettings, nowMs: number): RetentionCutoffs {
  return {
    ledgerBefore: settings.ledgerDays === null ? null : new Date(nowMs - settings.ledgerDays * DAY_MS),
    deliveriesBefore: settings.deliveryDays === null ? null : new Date(nowMs - settings.deliveryDays * DAY_MS),
  };
}
