/**
 * Dead letters: usage events that could not be recorded for a reason tied to the event itself
 * (migrations/0007). A flush isolates them (see `persistFlushIsolating` in ./ledger.ts) and records
 * them here, once per (flush, event), with the error and the original payload, so that the rest of
 * the flush is counted and these can be listed and replayed after a fix.
 */
import type { Pool } from 'pg';

export type DeadLetterStage = 'validation' | 'pricing' | 'persist';

export interface DeadLetterInput {
  batchId: string;
  /** The event's request id when it has a usable one; else its index in the batch keys it. */
  requestId: string | null;
  index: number;
  userId: string | null;
  stage: DeadLetterStage;
  error: string;
  /** The event as received. */
  payload: unknown;
}

export interface DeadLetter {
  id: string;
  batchId: string;
  requestId: string | null;
  userId: string | null;
  stage: DeadLetterStage;
  error: string;
  payload: string;
  createdAt: string;
  replayedAt: string | null;
  replayBatchId: string | null;
}

/** JSON of anything a signal can carry; never throws (a value JSON cannot hold is described instead). */
export function payloadText(payload: unknown): string {
  try {
    return JSON.stringify(payload) ?? 'null';
  } catch (err) {
    return JSON.stringify({ unserializable: String(err) });
  }
}

/** Text PostgreSQL accepts: NUL cannot be stored in text, so it is written as the escape `\u0000`. */
function storable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\u0000/g, '\\u0000').replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/**
 * Records dead letters; a repeat (a retried flush) records nothing again. Returns the stage of each
 * row that is new (for the metric, counted once). `payload` is JSON text, in which JSON.stringify
 * has already escaped NUL and lone surrogates.
 */
export async function recordDeadLetters(pool: Pool, letters: readonly DeadLetterInput[]): Promise<DeadLetterStage[]> {
  if (letters.length === 0) return [];
  const keys: string[] = [];
  const batchIds: string[] = [];
  const requestIds: (string | null)[] = [];
  const userIds: (string | null)[] = [];
  const stages: string[] = [];
  const errors: string[] = [];
  const payloads: string[] = [];
  for (const l of letters) {
    keys.push(storable(`${l.batchId}/${l.requestId ?? `#${l.index}`}`));
    batchIds.push(storable(l.batchId));
    requestIds.push(l.requestId === null ? null : storable(l.requestId));
    userIds.push(l.userId === null ? null : storable(l.userId));
    stages.push(l.stage);
    errors.push(storable(l.error.slice(0, 4000)));
    payloads.push(storable(payloadText(l.payload)));
  }
  const res = await pool.query<{ stage: DeadLetterStage }>(
    `INSERT INTO usage_dead_letters (dead_letter_key, batch_id, request_id, user_id, stage, error, payload)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
     ON CONFLICT (dead_letter_key) DO NOTHING
     RETURNING stage`,
    [keys, batchIds, requestIds, userIds, stages, errors, payloads],
  );
  return res.rows.map((r) => r.stage);
}

type Row = {
  id: string;
  batch_id: string;
  request_id: string | null;
  user_id: string | null;
  stage: DeadLetterStage;
  error: string;
  payload: string;
  created_at: Date;
  replayed_at: Date | null;
  replay_batch_id: string | null;
};

const toDeadLetter = (r: Row): DeadLetter => ({
  id: String(r.id),
  batchId: r.batch_id,
  requestId: r.request_id,
  userId: r.user_id,
  stage: r.stage,
  error: r.error,
  payload: r.payload,
  createdAt: r.created_at.toISOString(),
  replayedAt: r.replayed_at?.toISOString() ?? null,
  replayBatchId: r.replay_batch_id,
});

/** Dead letters, oldest first: those not replayed yet, or all of them. */
export async function listDeadLetters(pool: Pool, opts: { all?: boolean; limit?: number; ids?: readonly string[] } = {}): Promise<DeadLetter[]> {
  const res = await pool.query<Row>(
    `SELECT id, batch_id, request_id, user_id, stage, error, payload, created_at, replayed_at, replay_batch_id
       FROM usage_dead_letters
      WHERE ($1::boolean OR replayed_at IS NULL) AND ($3::bigint[] IS NULL OR id = ANY($3::bigint[]))
      ORDER BY id LIMIT $2`,
    [opts.all ?? false, opts.limit ?? 1000, opts.ids ? opts.ids.map(String) : null],
  );
  return res.rows.map(toDeadLetter);
}

/** Marks dead letters replayed (their events were accepted again under `replayBatchId`). */
export async function markDeadLettersReplayed(pool: Pool, ids: readonly string[], replayBatchId: string): Promise<void> {
  if (ids.length === 0) return;
  await pool.query('UPDATE usage_dead_letters SET replayed_at = now(), replay_batch_id = $2 WHERE id = ANY($1::bigint[]) AND replayed_at IS NULL', [
    ids,
    replayBatchId,
  ]);
}
