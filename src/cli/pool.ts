/** A short-lived PostgreSQL pool for one CLI command, always closed afterwards. */
import pg from 'pg';
import type { Config } from '../config/index.js';

export async function withPool<T>(config: Config, run: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 2 });
  try {
    return await run(pool);
  } finally {
    await pool.end();
  }
}
