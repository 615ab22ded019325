/**
 * Ingestion through Temporal: synthetic users send usage through CostTracker to their budget
 * workflows (a worker in a child process, a Temporal dev server, PostgreSQL, Redis), until the
 * ledger, the rollups and every workflow's totals agree. In the same run, the original design's
 * direct path (one INSERT plus one Redis ZADD per event, no Temporal) for comparison.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';
import { CostTracker } from '../src/client/index.js';
import { normalizeAmount } from '../src/domain/money.js';
import { budgetWorkflowId, statusQuery } from '../src/messages.js';
import { fmt, freshDatabase, sleep, until } from './lib.js';
import { startBenchStack } from './stack.js';

export interface IngestScenario {
  users: number;
  ratePerUser: number; // events per second per user
  durationSec: number;
  /** CostTracker linger: longer means bigger batches, fewer signals, more latency. */
  lingerMs: number;
}

export interface IngestResult extends IngestScenario {
  events: number;
  offeredEventsPerSec: number;
  sustainedEventsPerSec: number;
  drainSeconds: number;
  signalsPer1000: number;
  workflowTasksPer1000: number;
  activitiesPer1000: number;
  acceptedP50Ms: number;
  acceptedP99Ms: number;
  reflectedP50Ms: number;
  reflectedP99Ms: number;
  peakSignalsPerSecBusiestWorkflow: number;
  workerPeakRssMiB: number;
  exact: { ledgerEqualsRollups: boolean; systemEqualsLedger: boolean; usersEqualLedger: boolean; ledgerCount: number };
}

export interface DirectResult {
  events: number;
  concurrency: number;
  eventsPerSec: number;
}

const MODELS = [
  ['openai', 'gpt-4o-mini'],
  ['openai', 'gpt-4o'],
  ['anthropic', 'claude-3-5-sonnet-20241022'],
  ['google', 'gemini-2.5-flash'],
] as const;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function peakRssMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export async function runIngestBench(baseUrl: string, redisUrl: string, scenario: IngestScenario): Promise<IngestResult> {
  const label = `ingest ${scenario.users} users x ${scenario.ratePerUser} events/s`;
  process.stderr.write(`${label}: starting Temporal, database and worker\n`);
  const stack = await startBenchStack({ baseUrl, redisUrl, name: 'bench', poolMax: 8 });
  // The worker (costguard start) starts the system budget workflow itself.
  const { client, pool, taskQueue, worker } = stack;
  try {

    const tracker = new CostTracker({ client, taskQueue, lingerMs: scenario.lingerMs, maxBatchSize: 1000, maxPendingEvents: 100_000, maxConcurrentSends: 64 });
    const total = scenario.users * scenario.ratePerUser * scenario.durationSec;
    const accepted = new Float64Array(total);
    const recordedAt = new Float64Array(total);
    let acceptedCount = 0;
    let failed = 0;
    const perUserSeq = new Array<number>(scenario.users).fill(0);
    const sampleUsers = Array.from({ length: Math.min(10, scenario.users) }, (_, i) => Math.floor((i * scenario.users) / Math.min(10, scenario.users)));
    const sampleSet = new Set(sampleUsers);
    const samples = new Map<number, { seq: number; at: number }[]>(sampleUsers.map((u) => [u, []]));
    const reflected: number[] = [];

    // Reflected-in-status latency: poll the sample users' workflows; event n of a user is reflected
    // once that workflow has counted n events.
    let polling = true;
    const poller = (async () => {
      while (polling) {
        await Promise.all(
          sampleUsers.map(async (u) => {
            const pendingSamples = samples.get(u)!;
            if (pendingSamples.length === 0) return;
            try {
              const s = await client.workflow.getHandle(budgetWorkflowId(`user:bench-${u}`)).query(statusQuery);
              const now = performance.now();
              while (pendingSamples.length > 0 && pendingSamples[0]!.seq <= s.counters.eventsCounted) reflected.push(now - pendingSamples.shift()!.at);
            } catch {
              // not started yet
            }
          }),
        );
        // Every 500 ms: each sample is a query through the server to the worker; 100 a second (10
        // users every 100 ms) were 2.5 times as many requests as the usage signals themselves.
        await sleep(500);
      }
    })();

    const t0 = performance.now();
    const promises: Promise<void>[] = [];
    let sent = 0;
    const tickMs = 50;
    const perTick = (scenario.users * scenario.ratePerUser * tickMs) / 1000;
    let carry = 0;
    let nextUser = 0;
    let lastProgress = 0;
    while (sent < total) {
      const elapsed = performance.now() - t0;
      const due = Math.min(total, Math.floor((elapsed / tickMs + 1) * perTick + carry));
      while (sent < due) {
        const i = sent++;
        const user = nextUser;
        nextUser = (nextUser + 1) % scenario.users;
        const [provider, model] = MODELS[i % MODELS.length]!;
        const seq = ++perUserSeq[user]!;
        const at = performance.now();
        recordedAt[i] = at;
        if (sampleSet.has(user)) samples.get(user)!.push({ seq, at });
        promises.push(
          tracker
            .record({ requestId: `b-${i}`, provider, model, userId: `bench-${user}`, taskType: i % 3 ? 'chat' : 'summarise', usage: { inputTokens: 500 + (i % 4000), cacheReadTokens: i % 200, outputTokens: 50 + (i % 700) } })
            .then(
              () => {
                accepted[acceptedCount++] = performance.now() - at;
              },
              () => {
                failed++;
              },
            ),
        );
      }
      carry = 0;
      if (elapsed - lastProgress > 5000) {
        lastProgress = elapsed;
        process.stderr.write(`  ${label}: ${fmt(sent)}/${fmt(total)} recorded, ${fmt(acceptedCount)} accepted\n`);
      }
      await sleep(tickMs);
    }
    await Promise.all(promises);
    await tracker.close();
    const loadEnd = performance.now();
    process.stderr.write(`  ${label}: all ${fmt(total)} recorded (${failed} failed); waiting for the ledger and workflows\n`);

    const ledgerCount = async () => Number((await pool.query('SELECT count(*) AS n FROM usage_ledger')).rows[0].n);
    // Polled through the system's hour rollups (a handful of rows, written in the same statement as
    // the ledger rows), not by counting the ledger, a scan of up to 200,000 rows four times a second
    // on the same 2 cores. The ledger is counted once at the end.
    const rolledUp = async () => Number((await pool.query(`SELECT coalesce(sum(calls), 0) AS n FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'hour'`)).rows[0].n);
    await until('the ledger to hold every event', async () => (await rolledUp()) >= total - failed, 600_000);
    const drainedAt = performance.now();
    // Every workflow has applied its last flush when its count equals its ledger count.
    const perUser = await pool.query<{ user_id: string; cost: string; n: string }>('SELECT user_id, sum(cost_usd)::text AS cost, count(*) AS n FROM usage_ledger GROUP BY user_id');
    let usersEqual = true;
    await until('every user workflow to equal the ledger', async () => {
      let all = true;
      for (let i = 0; i < perUser.rows.length; i += 50) {
        const chunk = perUser.rows.slice(i, i + 50);
        // A query can fail while a workflow task is being retried (timed out under load): not yet.
        const statuses = await Promise.all(chunk.map((r) => client.workflow.getHandle(budgetWorkflowId(`user:${r.user_id}`)).query(statusQuery).catch(() => null)));
        statuses.forEach((s, j) => {
          const r = chunk[j]!;
          if (!s) {
            all = false;
            return;
          }
          if (s.budgets[0]!.spentUsd !== normalizeAmount(r.cost) || s.budgets[0]!.totals.calls !== Number(r.n)) all = false;
        });
      }
      usersEqual = all;
      return all;
    }, 120_000);
    const ledgerSum = normalizeAmount((await pool.query('SELECT sum(cost_usd)::text AS c FROM usage_ledger')).rows[0].c);
    const rollupSum = normalizeAmount((await pool.query(`SELECT sum(cost_usd)::text AS c FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'hour'`)).rows[0].c);
    let systemEqual = false;
    await until('the system workflow to equal the ledger', async () => {
      const s = await client.workflow.getHandle(budgetWorkflowId('system')).query(statusQuery);
      systemEqual = s.budgets.find((b) => b.period === 'day')!.spentUsd === ledgerSum;
      return systemEqual;
    }, 60_000);

    // Workflow tasks, activities and the busiest workflow's peak signal rate, from the histories.
    process.stderr.write(`  ${label}: counting workflow tasks from the histories\n`);
    let workflowTasks = 0;
    let activities = 0;
    let peak = 0;
    const executions: { workflowId: string; runId: string }[] = [];
    for await (const w of client.workflow.list({ query: `TaskQueue = "${taskQueue}"` })) executions.push({ workflowId: w.workflowId, runId: w.runId });
    for (let i = 0; i < executions.length; i += 20) {
      await Promise.all(
        executions.slice(i, i + 20).map(async (e) => {
          const h = await client.workflow.getHandle(e.workflowId, e.runId).fetchHistory();
          const perSecond = new Map<number, number>();
          for (const ev of h.events ?? []) {
            if (ev.workflowTaskCompletedEventAttributes) workflowTasks++;
            if (ev.activityTaskScheduledEventAttributes) activities++;
            if (ev.workflowExecutionSignaledEventAttributes) {
              const sec = Number(ev.eventTime?.seconds ?? 0);
              const n = (perSecond.get(sec) ?? 0) + 1;
              perSecond.set(sec, n);
              if (n > peak) peak = n;
            }
          }
        }),
      );
    }
    const acc = accepted.slice(0, acceptedCount).sort();
    const ref = Float64Array.from(reflected).sort();
    const stats = tracker.stats();
    polling = false;
    await poller;
    const events = total - failed;
    return {
      ...scenario,
      events,
      offeredEventsPerSec: total / ((loadEnd - t0) / 1000),
      sustainedEventsPerSec: events / ((drainedAt - t0) / 1000),
      drainSeconds: (drainedAt - loadEnd) / 1000,
      signalsPer1000: (stats.sentBatches / events) * 1000,
      workflowTasksPer1000: (workflowTasks / events) * 1000,
      activitiesPer1000: (activities / events) * 1000,
      acceptedP50Ms: percentile(acc, 50),
      acceptedP99Ms: percentile(acc, 99),
      reflectedP50Ms: percentile(ref, 50),
      reflectedP99Ms: percentile(ref, 99),
      peakSignalsPerSecBusiestWorkflow: peak,
      workerPeakRssMiB: peakRssMiB(worker.pid!),
      exact: { ledgerEqualsRollups: ledgerSum === rollupSum, systemEqualsLedger: systemEqual, usersEqualLedger: usersEqual, ledgerCount: await ledgerCount() },
    };
  } finally {
    await stack.stop();
  }
}

/** The original design: per event, one INSERT into the ledger and one ZADD, no Temporal. */
export async function runDirectBench(baseUrl: string, redisUrl: string, events: number, concurrency = 16): Promise<DirectResult> {
  const db = await freshDatabase(baseUrl);
  const pool = new pg.Pool({ connectionString: db.url, max: concurrency });
  pool.on('error', () => undefined);
  const redis = new Redis(redisUrl);
  const prefix = `costguard-bench-direct:${randomBytes(4).toString('hex')}:`;
  try {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < events) {
          const i = next++;
          const at = new Date();
          await pool.query(
            `INSERT INTO usage_ledger (request_id, batch_id, occurred_at, provider, model, user_id, task_type, input_tokens,
               cache_read_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, reasoning_tokens, cost_usd, price_source)
             VALUES ($1, 'direct', $2, 'openai', 'gpt-4o-mini', $3, 'chat', 1000, 0, 0, 0, 100, 0, 0.00021, 'catalog')`,
            [`d-${i}`, at, `u${i % 200}`],
          );
          await redis.zadd(`${prefix}calls:user:u${i % 200}`, at.getTime(), `d-${i}`);
        }
      }),
    );
    return { events, concurrency, eventsPerSec: events / ((performance.now() - t0) / 1000) };
  } finally {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await pool.end();
    await db.drop();
  }
}
