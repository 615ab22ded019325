/**
 * Ingestion through the ingest tier (the path as it ships): synthetic users record usage through a
 * CostTracker with its defaults (target `ingest`: compact cross-user batches signalled to the shards
 * `ingest/<n>`), a worker in a child process (`costguard start --no-api`, compiled) flushes them
 * (price, ledger + exact rollups, Redis) and tells a user's budget workflow of its spend only on
 * material change. In the same run, the original design's direct path (one INSERT plus one Redis
 * ZADD per event, no Temporal) at the same user counts, for comparison.
 *
 * Each scenario runs on a stack of its own (a fresh Temporal dev server, database and worker):
 *   1. saturation: `users x ratePerUser` events/s offered for `durationSec`; sustained events/s is
 *      every accepted event over (first record() -> the last one in the ledger). Signals, workflow
 *      tasks, history bytes and each process's CPU are taken over this phase alone.
 *   2. half saturation: half the sustained rate for `halfDurationSec`; "exact status" latency is from
 *      record() resolving to the event being counted in `readBudgetStatus(...).live` (what
 *      GET /v1/budgets/:scope answers), sampling at most 5 users every 500 ms.
 *   3. checks: ledger = rollups (system and every user), live status = ledger (a sample of users),
 *      and each budget workflow's spend against the ledger (the lag, compared with the step).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
// @temporalio/proto is CommonJS: its namespace comes through the default import under native ESM.
import proto from '@temporalio/proto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { readBudgetStatus } from '../src/client/budgets.js';
import { CostTracker, type BatchEvent, parseTrackedEvents, toBatchEvent } from '../src/client/cost-tracker.js';
import type { Scope } from '../src/domain/budget.js';
import { type WireEvent, encodeBatch, shardOf } from '../src/domain/ingest.js';
import { normalizeAmount } from '../src/domain/money.js';
import type { UsageEventInput } from '../src/domain/usage.js';
import { budgetWorkflowId, ingestStatusQuery, ingestWorkflowId, statusQuery } from '../src/messages.js';
import type { BudgetStatus } from '../src/domain/budget-status.js';
import { type CpuUse, cpuDelta, fmt, freshDatabase, peakRssMiB, percentile, readCpu, sleep, sorted, until } from './lib.js';
import { type BenchStack, startBenchStack } from './stack.js';

export interface IngestScenario {
  users: number;
  /** Events per second per user in the saturation phase. */
  ratePerUser: number;
  durationSec: number;
  /** Length of the half-saturation phase (exact status latency). */
  halfDurationSec: number;
  /** `ingest.stepFraction` for the worker (a config file of its own); default: the shipped default. */
  stepFraction?: number;
}

export interface LoadPhase {
  offeredEventsPerSec: number;
  events: number;
  failed: number;
  /** Events / (first record() -> the last event in the ledger). */
  sustainedEventsPerSec: number;
  /** From the last record() resolving to the last event in the ledger. */
  drainSeconds: number;
  /** record() called -> resolved (Temporal accepted the batch holding the event), in ms. */
  acceptedP50Ms: number;
  acceptedP99Ms: number;
}

export interface HistoryStats {
  runs: Record<WorkflowKind, number>;
  workflowTasks: Record<WorkflowKind, number>;
  /** WorkflowTaskFailed + WorkflowTaskTimedOut (a worker too slow or failing), all kinds. */
  failedOrTimedOutTasks: number;
  /** Local activity markers (ingest flushes and the budget workflows' reads), all kinds. */
  localActivities: number;
  signals: { ingest: number; totals: number; other: number };
  bytes: Record<WorkflowKind, number>;
}

export type WorkflowKind = 'ingest' | 'userBudget' | 'aggregateBudget' | 'alert' | 'other';

export interface IngestResult extends IngestScenario {
  /** The step of a user scope: `ingest.stepFraction` of its smallest budget, in USD. */
  stepUsd: number;
  stepFraction: number;
  shards: number;
  /** Mean cost of a benchmark event (ledger sum / count). */
  meanEventCostUsd: number;
  saturation: LoadPhase;
  signals: {
    ingest: number;
    totals: number;
    /** The shards' own count of totals signals (ingestStatus counters.signalsSent): a cross-check of `totals`. */
    totalsFromShardCounters: number;
    /** Flushes of the saturation phase (ingestStatus counters.flushes) and events per flush. */
    flushes: number;
    eventsPerFlush: number;
    per1000: number;
    ingestPer1000: number;
    totalsPer1000: number;
    eventsPerIngestSignal: number;
  };
  history: HistoryStats;
  workflowTasks: { per1000: number; ingestPer1000: number; budgetPer1000: number; otherPer1000: number };
  temporalCpuUsPerEvent: number;
  historyBytesPerEvent: number;
  /** CPU of each process over the saturation phase (first record() -> every flush done). */
  cpu: CpuUse;
  cpuUsPerEvent: { worker: number; temporal: number; postgres: number; redis: number; bench: number; other: number; total: number };
  workerPeakRssMiB: number;
  /** JSON bytes per event of one 500-event signal to a shard: the object form vs the compact form. */
  signalBytes: { batchEvents: number; users: number; objectBytesPerEvent: number; compactBytesPerEvent: number };
  half: LoadPhase & {
    exactStatusP50Ms: number;
    exactStatusP99Ms: number;
    exactStatusSamples: number;
    /** Record() resolved -> the start of the read that saw the event: the read's own duration (mostly the workflow query) left out. */
    exactStatusToReadStartP50Ms: number;
    exactStatusToReadStartP99Ms: number;
    /** How long one readBudgetStatus() took (live totals from the rollups, then the budget workflow's status query). */
    statusReadP50Ms: number;
    statusReadP99Ms: number;
    /** Events whose visibility was never seen (the sampler gave up): counted against the target. */
    exactStatusUnseen: number;
    statusReads: number;
    watchedUsers: number;
    /** live spend - the budget workflow's spend, at the sampled reads, max (USD; a flush between its commit and its signal included). */
    lagDuringLoadMaxUsd: number;
    /** Status reads that failed (read again at the next tick), and the first error. */
    statusReadErrors: number;
    statusReadError: string;
    /** The longest a failed read took before it failed. */
    failedReadMaxMs: number;
  };
  /** After the load: status reads and queries refused while a budget workflow was starting (retried), and the longest wait. */
  refusedAfterLoad: { count: number; maxWaitMs: number; example: string };
  /** Each user budget workflow's day spend behind the ledger once every flush completed (USD). */
  lag: { usersWithWorkflow: number; maxUsd: number; p99Usd: number; withinStep: number; ahead: number };
  exact: {
    ledgerCount: number;
    ledgerEqualsSystemRollups: boolean;
    usersChecked: number;
    usersMismatched: number;
    liveChecked: number;
    liveMismatched: number;
    systemWorkflowEqualsLedger: boolean;
    ok: boolean;
  };
}

export interface DirectResult {
  users: number;
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

const STATUS_EVERY_MS = 500;
const STATUS_USERS_PER_READ = 5;
const LIVE_SAMPLE_USERS = 20;

/** Event `i` of a phase, for user `user`: each user goes through the four models in turn, token counts vary. */
function benchEvent(tag: string, i: number, user: number, users: number): UsageEventInput & { requestId: string } {
  const round = Math.floor(i / users);
  const [provider, model] = MODELS[(round + user) % MODELS.length]!;
  const h = Math.imul(i + 1, 2654435761) >>> 0;
  return {
    requestId: `${tag}-${i}`,
    provider,
    model,
    userId: `bench-${user}`,
    taskType: i % 3 ? 'chat' : 'summarise',
    usage: { inputTokens: 500 + (h % 4000), cacheReadTokens: (h >>> 12) % 200, outputTokens: 50 + ((h >>> 4) % 700) },
  };
}

/**
 * Offers `rate` events/s round-robin over `users` users for `durationSec` (not waiting for record()
 * to resolve: a saturated stack shows as backpressure and latency), then waits for every record().
 */
async function drive(opts: {
  tracker: CostTracker;
  users: number;
  rate: number;
  durationSec: number;
  tag: string;
  label: string;
  perUserSeq: number[];
  onAccepted?: (user: number, seq: number, atMs: number) => void;
}): Promise<{ total: number; failed: number; t0: number; loadEnd: number; lastAccepted: number; accepted: Float64Array }> {
  const total = Math.max(1, Math.round(opts.rate * opts.durationSec));
  const accepted = new Float64Array(total);
  let acceptedCount = 0;
  let failed = 0;
  let firstError: unknown;
  let lastAccepted = 0;
  const promises: Promise<void>[] = [];
  const t0 = performance.now();
  let sent = 0;
  let lastProgress = t0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * opts.rate) + 1);
    while (sent < due) {
      const i = sent++;
      const user = i % opts.users;
      const seq = ++opts.perUserSeq[user]!;
      const at = performance.now();
      promises.push(
        opts.tracker.record(benchEvent(opts.tag, i, user, opts.users)).then(
          () => {
            const now = performance.now();
            accepted[acceptedCount++] = now - at;
            lastAccepted = now;
            opts.onAccepted?.(user, seq, now);
          },
          (err: unknown) => {
            failed++;
            firstError ??= err;
          },
        ),
      );
    }
    if (performance.now() - lastProgress > 5000) {
      lastProgress = performance.now();
      process.stderr.write(`  ${opts.label}: ${fmt(sent)}/${fmt(total)} recorded, ${fmt(acceptedCount)} accepted, ${fmt(opts.tracker.stats().pending)} pending in the tracker\n`);
    }
    await sleep(20);
  }
  const loadEnd = performance.now();
  await Promise.all(promises);
  if (failed > 0) process.stderr.write(`  ${opts.label}: ${fmt(failed)} record() calls failed, the first: ${String(firstError)}\n`);
  return { total, failed, t0, loadEnd, lastAccepted, accepted: sorted(accepted.subarray(0, acceptedCount)) };
}

/** Calls in the system's hour rollups: every ledger row adds one, in the same statement (a few rows to read, not a count of the ledger). */
async function rolledUp(pool: pg.Pool): Promise<number> {
  return Number((await pool.query(`SELECT coalesce(sum(calls), 0) AS n FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'hour'`)).rows[0].n);
}

/** Sums of the shards' counters (ingestStatus query), or null while one cannot answer. */
async function shardCounters(client: Client, shards: number): Promise<{ counted: number; pending: number; signalsSent: number; flushes: number } | null> {
  try {
    const all = await Promise.all(Array.from({ length: shards }, (_, n) => client.workflow.getHandle(ingestWorkflowId(n)).query(ingestStatusQuery)));
    return all.reduce(
      (a, s) => ({ counted: a.counted + s.counters.counted, pending: a.pending + s.pendingEvents, signalsSent: a.signalsSent + s.counters.signalsSent, flushes: a.flushes + s.counters.flushes }),
      { counted: 0, pending: 0, signalsSent: 0, flushes: 0 },
    );
  } catch {
    return null;
  }
}

function kindOf(workflowId: string): WorkflowKind {
  if (workflowId.startsWith('ingest/')) return 'ingest';
  if (workflowId.startsWith('budget/user:')) return 'userBudget';
  if (workflowId.startsWith('budget/')) return 'aggregateBudget';
  if (workflowId.startsWith('alert/')) return 'alert';
  return 'other';
}

const zeroKinds = (): Record<WorkflowKind, number> => ({ ingest: 0, userBudget: 0, aggregateBudget: 0, alert: 0, other: 0 });

/** Every run on the server (continued-as-new runs included), its history fetched: tasks, signals, bytes. */
export async function historyStats(client: Client): Promise<HistoryStats> {
  const runs: { workflowId: string; runId: string }[] = [];
  for await (const w of client.workflow.list()) runs.push({ workflowId: w.workflowId, runId: w.runId });
  const stats: HistoryStats = { runs: zeroKinds(), workflowTasks: zeroKinds(), failedOrTimedOutTasks: 0, localActivities: 0, signals: { ingest: 0, totals: 0, other: 0 }, bytes: zeroKinds() };
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < runs.length) {
        const run = runs[next++]!;
        const kind = kindOf(run.workflowId);
        const h = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
        stats.runs[kind]++;
        stats.bytes[kind] += proto.temporal.api.history.v1.History.encode(h).finish().byteLength;
        for (const ev of h.events ?? []) {
          if (ev.workflowTaskCompletedEventAttributes) stats.workflowTasks[kind]++;
          else if (ev.workflowTaskFailedEventAttributes || ev.workflowTaskTimedOutEventAttributes) stats.failedOrTimedOutTasks++;
          else if (ev.markerRecordedEventAttributes) stats.localActivities++;
          else if (ev.workflowExecutionSignaledEventAttributes) {
            const name = ev.workflowExecutionSignaledEventAttributes.signalName;
            if (name === 'ingest') stats.signals.ingest++;
            else if (name === 'totals') stats.signals.totals++;
            else stats.signals.other++;
          }
        }
      }
    }),
  );
  return stats;
}

const daySpent = (s: Pick<BudgetStatus, 'budgets'>) => s.budgets.find((b) => b.period === 'day');

/**
 * `fn` again until it answers (up to `timeoutMs`): a budget workflow started by the last flushes may
 * still be running its first task (its status query, and readBudgetStatus with it, refuse until then).
 */
async function retrying<T>(fn: () => Promise<T>, refusals: { count: number; maxWaitMs: number; example: string }, timeoutMs = 120_000): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    try {
      const v = await fn();
      if (performance.now() - t0 > refusals.maxWaitMs) refusals.maxWaitMs = performance.now() - t0;
      return v;
    } catch (err) {
      refusals.count++;
      refusals.example ||= String((err as Error)?.message ?? err).slice(0, 200);
      if (performance.now() - t0 > timeoutMs) throw err;
      await sleep(250);
    }
  }
}

/** JSON bytes per event of one shard's 500-event signal: the object form `{batchId, events}` vs the compact form. */
export function signalBytes(users: number, shards: number, batchEvents = 500): IngestResult['signalBytes'] {
  const events: BatchEvent[] = [];
  const seen = new Set<number>();
  for (let i = 0; events.length < batchEvents; i++) {
    const user = i % users;
    if (shardOf(`bench-${user}`, shards) !== 0) continue;
    const parsed = parseTrackedEvents([benchEvent('b', i, user, users)], { now: Date.now(), generateId: randomUUID, indexed: false });
    if (!parsed.ok) throw new Error(`bench event refused: ${JSON.stringify(parsed.issues)}`);
    events.push(toBatchEvent(parsed.value[0]!));
    seen.add(user);
  }
  const batchId = `${randomUUID()}:1`;
  return {
    batchEvents,
    users: seen.size,
    objectBytesPerEvent: Buffer.byteLength(JSON.stringify({ batchId, events })) / batchEvents,
    compactBytesPerEvent: Buffer.byteLength(JSON.stringify(encodeBatch(batchId, events as WireEvent[]))) / batchEvents,
  };
}

/** Polls the system's rollups until they count `target` events; returns when (performance.now()). */
async function untilInLedger(pool: pg.Pool, target: number, what: string): Promise<number> {
  await until(what, async () => (await rolledUp(pool)) >= target, 900_000, 200);
  return performance.now();
}

export async function runIngestBench(baseUrl: string, redisUrl: string, scenario: IngestScenario): Promise<IngestResult> {
  const label = `ingest ${fmt(scenario.users)} users x ${scenario.ratePerUser}/s${scenario.stepFraction !== undefined ? `, step ${scenario.stepFraction * 100}%` : ''}`;
  process.stderr.write(`${label}: starting Temporal, database and worker\n`);
  let configDir: string | undefined;
  const workerEnv: Record<string, string> = {};
  if (scenario.stepFraction !== undefined) {
    configDir = mkdtempSync(join(tmpdir(), 'costguard-bench-ingest-'));
    writeFileSync(join(configDir, 'costguard.yaml'), `ingest:\n  stepFraction: ${scenario.stepFraction}\n`);
    workerEnv.COSTGUARD_CONFIG = join(configDir, 'costguard.yaml');
  }
  const stack: BenchStack = await startBenchStack({ baseUrl, redisUrl, name: 'bench', poolMax: 8, workerEnv }).catch((err: unknown) => {
    if (configDir) rmSync(configDir, { recursive: true, force: true });
    throw err;
  });
  const { client, pool, worker, config } = stack;
  const shards = config.ingest.shards;
  // The CostTracker as a service would create it: every default (target ingest, linger 200 ms, 500
  // events a batch, one send in flight per shard, 50,000 events pending at most).
  const tracker = new CostTracker({ client, taskQueue: stack.taskQueue, ingestShards: shards });
  const perUserSeq = new Array<number>(scenario.users).fill(0);
  try {
    // ---- 1. saturation -------------------------------------------------------------------------
    const offered = scenario.users * scenario.ratePerUser;
    const cpuStart = readCpu({ worker: worker.pid, temporal: stack.temporal.pid });
    const sat = await drive({ tracker, users: scenario.users, rate: offered, durationSec: scenario.durationSec, tag: 's', label: `${label}, saturation`, perUserSeq });
    const satEvents = sat.total - sat.failed;
    process.stderr.write(`  ${label}: all ${fmt(sat.total)} recorded; waiting for the ledger\n`);
    const drainedAt = await untilInLedger(pool, satEvents, 'the ledger to hold every event');
    // Every flush done (its totals signals sent): the shards counted every event.
    await until('every flush to complete', async () => ((await shardCounters(client, shards))?.counted ?? 0) >= satEvents, 120_000, 200);
    await sleep(1000); // the budget workflows' tasks for the last signals
    const cpuEnd = readCpu({ worker: worker.pid, temporal: stack.temporal.pid });
    const cpu = cpuDelta(cpuStart, cpuEnd);
    const workerRssAfterSaturation = peakRssMiB(worker.pid);
    const saturation: LoadPhase = {
      offeredEventsPerSec: sat.total / ((sat.loadEnd - sat.t0) / 1000),
      events: satEvents,
      failed: sat.failed,
      sustainedEventsPerSec: satEvents / ((drainedAt - sat.t0) / 1000),
      drainSeconds: (drainedAt - sat.lastAccepted) / 1000,
      acceptedP50Ms: percentile(sat.accepted, 50),
      acceptedP99Ms: percentile(sat.accepted, 99),
    };
    process.stderr.write(`  ${label}: sustained ${fmt(saturation.sustainedEventsPerSec)} events/s; counting tasks and signals from the histories\n`);
    const shardTotals = await shardCounters(client, shards);
    const history = await historyStats(client);
    const tasks = history.workflowTasks;
    const allTasks = Object.values(tasks).reduce((a, b) => a + b, 0);
    const allBytes = Object.values(history.bytes).reduce((a, b) => a + b, 0);
    const per1000 = (n: number) => (n / satEvents) * 1000;
    const us = (sec: number) => (sec * 1e6) / satEvents;

    // ---- 2. half saturation: exact status latency --------------------------------------------
    const halfRate = Math.max(10, Math.min(saturation.offeredEventsPerSec, saturation.sustainedEventsPerSec) / 2);
    const perUserRate = halfRate / scenario.users;
    // Enough users watched for about 10 events a second among them (at most 5 read per 500 ms).
    const watchCount = Math.min(scenario.users, Math.max(STATUS_USERS_PER_READ, Math.ceil(10 / perUserRate)));
    const watched = new Map<number, { seq: number; at: number }[]>();
    for (let k = 0; k < watchCount; k++) watched.set(Math.floor((k * scenario.users) / watchCount), []);
    const statusLatencies: number[] = [];
    /** The same events, to the start of the read that saw them (the read's own duration left out). */
    const atReadLatencies: number[] = [];
    const readDurations: number[] = [];
    const failedReadDurations: number[] = [];
    let statusReads = 0;
    let statusReadErrors = 0;
    let statusReadError = '';
    let lagDuringLoadMaxUsd = 0;
    let sampling = true;
    // At most 5 reads started every 500 ms (the users with the oldest waiting event first), at most
    // one at a time per user; a slow read (a budget workflow starting) holds up only its own user.
    const reading = new Set<number>();
    const readOne = async (user: number, queue: { seq: number; at: number }[]) => {
      reading.add(user);
      const start = performance.now();
      try {
        const s = await readBudgetStatus(client, pool, config, `user:bench-${user}` as Scope);
        statusReads++;
        const now = performance.now();
        readDurations.push(now - start);
        const live = daySpent(s.live);
        const calls = live?.totals.calls ?? 0;
        while (queue.length > 0 && queue[0]!.seq <= calls) {
          const at = queue.shift()!.at;
          statusLatencies.push(Math.max(0, now - at));
          atReadLatencies.push(Math.max(0, start - at));
        }
        const wf = s.workflow === 'running' ? daySpent(s) : undefined;
        if (live && wf) lagDuringLoadMaxUsd = Math.max(lagDuringLoadMaxUsd, Number(live.spentUsd) - Number(wf.spentUsd));
      } catch (err) {
        // e.g. the user's budget workflow is starting: read again at the next tick
        failedReadDurations.push(performance.now() - start);
        statusReadErrors++;
        statusReadError ||= String((err as Error)?.message ?? err).slice(0, 200);
      } finally {
        reading.delete(user);
      }
    };
    const inFlightReads = new Set<Promise<void>>();
    const sampler = (async () => {
      while (sampling) {
        const tick = performance.now();
        const due = [...watched.entries()]
          .filter(([u, q]) => q.length > 0 && !reading.has(u))
          .sort((a, b) => a[1][0]!.at - b[1][0]!.at)
          .slice(0, STATUS_USERS_PER_READ);
        for (const [user, queue] of due) {
          const p = readOne(user, queue);
          inFlightReads.add(p);
          void p.finally(() => inFlightReads.delete(p));
        }
        await sleep(Math.max(0, STATUS_EVERY_MS - (performance.now() - tick)));
      }
      await Promise.all([...inFlightReads]);
    })();
    process.stderr.write(`  ${label}: half saturation, ${fmt(halfRate)} events/s for ${scenario.halfDurationSec} s, exact status of ${watchCount} watched users\n`);
    const before = await rolledUp(pool);
    const half = await drive({
      tracker,
      users: scenario.users,
      rate: halfRate,
      durationSec: scenario.halfDurationSec,
      tag: 'h',
      label: `${label}, half saturation`,
      perUserSeq,
      onAccepted: (user, seq, at) => watched.get(user)?.push({ seq, at }),
    });
    const halfEvents = half.total - half.failed;
    const halfDrained = await untilInLedger(pool, before + halfEvents, 'the ledger to hold the half-saturation events');
    // The last samples: give the sampler up to 30 s to see every watched event.
    const sampleDeadline = performance.now() + 30_000;
    while ([...watched.values()].some((q) => q.length > 0) && performance.now() < sampleDeadline) await sleep(100);
    sampling = false;
    await sampler;
    const unseen = [...watched.values()].reduce((a, q) => a + q.length, 0);
    const statusSorted = sorted(statusLatencies);

    // ---- 3. checks -----------------------------------------------------------------------------
    const allEvents = satEvents + halfEvents;
    await until('every flush to complete', async () => ((await shardCounters(client, shards))?.counted ?? 0) >= allEvents, 120_000, 200);
    await sleep(1000);
    process.stderr.write(`  ${label}: checking ledger = rollups = live status, and each budget workflow against the ledger\n`);
    const ledger = (await pool.query<{ n: string; c: string }>('SELECT count(*) AS n, coalesce(sum(cost_usd), 0)::text AS c FROM usage_ledger')).rows[0]!;
    const system = (await pool.query<{ c: string }>(`SELECT coalesce(sum(cost_usd), 0)::text AS c FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'hour'`)).rows[0]!;
    const users = (
      await pool.query<{ users: string; mismatched: string }>(`
        WITH l AS (SELECT 'user:' || user_id AS scope, count(*) AS n, sum(cost_usd) AS c FROM usage_ledger GROUP BY 1),
             r AS (SELECT scope, sum(calls) AS n, sum(cost_usd) AS c FROM usage_rollup_totals WHERE scope LIKE 'user:%' AND period_kind = 'day' GROUP BY 1)
        SELECT count(*) AS users, count(*) FILTER (WHERE l.n IS DISTINCT FROM r.n OR l.c IS DISTINCT FROM r.c) AS mismatched
        FROM l FULL JOIN r USING (scope)`)
    ).rows[0]!;
    const perUser = new Map(
      (await pool.query<{ user_id: string; c: string; n: string }>('SELECT user_id, sum(cost_usd)::text AS c, count(*) AS n FROM usage_ledger GROUP BY user_id')).rows.map((r) => [r.user_id, { cost: normalizeAmount(r.c), calls: Number(r.n) }]),
    );
    const refusedAfterLoad = { count: 0, maxWaitMs: 0, example: '' };
    let liveMismatched = 0;
    let smallestUserBudgetUsd = Number.POSITIVE_INFINITY;
    const liveUsers = Array.from({ length: Math.min(LIVE_SAMPLE_USERS, scenario.users) }, (_, k) => Math.floor((k * scenario.users) / Math.min(LIVE_SAMPLE_USERS, scenario.users)));
    for (const u of liveUsers) {
      const s = await retrying(() => readBudgetStatus(client, pool, config, `user:bench-${u}` as Scope), refusedAfterLoad);
      for (const b of s.live.budgets) smallestUserBudgetUsd = Math.min(smallestUserBudgetUsd, Number(b.amountUsd));
      const live = daySpent(s.live);
      const l = perUser.get(`bench-${u}`);
      if (!live || !l || live.spentUsd !== l.cost || live.totals.calls !== l.calls) liveMismatched++;
    }
    // Budget workflows against the ledger (queries are answered after the signals already accepted).
    const ids: string[] = [];
    for await (const w of client.workflow.list({ query: `WorkflowType = 'budgetWorkflow' AND ExecutionStatus = 'Running'` })) if (w.workflowId.startsWith('budget/user:')) ids.push(w.workflowId);
    const lags: number[] = [];
    let ahead = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < ids.length) {
          const id = ids[next++]!;
          const s = await retrying(() => client.workflow.getHandle(id).query(statusQuery), refusedAfterLoad);
          const wf = daySpent(s);
          const l = perUser.get(id.slice('budget/user:'.length));
          if (!wf || !l) continue;
          const lag = Number(l.cost) - Number(wf.spentUsd);
          if (lag < 0) ahead++;
          lags.push(lag);
        }
      }),
    );
    const lagSorted = sorted(lags);
    const stepUsd = smallestUserBudgetUsd * config.ingest.stepFraction;
    let systemEqual = false;
    await until(
      'the system budget workflow to equal the ledger',
      async () => {
        const s = await client.workflow.getHandle(budgetWorkflowId('system')).query(statusQuery).catch(() => null);
        systemEqual = s !== null && daySpent(s)?.spentUsd === normalizeAmount(ledger.c);
        return systemEqual;
      },
      30_000,
      500,
    ).catch(() => undefined);
    const exact = {
      ledgerCount: Number(ledger.n),
      ledgerEqualsSystemRollups: normalizeAmount(ledger.c) === normalizeAmount(system.c) && Number(ledger.n) === (await rolledUp(pool)),
      usersChecked: Number(users.users),
      usersMismatched: Number(users.mismatched),
      liveChecked: liveUsers.length,
      liveMismatched,
      systemWorkflowEqualsLedger: systemEqual,
      ok: false,
    };
    exact.ok = exact.ledgerCount === allEvents && exact.ledgerEqualsSystemRollups && exact.usersMismatched === 0 && exact.liveMismatched === 0 && exact.systemWorkflowEqualsLedger;

    return {
      ...scenario,
      stepUsd,
      stepFraction: config.ingest.stepFraction,
      shards,
      meanEventCostUsd: Number(ledger.c) / Number(ledger.n),
      saturation,
      signals: {
        ingest: history.signals.ingest,
        totals: history.signals.totals,
        totalsFromShardCounters: shardTotals?.signalsSent ?? Number.NaN,
        flushes: shardTotals?.flushes ?? Number.NaN,
        eventsPerFlush: satEvents / (shardTotals?.flushes ?? Number.NaN),
        per1000: per1000(history.signals.ingest + history.signals.totals),
        ingestPer1000: per1000(history.signals.ingest),
        totalsPer1000: per1000(history.signals.totals),
        eventsPerIngestSignal: satEvents / history.signals.ingest,
      },
      history,
      workflowTasks: {
        per1000: per1000(allTasks),
        ingestPer1000: per1000(tasks.ingest),
        budgetPer1000: per1000(tasks.userBudget + tasks.aggregateBudget),
        otherPer1000: per1000(tasks.alert + tasks.other),
      },
      temporalCpuUsPerEvent: us(cpu.temporal),
      historyBytesPerEvent: allBytes / satEvents,
      cpu,
      cpuUsPerEvent: {
        worker: us(cpu.worker),
        temporal: us(cpu.temporal),
        postgres: us(cpu.postgres),
        redis: us(cpu.redis),
        bench: us(cpu.bench),
        other: us(cpu.other),
        total: us(cpu.machineBusy),
      },
      workerPeakRssMiB: Math.max(workerRssAfterSaturation, peakRssMiB(worker.pid)),
      signalBytes: signalBytes(scenario.users, shards),
      half: {
        offeredEventsPerSec: half.total / ((half.loadEnd - half.t0) / 1000),
        events: halfEvents,
        failed: half.failed,
        sustainedEventsPerSec: halfEvents / ((halfDrained - half.t0) / 1000),
        drainSeconds: (halfDrained - half.lastAccepted) / 1000,
        acceptedP50Ms: percentile(half.accepted, 50),
        acceptedP99Ms: percentile(half.accepted, 99),
        exactStatusP50Ms: percentile(statusSorted, 50),
        exactStatusP99Ms: percentile(statusSorted, 99),
        exactStatusSamples: statusSorted.length,
        exactStatusToReadStartP50Ms: percentile(sorted(atReadLatencies), 50),
        exactStatusToReadStartP99Ms: percentile(sorted(atReadLatencies), 99),
        statusReadP50Ms: percentile(sorted(readDurations), 50),
        statusReadP99Ms: percentile(sorted(readDurations), 99),
        exactStatusUnseen: unseen,
        statusReads,
        watchedUsers: watchCount,
        lagDuringLoadMaxUsd,
        statusReadErrors,
        statusReadError,
        failedReadMaxMs: failedReadDurations.length > 0 ? Math.max(...failedReadDurations) : 0,
      },
      refusedAfterLoad,
      lag: {
        usersWithWorkflow: ids.length,
        maxUsd: lagSorted.length > 0 ? lagSorted[lagSorted.length - 1]! : 0,
        p99Usd: lagSorted.length > 0 ? percentile(lagSorted, 99) : 0,
        withinStep: lags.filter((l) => l < stepUsd).length,
        ahead,
      },
      exact,
    };
  } finally {
    await Promise.race([tracker.close().catch(() => undefined), sleep(30_000)]);
    await stack.stop();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  }
}

/** The original design: per event, one INSERT into the ledger and one ZADD, no Temporal. */
export async function runDirectBench(baseUrl: string, redisUrl: string, events: number, users: number, concurrency = 16): Promise<DirectResult> {
  const db = await freshDatabase(baseUrl);
  const pool = new pg.Pool({ connectionString: db.url, max: concurrency });
  pool.on('error', () => undefined);
  const redis = new Redis(redisUrl);
  const prefix = `costguard-bench-direct:${randomBytes(4).toString('hex')}:`;
  process.stderr.write(`direct path (INSERT + ZADD per event), ${fmt(users)} users: ${fmt(events)} events\n`);
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
            [`d-${i}`, at, `u${i % users}`],
          );
          await redis.zadd(`${prefix}calls:user:u${i % users}`, at.getTime(), `d-${i}`);
        }
      }),
    );
    return { users, events, concurrency, eventsPerSec: events / ((performance.now() - t0) / 1000) };
  } finally {
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = nextCursor;
    } while (cursor !== '0');
    redis.disconnect();
    await pool.end();
    await db.drop();
  }
}
