/**
 * `costguard deadletter list|replay`: usage events a flush set aside because they failed for a
 * reason tied to the event (see src/db/dead-letters.ts). `replay` sends each one again through the
 * normal ingestion path (CostTracker -> Temporal -> the flush), as a backfill and under its own
 * request id, so an event that did get into the ledger meanwhile still counts once. A replayed
 * event that fails again is dead-lettered again under the replay's batch, with the new error.
 */
import { CostTracker, CostTrackerValidationError } from '../client/cost-tracker.js';
import { connectTemporal } from '../client/connect.js';
import type { Config } from '../config/index.js';
import { withPool } from './pool.js';
import { type DeadLetter, listDeadLetters, markDeadLettersReplayed } from '../db/dead-letters.js';
import { ValidationError } from '../domain/errors.js';
import { createLogger } from '../lib/logger.js';

function parseLimit(limit: string | undefined): number {
  const n = limit === undefined ? 100 : Number(limit);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new ValidationError([{ path: 'limit', message: `expected a whole number from 1 to 10000, got ${JSON.stringify(limit)}` }]);
  return n;
}

function parseIds(ids: readonly string[]): string[] {
  for (const id of ids) {
    if (!/^[1-9][0-9]{0,17}$/.test(id)) throw new ValidationError([{ path: 'id', message: `expected a dead letter id as listed by \`costguard deadletter list\`, got ${JSON.stringify(id.slice(0, 40))}` }]);
  }
  return [...ids];
}

export function runDeadLetterList(config: Config, opts: { all?: boolean; limit?: string }): Promise<DeadLetter[]> {
  const limit = parseLimit(opts.limit);
  return withPool(config, (pool) => listDeadLetters(pool, { all: opts.all, limit }));
}

export function renderDeadLetters(rows: readonly DeadLetter[]): string {
  if (rows.length === 0) return 'No dead letters waiting.';
  const lines = rows.map((r) =>
    [
      `#${r.id}  ${r.createdAt}  stage=${r.stage}  user=${r.userId ?? '?'}  request=${r.requestId ?? '?'}${r.replayedAt ? `  replayed ${r.replayedAt} (${r.replayBatchId})` : ''}`,
      `    error:   ${r.error}`,
      `    payload: ${r.payload.length > 300 ? `${r.payload.slice(0, 300)}...` : r.payload}`,
    ].join('\n'),
  );
  return `${lines.join('\n')}\n\n${rows.length} dead letter(s). Replay after a fix: costguard deadletter replay <id>... | --all`;
}

export interface ReplayOutcome {
  id: string;
  requestId: string | null;
  outcome: 'replayed' | 'invalid';
  message?: string;
}

export interface ReplaySummary {
  replayed: number;
  invalid: number;
  results: ReplayOutcome[];
}

/**
 * Replays the given dead letters (or every waiting one with `all`). Each payload is validated again
 * (as a backfill: its age is no reason to refuse it); an invalid one stays waiting and is reported.
 */
export async function runDeadLetterReplay(config: Config, ids: readonly string[], opts: { all?: boolean }): Promise<ReplaySummary> {
  if (!opts.all && ids.length === 0) throw new ValidationError([{ path: 'id', message: 'name the dead letters to replay (ids from `costguard deadletter list`), or pass --all' }]);
  const wanted = opts.all ? undefined : parseIds(ids);
  const { client, connection } = await connectTemporal(config);
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, undefined, config.logFormat);
  const tracker = new CostTracker({ client, taskQueue: config.temporal.taskQueue, ingestShards: config.ingest.shards, logger, backfill: true });
  try {
    return await withPool(config, async (pool) => {
      const letters = await listDeadLetters(pool, { ids: wanted, limit: 10_000 });
      if (wanted && letters.length < wanted.length) {
        const found = new Set(letters.map((l) => l.id));
        const missing = wanted.filter((id) => !found.has(id));
        throw new ValidationError(missing.map((id) => ({ path: 'id', message: `no waiting dead letter #${id} (already replayed, or never existed)` })));
      }
      const results: ReplayOutcome[] = [];
      for (const letter of letters) {
        let payload: unknown;
        try {
          payload = JSON.parse(letter.payload);
        } catch {
          results.push({ id: letter.id, requestId: letter.requestId, outcome: 'invalid', message: 'the stored payload is not JSON' });
          continue;
        }
        try {
          const receipt = await tracker.record(payload as never);
          await markDeadLettersReplayed(pool, [letter.id], receipt.batchId);
          results.push({ id: letter.id, requestId: receipt.requestId, outcome: 'replayed' });
        } catch (err) {
          if (!(err instanceof CostTrackerValidationError)) throw err;
          results.push({ id: letter.id, requestId: letter.requestId, outcome: 'invalid', message: err.message });
        }
      }
      return { replayed: results.filter((r) => r.outcome === 'replayed').length, invalid: results.filter((r) => r.outcome === 'invalid').length, results };
    });
  } finally {
    await tracker.close().catch(() => undefined);
    await connection.close();
  }
}

export function renderReplay(summary: ReplaySummary): string {
  const lines = summary.results.map((r) => (r.outcome === 'replayed' ? `#${r.id} replayed (request ${r.requestId})` : `#${r.id} still invalid, left waiting: ${r.message}`));
  lines.push(`${summary.replayed} replayed, ${summary.invalid} still invalid.`);
  return lines.join('\n');
}
