/**
 * Rolling summaries (`GET /v1/summary/:scope`, `costguard summary`) against a real PostgreSQL ledger
 * and the Redis real-time view as the ledger activity writes it: exact totals equal to the ledger's
 * own sums for the window, the last hour read from Redis, and bad input refused naming the field.
 * No Temporal: the route reads the ledger and Redis only (the API's Temporal client stays lazy).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/server.js';
import { CostTracker } from '../../src/client/index.js';
import { loadConfig } from '../../src/config/index.js';
import { type PricedEvent, persistBatch } from '../../src/db/ledger.js';
import { normalizeAmount } from '../../src/domain/money.js';
import type { CostSummary } from '../../src/domain/summary.js';
import { assertUsageEvents } from '../../src/domain/usage.js';
import { createLogger } from '../../src/lib/logger.js';
import { projectRoot } from '../../src/lib/paths.js';
import { createMetrics } from '../../src/metrics/index.js';
import { createPricingEngine } from '../../src/pricing/index.js';
import { createRealtimeView } from '../../src/redis/realtime.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

const KEY = 'cg_test_summary_key_0123456789';
const READ_KEY = 'cg_test_summary_read_0123456789';
const INGEST_KEY = 'cg_test_summary_ingest_012345678';
const auth = { 'x-api-key': KEY };
const NOW = Date.now();
const MIN = 60_000;
const HOUR = 60 * MIN;

let db: TestDatabase;
let redis: Redis;
let app: FastifyInstance;
let tracker: CostTracker;
let connection: Connection;
const prefix = `costguard-test:${randomBytes(4).toString('hex')}:`;

/** The usage of the test, by minutes before NOW. */
const DATA = [
  { id: 'a1', userId: 'alice', provider: 'openai', model: 'gpt-4', taskType: 'analysis', team: 'infra', ago: 10 * MIN, usage: { inputTokens: 2000, outputTokens: 500 } },
  { id: 'a2', userId: 'alice', provider: 'openai', model: 'gpt-4', taskType: 'analysis', ago: 40 * MIN, usage: { inputTokens: 1000, outputTokens: 100 } },
  { id: 'a3', userId: 'alice', provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', taskType: 'chat', ago: 3 * HOUR, usage: { inputTokens: 1234, outputTokens: 567 } },
  { id: 'a4', userId: 'alice', provider: 'openai', model: 'gpt-3.5-turbo', taskType: 'chat', ago: 30 * HOUR, usage: { inputTokens: 10_000, outputTokens: 3000 } },
  { id: 'b1', userId: 'bob', provider: 'google', model: 'gemini-pro', taskType: 'summarization', team: 'infra', ago: 5 * MIN, usage: { inputTokens: 777, outputTokens: 333 } },
  { id: 'b2', userId: 'bob', provider: 'acme', model: 'mystery-1', taskType: 'chat', ago: 2 * HOUR, usage: { inputTokens: 10, outputTokens: 10 } },
];

beforeAll(async () => {
  db = await createTestDatabase();
  const config = loadConfig({ DATABASE_URL: db.url, REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent' });
  redis = new Redis(config.redis.url);
  const pricing = createPricingEngine(config);
  const realtime = createRealtimeView(redis, prefix);
  const events = assertUsageEvents(
    DATA.map((d) => ({ requestId: `sum-${d.id}`, userId: d.userId, provider: d.provider, model: d.model, taskType: d.taskType, ...(d.team ? { team: d.team } : {}), usage: d.usage, occurredAt: new Date(NOW - d.ago).toISOString() })),
    { now: NOW, backfill: true },
  );
  const priced: PricedEvent[] = events.map((event) => ({ event, price: pricing.price({ provider: event.provider, model: event.model, occurredAtMs: Date.parse(event.occurredAt), usage: event.usage }) }));
  // As the ledger activity does: commit, then the real-time view from what the commit counted.
  const result = await persistBatch(db.pool, { batchId: 'sum-batch', events: priced, timezone: 'UTC' });
  await realtime.recordBatch('sum-batch', events, result, NOW);

  connection = Connection.lazy({ address: '127.0.0.1:1' }); // never dialled: summaries need no Temporal
  const temporal = new Client({ connection });
  tracker = new CostTracker({ client: temporal, taskQueue: 'unused' });
  app = buildApi({
    pool: db.pool,
    apiKeys: [KEY, `read:${READ_KEY}`, `ingest:${INGEST_KEY}`],
    logger: createLogger('silent'),
    temporal,
    tracker,
    config,
    metrics: createMetrics({ config, pool: db.pool, logger: createLogger('silent') }),
    realtime,
    clock: () => NOW,
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await tracker?.close();
  await connection?.close().catch(() => undefined);
  if (redis) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
  await db?.drop();
});

/** The ledger's own sums for a scope condition over [NOW - hours, NOW]. */
async function ledgerSums(condition: string, params: unknown[], hours: number) {
  const { rows } = await db.pool.query<{ cost: string; calls: number; input: string; output: string }>(
    `SELECT coalesce(sum(cost_usd), 0)::text AS cost, count(*)::int AS calls, coalesce(sum(input_tokens), 0)::text AS input, coalesce(sum(output_tokens), 0)::text AS output
       FROM usage_ledger WHERE occurred_at >= $1 AND occurred_at <= $2 ${condition}`,
    [new Date(NOW - hours * HOUR), new Date(NOW), ...params],
  );
  const r = rows[0]!;
  return { costUsd: normalizeAmount(r.cost), calls: r.calls, inputTokens: Number(r.input), outputTokens: Number(r.output) };
}

async function summary(url: string, headers: Record<string, string> = auth): Promise<{ status: number; body: CostSummary & { error?: string; issues?: { path: string; message: string }[] } }> {
  const res = await app.inject({ method: 'GET', url, headers });
  return { status: res.statusCode, body: res.json() };
}

describe('GET /v1/summary/:scope', () => {
  it("a user's last 24 hours: exact totals and breakdowns equal to the ledger's, most expensive first, and the last hour from Redis", async () => {
    const { status, body } = await summary('/v1/summary/user:alice');
    expect(status).toBe(200);
    expect(body).toMatchObject({ scope: 'user:alice', hours: 24, startTime: new Date(NOW - 24 * HOUR).toISOString(), endTime: new Date(NOW).toISOString() });
    expect(body.totals).toMatchObject(await ledgerSums('AND user_id = $3', ['alice'], 24));
    expect(body.totals.calls).toBe(3); // a4 is 30 hours old
    const gpt4 = await ledgerSums("AND user_id = $3 AND model = 'gpt-4'", ['alice'], 24);
    expect(body.byProviderModel.map((g) => `${g.provider}/${g.model}`)).toEqual(['openai/gpt-4', 'anthropic/claude-3-5-sonnet-20241022']);
    expect(body.byProviderModel[0]).toMatchObject({ ...gpt4, avgCostPerCallUsd: normalizeAmount((Number(gpt4.costUsd) / 2).toString()) });
    expect(body.byTaskType.map((g) => g.taskType)).toEqual(['analysis', 'chat']);
    expect(body.byHour.map((h) => h.hour)).toEqual([...new Set([10 * MIN, 40 * MIN, 3 * HOUR].map((ago) => new Date(Math.floor((NOW - ago) / HOUR) * HOUR).toISOString()))]);
    // The last hour, read from the Redis view: a1 and a2, the calls newest first.
    expect(body.recent).toMatchObject({ source: 'redis', lastHourUsd: (await ledgerSums('AND user_id = $3', ['alice'], 1)).costUsd });
    expect(body.recent!.perMinute).toHaveLength(60);
    expect(body.recent!.calls!.map((c) => c.requestId)).toEqual(['sum-a1', 'sum-a2', 'sum-a3', 'sum-a4']);
  });

  it('the system over 48 hours counts every call, unpriced ones included; a team reads its own rows and has no real-time view', async () => {
    const { body } = await summary('/v1/summary/system?hours=48');
    expect(body.totals).toMatchObject({ ...(await ledgerSums('', [], 48)), calls: 6, unpricedCalls: 1 });
    expect(body.byProvider.map((p) => p.provider)).toEqual(['openai', 'anthropic', 'google', 'acme']);
    expect(body.byProvider.find((p) => p.provider === 'acme')).toMatchObject({ costUsd: '0', calls: 1, unpricedCalls: 1, avgCostPerCallUsd: '0' });
    expect(body.recent!.lastHourUsd).toBe((await ledgerSums('', [], 1)).costUsd);
    const team = await summary('/v1/summary/team:infra');
    expect(team.body.totals).toMatchObject({ ...(await ledgerSums("AND team = 'infra'", [], 24)), calls: 2 });
    expect(team.body.recent).toBeNull();
  });

  it('serves the last hour from Redis: with the view gone, the ledger totals stay and the last hour reads $0', async () => {
    const keys = await redis.keys(`${prefix}cpm:user:bob:*`);
    expect(keys.length).toBeGreaterThan(0);
    await redis.del(...keys);
    const { body } = await summary('/v1/summary/user:bob');
    expect(body.totals.calls).toBe(2);
    expect(body.recent).toMatchObject({ lastHourUsd: '0' });
  });

  it('refuses a bad window or scope naming it; needs a read key', async () => {
    for (const hours of ['0', '169', 'abc', '1.5', '-3']) {
      const { status, body } = await summary(`/v1/summary/system?hours=${hours}`);
      expect(status, hours).toBe(400);
      expect(body.issues).toEqual([{ path: 'hours', message: expect.stringContaining('expected a whole number of hours from 1 to 168') }]);
    }
    expect((await summary('/v1/summary/nobody')).status).toBe(400);
    expect((await summary('/v1/summary/system', {})).status).toBe(401);
    expect((await summary('/v1/summary/system', { 'x-api-key': INGEST_KEY })).status).toBe(403);
    expect((await summary('/v1/summary/system?hours=1', { 'x-api-key': READ_KEY })).status).toBe(200);
  });

  it('is in the OpenAPI document, generated from its zod schemas', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: auth })).json() as {
      paths: Record<string, Record<string, { operationId: string; parameters: { name: string; in: string }[] }>>;
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    };
    const op = doc.paths['/v1/summary/{scope}']!.get!;
    expect(op.operationId).toBe('getCostSummary');
    expect(op.parameters.map((p) => `${p.in}:${p.name}`).sort()).toEqual(['path:scope', 'query:hours']);
    expect(Object.keys(doc.components.schemas.CostSummary!.properties)).toEqual(
      expect.arrayContaining(['totals', 'byProviderModel', 'byProvider', 'byTaskType', 'byHour', 'recent']),
    );
  });
});

const BIN = join(projectRoot(), 'dist/src/cli/main.js');
const run = promisify(execFile);

describe('costguard summary', () => {
  async function costguard(args: string[]) {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build first`);
    const env = { ...process.env, DATABASE_URL: db.url, REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent' };
    try {
      const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  it('prints the same exact summary as JSON, and as tables', async () => {
    const out = await costguard(['summary', '--user', 'alice', '--hours', '48', '--json']);
    expect(out.code).toBe(0);
    const body = JSON.parse(out.stdout) as CostSummary;
    expect(body.totals).toMatchObject({ ...(await ledgerSums('AND user_id = $3', ['alice'], 48)), calls: 4 });
    expect(body.recent?.source).toBe('redis');
    const text = await costguard(['summary', '--scope', 'user:alice']);
    expect(text.stdout).toMatch(/^Cost of user:alice, last 24 h/);
    expect(text.stdout).toMatch(/openai +gpt-4 +2 +3000 +600 +0\.126000 USD/);
  });

  it('exits 2 naming --hours or the scope when they are wrong', async () => {
    const out = await costguard(['summary', '--hours', '0', '--json']);
    expect(out.code).toBe(2);
    expect(JSON.parse(out.stderr)).toMatchObject({ error: 'validation', issues: [{ path: '--hours' }] });
    expect((await costguard(['summary', '--scope', 'everyone'])).code).toBe(2);
  });
});
