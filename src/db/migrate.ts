/**
 * Applies the numbered SQL files in migrations/ with node-pg-migrate, under its PostgreSQL advisory
 * lock (several workers starting at once wait for each other). Applying twice is a no-op.
 */
import { join } from 'node:path';
import { runner } from 'node-pg-migrate';
import type { Logger } from 'pino';
import { projectRoot } from '../lib/paths.js';

export const MIGRATIONS_DIR = join(projectRoot(), 'migrations');

export interface MigrationOutcome {
  applied: string[];
}

export async function migrate(databaseUrl: string, logger?: Logger): Promise<MigrationOutcome> {
  const applied = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'schema_migrations',
    checkOrder: true,
    singleTransaction: true,
    advisoryLockMode: 'wait',
    logger: {
      debug: () => undefined,
      info: (msg: string) => logger?.debug({ migration: msg }, 'migration'),
      warn: (msg: string) => logger?.warn({ migration: msg }, 'migration'),
      error: (msg: string) => logger?.error({ migration: msg }, 'migration'),
    },
  });
  return { applied: applied.map((m) => m.name) };
}
