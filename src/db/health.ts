/** Whether PostgreSQL answers: the API's /healthz. */
import type { Pool } from 'pg';

/** Resolves when the database answers a trivial query; rejects when it cannot be reached. */
export async function pingDatabase(pool: Pool): Promise<void> {
  await pool.query('SELECT 1');
}
