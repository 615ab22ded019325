/**
 * Pre-flight checks: latency of CostTracker.authorize() at a steady 2,000 checks/s, each over three
 * scopes (a user, a team and the system, each with a hard budget large enough to admit them all),
 * beside a plain Redis GET round trip measured in the same run on the same connection. Each admitted
 * check's hold is released right after (not timed). The worker (leases) runs as `costguard start
 * --no-api` in a child process; the checks run here.
 */
import { Redis } from 'ioredis';
import { setScopeBudgets } from '../src/client/budgets.js';
import { Authorizer } from '../src/client/preflight.js';
import { CostTracker } from '../src/client/index.js';
import { buildApi } from '../src/api/server.js';
import { createLogger } from '../src/lib/logger.js';
import { createMetrics } from '../src/metrics/index.js';
import { createPricingEngine } from '../src/pricing/index.js';
import { fmt, percentile, sleep, sorted } from './lib.js';
import { startBenchStack } from './stack.js';

export interface PreflightBenchOptions {
  ratePerSec: number;
  durationSec: number;
  users: number;
  teams: number;
}

export interface PreflightBenchResult {
  ratePerSec: number;
  durationSec: number;
  checks: number;
  achievedPerSec: number;
  decisions: Record<string, number>;
  /** ms */
  authorize: { p50: number; p99: number; p999: number; max: number };
  redisGet: { samples: number; p50: number; p99: number; p999: number };
  p99OverGet: number;
  /** Lease requests to the budget workflows during the timed part. */
  leaseRequests: number;
  /** Over HTTP: POST /v1/authorize beside an authenticated no-op route of the same server, interleaved in the same run (ms). */
  http: { ratePerSec: number; requests: number; authorize: { p50: number; p99: number; p999: number }; noop: { p50: number; p99: number; p999: number }; p99OverNoop: number };
}

export const PREFLIGHT_TARGET_P99_OVER_GET = 3;
export const PREFLIGHT_TARGET_HTTP_P99_OVER_NOOP = 2;

/**
 * POST /v1/authorize over HTTP (the API as `costguard start` builds it, on a real socket, keep-alive)
 * against GET /v1/bench-noop, a route that only authenticates and answers, on the same server and
 * client, one of each per slot, alternating which goes first.
 */
async function runHttpPhase(stack: Awaited<ReturnType<typeof startBenchStack>>, redis: Redis, request: (i: number) => object, ratePerSec: number, durationSec: number, progress: (m: string) => void): Promise<PreflightBenchResult['http']> {
  const key = 'cg_bench_preflight_key_0123456789';
  const logger = createLogger('silent');
  const config = { ...stack.config, api: { ...stack.config.api, rateLimit: { ...stack.config.api.rateLimit, admin: 100_000_000 } } };
  const tracker = new CostTracker({ client: stack.client, taskQueue: stack.taskQueue, preflight: { redis, pricing: createPricingEngine(config), keyPrefix: stack.redisPrefix, ...config.preflight } });
  const app = buildApi({ pool: stack.pool, apiKeys: [key], logger, temporal: stack.client, tracker, config, metrics: createMetrics({ config, logger }) });
  app.get('/v1/bench-noop', { config: { scope: 'ingest' } }, async () => ({ ok: true }));
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const headers = { 'x-api-key': key, 'content-type': 'application/json' };
  const auth = async (i: number) => {
    const res = await fetch(`${base}/v1/authorize`, { method: 'POST', headers, body: JSON.stringify(request(i)) });
    const d = (await res.json()) as { holdId: string | null };
    return d.holdId;
  };
  const noop = async () => {
    const res = await fetch(`${base}/v1/bench-noop`, { headers: { 'x-api-key': key } });
    await res.json();
  };
  try {
    for (let i = 0; i < 200; i++) {
      const id = await auth(i);
      if (id) await tracker.releaseHold(id);
      await noop();
    }
    const a: number[] = [];
    const n: number[] = [];
    const toRelease: string[] = [];
    const total = ratePerSec * durationSec;
    const start = performance.now();
    const inFlight = new Set<Promise<void>>();
    let sent = 0;
    let lastReport = start;
    progress(`pre-flight over HTTP: ${fmt(ratePerSec)} checks/s and as many no-op requests for ${durationSec} s`);
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 5 + 1) * ((ratePerSec * 5) / 1000)));
      for (; sent < due; sent++) {
        const i = sent;
        const timedAuth = async () => {
          const t0 = performance.now();
          const id = await auth(i);
          a.push(performance.now() - t0);
          if (id) toRelease.push(id);
        };
        const timedNoop = async () => {
          const t0 = performance.now();
          await noop();
          n.push(performance.now() - t0);
        };
        const p = i % 2 === 0 ? Promise.all([timedAuth(), timedNoop()]).then(() => undefined) : Promise.all([timedNoop(), timedAuth()]).then(() => undefined);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      if (toRelease.length > 0) void Promise.all(toRelease.splice(0).map((id) => tracker.releaseHold(id).catch(() => undefined)));
      if (performance.now() - lastReport > 5000) {
        lastReport = performance.now();
        progress(`pre-flight over HTTP: ${fmt(sent)} / ${fmt(total)}`);
      }
      await sleep(5);
    }
    await Promise.all(inFlight);
    const sa = sorted(a);
    const sn = sorted(n);
    const pct = (xs: Float64Array) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99), p999: percentile(xs, 99.9) });
    return { ratePerSec, requests: a.length, authorize: pct(sa), noop: pct(sn), p99OverNoop: percentile(sa, 99) / percentile(sn, 99) };
  } finally {
    await app.close();
    await tracker.close();
  }
}

export async function runPreflightBench(baseUrl: string, redisUrl: string, opts: PreflightBenchOptions, progress: (m: string) => void = () => undefined): Promise<PreflightBenchResult> {
  const stack = await startBenchStack({ baseUrl, redisUrl, name: 'bench-preflight', poolMax: 4 });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  try {
    const budgets = (amount: string) => ({ budgets: [{ period: 'day', amount, thresholds: { warning: 0.8, critical: 0.95 }, enforcement: 'hard' }] });
    const scopes = ['system', ...Array.from({ length: opts.users }, (_, i) => `user:u${i}`), ...Array.from({ length: opts.teams }, (_, i) => `team:t${i}`)];
    for (const scope of scopes) {
      await setScopeBudgets(stack.client, { scope, taskQueue: stack.taskQueue, change: budgets(scope === 'system' ? '1000000' : '100000'), defaultTimezone: 'UTC', pool: stack.pool, config: stack.config });
    }
    let leaseRequests = 0;
    const authorizer = new Authorizer({
      redis,
      keyPrefix: stack.redisPrefix,
      temporal: stack.client,
      taskQueue: stack.taskQueue,
      pricing: createPricingEngine(stack.config),
      holdTtlMs: 60_000,
      maxHoldTtlMs: 600_000,
      refillTimeoutMs: 10_000,
      unknownPriceUsd: '0.10',
    });
    const original = authorizer['refill'].bind(authorizer);
    authorizer['refill'] = (scope: string, need: number) => {
      leaseRequests++;
      return original(scope, need);
    };
    const request = (i: number) => ({ userId: `u${i % opts.users}`, teamId: `t${i % opts.teams}`, provider: 'openai', model: 'gpt-4o-mini', inputTokens: 1200, maxOutputTokens: 400 });
    // Warm-up: every scope gets its first lease (workflow updates), and the scripts are loaded.
    progress('pre-flight: warm-up (first leases)');
    for (let i = 0; i < Math.max(opts.users, opts.teams) * 2; i++) {
      const d = await authorizer.authorize(request(i));
      if (d.holdId) await authorizer.release(d.holdId);
    }
    await redis.set(`${stack.redisPrefix}bench-get`, 'x');
    leaseRequests = 0;

    const latencies: number[] = [];
    const gets: number[] = [];
    const decisions: Record<string, number> = {};
    const inFlight = new Set<Promise<void>>();
    // Holds are released in one script call per tick (the release is not what is measured).
    let toRelease: string[] = [];
    const releaseAll = async () => {
      const ids = toRelease;
      toRelease = [];
      if (ids.length > 0) await authorizer.store.finish(ids.map((holdId) => ({ holdId, action: 'r' as const, actualMicro: 0 })));
    };
    const tickMs = 5;
    const perTick = (opts.ratePerSec * tickMs) / 1000;
    const total = opts.ratePerSec * opts.durationSec;
    const start = performance.now();
    let sent = 0;
    let lastReport = start;
    progress(`pre-flight: ${fmt(opts.ratePerSec)} checks/s for ${opts.durationSec} s`);
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - start) / tickMs + 1) * perTick));
      for (; sent < due; sent++) {
        const i = sent;
        const p = (async () => {
          const t0 = performance.now();
          const d = await authorizer.authorize(request(i));
          latencies.push(performance.now() - t0);
          decisions[d.decision] = (decisions[d.decision] ?? 0) + 1;
          if (d.holdId) toRelease.push(d.holdId);
        })();
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        // One GET for every 4 checks, on the same connection, interleaved with them.
        if (i % 4 === 0) {
          const g = (async () => {
            const t0 = performance.now();
            await redis.get(`${stack.redisPrefix}bench-get`);
            gets.push(performance.now() - t0);
          })();
          inFlight.add(g);
          void g.finally(() => inFlight.delete(g));
        }
      }
      if (performance.now() - lastReport > 5000) {
        lastReport = performance.now();
        progress(`pre-flight: ${fmt(sent)} / ${fmt(total)} checks`);
      }
      void releaseAll();
      await sleep(tickMs);
    }
    await Promise.all(inFlight);
    await releaseAll();
    const elapsed = (performance.now() - start) / 1000;
    const http = await runHttpPhase(stack, redis, request, Math.min(opts.ratePerSec, 250), opts.durationSec, progress);
    const a = sorted(latencies);
    const g = sorted(gets);
    const result: PreflightBenchResult = {
      ratePerSec: opts.ratePerSec,
      durationSec: opts.durationSec,
      checks: latencies.length,
      achievedPerSec: latencies.length / elapsed,
      decisions,
      authorize: { p50: percentile(a, 50), p99: percentile(a, 99), p999: percentile(a, 99.9), max: a[a.length - 1] ?? 0 },
      redisGet: { samples: gets.length, p50: percentile(g, 50), p99: percentile(g, 99), p999: percentile(g, 99.9) },
      p99OverGet: percentile(a, 99) / percentile(g, 99),
      leaseRequests,
      http,
    };
    return result;
  } finally {
    redis.disconnect();
    await stack.stop();
  }
}

export function preflightMarkdown(r: PreflightBenchResult, command: string): string {
  const ms = (x: number) => x.toFixed(3);
  const met = r.p99OverGet < PREFLIGHT_TARGET_P99_OVER_GET;
  return `## Pre-flight checks

\`${command}\` (bench/preflight.ts): \`CostTracker.authorize()\` at a steady ${fmt(r.ratePerSec)} checks/s for ${r.durationSec} s,
each over three scopes (one of 100 users, one of 10 teams, the system; hard budgets large enough to admit every check),
its hold released right after (in one script call per 5 ms tick, not timed); a plain Redis \`GET\` on the same connection every fourth check, in the same run.
The worker granting the leases runs as \`costguard start --no-api\` beside it.

| | p50 (ms) | p99 (ms) | p99.9 (ms) |
|---|---:|---:|---:|
| authorize (one Lua script over 3 scopes) | ${ms(r.authorize.p50)} | ${ms(r.authorize.p99)} | ${ms(r.authorize.p999)} |
| Redis GET | ${ms(r.redisGet.p50)} | ${ms(r.redisGet.p99)} | ${ms(r.redisGet.p999)} |

- Checks: ${fmt(r.checks)} at ${fmt(Math.round(r.achievedPerSec))}/s achieved; decisions ${Object.entries(r.decisions).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}; lease requests to budget workflows during the timed part: ${fmt(r.leaseRequests)}.
- **p99 over the Redis GET p99: ${r.p99OverGet.toFixed(2)}x** (target under ${PREFLIGHT_TARGET_P99_OVER_GET}x): **${met ? 'met' : 'missed'}**.

Over HTTP, in the same run: \`POST /v1/authorize\` (the API as \`costguard start\` builds it, on a real socket, keep-alive \`fetch\`) beside
\`GET /v1/bench-noop\`, a route added by the bench to the same server that only authenticates the key and answers, one of each per slot at
${fmt(r.http.ratePerSec)}/s each for ${r.durationSec} s (${fmt(r.http.requests)} of each), alternating which goes first.

| | p50 (ms) | p99 (ms) | p99.9 (ms) |
|---|---:|---:|---:|
| POST /v1/authorize | ${ms(r.http.authorize.p50)} | ${ms(r.http.authorize.p99)} | ${ms(r.http.authorize.p999)} |
| authenticated no-op route | ${ms(r.http.noop.p50)} | ${ms(r.http.noop.p99)} | ${ms(r.http.noop.p999)} |

- **HTTP p99 over the no-op route's p99: ${r.http.p99OverNoop.toFixed(2)}x** (target under ${PREFLIGHT_TARGET_HTTP_P99_OVER_NOOP}x): **${r.http.p99OverNoop < PREFLIGHT_TARGET_HTTP_P99_OVER_NOOP ? 'met' : 'missed'}**.
- Percentiles are nearest-rank over every sample, p in percent (bench/lib.ts \`percentile\`, unit-tested in test/unit/bench-percentile.test.ts).
- Overspend: test/integration/preflight.test.ts (4 processes x 250 concurrent checks on a $1 hard budget, 20 trials) and the adversarial model test (test/integration/hard-budget-model.test.ts) fail on any spend beyond the invariant of docs/architecture.md.
`;
}
