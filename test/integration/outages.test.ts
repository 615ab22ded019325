/**
 * Outages under load, on the real stack, with nothing lost and every total exact afterwards:
 * PostgreSQL unreachable for 30 s, Redis unreachable for 30 s (the ledger and totals unaffected,
 * the real-time view catches up), the Temporal dev server (file persistence) restarted, and the
 * worker killed in the middle of shard flushes. PostgreSQL and Redis are cut with a TCP proxy in
 * front of the machine's servers (never stopped: other work shares them); the worker runs in a
 * child process of its own so it can be killed.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRealtimeView } from '../../src/redis/realtime.js';
import { CostTracker } from '../../src/client/index.js';
import { Dec } from '../../src/domain/money.js';
import { type Proxy, startProxy } from './helpers/proxy.js';
import { rollupMismatches, spawnWorkerProcess } from './helpers/worker-process.js';
import { ingestStatusQuery } from '../../src/messages.js';
import { eventually, type Stack, startStack } from './helpers/stack.js';
import { temporalTarget } from './helpers/cluster.js';
import { type PersistentTemporal, startPersistentTemporal } from './helpers/temporal.js';

const OUTAGE_MS = 30_000;
const RATE = 100; // events per second, over USERS users
const USERS = 20;
let temporal: PersistentTemporal;
let pgProxy: Proxy;
let redisProxy: Proxy;
let stack: Stack;
let configPath: string;
let worker: ChildProcess | undefined;
let client: Client;
let connection: Connection;
const accepted: string[] = [];
const batchOf = new Map<string, string>();

const CONFIG = `ingest: { shards: 2, lingerMs: 100, flushEvents: 500 }
budgets:
  - { scope: user, period: day, amount: "0.5", thresholds: { warning: 0.8, critical: 0.95 } }
`;

const spawnWorker = (): Promise<ChildProcess> => spawnWorkerProcess(stack, { COSTGUARD_CONFIG: configPath });

async function killWorker(): Promise<void> {
  const w = worker;
  worker = undefined;
  if (!w || w.exitCode !== null) return;
  const exited = new Promise((r) => w.once('exit', r));
  w.kill('SIGKILL');
  await exited;
}

// On the cluster (COSTGUARD_TEST_TEMPORAL=cluster) the stack has a namespace of its own there, and
// the Temporal restart is not run: the cluster is shared, not this file's to restart.
const onCluster = temporalTarget() === 'cluster';

beforeAll(async () => {
  if (!onCluster) temporal = await startPersistentTemporal(join(mkdtempSync(join(tmpdir(), 'cg-outage-')), 'temporal.db'));
  pgProxy = await startProxy('127.0.0.1', 5432);
  redisProxy = await startProxy('127.0.0.1', 6379);
  stack = await startStack({ noWorker: true, ...(onCluster ? {} : { temporalAddress: temporal.address }), configYaml: CONFIG, rewriteDatabaseUrl: pgProxy.rewrite, rewriteRedisUrl: redisProxy.rewrite });
  configPath = join(mkdtempSync(join(tmpdir(), 'cg-outage-cfg-')), 'costguard.yaml');
  writeFileSync(configPath, CONFIG);
  worker = await spawnWorker();
  if (onCluster) {
    client = stack.client;
  } else {
    connection = await Connection.connect({ address: temporal.address });
    client = new Client({ connection });
  }
}, 180_000);

afterAll(async () => {
  await killWorker();
  await connection?.close();
  await stack?.stop();
  await pgProxy?.close();
  await redisProxy?.close();
  await temporal?.stop();
});

/**
 * Offers RATE events a second for `ms`, through a CostTracker that retries for as long as an
 * outage of Temporal lasts; `during(elapsedMs)` runs the scenario's actions on the way. Returns
 * when every record() has settled; only resolved ones count as accepted.
 */
async function load(ms: number, during: (elapsedMs: number) => Promise<void>, tag: string): Promise<string[]> {
  const tracker = new CostTracker({ client, taskQueue: stack.taskQueue, ingestShards: 2, lingerMs: 50, maxSendAttempts: 60, retryBaseMs: 200, maxRetryDelayMs: 2000 });
  const ids: string[] = [];
  const pending: Promise<void>[] = [];
  const started = Date.now();
  let n = 0;
  let nextAction = 0;
  while (Date.now() - started < ms) {
    const due = Math.floor(((Date.now() - started) / 1000) * RATE);
    for (; n < due; n++) {
      pending.push(
        tracker
          .record({ provider: 'openai', model: 'gpt-4o-mini', userId: `${tag}-${n % USERS}`, usage: { inputTokens: 1000, outputTokens: 100 } })
          .then((r) => {
            ids.push(r.requestId);
            batchOf.set(r.requestId, r.batchId);
          })
          .catch(() => undefined),
      );
    }
    if (Date.now() - started >= nextAction) {
      nextAction += 1000;
      await during(Date.now() - started);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await Promise.all(pending);
  await tracker.close().catch(() => undefined);
  accepted.push(...ids);
  return ids;
}

/** Every accepted event once in the ledger; rollups equal their rows, per user and for the system. */
async function expectExact(ids: string[], tag: string): Promise<void> {
  expect(ids.length).toBeGreaterThan(RATE * 10);
  const started = Date.now();
  try {
    await eventually(
      async () => (await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_ledger WHERE request_id = ANY($1)', [ids])).rows[0]!.n,
      (n) => n === ids.length,
      120_000,
      `every accepted ${tag} event in the ledger`,
    );
  } catch (err) {
    const have = await stack.pool.query<{ request_id: string }>('SELECT request_id FROM usage_ledger WHERE request_id = ANY($1)', [ids]);
    const got = new Set(have.rows.map((r) => r.request_id));
    const missing = ids.filter((id) => !got.has(id));
    const all = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM usage_ledger WHERE user_id LIKE $1`, [`${tag}-%`]);
    const missingBatches = [...new Set(missing.map((id) => batchOf.get(id)))];
    process.stderr.write(`accepted ${ids.length}, in the ledger ${got.size}, rows of ${tag} users ${all.rows[0]!.n}, missing e.g. ${missing.slice(0, 5).join(', ')} in batches ${missingBatches.join(', ')}\n`);
    for (const n of [0, 1]) {
      const handle = client.workflow.getHandle(`ingest/${n}`);
      const d = await handle.describe();
      const hist = JSON.stringify(await handle.fetchHistory());
      const decoded = (hist.match(/"data":"([A-Za-z0-9+/=]+)"/g) ?? []).map((m) => Buffer.from(m.slice(8, -1), 'base64').toString('utf8')).join('\n');
      process.stderr.write(`shard ${n} run ${d.runId} first ${d.raw.workflowExecutionInfo?.firstRunId}: ${missingBatches.map((b) => `${b} ${decoded.includes(String(b)) ? 'IN history' : 'not in history'}`).join('; ')}\n`);
    }
    // What the shards were doing, for the failure report.
    for (const n of [0, 1]) {
      const handle = client.workflow.getHandle(`ingest/${n}`);
      const d = await handle.describe().catch((e: unknown) => String(e));
      const status = await handle.query(ingestStatusQuery).catch((e: unknown) => String(e));
      const events: string[] = [];
      for (const e of (await handle.fetchHistory().catch(() => ({ events: [] }))).events?.slice(-15) ?? []) events.push(JSON.stringify(e).slice(0, 400));
      process.stderr.write(`shard ${n}: ${JSON.stringify(typeof d === 'string' ? d : { status: d.status.name, historyLength: d.historyLength, raw: d.raw.pendingWorkflowTask })}\n${JSON.stringify(status)}\n${events.join('\n')}\n`);
    }
    throw err;
  }
  process.stderr.write(`outages: ${tag}: ${ids.length} accepted events all in the ledger ${Date.now() - started} ms after the load ended\n`);
  const users = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM usage_ledger WHERE user_id LIKE $1`, [`${tag}-%`]);
  expect(users.rows[0]!.n, 'nothing beyond what was accepted').toBe(ids.length);
  expect(await rollupMismatches(stack)).toEqual([]);
}

describe('outages under load', () => {
  it('PostgreSQL unreachable for 30 s: usage waits in the shards, then every accepted event counts once', async () => {
    let state = 'before';
    const ids = await load(OUTAGE_MS + 12_000, async (t) => {
      if (state === 'before' && t >= 5_000) {
        state = 'down';
        await pgProxy.down();
        process.stderr.write(`outages: PostgreSQL cut at ${t} ms\n`);
      } else if (state === 'down' && t >= 5_000 + OUTAGE_MS) {
        state = 'up';
        await pgProxy.up();
        process.stderr.write(`outages: PostgreSQL back at ${t} ms\n`);
      }
    }, 'pg');
    expect(state).toBe('up');
    await pgProxy.up().catch(() => undefined);
    await expectExact(ids, 'pg');
  }, 300_000);

  it('Redis unreachable for 30 s: the ledger and totals are unaffected and the real-time view catches up', async () => {
    const from = Date.now();
    let state = 'before';
    const ids = await load(OUTAGE_MS + 12_000, async (t) => {
      if (state === 'before' && t >= 5_000) {
        state = 'down';
        await redisProxy.down();
      } else if (state === 'down' && t >= 5_000 + OUTAGE_MS) {
        state = 'up';
        await redisProxy.up();
      }
    }, 'redis');
    expect(state).toBe('up');
    await redisProxy.up().catch(() => undefined);
    await expectExact(ids, 'redis');
    // The view (read directly from Redis) holds exactly the ledger's cost of the window, minute by minute.
    const direct = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    try {
      const view = createRealtimeView(direct, stack.config.redis.keyPrefix);
      const to = Date.now();
      const ledger = await stack.pool.query<{ cost: string }>(`SELECT coalesce(sum(cost_usd), 0)::text AS cost FROM usage_ledger WHERE user_id LIKE 'redis-%'`);
      await eventually(
        async () => {
          let sum = new Dec(0);
          for (let u = 0; u < USERS; u++) for (const m of await view.costPerMinute(`user:redis-${u}`, from, to)) sum = sum.plus(m.costUsd);
          return sum.toFixed();
        },
        (sum) => new Dec(sum).equals(ledger.rows[0]!.cost),
        30_000,
        'the real-time view caught up',
      );
    } finally {
      direct.disconnect();
    }
  }, 300_000);

  it.skipIf(onCluster)('the Temporal dev server restarted (file persistence): nothing accepted is lost', async () => {
    let restarted = false;
    const ids = await load(25_000, async (t) => {
      if (!restarted && t >= 5_000) {
        restarted = true;
        await temporal.restart();
      }
    }, 'tmp');
    await expectExact(ids, 'tmp');
  }, 300_000);

  it('the worker killed in the middle of shard flushes, twice: every accepted event counts once', async () => {
    let kills = 0;
    const ids = await load(25_000, async (t) => {
      if ((kills === 0 && t >= 4_000) || (kills === 1 && t >= 12_000)) {
        kills++;
        await killWorker();
        await new Promise((r) => setTimeout(r, 1500));
        worker = await spawnWorker();
      }
    }, 'kill');
    expect(kills).toBe(2);
    await expectExact(ids, 'kill');
  }, 300_000);
});
