/**
 * The pricing + ledger activity: validates a batch of raw usage events, prices each one and
 * persists them in one transaction. One activity call per flush, never per event.
 */
import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';

const HEARTBEAT_EVERY_MS = 1000;

/**
 * True inside a regular Temporal activity: a local activity has no heartbeats (its workflow task is
 * kept alive by the worker) and a direct call (a benchmark) has no context.
 */
function heartbeats(): boolean {
  try {
    return !Context.current().info.isLocal;
  } catch {
    return false;
  }
}
import type { Pool } from 'pg';
import { ConflictError } from '../src/domain/errors.js';
import type { PricingEngine } from '../src/domain/pricing.js';
import { type FlushSummary, type FlushTarget, summarizeFlush } from '../src/domain/flush-summary.js';
import type { BatchResult, CountedEvent, CountedUsage, FlushResult, RejectedEvent } from '../src/domain/ledger.js';
import { type UsageEvent, parseUsageEvent } from '../src/domain/usage.js';
import { type DeadLetterInput, recordDeadLetters } from '../src/db/dead-letters.js';
import { type PersistBatchInput, type PricedEvent, type UserDayTotal, persistBatchOnce, persistFlushIsolating } from '../src/db/ledger.js';
import type { Logger } from '../src/lib/logger.js';
import type { CostGuardMetrics, CountedEventSample, FlushOutcome } from '../src/metrics/index.js';
import type { RealtimeView } from '../src/redis/realtime.js';

/** A batch as services send it: raw events (validated here) under a batch id chosen by the sender. */
export interface UsageBatchInput {
  batchId: string;
  events: unknown[];
}

/** A flush from a budget workflow: the batch and the workflow's current periods to sum it into. */
export interface FlushInput extends UsageBatchInput {
  targets: FlushTarget[];
}

export interface LedgerActivityDeps {
  pool: Pool;
  pricing: PricingEngine;
  /** Calendar time zone of the rollups. */
  timezone: string;
  clock: () => number;
  logger: Logger;
  /** The Redis real-time view, updated after the commit (idempotently) when given. */
  realtime?: RealtimeView;
  /** Prometheus: fed only by the attempt that stored the batch, so nothing counts twice. */
  metrics?: CostGuardMetrics;
}

/** Error types the workflow must not retry: the same input would fail the same way. */
export const NON_RETRYABLE_LEDGER_ERRORS = ['ValidationError', 'ConflictError'];

export function priceEvents(pricing: PricingEngine, events: readonly UsageEvent[]): PricedEvent[] {
  return events.map((event) => ({ event, price: priceOne(pricing, event) }));
}

function priceOne(pricing: PricingEngine, event: UsageEvent) {
  return pricing.price({ provider: event.provider, model: event.model, occurredAtMs: Date.parse(event.occurredAt), usage: event.usage });
}

/** Prices each event on its own: one whose pricing throws (a bug, a catalog it trips) is set aside with the error. */
function priceIsolating(pricing: PricingEngine, events: readonly UsageEvent[]): { priced: PricedEvent[]; failed: { event: UsageEvent; error: string }[] } {
  const priced: PricedEvent[] = [];
  const failed: { event: UsageEvent; error: string }[] = [];
  for (const event of events) {
    try {
      priced.push({ event, price: priceOne(pricing, event) });
    } catch (err) {
      failed.push({ event, error: `pricing failed: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  return { priced, failed };
}

/**
 * How a batch is persisted: `fresh` are the events this call inserted itself, `first` is true when
 * no earlier attempt had stored any of the batch (the call that owns the batch's metrics sample).
 */
export type Persist = (
  pool: Pool,
  input: PersistBatchInput,
) => Promise<{ result: BatchResult; fresh: CountedEvent[]; first: boolean; poisoned: { event: PricedEvent; error: string }[]; userDays?: UserDayTotal[] }>;

/** A batch with a stored result (`recordUsageBatch`): a retry replays the stored result. */
const asBatch: Persist = async (pool, input) => {
  const { result, firstTime } = await persistBatchOnce(pool, input);
  return { result, fresh: firstTime ? result.events : [], first: firstTime, poisoned: [] };
};

/**
 * A budget workflow's flush (`flushUsage`): a retry may extend the batch (see persistFlush), and an
 * event the database refuses is isolated instead of failing the flush (persistFlushIsolating).
 */
const asFlush: Persist = async (pool, input) => {
  const { result, inserted, poisoned } = await persistFlushIsolating(pool, input);
  return { result, fresh: inserted, first: inserted.length === result.events.length, poisoned };
};

/** An ingest shard's flush: as a budget workflow's, with the rollup rows of the shard and the touched users' day totals. */
export const asIngestFlush =
  (shard: number): Persist =>
  async (pool, input) => {
    const { result, inserted, poisoned, userDays } = await persistFlushIsolating(pool, { ...input, ingestShard: shard });
    return { result, fresh: inserted, first: inserted.length === result.events.length, poisoned, userDays };
  };

/** Real-time view writes that failed (Redis down), retried before the next flush's own: the view catches up. */
const REALTIME_BACKLOG_MAX = 500;
const REALTIME_TIMEOUT_MS = 2000;

export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  p.catch(() => undefined);
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function userIdOf(raw: unknown): string | null {
  const id = (raw as { userId?: unknown } | null)?.userId;
  return typeof id === 'string' ? id.slice(0, 200) : null;
}

/**
 * The flush machinery shared by the budget workflows' flush activities and the ingest shards':
 * validate, price and persist a batch (isolating events tied to their own failure), feed the
 * metrics once, then update the Redis real-time view.
 */
export function createFlushRecorder(deps: LedgerActivityDeps) {
  const realtimeBacklog: { batchId: string; valid: UsageEvent[]; result: BatchResult }[] = [];

  /**
   * The Redis real-time view, best effort: Redis being down must not hold up the ledger, the
   * totals or the alerts. A failed write is kept (up to REALTIME_BACKLOG_MAX flushes, in this
   * process) and retried before the next flush's; its commands are idempotent, so the view
   * catches up exactly once Redis is back.
   */
  async function updateRealtime(batchId: string, valid: UsageEvent[], result: BatchResult): Promise<void> {
    const view = deps.realtime;
    if (!view) return;
    realtimeBacklog.push({ batchId, valid, result });
    while (realtimeBacklog.length > 0) {
      const next = realtimeBacklog[0]!;
      try {
        // Bounded: a Redis that hangs (rather than refuses) must not hold the flush up either.
        await withTimeout(view.recordBatch(next.batchId, next.valid, next.result, deps.clock()), REALTIME_TIMEOUT_MS, 'Redis real-time update timed out');
        realtimeBacklog.shift();
      } catch (err) {
        deps.metrics?.recordRealtimeError();
        if (realtimeBacklog.length > REALTIME_BACKLOG_MAX) {
          const dropped = realtimeBacklog.splice(0, realtimeBacklog.length - REALTIME_BACKLOG_MAX);
          deps.logger.error({ dropped: dropped.length }, 'Redis real-time backlog full: the oldest writes are dropped (the ledger and the totals are unaffected)');
        }
        deps.logger.warn({ err: (err as Error)?.message, backlog: realtimeBacklog.length }, 'Redis real-time view not updated; retried with the next flush');
        return;
      }
    }
  }

  /** The flush itself; `firstTime` is true only for the attempt that stored the batch first. */
  async function recordBatch(batch: UsageBatchInput, persist: Persist): Promise<{ result: FlushResult; firstTime: boolean; userDays: UserDayTotal[] }> {
    if (typeof batch?.batchId !== 'string' || batch.batchId.length === 0 || !Array.isArray(batch.events)) {
      throw ApplicationFailure.nonRetryable('batch must have a non-empty batchId and an events array', 'ValidationError');
    }
    // Each event is validated here (the workflow only checks a batch's shape): an invalid one is
    // refused and reported, the others are persisted. Deterministic, so a retry refuses the same.
    const now = deps.clock();
    const valid: UsageEvent[] = [];
    const rejected: RejectedEvent[] = [];
    batch.events.forEach((raw, index) => {
      // Entry points checked the age window when they accepted the event; a flush delayed by an outage
      // must not refuse it for having aged since, so the window is not applied again here.
      const r = parseUsageEvent(raw, { now, path: `[${index}]`, backfill: true });
      if (r.ok) valid.push(r.value);
      else {
        const requestId = (raw as { requestId?: unknown } | null)?.requestId;
        rejected.push({ index, requestId: typeof requestId === 'string' ? requestId : null, issues: r.issues });
      }
    });
    if (rejected.length > 0) deps.logger.warn({ batchId: batch.batchId, rejected }, 'refused invalid usage events');
    const { priced, failed: pricingFailed } = priceIsolating(deps.pricing, valid);
    for (const p of priced) {
      if (!p.price.priced) {
        deps.logger.warn({ requestId: p.event.requestId, provider: p.event.provider, model: p.event.model, reason: p.price.reason }, 'unpriced usage recorded');
      }
    }
    let result: BatchResult;
    let fresh: CountedEvent[];
    let firstTime: boolean;
    let poisoned: { event: PricedEvent; error: string }[];
    let userDays: UserDayTotal[] | undefined;
    // Heartbeats while the statement runs, so a crashed worker's flush is retried elsewhere within
    // the heartbeat timeout instead of the whole start-to-close timeout.
    const beat = heartbeats() ? setInterval(() => heartbeat(), HEARTBEAT_EVERY_MS) : undefined;
    try {
      ({ result, fresh, first: firstTime, poisoned, userDays } = await persist(deps.pool, { batchId: batch.batchId, events: priced, timezone: deps.timezone }));
    } catch (err) {
      if (err instanceof ConflictError) throw ApplicationFailure.nonRetryable(err.message, 'ConflictError');
      throw err;
    } finally {
      clearInterval(beat);
    }
    // Dead letters: events tied to their own failure (refused as invalid after they were accepted,
    // pricing threw, the database refused the row). Recorded once per flush and event (a retry
    // records nothing again), counted, and alerted on by the workflow; the rest of the flush counts.
    const indexOf = new Map<string, number>();
    batch.events.forEach((raw, i) => {
      const id = (raw as { requestId?: unknown } | null)?.requestId;
      if (typeof id === 'string' && !indexOf.has(id)) indexOf.set(id, i);
    });
    const letters: DeadLetterInput[] = [
      ...rejected.map((r) => ({
        batchId: batch.batchId,
        requestId: r.requestId,
        index: r.index,
        userId: userIdOf(batch.events[r.index]),
        stage: 'validation' as const,
        error: r.issues.map((i) => `${i.path}: ${i.message}`).join('; '),
        payload: batch.events[r.index],
      })),
      ...pricingFailed.map((f) => ({ batchId: batch.batchId, requestId: f.event.requestId, index: indexOf.get(f.event.requestId) ?? -1, userId: f.event.userId, stage: 'pricing' as const, error: f.error, payload: batch.events[indexOf.get(f.event.requestId) ?? -1] ?? f.event })),
      ...poisoned.map((p) => ({ batchId: batch.batchId, requestId: p.event.event.requestId, index: indexOf.get(p.event.event.requestId) ?? -1, userId: p.event.event.userId, stage: 'persist' as const, error: p.error, payload: batch.events[indexOf.get(p.event.event.requestId) ?? -1] ?? p.event.event })),
    ];
    if (letters.length > 0) {
      const recorded = await recordDeadLetters(deps.pool, letters);
      deps.logger.error(
        { batchId: batch.batchId, deadLettered: letters.map((l) => ({ requestId: l.requestId, stage: l.stage, error: l.error })) },
        'usage events dead-lettered: the rest of the flush was recorded; list them with `costguard deadletter list`',
      );
      for (const stage of recorded) deps.metrics?.recordDeadLetter(stage);
    }
    const byId = new Map(valid.map((e) => [e.requestId, e]));
    // Counted before Redis: if Redis fails, the retry finds the events stored and counts nothing,
    // so counting after Redis would lose these events from the metrics for good. Only the events
    // this call inserted count; the batch's sizes and duplicates count with its first attempt.
    if (deps.metrics && (firstTime || fresh.length > 0)) {
      const persistedAtMs = deps.clock();
      // A cache hit's would-be cost (the ledger stores it as avoided_usd, with cost 0).
      const avoidedOf = new Map(priced.flatMap((p) => (p.event.cacheHit ? [[p.event.requestId, p.price.costUsd] as const] : [])));
      deps.metrics.recordFlush({
        batch: firstTime ? { received: batch.events.length, rejected: rejected.length, duplicates: result.duplicates } : null,
        persistedAtMs,
        counted: fresh.map((c) => {
          const e = byId.get(c.requestId)!;
          const { costUsd, unpriced, occurredAt } = c;
          const sample: CountedEventSample = { provider: e.provider, model: e.model, userId: e.userId, taskType: e.taskType, status: e.metadata.status, costUsd, unpriced, occurredAt, inputTokens: e.usage.inputTokens, outputTokens: e.usage.outputTokens };
          if (e.cacheHit) {
            sample.cacheHit = true;
            sample.avoidedUsd = avoidedOf.get(c.requestId) ?? '0';
          }
          return sample;
        }),
      });
    }
    // After the commit, best effort (see updateRealtime).
    await updateRealtime(batch.batchId, valid, result);
    const unpricedWhy = new Map(priced.flatMap((p) => (p.price.priced ? [] : [[p.event.requestId, p.price.code] as const])));
    return {
      result: {
        batchId: batch.batchId,
        received: batch.events.length,
        duplicates: result.duplicates,
        // One plain object literal per event: spreading into it cost several microseconds an event.
        counted: result.events.map((c) => {
          const e = byId.get(c.requestId)!;
          const out: CountedUsage = { requestId: c.requestId, occurredAt: c.occurredAt, costUsd: c.costUsd, unpriced: c.unpriced, provider: e.provider, model: e.model, taskType: e.taskType, usage: e.usage };
          if (c.unpriced) {
            const why = unpricedWhy.get(c.requestId);
            if (why) out.unpricedReason = why;
          }
          return out;
        }),
        rejected,
        deadLettered: letters.length,
      },
      firstTime,
      userDays: userDays ?? [],
    };
  }

  /** Runs one flush, observing its duration by outcome. */
  async function timed<T>(batch: UsageBatchInput, persist: Persist, then: (result: FlushResult, userDays: UserDayTotal[]) => T | Promise<T>): Promise<T> {
    const started = performance.now();
    let outcome: FlushOutcome = 'error';
    try {
      const { result, firstTime, userDays } = await recordBatch(batch, persist);
      outcome = firstTime ? 'stored' : 'replayed';
      return await then(result, userDays);
    } finally {
      deps.metrics?.observeFlushDuration((performance.now() - started) / 1000, outcome);
    }
  }

  return { recordBatch, timed };
}

export const createLedgerActivities = (deps: LedgerActivityDeps) => {
  const { timed } = createFlushRecorder(deps);

  return {
    /**
     * Prices and persists a batch; returns what it newly counted, event by event. Safe to retry: a
     * retry after the commit returns the first attempt's result (see src/db/ledger.ts). Budget
     * workflows started before `local-activities-v1` flush through this one.
     */
    async recordUsageBatch(batch: UsageBatchInput): Promise<FlushResult> {
      return timed(batch, asBatch, (result) => result);
    },

    /**
     * A budget workflow's flush (run as a local activity): prices and persists the batch like
     * `recordUsageBatch`, and returns what it newly counted summed per period of `targets`, so the
     * result is a few hundred bytes whatever the batch size. Safe to retry, and to run again with
     * more events under the same flush id (see persistFlush in src/db/ledger.ts).
     */
    async flushUsage(input: FlushInput): Promise<FlushSummary> {
      if (!Array.isArray(input?.targets)) throw ApplicationFailure.nonRetryable('flush must name its target periods', 'ValidationError');
      return timed(input, asFlush, (result) => summarizeFlush(result, input.targets));
    },
  };
};

export type LedgerActivities = ReturnType<typeof createLedgerActivities>;
