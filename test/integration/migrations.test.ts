/**
 * Every migration's down part, against PostgreSQL: from the full schema, each step down succeeds and
 * leaves exactly the schema the migrations before it build, down to nothing of Cost Guard's; going
 * up again rebuilds the same schema. The up parts are never edited (they shipped); this checks the
 * down parts that undo them.
 */
import { readdirSync } from 'node:fs';
import { runner } from 'node-pg-migrate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, migrate } from '../../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});
afterAll(async () => {
  await db?.drop();
});

const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
/** node-pg-migrate with the options `migrate()` uses, in either direction. */
const step = (direction: 'up' | 'down', count: number) =>
  runner({ databaseUrl: db.url, dir: MIGRATIONS_DIR, direction, count, migrationsTable: 'schema_migrations', checkOrder: true, singleTransaction: true, logger: quiet });

/** Everything of ours in the public schema: relations with their columns, indexes, constraints, functions. */
async function schema(): Promise<string[]> {
  const { rows } = await db.pool.query<{ item: string }>(`
    SELECT 'rel ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum), '') AS item
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE n.nspname = 'public' AND c.relname NOT LIKE 'schema_migrations%'
     GROUP BY c.relname, c.relkind
    UNION ALL
    SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'schema_migrations'
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
    ORDER BY 1`);
  return rows.map((r) => r.item);
}

describe('migrations', () => {
  const files = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql')).sort();

  it('each down part undoes its up part exactly, down to an empty schema, and up rebuilds it', async () => {
    // The schema after each prefix of the migrations, built going up one at a time.
    const after: string[][] = [await schema()];
    expect(after[0]).toEqual([]);
    for (let i = 0; i < files.length; i++) {
      await step('up', 1);
      after.push(await schema());
      expect(after[i + 1], files[i]).not.toEqual(after[i]);
    }
    // Down one at a time: each step lands on the schema before that migration.
    for (let i = files.length; i > 0; i--) {
      const undone = await step('down', 1);
      expect(undone.map((m) => m.name), files[i - 1]).toEqual([files[i - 1]!.replace(/\.sql$/, '')]);
      expect(await schema(), `after undoing ${files[i - 1]}`).toEqual(after[i - 1]);
    }
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
    expect(rows[0]!.n).toBe(0);
    // And up again, as start-up runs it: the same full schema.
    const applied = await migrate(db.url);
    expect(applied.applied).toHaveLength(files.length);
    expect(await schema()).toEqual(after[files.length]);
  });
});
