/**
 * `costguard prune`: deletes ledger rows, batch results and delivery log rows older than the
 * configured retention (`retention.ledgerDays`, `retention.deliveryDays`; both off by default).
 * Run it from a scheduler (cron, a Kubernetes CronJob) as often as you like: it is idempotent.
 */
import type { Config } from '../config/index.js';
import { type PruneCounts, countPrunable, pruneOlderThan } from '../db/retention.js';
import { retentionCutoffs } from '../domain/retention.js';
import { withPool } from './pool.js';

export interface PruneResult {
  dryRun: boolean;
  ledgerBefore: string | null;
  deliveriesBefore: string | null;
  /** Rows deleted (or, with --dry-run, that would be), per table. */
  rows: PruneCounts;
}

export async function runPruneCommand(config: Config, opts: { dryRun?: boolean }, nowMs: number): Promise<PruneResult> {
  const cutoffs = retentionCutoffs(config.retention, nowMs);
  const rows = cutoffs.ledgerBefore || cutoffs.deliveriesBefore
    ? await withPool(config, (pool) => (opts.dryRun ? countPrunable(pool, cutoffs) : pruneOlderThan(pool, cutoffs)))
    : {};
  return {
    dryRun: Boolean(opts.dryRun),
    ledgerBefore: cutoffs.ledgerBefore?.toISOString() ?? null,
    deliveriesBefore: cutoffs.deliveriesBefore?.toISOString() ?? null,
    rows,
  };
}

export function renderPruneText(r: PruneResult): string {
  if (!r.ledgerBefore && !r.deliveriesBefore) return 'retention is off (set retention.ledgerDays and/or retention.deliveryDays in the config file): nothing pruned';
  const verb = r.dryRun ? 'would delete' : 'deleted';
  return Object.entries(r.rows)
    .map(([table, n]) => `${table}: ${verb} ${n} row(s) older than ${table === 'notification_deliveries' ? r.deliveriesBefore : r.ledgerBefore}`)
    .join('\n');
}
