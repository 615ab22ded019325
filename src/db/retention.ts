/**
 * Pruning by age (`costguard prune`, config `retention:`): ledger rows by `occurred_at`, batch
 * results by `created_at`, delivery log rows by `last_attempt_at`. Deleted in chunks of
 * PRUNE_CHUNK rows, each its own statement, so no long transaction holds locks the ingest path
 * waits for. Rollups stay: they are the totals of the pruned periods (and so no longer the sum of
 * ledger rows for them). Parameterised SQL only; the table and column come from a fixed list.
 */
import type { Pool } from 'pg';
import type { RetentionCutoffs } from '../domain/retention.js';

export const PRUNE_CHUNK = 5000;

/** What prune removes, table by table, and the column its age is read from. */
const TARGETS = [
  { table: 'usage_ledger', column: 'occurred_at', cutoff: 'ledgerBefore' },
  { table: 'usage_batches', column: 'created_at', cutoff: 'ledgerBefore' },
  { table: 'notification_deliveries', column: 'last_attempt_at', cutoff: 'deliveriesBefore' },
] as const;

export type PruneTable = (typeof TARGETS)[number]['table'];
export type PruneCounts = Partial<Record<PruneTable, number>>;

/** Rows older than the cutoffs, per table (tables whose cutoff is null are left out). */
export async function countPrunable(pool: Pool, cutoffs: RetentionCutoffs): Promise<PruneCounts> {
  const out: PruneCounts = {};
  for (const t of TARGETS) {
    const before = cutoffs[t.cutoff];
    if (!before) continue;
    const { rows } = await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${t.table} WHERE ${t.column} < $1`, [before]);
    out[t.table] = Number(rows[0]!.n);
  }
  return out;
}

/** Deletes the rows older than the cutoffs; returns how many per table. */
export async function pruneOlderThan(pool: Pool, cutoffs: RetentionCutoffs, chunk = PRUNE_CHUNK): Promise<PruneCounts> {
  const out: PruneCounts = {};
  for (const t of TARGETS) {
    const before = cutoffs[t.cutoff];
    if (!before) continue;
    let total = 0;
    for (;;) {
      const { rowCount } = await pool.query(
        `DELETE FROM ${t.table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${t.table} WHERE ${t.column} < $1 LIMIT $2))`,
        [before, chunk],
      );
      total += rowCount ?? 0;
      if ((rowCount ?? 0) < chunk) break;
    }
    out[t.table] = total;
  }
  return out;
}
