/**
 * CostTracker: how a service records LLM usage. It validates each event at once (a bad event is the
 * caller's bug and is reported to the caller, never to the budget workflow), batches events per
 * ingest shard (many users' events together; a user always maps to the same shard) and signals each
 * batch to its ingest workflow with signal-with-start (`target: 'budget'`: per scope, to the
 * scope's budget workflow, the design before the ingest tier).
 *
 * Guarantees:
 *   - `record()` resolves only when Temporal has accepted the batch holding the event: from then on
 *     the usage is durable (DESIGN invariant 3).
 *   - Every event carries a `requestId` (generated here when the caller gave none) and every batch a
 *     `batchId` that stays the same on every resend, so a retry can never count anything twice: the
 *     workflow dedupes batches, and the ledger dedupes events (invariant 2).
 *   - Memory is bounded: at most `maxPendingEvents` events are queued or in flight. Past that,
 *     `record()` waits for room (backpressure) instead of failing or growing without limit.
 *
 * Why signal-with-start: the workflow signalled may not exist yet (a shard after a restart of the
 * stack, a new user's budget workflow); the one call
 * starts it if needed and delivers the signal in the same server transaction.
 */
import { DEFAULTS as DEFAULT_CONFIG } from '../config/defaults.js';
import { type Flushable, flushOnExit, forgetOnExit } from './exit-flush.js';
import { usdOf } from '../domain/leases.js';
import { type AuthorizeRequest, type AuthorizeResult, Authorizer, type AuthorizerOptions } from './preflight.js';
import { randomUUID } from 'node:crypto';
import { type Client, isGrpcServiceError } from '@temporalio/client';
import { CostGuardError, type FieldIssue, UnavailableError, ValidationError } from '../domain/errors.js';
import { isScope, type Scope } from '../domain/budget.js';
import {
  MAX_PAST_MS,
  TOKEN_KINDS,
  type ParseResult,
  type UsageEvent,
  type UsageEventInput,
  parseUsageEvent,
  type UsageBatch,
} from '../domain/usage.js';
import type { Logger } from '../lib/logger.js';
import { type IngestBatch, type WireEvent, encodeBatch, shardOf } from '../domain/ingest.js';
import {
  BUDGET_WORKFLOW_TYPE,
  type BudgetWorkflowInput,
  INGEST_WORKFLOW_TYPE,
  ingestWorkflowId,
  type IngestWorkflowInput,
  budgetWorkflowId,
  ingestSignal,
  usageSignal,
} from '../messages.js';

/** What `record()` resolves with once the event is durable. */
export interface RecordReceipt {
  requestId: string;
  scope: Scope;
  batchId: string;
}

export interface CostTrackerStats {
  /** Events queued or in flight (not yet accepted nor failed). */
  pending: number;
  inFlightBatches: number;
  /** Batches (and their events) Temporal accepted. */
  sentBatches: number;
  sentEvents: number;
  /** Batches given up on (their events' promises rejected). */
  failedBatches: number;
  /** Resends after a transient failure. */
  retries: number;
}

/** The part of the Temporal client the tracker uses. */
export type CostTrackerClient = { workflow: Pick<Client['workflow'], 'signalWithStart'> };

export interface CostTrackerOptions {
  client: CostTrackerClient;
  /** Task queue of the Cost Guard worker (budget workflows are started there). */
  taskQueue: string;
  /** How long a batch waits for more events after its first one. Default 200 ms. */
  lingerMs?: number;
  /** Events per batch (per signal). Default 500. */
  maxBatchSize?: number;
  /** Approximate JSON size of one batch: keeps a signal well under Temporal's 2 MiB payload limit. Default 384 KiB. */
  maxBatchBytes?: number;
  /** Events queued or in flight before `record()` waits. Default 50,000. */
  maxPendingEvents?: number;
  /** Attempts per batch (1 = no retry) before its events' promises reject. Default 5. */
  maxSendAttempts?: number;
  /** First retry delay; doubled per attempt, with jitter, capped at `maxRetryDelayMs`. Default 100 ms. */
  retryBaseMs?: number;
  /** Default 5,000 ms. */
  maxRetryDelayMs?: number;
  /**
   * Batches of one target in flight at once (sent in order). Default 1 for ingest shards: while a
   * send is in flight, new events join the next batch for that shard (up to the size and byte
   * caps), so batches grow and signals per event fall when Temporal is slow. Default 2 for
   * `target: 'budget'`.
   */
  maxInFlightPerScope?: number;
  /**
   * Where usage is signalled: `ingest` (default), the ingest shards `ingest/<n>` (a user's events
   * always to the same shard), or `budget`, each user's budget workflow directly (the design
   * before the ingest tier; kept for compatibility).
   */
  target?: 'ingest' | 'budget';
  /** Number of ingest shards; must match the worker's `ingest.shards`. Default 4. */
  ingestShards?: number;
  /** Batches in flight at once across all scopes. Default 32. */
  maxConcurrentSends?: number;
  /**
   * How old an event's `occurredAt` may be, in ms. Default 7 days; older events are refused with
   * CostTrackerValidationError unless `backfill` is set.
   */
  maxEventAgeMs?: number;
  /** Accept events of any age (from 2000-01-01 on): for loading historical usage. Default false. */
  backfill?: boolean;
  clock?: () => number;
  generateId?: () => string;
  logger?: Logger;
  /**
   * Send what is held at once on SIGINT, SIGTERM and beforeExit (src/client/exit-flush.ts), so a
   * script stopped with Ctrl-C keeps its last calls; the signal then ends the process as usual
   * unless the application handles it (then it should `await tracker.close()`). Default true.
   */
  flushOnExit?: boolean;
  /**
   * Pre-flight checks (`authorize()`, `releaseHold()`, `renewHold()`): the Redis the worker uses
   * and a pricing engine (createPricingEngine(config)); the rest defaults to the configured
   * `preflight` settings' defaults. `client` must then be a full Temporal Client.
   */
  preflight?: Omit<AuthorizerOptions, 'temporal' | 'taskQueue' | 'keyPrefix' | 'holdTtlMs' | 'maxHoldTtlMs' | 'refillTimeoutMs' | 'unknownPriceUsd' | 'acceptedHoldTtlMs'> &
    Partial<Pick<AuthorizerOptions, 'keyPrefix' | 'holdTtlMs' | 'maxHoldTtlMs' | 'refillTimeoutMs' | 'unknownPriceUsd' | 'acceptedHoldTtlMs'>>;
}

const DEFAULTS = {
  lingerMs: 200,
  maxBatchSize: 500,
  maxBatchBytes: 384 * 1024,
  maxPendingEvents: 50_000,
  maxSendAttempts: 5,
  retryBaseMs: 100,
  maxRetryDelayMs: 5_000,
  maxInFlightPerScope: 2,
  maxInFlightPerShard: 1,
  ingestShards: 4,
  maxConcurrentSends: 32,
  maxEventAgeMs: MAX_PAST_MS,
} as const;
/** The option defaults, for the docs check (scripts/check-readme.ts). */
export { DEFAULTS as COST_TRACKER_DEFAULTS };

/** An event was invalid: nothing was queued. `issues` names each bad field. */
export class CostTrackerValidationError extends ValidationError {
  constructor(issues: FieldIssue[]) {
    super(issues, 'invalid usage event');
  }
}

/** Temporal could not be reached (after every retry): the events were NOT recorded; resend them. */
export class CostTrackerUnavailableError extends UnavailableError {
  readonly batchId: string;
  readonly attempts: number;
  constructor(message: string, batchId: string, attempts: number, cause: unknown) {
    super(message, { cause });
    this.batchId = batchId;
    this.attempts = attempts;
  }
}

/** Temporal refused the batch for a reason a retry cannot fix (e.g. a payload too large, an unknown namespace). */
export class CostTrackerSendError extends Error {
  readonly batchId: string;
  constructor(message: string, batchId: string, cause: unknown) {
    super(message, { cause });
    this.name = 'CostTrackerSendError';
    this.batchId = batchId;
  }
}

/** `record()` after `close()`. */
export class CostTrackerClosedError extends CostGuardError {
  constructor() {
    super('unavailable', 'CostTracker is closed: it accepts no more events');
  }
}

/** A scope's pre-flight state as GET /v1/budgets/:scope shows it (amounts in USD). */
export interface PreflightStatus {
  /** Decisions made on this scope: allow, downgrade, deny. */
  decisions: Record<string, number>;
  /** The current lease in Redis (null before the first check). */
  lease: {
    epoch: string | null;
    until: string;
    buckets: Array<{ period: string; enforcement: 'hard' | 'soft'; failMode: 'open' | 'closed'; budgetUsd: string; spentUsd: string; heldUsd: string; availableUsd: string }>;
  } | null;
}

/** An event as it travels in a batch: validated, with its requestId, in the input shape. */
export type BatchEvent = UsageBatch['events'][number];

/** The budget scope an event counts against first (system-wide totals are aggregated elsewhere). */
export function scopeOfEvent(event: { userId: string }): Scope {
  return `user:${event.userId}`;
}

/** The validated event back in the input shape (defaults and zero counts are left out to keep signals small). */
export function toBatchEvent(event: UsageEvent): BatchEvent {
  const out: BatchEvent = {
    requestId: event.requestId,
    occurredAt: event.occurredAt,
    provider: event.provider,
    model: event.model,
    userId: event.userId,
    taskType: event.taskType,
    usage: {},
  };
  // Token kinds left out count as 0: a signal carries only the counts an event has.
  for (const kind of TOKEN_KINDS) if (event.usage[kind] !== 0) out.usage[kind] = event.usage[kind];
  if (event.team !== null) out.team = event.team;
  if (event.project !== null) out.project = event.project;
  if (Object.keys(event.tags).length > 0) out.tags = { ...event.tags };
  if (Object.keys(event.metadata).length > 0) out.metadata = event.metadata;
  if (event.estimated) out.estimated = true;
  if (event.holdId !== undefined) out.holdId = event.holdId;
  if (event.cacheHit) out.cacheHit = true;
  return out;
}

const SCOPE_ID_MESSAGE = 'must be 1-200 characters of letters, digits and ._@+=:/- (it names the budget scope "user:<userId>")';

/**
 * Validates usage events for tracking: `parseUsageEvent` plus the one extra rule the tracker needs,
 * that the user id can name a budget scope. All or nothing; issues are named `[i].field` when
 * `indexed` (the batch form), plain `field` otherwise.
 */
export function parseTrackedEvents(
  inputs: readonly unknown[],
  opts: { now: number; generateId: () => string; indexed?: boolean; backfill?: boolean; maxAgeMs?: number },
): ParseResult<UsageEvent[]> {
  const events: UsageEvent[] = [];
  const issues: FieldIssue[] = [];
  inputs.forEach((input, i) => {
    const path = opts.indexed === false ? '' : `[${i}]`;
    const r = parseUsageEvent(input, { now: opts.now, generateId: opts.generateId, path, backfill: opts.backfill, maxAgeMs: opts.maxAgeMs });
    if (!r.ok) {
      issues.push(...r.issues);
    } else if (!isScope(scopeOfEvent(r.value))) {
      issues.push({ path: [path, 'userId'].filter(Boolean).join('.'), message: SCOPE_ID_MESSAGE });
    } else {
      events.push(r.value);
    }
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: events };
}

const TRANSIENT_GRPC_CODES = new Set([
  4, // DEADLINE_EXCEEDED
  8, // RESOURCE_EXHAUSTED (rate limits)
  10, // ABORTED
  14, // UNAVAILABLE (no connection, server restarting)
]);
const TRANSIENT_NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH']);

/** True when a failed send may succeed if repeated: connection problems, deadlines, server overload. */
export function isTransientSendError(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 6 && typeof e === 'object' && e !== null; depth++) {
    if (isGrpcServiceError(e)) return TRANSIENT_GRPC_CODES.has(e.code);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_NET_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

interface Entry {
  event: BatchEvent;
  bytes: number;
  resolve: (receipt: RecordReceipt) => void;
  reject: (err: unknown) => void;
}

interface Batch {
  id: string;
  /** The target: an ingest shard's workflow id, or (target `budget`) a user scope. */
  scope: Scope;
  entries: Entry[];
  bytes: number;
  /** Settles (never rejects) when the batch was accepted (undefined) or given up on (the error). */
  done: Promise<unknown>;
  settle: (error: unknown) => void;
}

interface ScopeQueue {
  scope: Scope;
  open: Entry[];
  openBytes: number;
  linger: NodeJS.Timeout | undefined;
  ready: Batch[];
  inFlight: number;
  /** Listed in the tracker's run queue. */
  runnable: boolean;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') return String(value);
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  return Array.isArray(value) ? 'an array' : typeof value;
}

function integerOption(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new TypeError(`CostTracker option ${name} must be a whole number >= ${min}, got ${describe(value)}`);
  }
  return value;
}

function functionOption<T>(name: string, value: unknown): T {
  if (typeof value !== 'function') throw new TypeError(`CostTracker option ${name} must be a function, got ${describe(value)}`);
  return value as T;
}

export class CostTracker {
  private readonly client: CostTrackerClient;
  private readonly taskQueue: string;
  private readonly lingerMs: number;
  private readonly maxBatchSize: number;
  private readonly maxBatchBytes: number;
  private readonly maxPendingEvents: number;
  private readonly maxSendAttempts: number;
  private readonly retryBaseMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly maxInFlightPerScope: number;
  private readonly target: 'ingest' | 'budget';
  private readonly ingestShards: number;
  private readonly maxConcurrentSends: number;
  private readonly maxEventAgeMs: number;
  private readonly backfill: boolean;
  private readonly clock: () => number;
  private readonly generateId: () => string;
  private readonly logger: Logger | undefined;

  /** Prefix of every batch id: batch ids are unique across trackers and processes. */
  readonly instanceId = randomUUID();
  private seq = 0;
  private readonly scopes = new Map<Scope, ScopeQueue>();
  /** Scopes with a batch ready to send and room for it, in turn. */
  private readonly runQueue: ScopeQueue[] = [];
  /** Batches cut but not yet settled (ready or in flight). */
  private readonly unsettled = new Set<Batch>();
  /** Callers waiting for room, in arrival order; each is handed one slot. */
  private readonly roomWaiters: Array<() => void> = [];
  private pending = 0;
  private inFlight = 0;
  private readonly counters = { sentBatches: 0, sentEvents: 0, failedBatches: 0, retries: 0 };
  private closed = false;
  private closing: Promise<void> | undefined;
  /** What the process's exit listeners flush (src/client/exit-flush.ts). */
  private readonly exitHook: Flushable = { flush: () => this.flush(), pendingEvents: () => this.pending };

  constructor(options: CostTrackerOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError(`CostTracker options must be an object, got ${describe(options)}`);
    const { client } = options;
    if (typeof client?.workflow?.signalWithStart !== 'function') {
      throw new TypeError('CostTracker option client must be a Temporal Client (from @temporalio/client), got ' + describe(client));
    }
    if (typeof options.taskQueue !== 'string' || options.taskQueue.trim() === '') {
      throw new TypeError(`CostTracker option taskQueue must be a non-empty string, got ${describe(options.taskQueue)}`);
    }
    this.client = client;
    this.taskQueue = options.taskQueue;
    this.lingerMs = integerOption('lingerMs', options.lingerMs ?? DEFAULTS.lingerMs, 0);
    this.maxBatchSize = integerOption('maxBatchSize', options.maxBatchSize ?? DEFAULTS.maxBatchSize, 1);
    this.maxBatchBytes = integerOption('maxBatchBytes', options.maxBatchBytes ?? DEFAULTS.maxBatchBytes, 1024);
    this.maxPendingEvents = integerOption('maxPendingEvents', options.maxPendingEvents ?? DEFAULTS.maxPendingEvents, 1);
    this.maxSendAttempts = integerOption('maxSendAttempts', options.maxSendAttempts ?? DEFAULTS.maxSendAttempts, 1);
    this.retryBaseMs = integerOption('retryBaseMs', options.retryBaseMs ?? DEFAULTS.retryBaseMs, 0);
    this.maxRetryDelayMs = integerOption('maxRetryDelayMs', options.maxRetryDelayMs ?? DEFAULTS.maxRetryDelayMs, 0);
    if (options.target !== undefined && options.target !== 'ingest' && options.target !== 'budget') {
      throw new TypeError(`CostTracker option target must be "ingest" or "budget", got ${describe(options.target)}`);
    }
    this.target = options.target ?? 'ingest';
    this.ingestShards = integerOption('ingestShards', options.ingestShards ?? DEFAULTS.ingestShards, 1);
    const inFlightDefault = this.target === 'ingest' ? DEFAULTS.maxInFlightPerShard : DEFAULTS.maxInFlightPerScope;
    this.maxInFlightPerScope = integerOption('maxInFlightPerScope', options.maxInFlightPerScope ?? inFlightDefault, 1);
    this.maxConcurrentSends = integerOption('maxConcurrentSends', options.maxConcurrentSends ?? DEFAULTS.maxConcurrentSends, 1);
    this.maxEventAgeMs = integerOption('maxEventAgeMs', options.maxEventAgeMs ?? DEFAULTS.maxEventAgeMs, 0);
    if (options.backfill !== undefined && typeof options.backfill !== 'boolean') throw new TypeError(`CostTracker option backfill must be true or false, got ${describe(options.backfill)}`);
    this.backfill = options.backfill ?? false;
    this.clock = functionOption('clock', options.clock ?? Date.now);
    this.generateId = functionOption('generateId', options.generateId ?? randomUUID);
    this.logger = options.logger?.child({ component: 'cost-tracker', trackerId: this.instanceId });
    if (options.flushOnExit !== undefined && typeof options.flushOnExit !== 'boolean') throw new TypeError(`CostTracker option flushOnExit must be true or false, got ${describe(options.flushOnExit)}`);
    if (options.flushOnExit !== false) flushOnExit(this.exitHook);
    if (options.preflight) {
      const d = DEFAULT_CONFIG.preflight;
      this.authorizer = new Authorizer({
        keyPrefix: DEFAULT_CONFIG.redisKeyPrefix,
        holdTtlMs: d.holdTtlMs,
        maxHoldTtlMs: d.maxHoldTtlMs,
        refillTimeoutMs: d.refillTimeoutMs,
        unknownPriceUsd: d.unknownPriceUsd,
        acceptedHoldTtlMs: d.acceptedHoldTtlMs,
        ...options.preflight,
        temporal: client as Client,
        taskQueue: this.taskQueue,
        clock: this.clock,
      });
    }
  }

  private readonly authorizer: Authorizer | undefined;

  private preflight(): Authorizer {
    if (!this.authorizer) throw new UnavailableError('pre-flight checks are not configured: they need the CostTracker option preflight: { redis, pricing }');
    return this.authorizer;
  }

  /** A scope's pre-flight state, live from Redis: decisions so far and its current lease (null when pre-flight checks are not configured). */
  async preflightStatus(scope: Scope): Promise<PreflightStatus | null> {
    if (!this.authorizer) return null;
    const store = this.authorizer.store;
    const [decisions, lease] = await Promise.all([store.decisions(scope), store.scopeLease(scope)]);
    return {
      decisions,
      lease: lease && {
        epoch: lease.epoch,
        until: new Date(lease.untilMs).toISOString(),
        buckets: lease.buckets.map((b) => ({
          period: b.name.split('|')[1] ?? '',
          enforcement: b.mode,
          failMode: b.failMode,
          budgetUsd: usdOf(b.budget),
          spentUsd: usdOf(b.base + b.spent),
          heldUsd: usdOf(b.open),
          availableUsd: usdOf(b.available),
        })),
      },
    };
  }

  /** A hold's state (open, settled, released, expired, late), or null when unknown. */
  async holdState(holdId: string): Promise<{ state: string; reservedUsd: string; expiresAt: string } | null> {
    const h = await this.preflight().store.holdState(holdId);
    if (!h) return null;
    const names: Record<string, string> = { o: 'open', s: 'settled', r: 'released', x: 'expired', S: 'late' };
    return { state: names[h.state] ?? h.state, reservedUsd: usdOf(h.amountMicro), expiresAt: new Date(h.expiresAtMs).toISOString() };
  }

  /**
   * Pre-flight check: reserves the call's worst case on every budget that applies (its user, team,
   * project and the system) or on none, and answers allow, downgrade (with model advice) or deny.
   * Send the answer's `holdId` with the call's usage event (`record({ ..., holdId })`) to settle the
   * reservation with the actual cost, or `releaseHold()` it when the call is not made.
   */
  authorize(request: AuthorizeRequest): Promise<AuthorizeResult> {
    return this.preflight().authorize(request);
  }

  /** Gives a hold's reservation back (the call was not made). */
  releaseHold(holdId: string): Promise<string> {
    return this.preflight().release(holdId);
  }

  /** Extends an open hold's life (a long stream renews its hold every third of its TTL). */
  renewHold(holdId: string, ttlSeconds?: number): Promise<{ ok: true; expiresAt: string } | { ok: false; state: string }> {
    return this.preflight().renew(holdId, ttlSeconds);
  }

  /** Model advice for a call, with what remains in its scopes' budgets. */
  advise(request: AuthorizeRequest): ReturnType<Authorizer['advice']> {
    return this.preflight().advice(request);
  }

  /**
   * Records one LLM call. Rejects at once with CostTrackerValidationError (nothing queued) if the
   * event is invalid; waits while the tracker is full; resolves when Temporal accepted the event's
   * batch; rejects with CostTrackerUnavailableError if it could not be delivered.
   */
  record(event: UsageEventInput): Promise<RecordReceipt> {
    if (this.closed) return Promise.reject(new CostTrackerClosedError());
    const parsed = parseTrackedEvents([event], { now: this.clock(), generateId: this.generateId, indexed: false, backfill: this.backfill, maxAgeMs: this.maxEventAgeMs });
    if (!parsed.ok) return Promise.reject(new CostTrackerValidationError(parsed.issues));
    return this.admit(toBatchEvent(parsed.value[0]!));
  }

  /**
   * Records several calls: validates all of them first (all or nothing: one bad event rejects the
   * lot with every issue named `[i].field`, and nothing is queued), then queues each (waiting for
   * room as needed) and resolves with every receipt, in order, once all are accepted.
   */
  async recordMany(events: readonly UsageEventInput[]): Promise<RecordReceipt[]> {
    if (this.closed) throw new CostTrackerClosedError();
    if (!Array.isArray(events)) throw new CostTrackerValidationError([{ path: '', message: `must be an array of usage events, got ${describe(events)}` }]);
    const parsed = parseTrackedEvents(events, { now: this.clock(), generateId: this.generateId, backfill: this.backfill, maxAgeMs: this.maxEventAgeMs });
    if (!parsed.ok) throw new CostTrackerValidationError(parsed.issues);
    return this.recordValidated(parsed.value);
  }

  /**
   * `recordMany` for events that already went through `parseTrackedEvents` (the HTTP API validates
   * a request itself, to answer 400 before anything is queued): skips validating them twice.
   */
  async recordValidated(events: readonly UsageEvent[]): Promise<RecordReceipt[]> {
    if (this.closed) throw new CostTrackerClosedError();
    const receipts: Promise<RecordReceipt>[] = [];
    for (const event of events) {
      const room = this.acquireRoom();
      if (room) await room;
      const receipt = this.enqueue(toBatchEvent(event));
      // Handled below with allSettled; this only keeps an early failure from being reported as unhandled.
      receipt.catch(() => undefined);
      receipts.push(receipt);
    }
    const outcomes = await Promise.allSettled(receipts);
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw failed.reason;
    return outcomes.map((o) => (o as PromiseFulfilledResult<RecordReceipt>).value);
  }

  /** Sends everything queued now; resolves when all of it (and what was in flight) is accepted, rejects if any batch failed. */
  async flush(): Promise<void> {
    for (const queue of this.scopes.values()) this.cut(queue);
    const outcomes = await Promise.all([...this.unsettled].map((b) => b.done));
    const failures = outcomes.filter((o) => o !== undefined);
    if (failures.length > 0) throw failures[0];
  }

  /** Flushes, then refuses further events with CostTrackerClosedError. Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    this.closed = true;
    forgetOnExit(this.exitHook);
    this.closing ??= this.drain();
    return this.closing;
  }

  stats(): CostTrackerStats {
    return { pending: this.pending, inFlightBatches: this.inFlight, ...this.counters };
  }

  /** Flushes until nothing is pending, including calls that were waiting for room when close() began. */
  private async drain(): Promise<void> {
    let firstError: unknown;
    for (;;) {
      try {
        await this.flush();
      } catch (err) {
        firstError ??= err;
      }
      if (this.pending === 0 && this.roomWaiters.length === 0) break;
      if (this.unsettled.size === 0) await new Promise((resolve) => setImmediate(resolve)); // let woken callers enqueue
    }
    this.logger?.debug(this.stats(), 'cost tracker closed');
    if (firstError !== undefined) throw firstError;
  }

  /** Queues an event now if there is room (so a flush() right after record() includes it), else once there is. */
  private admit(event: BatchEvent): Promise<RecordReceipt> {
    const room = this.acquireRoom();
    return room ? room.then(() => this.enqueue(event)) : this.enqueue(event);
  }

  /** Takes one slot of `maxPendingEvents`; when there is none, a promise that resolves (in arrival order) once the slot is ours. */
  private acquireRoom(): Promise<void> | undefined {
    if (this.roomWaiters.length === 0 && this.pending < this.maxPendingEvents) {
      this.pending++;
      return undefined;
    }
    // Just became full: send what is queued now rather than wait for the linger timers; room comes
    // back as batches are accepted.
    if (this.roomWaiters.length === 0) for (const queue of this.scopes.values()) this.cut(queue);
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  private releaseRoom(count: number): void {
    this.pending -= count;
    while (this.roomWaiters.length > 0 && this.pending < this.maxPendingEvents) {
      this.pending++;
      this.roomWaiters.shift()!();
    }
  }

  private queueOf(scope: Scope): ScopeQueue {
    let queue = this.scopes.get(scope);
    if (!queue) {
      queue = { scope, open: [], openBytes: 0, linger: undefined, ready: [], inFlight: 0, runnable: false };
      this.scopes.set(scope, queue);
    }
    return queue;
  }

  /** The queue an event joins: its ingest shard, or (target `budget`) its user's scope. */
  private targetOf(event: BatchEvent): string {
    return this.target === 'ingest' ? ingestWorkflowId(shardOf(event.userId, this.ingestShards)) : scopeOfEvent(event);
  }

  private enqueue(event: BatchEvent): Promise<RecordReceipt> {
    const queue = this.queueOf(this.targetOf(event));
    return new Promise<RecordReceipt>((resolve, reject) => {
      const bytes = Buffer.byteLength(JSON.stringify(event)) + 1;
      if (queue.open.length > 0 && queue.openBytes + bytes > this.maxBatchBytes) this.cut(queue);
      queue.open.push({ event, bytes, resolve, reject });
      queue.openBytes += bytes;
      if (queue.open.length >= this.maxBatchSize) this.cut(queue);
      else if (queue.open.length === 1) queue.linger = setTimeout(() => this.cut(queue), this.lingerMs);
    });
  }

  /**
   * Closes the target's open batch (if any) and queues it for sending. While a send to the target
   * is in flight, the events join the batch already waiting for it when they fit (coalescing: a
   * batch not sent yet can still grow), so a slow Temporal gets fewer, larger signals.
   */
  private cut(queue: ScopeQueue): void {
    if (queue.linger) clearTimeout(queue.linger);
    queue.linger = undefined;
    if (queue.open.length === 0) return;
    const waiting = queue.ready[queue.ready.length - 1];
    if (waiting && waiting.entries.length + queue.open.length <= this.maxBatchSize && waiting.bytes + queue.openBytes <= this.maxBatchBytes) {
      waiting.entries.push(...queue.open);
      waiting.bytes += queue.openBytes;
      queue.open = [];
      queue.openBytes = 0;
      return;
    }
    let settle!: (error: unknown) => void;
    const done = new Promise<unknown>((resolve) => (settle = resolve));
    const batch: Batch = { id: `${this.instanceId}:${++this.seq}`, scope: queue.scope, entries: queue.open, bytes: queue.openBytes, done, settle };
    queue.open = [];
    queue.openBytes = 0;
    queue.ready.push(batch);
    this.unsettled.add(batch);
    this.markRunnable(queue);
    this.dispatch();
  }

  private markRunnable(queue: ScopeQueue): void {
    if (!queue.runnable && queue.ready.length > 0 && queue.inFlight < this.maxInFlightPerScope) {
      queue.runnable = true;
      this.runQueue.push(queue);
    }
  }

  /** Starts sends while there is capacity; scopes take turns, and one scope's batches start in order. */
  private dispatch(): void {
    while (this.inFlight < this.maxConcurrentSends && this.runQueue.length > 0) {
      const queue = this.runQueue.shift()!;
      queue.runnable = false;
      const batch = queue.ready.shift();
      if (!batch) continue;
      queue.inFlight++;
      this.inFlight++;
      this.markRunnable(queue);
      void this.send(queue, batch);
    }
  }

  /**
   * Delivers a batch, then does the bookkeeping BEFORE settling the callers' promises (so a caller
   * that awaited record() sees its event no longer pending). Never rejects.
   */
  private async send(queue: ScopeQueue, batch: Batch): Promise<void> {
    let failure: unknown;
    try {
      failure = await this.deliver(batch);
    } catch (err) {
      failure = err ?? new Error('usage batch failed'); // unreachable: deliver catches its own errors
    }
    queue.inFlight--;
    this.inFlight--;
    this.unsettled.delete(batch);
    if (failure === undefined) {
      this.counters.sentBatches++;
      this.counters.sentEvents += batch.entries.length;
    } else {
      this.counters.failedBatches++;
    }
    this.releaseRoom(batch.entries.length);
    if (queue.open.length === 0 && queue.ready.length === 0 && queue.inFlight === 0) this.scopes.delete(queue.scope);
    else this.markRunnable(queue);
    this.dispatch();
    for (const entry of batch.entries) {
      if (failure === undefined) entry.resolve({ requestId: entry.event.requestId, scope: scopeOfEvent(entry.event), batchId: batch.id });
      else entry.reject(failure);
    }
    batch.settle(failure);
  }

  /**
   * Before usage naming pre-flight holds is signalled, those holds are extended (`Authorizer.accept`):
   * accepted usage settles its hold instead of finding it expired and its money taken by another call.
   * Best effort and bounded: usage is never held back or refused because Redis cannot answer.
   */
  private async acceptHolds(events: readonly { holdId?: string }[]): Promise<void> {
    if (!this.authorizer) return;
    const ids: string[] = [];
    for (const e of events) if (e.holdId !== undefined) ids.push(e.holdId);
    if (ids.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([this.authorizer.accept(ids), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timed out after 2000 ms')), 2000)))]);
    } catch (err) {
      this.logger?.warn({ holds: ids.length, err: (err as Error).message }, 'could not extend the pre-flight holds of accepted usage (they may expire before it is recorded)');
    } finally {
      clearTimeout(timer);
    }
  }

  /** Signals a batch, retrying transient failures with the same batch id. Returns the final error, or undefined once accepted. */
  private async deliver(batch: Batch): Promise<Error | undefined> {
    const events = batch.entries.map((e) => e.event);
    const ingest = this.target === 'ingest';
    const workflowId = ingest ? batch.scope : budgetWorkflowId(batch.scope);
    // Built once: every resend carries the very same payload under the same batch id.
    const payload = ingest ? encodeBatch(batch.id, events as WireEvent[]) : ({ batchId: batch.id, events } satisfies UsageBatch);
    const send = () => {
      if (ingest) {
        const shard = Number(batch.scope.slice('ingest/'.length));
        const input: IngestWorkflowInput = { shard };
        return this.client.workflow.signalWithStart(INGEST_WORKFLOW_TYPE, {
          workflowId,
          taskQueue: this.taskQueue,
          args: [input],
          signal: ingestSignal,
          signalArgs: [payload as IngestBatch],
          staticSummary: `Cost Guard ingest shard ${shard}`,
        });
      }
      const input: BudgetWorkflowInput = { scope: batch.scope };
      return this.client.workflow.signalWithStart(BUDGET_WORKFLOW_TYPE, {
        workflowId,
        taskQueue: this.taskQueue,
        args: [input],
        signal: usageSignal,
        signalArgs: [payload as UsageBatch],
        staticSummary: `Cost Guard budget for ${batch.scope}`,
      });
    };
    await this.acceptHolds(events);
    let attempt = 0;
    let failure: Error | undefined;
    for (;;) {
      attempt++;
      try {
        await send();
        break;
      } catch (err) {
        const transient = isTransientSendError(err);
        const context = { scope: batch.scope, workflowId, batchId: batch.id, events: batch.entries.length, attempt, err };
        if (!transient) {
          this.logger?.error(context, 'Temporal refused a usage batch');
          failure = new CostTrackerSendError(`Temporal refused usage batch ${batch.id} for ${batch.scope}: ${(err as Error)?.message ?? String(err)}`, batch.id, err);
          break;
        }
        if (attempt >= this.maxSendAttempts) {
          this.logger?.error(context, 'giving up on a usage batch: Temporal unavailable');
          failure = new CostTrackerUnavailableError(
            `Temporal did not accept usage batch ${batch.id} for ${batch.scope} after ${attempt} attempt(s): ${(err as Error)?.message ?? String(err)}`,
            batch.id,
            attempt,
            err,
          );
          break;
        }
        this.counters.retries++;
        const delay = this.retryDelay(attempt);
        this.logger?.warn({ ...context, retryInMs: delay }, 'usage batch not accepted; retrying');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
    if (!failure) this.logger?.debug({ scope: batch.scope, batchId: batch.id, events: batch.entries.length, attempt }, 'usage batch accepted');
    return failure;
  }

  /** Exponential backoff with "equal jitter": half fixed, half random, so a crowd of clients spreads out. */
  private retryDelay(attempt: number): number {
    const exp = Math.min(this.maxRetryDelayMs, this.retryBaseMs * 2 ** (attempt - 1));
    return Math.round(exp / 2 + Math.random() * (exp / 2));
  }
}
