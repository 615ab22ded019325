/**
 * The notification delivery log (`notification_deliveries`, one row per notification and channel),
 * read and written under a PostgreSQL advisory lock held for the whole send (see
 * activities/channels.ts for why). Parameterised SQL only.
 */
import type { Pool, PoolClient } from 'pg';

/** Which delivery a row is: one notification to one channel. */
export interface DeliveryKey {
  sourceId: string;
  notificationId: string;
  channel: string;
}

export interface DeliveryRow {
  status: 'sending' | 'sent' | 'failed';
  attempts: number;
  sent_at: Date | null;
  sent_recipients: string[];
}

/** The delivery log of one key, on the connection that holds its lock. */
export interface LockedDelivery {
  /** The row as it stands (undefined: never attempted). */
  read(): Promise<DeliveryRow | undefined>;
  /** Counts one more attempt and marks the row `sending` (committed before the send). */
  claim(attempt: { channelType: string; level: string; kind: string; startedAt: Date }): Promise<DeliveryRow>;
  /** Notes that one recipient got the notification (so a retry skips it). */
  recipientReached(recipient: string): Promise<void>;
  markSent(sentAt: Date, responseStatus: number | null | undefined): Promise<void>;
  /** A failed attempt: `sending` again when it will be retried, `failed` when not. */
  markFailed(failure: { retryable: boolean; reason: string; responseStatus: number | null | undefined }): Promise<void>;
}

function lockedDelivery(db: PoolClient, k: DeliveryKey): LockedDelivery {
  const key = [k.sourceId, k.notificationId, k.channel];
  return {
    async read() {
      const { rows } = await db.query<DeliveryRow>(
        `SELECT status, attempts, sent_at, sent_recipients FROM notification_deliveries
          WHERE source_id = $1 AND notification_id = $2 AND channel = $3`,
        key,
      );
      return rows[0];
    },
    async claim(a) {
      const { rows } = await db.query<DeliveryRow>(
        `INSERT INTO notification_deliveries
           (source_id, notification_id, channel, channel_type, level, kind, status, attempts, first_attempt_at, last_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'sending', 1, $7, $7)
         ON CONFLICT (source_id, notification_id, channel) DO UPDATE
           SET status = 'sending', attempts = notification_deliveries.attempts + 1, last_attempt_at = EXCLUDED.last_attempt_at,
               channel_type = EXCLUDED.channel_type
         RETURNING status, attempts, sent_at, sent_recipients`,
        [...key, a.channelType, a.level, a.kind, a.startedAt],
      );
      return rows[0]!;
    },
    async recipientReached(recipient) {
      await db.query(
        `UPDATE notification_deliveries SET sent_recipients = array_append(sent_recipients, $4)
          WHERE source_id = $1 AND notification_id = $2 AND channel = $3 AND NOT ($4 = ANY (sent_recipients))`,
        [...key, recipient],
      );
    },
    async markSent(sentAt, responseStatus) {
      await db.query(
        `UPDATE notification_deliveries SET status = 'sent', sent_at = $4, response_status = $5
          WHERE source_id = $1 AND notification_id = $2 AND channel = $3`,
        [...key, sentAt, responseStatus],
      );
    },
    async markFailed(f) {
      await db.query(
        `UPDATE notification_deliveries SET status = $4, last_error = $5, response_status = $6
          WHERE source_id = $1 AND notification_id = $2 AND channel = $3`,
        [...key, f.retryable ? 'sending' : 'failed', f.reason, f.responseStatus],
      );
    },
  };
}

/**
 * Runs `fn` with the delivery log of `key` while holding a session advisory lock on a dedicated
 * connection: a second attempt for the same key waits until this one is done. If the unlock fails,
 * the connection is destroyed instead (closing it releases the lock).
 */
export async function withDeliveryLock<T>(pool: Pool, key: DeliveryKey, fn: (delivery: LockedDelivery) => Promise<T>): Promise<T> {
  const lockKey = JSON.stringify([key.sourceId, key.notificationId, key.channel]);
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey]);
    try {
      return await fn(lockedDelivery(client, key));
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockKey]).catch((err: Error) => {
        broken = err; // destroy the connection instead: closing it releases the lock
      });
    }
  } finally {
    client.release(broken);
  }
}
