/**
 * Retention (`retention:` in the config file, `costguard prune`) against PostgreSQL: off by default
 * (nothing deleted), and when set, exactly the ledger rows, batch results and delivery log rows
 * older than their cutoff go, in chunks; rollups stay. The built CLI runs it.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { type PricedEvent, persistBatch } from '../../src/db/ledger.js';
import { countPrunable, pruneOlderThan } from '../../src/db/retention.js';
import { retentionCutoffs } from '../../src/domain/retention.js';
import { assertUsageEvents } from '../../src/domain/usage.js';
import { projectRoot } from '../../src/lib/paths.js';
import { createPricingEngine } from '../../src/pricing/index.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

const DAY = 86_400_000;
const NOW = Date.now();
let db: TestDatabase;

/** Ledger rows `days` days old, `n` of them, in one batch. */
async function usageAged(days: number, n: number, tag: string): Promise<void> {
  const pricing = createPricingEngine(loadConfig({}));
  const events = assertUsageEvents(
    Array.from({ length: n }, (_, i) => ({ requestId: `ret-${tag}-${i}`, userId: 'carol', provider: 'openai', model: 'gpt-4', usage: { inputTokens: 100, outputTokens: 10 }, occurredAt: new Date(NOW - days * DAY - i * 1000).toISOString() })),
    { now: NOW, backfill: true },
  );
  const priced: PricedEvent[] = events.map((event) => ({ event, price: pricing.price({ provider: event.provider, model: event.model, occurredAtMs: Date.parse(event.occurredAt), usage: event.usage }) }));
  await persistBatch(db.pool, { batchId: `ret-batch-${tag}`, events: priced, timezone: 'UTC' });
  await db.pool.query('UPDATE usage_batches SET created_at = $2 WHERE batch_id = $1', [`ret-batch-${tag}`, new Date(NOW - days * DAY)]);
}

async function deliveryAged(days: number, id: string): Promise<void> {
  const at = new Date(NOW - days * DAY);
  await db.pool.query(
    `INSERT INTO notification_deliveries (source_id, notification_id, channel, channel_type, level, kind, status, attempts, first_attempt_at, last_attempt_at, sent_at)
     VALUES ($1, 'n1', 'ops', 'email', 'warning', 'alert', 'sent', 1, $2, $2, $2)`,
    [id, at],
  );
}

const count = async (sql: string) => (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`)).rows[0]!.n;
const rollupCost = async () => (await db.pool.query<{ c: string }>("SELECT coalesce(sum(cost_usd), 0)::text AS c FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'day'")).rows[0]!.c;

beforeAll(async () => {
  db = await createTestDatabase();
  await usageAged(100, 12, 'old'); // past a 90-day retention
  await usageAged(80, 3, 'mid');   // kept by 90 days
  await usageAged(1, 2, 'new');
  await deliveryAged(40, 'report/daily/old');
  await deliveryAged(2, 'report/daily/new');
});
afterAll(async () => {
  await db?.drop();
});

describe('retention', () => {
  it('is off by default: no cutoff, nothing to prune', async () => {
    const config = loadConfig({});
    expect(config.retention).toEqual({ ledgerDays: null, deliveryDays: null });
    expect(retentionCutoffs(config.retention, NOW)).toEqual({ ledgerBefore: null, deliveriesBefore: null });
    expect(await pruneOlderThan(db.pool, retentionCutoffs(config.retention, NOW))).toEqual({});
    expect(await count('usage_ledger')).toBe(17);
  });

  it('refuses a retention shorter than what the running system still reads, naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cg-ret-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'retention: { ledgerDays: 30, deliveryDays: 1 }\n');
    expect(() => loadConfig({ COSTGUARD_CONFIG: file })).toThrow(ConfigError);
    expect(() => loadConfig({ COSTGUARD_CONFIG: file })).toThrow(/retention\.ledgerDays.*at least 62 days[\s\S]*retention\.deliveryDays.*at least 7 days/);
  });

  it('deletes exactly the rows older than each cutoff, in chunks, and keeps the rollups', async () => {
    const cutoffs = retentionCutoffs({ ledgerDays: 90, deliveryDays: 30 }, NOW);
    const before = await rollupCost();
    expect(await countPrunable(db.pool, cutoffs)).toEqual({ usage_ledger: 12, usage_batches: 1, notification_deliveries: 1 });
    expect(await pruneOlderThan(db.pool, cutoffs, 5)).toEqual({ usage_ledger: 12, usage_batches: 1, notification_deliveries: 1 });
    expect(await count("usage_ledger WHERE request_id LIKE 'ret-old-%'")).toBe(0);
    expect(await count('usage_ledger')).toBe(5);
    expect(await count("usage_batches WHERE batch_id LIKE 'ret-batch-%'")).toBe(2);
    expect(await count("notification_deliveries WHERE source_id = 'report/daily/new'")).toBe(1);
    expect(await count('notification_deliveries')).toBe(1);
    expect(await rollupCost()).toBe(before);
    // Again: nothing left to prune.
    expect(await pruneOlderThan(db.pool, cutoffs)).toEqual({ usage_ledger: 0, usage_batches: 0, notification_deliveries: 0 });
  });
});

describe('costguard prune', () => {
  const BIN = join(projectRoot(), 'dist/src/cli/main.js');
  const run = promisify(execFile);
  async function costguard(args: string[], configYaml?: string) {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build first`);
    const env: Record<string, string | undefined> = { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'silent', COSTGUARD_CONFIG: undefined };
    if (configYaml) {
      const file = join(mkdtempSync(join(tmpdir(), 'cg-prune-')), 'c.yaml');
      writeFileSync(file, configYaml);
      env.COSTGUARD_CONFIG = file;
    }
    try {
      const { stdout } = await run(process.execPath, [BIN, ...args], { env });
      return { code: 0, stdout };
    } catch (err) {
      const e = err as { code: number; stdout: string };
      return { code: e.code, stdout: e.stdout };
    }
  }

  it('says retention is off without configuration; with it, --dry-run counts and a run deletes', async () => {
    expect((await costguard(['prune'])).stdout).toMatch(/^retention is off/);
    await usageAged(70, 4, 'cli');
    const yaml = 'retention: { ledgerDays: 62 }\n';
    const dry = JSON.parse((await costguard(['prune', '--dry-run', '--json'], yaml)).stdout);
    expect(dry).toMatchObject({ dryRun: true, deliveriesBefore: null, rows: { usage_ledger: 7, usage_batches: 2 } });
    expect(await count('usage_ledger')).toBe(9);
    const done = await costguard(['prune'], yaml);
    expect(done.code).toBe(0);
    expect(done.stdout).toContain('usage_ledger: deleted 7 row(s) older than');
    expect(await count('usage_ledger')).toBe(2);
  });
});
