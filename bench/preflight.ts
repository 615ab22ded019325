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
}

export const PREFLIGHT_TARGET_P99_OVER_GET = 3;

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
- Overspend in the race test (test/integration/preflight.test.ts: 4 processes x 250 concurrent checks on a $1 hard budget, 20 trials): exactly zero; the test fails on any spend above $1.000000.
`;
}
