import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../../src/db/migrate.js';

const BASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/costguard';

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

/** A fresh, migrated database of its own for one test file; dropped afterwards. Never touches others. */
export async function createTestDatabase(opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `costguard_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: withDatabase(BASE_URL, 'postgres') });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(BASE_URL, name);
  if (opts.migrate !== false) await migrate(url);
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => undefined); // sessions are terminated when the database is dropped
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ connectionString: withDatabase(BASE_URL, 'postgres') });
      await c.connect();
      try {
        // Let clients of this process that are closing (a migration runner's, say) go by themselves
        // first: a session FORCE terminates raises an error on a client that may have no listener.
        for (let i = 0; i < 50; i++) {
          const open = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
          if (open.rows[0]!.n === 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
