/**
 * Ledger insert throughput: priced events persisted by persistBatch (one transaction per batch,
 * rollups in the same statement) into a fresh database, batches of 100 and of 1,000, with a few
 * batches in flight as the worker would have; and the ingest shards' flush statement (INGEST_SQL
 * through persistFlushIsolating: ledger, rollups under the shard's rows, each touched user's exact
 * day/month totals) with flushes of 2,000 events over 200, 2,000 or 20,000 users, one flush in
 * flight per shard: PostgreSQL's part of the ingest tier, measured alone.
 */
import pg from 'pg';
import { persistBatch, persistFlushIsolating, type PricedEvent } from '../src/db/ledger.js';
import { shardOf } from '../src/domain/ingest.js';
import { PricingEngine } from '../src/domain/pricing.js';
import type { UsageEvent } from '../src/domain/usage.js';
import { loadCatalog } from '../src/pricing/genai-catalog.js';
import { freshDatabase, progress, rng } from './lib.js';

export interface LedgerBenchResult {
  batchSize: number;
  /**
   * 'per-user': each batch holds one user's events (as budget workflows flushed them before the
   * ingest tier); 'mixed': 200 users per batch; 'ingest': the ingest shards' flush statement, events
   * of `users` users (round robin), one flush in flight per shard.
   */
  shape: 'per-user' | 'mixed' | 'ingest';
  /** Distinct users across the events. */
  users: number;
  concurrency: number;
  events: number;
  eventsPerSec: number;
  ledgerMatchesRollups: boolean;
}

const MODELS = [
  ['openai', 'gpt-4o-mini'],
  ['openai', 'gpt-4o-2024-08-06'],
  ['anthropic', 'claude-3-5-sonnet-20241022'],
  ['google', 'gemini-2.5-pro'],
] as const;

function makeEvents(count: number, prefix: string, pricing: PricingEngine, usersPerBatch: (i: number) => number): PricedEvent[] {
  const random = rng(7);
  const start = Date.parse('2026-06-01T00:00:00Z');
  return Array.from({ length: count }, (_, i) => {
    const [provider, model] = MODELS[i % MODELS.length]!;
    const occurredAt = new Date(start + Math.floor((i / count) * 3_600_000)).toISOString(); // live traffic: one hour
    const event: UsageEvent = {
      requestId: `${prefix}-${i}`,
      occurredAt,
      provider,
      model,
      userId: `user-${usersPerBatch(i)}`,
      taskType: ['chat', 'summarise', 'embed'][i % 3]!,
      team: null,
      project: null,
      estimated: false,
      tags: {},
      metadata: {},
      usage: {
        inputTokens: 500 + Math.floor(random() * 5000),
        cacheReadTokens: 0,
        cacheWriteTokens: 0,
        cacheWrite1hTokens: 0,
        outputTokens: Math.floor(random() * 800),
        reasoningTokens: 0,
      },
    };
    return { event, price: pricing.price({ provider, model, occurredAtMs: Date.parse(occurredAt), usage: event.usage }) };
  });
}

async function withBenchDatabase<T>(baseUrl: string, fn: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const db = await freshDatabase(baseUrl);
  const pool = new pg.Pool({ connectionString: db.url, max: 8 });
  // Dropping the database at the end terminates its sessions; an idle client's error is expected then.
  pool.on('error', () => undefined);
  try {
    return await fn(pool);
  } finally {
    await pool.end();
    await db.drop();
  }
}

export async function runLedgerBench(
  baseUrl: string,
  batchSize: number,
  events: number,
  shape: LedgerBenchResult['shape'],
  concurrency = 4,
): Promise<LedgerBenchResult> {
  const pricing = new PricingEngine(loadCatalog());
  return withBenchDatabase(baseUrl, async (pool) => {
    const random = rng(11);
    const user = shape === 'per-user' ? (i: number) => Math.floor(i / batchSize) % 200 : () => Math.floor(random() * 200);
    const all = makeEvents(events, `b${batchSize}`, pricing, user);
    const batches: PricedEvent[][] = [];
    for (let i = 0; i < all.length; i += batchSize) batches.push(all.slice(i, i + batchSize));
    let next = 0;
    let done = 0;
    const label = `  ledger, ${shape} batches of ${batchSize}`;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < batches.length) {
          const index = next++;
          await persistBatch(pool, { batchId: `bench-${batchSize}-${index}`, events: batches[index]!, timezone: 'UTC' });
          done += batches[index]!.length;
          if (index % Math.max(1, Math.floor(batches.length / 10)) === 0) progress(label, done, events);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    progress(label, events, events);
    const check = await pool.query<{ ok: boolean }>(`
      SELECT (SELECT sum(cost_usd) FROM usage_ledger) = (SELECT sum(cost_usd) FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'day')
         AND (SELECT count(*) FROM usage_ledger) = ${events} AS ok`);
    return { batchSize, shape, users: 200, concurrency, events, eventsPerSec: events / seconds, ledgerMatchesRollups: check.rows[0]!.ok };
  });
}

/** The ingest shards' flush statement alone: `events` over `users` users in flushes of `flushSize`, `shards` flushes in flight (one per shard). */
export async function runIngestFlushBench(baseUrl: string, users: number, events: number, flushSize = 2000, shards = 4): Promise<LedgerBenchResult> {
  const pricing = new PricingEngine(loadCatalog());
  return withBenchDatabase(baseUrl, async (pool) => {
    const all = makeEvents(events, `i${users}`, pricing, (i) => i % users);
    // As the product routes them: a user's events always to the same shard, each shard's flushes in turn.
    const perShard: PricedEvent[][] = Array.from({ length: shards }, () => []);
    for (const e of all) perShard[shardOf(e.event.userId, shards)]!.push(e);
    let done = 0;
    const label = `  ledger, ingest flushes of ${flushSize} over ${users} users`;
    const t0 = performance.now();
    await Promise.all(
      perShard.map(async (mine, shard) => {
        for (let i = 0; i < mine.length; i += flushSize) {
          const flush = mine.slice(i, i + flushSize);
          await persistFlushIsolating(pool, { batchId: `ingest/${shard}/run/${i / flushSize}`, events: flush, timezone: 'UTC', ingestShard: shard });
          done += flush.length;
          if (shard === 0 && (i / flushSize) % 10 === 0) progress(label, done, events);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    progress(label, events, events);
    const check = await pool.query<{ ok: boolean }>(`
      SELECT (SELECT sum(cost_usd) FROM usage_ledger) = (SELECT sum(cost_usd) FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'day')
         AND (SELECT count(*) FROM usage_ledger) = ${events} AS ok`);
    return { batchSize: flushSize, shape: 'ingest', users, concurrency: shards, events, eventsPerSec: events / seconds, ledgerMatchesRollups: check.rows[0]!.ok };
  });
}
