/**
 * The response cache (the original CacheOptimizer), used by the wrappers (`wrapOpenAI(client, {
 * tracker, cache })`): an exact match on the canonical form of the whole request (canonical.ts),
 * stored in Redis under `<keyPrefix>cache:<task prefix><sha256>`.
 *
 *   - Scope: an entry belongs to one tenant (the wrapper's `tenant` option, else the call's user)
 *     unless its task type is listed in `shared`; the scope is part of the hashed key, so two
 *     tenants can never read each other's entries.
 *   - The original's key prefix and TTL per task type: news_analysis `news:` 3,600 s,
 *     technical_analysis `tech:` 300 s, strategy_generation `strategy:` 1,800 s, llm_response `llm:`
 *     7,200 s. Task types the original does not list (it caches none of them) are cached under
 *     `llm:` for `ttlSeconds.default` (3,600 s); `ttlSeconds: { default: 0 }` caches only the four,
 *     as the original did (0 for any task type: not cached).
 *   - Stored: only answers that finished normally (finish reason stop, end_turn, tool_calls,
 *     tool_use, stop_sequence; a Responses `completed`), with the provider's own usage, whose cost
 *     is at least `minCostUsd`. Never an HTTP error (429s included), a length/max_tokens cut, an
 *     error event, an aborted, cancelled or broken-off stream, an estimate.
 *   - Streams are stored as the event sequence the SDK read (SSE text) and replayed as an SSE
 *     response through the SDK itself, so the caller gets the SDK's own stream object.
 *   - Single flight: concurrent misses of one key in this process share one upstream call (an
 *     in-process map); across processes a Redis lock (`SET NX PX`) names the one caller that goes
 *     upstream, and the others poll the entry for up to `waitMs`, then call upstream themselves.
 *   - Redis trouble never fails a call: a lookup or store that fails is a miss (counted as `error`).
 * The Redis commands are in src/redis/response-cache.ts.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { DEFAULTS as DEFAULT_CONFIG } from '../../config/defaults.js';
import { Dec } from '../../domain/money.js';
import type { PricingEngine } from '../../domain/pricing.js';
import type { TokenUsage } from '../../domain/usage.js';
import { type ResponseCacheStore, createResponseCacheStore } from '../../redis/response-cache.js';
import type { Api } from '../wrappers/protocols.js';

/** One stored answer. */
export interface CacheEntry {
  v: 1;
  api: Api;
  stream: boolean;
  /** The response's content type (application/json or text/event-stream). */
  contentType: string;
  /** The body the SDK read: JSON text, or the SSE event sequence. */
  body: string;
  /** The provider's usage of the original call (what a hit avoids). */
  usage: TokenUsage;
  model: string;
  /** The original call's cost when stored (USD), for information; a hit is priced again at record time. */
  costUsd: string;
  storedAtMs: number;
  providerRequestId?: string;
}

export interface ResponseCacheOptions {
  redis: Redis;
  /** Prices answers to decide whether they are worth storing (the same engine as the worker's). */
  pricing: PricingEngine;
  /** The deployment's Redis key prefix (`config.redis.keyPrefix`); entries go under `<keyPrefix>cache:`. */
  keyPrefix?: string;
  /** Seconds per task type; `default` for the rest. Merged over the original's defaults. */
  ttlSeconds?: Record<string, number>;
  /** Task types whose entries every tenant shares. */
  shared?: readonly string[];
  /** Answers that cost less are not stored. Default "0.001". */
  minCostUsd?: string;
  /** How long concurrent misses wait for the one upstream call, ms. Default 10,000. */
  waitMs?: number;
  /** How often a waiter in another process looks for the entry, ms. Default 25. */
  pollMs?: number;
  /** Answers larger than this are not stored. Default 1 MiB. */
  maxEntryBytes?: number;
  /** Called with each lookup's result, e.g. `(r) => metrics.recordCacheLookup(r)` (costguard_response_cache_lookups_total). Must not throw. */
  onLookup?: (result: LookupResult) => void;
  clock?: () => number;
}

export type LookupResult = 'hit' | 'miss' | 'wait_hit' | 'wait_timeout' | 'error';

/** What a caller that missed must do: go upstream as the leader (and `complete` after), or use what the leader stored. */
export type MissOutcome = { kind: 'hit'; entry: CacheEntry } | { kind: 'lead'; complete: (entry: CacheEntry | null) => void } | { kind: 'upstream' };

/** The original's key prefix per task type; other task types use `llm:` (its generic LLM response). */
export const ORIGINAL_KEY_PREFIXES: Readonly<Record<string, string>> = Object.freeze({ news_analysis: 'news:', technical_analysis: 'tech:', strategy_generation: 'strategy:', llm_response: 'llm:' });
const OTHER_KEY_PREFIX = 'llm:';

const NORMAL_FINISH = new Set(['stop', 'end_turn', 'tool_calls', 'tool_use', 'function_call', 'stop_sequence', 'completed']);

/** True for a finish reason after which an answer may be stored. */
export function isNormalFinish(reason: string | undefined): boolean {
  return reason !== undefined && NORMAL_FINISH.has(reason);
}

function fail(message: string): never {
  throw new TypeError(`response cache: ${message}`);
}

export class ResponseCache {
  readonly pricing: PricingEngine;
  readonly prefix: string;
  readonly ttlSeconds: Readonly<Record<string, number>>;
  readonly shared: ReadonlySet<string>;
  readonly minCost: Dec;
  readonly waitMs: number;
  readonly pollMs: number;
  readonly maxEntryBytes: number;
  private readonly clock: () => number;
  private readonly entries: ResponseCacheStore;
  private readonly flights = new Map<string, Promise<CacheEntry | null>>();
  private readonly onLookup: ((result: LookupResult) => void) | undefined;
  /** Per process, for tests and the benchmark: lookups by result. */
  readonly counts: Record<LookupResult | 'stored' | 'not_stored', number> = { hit: 0, miss: 0, wait_hit: 0, wait_timeout: 0, error: 0, stored: 0, not_stored: 0 };

  constructor(options: ResponseCacheOptions) {
    if (typeof options !== 'object' || options === null) fail('options must be an object with redis and pricing');
    if (typeof options.redis?.get !== 'function' || typeof options.redis?.set !== 'function') fail('option redis must be an ioredis client');
    if (typeof options.pricing?.price !== 'function') fail('option pricing must be a PricingEngine (createPricingEngine(config))');
    const d = DEFAULT_CONFIG.cache;
    const ttl = { ...d.ttlSeconds, ...options.ttlSeconds };
    for (const [task, s] of Object.entries(ttl)) {
      if (!Number.isInteger(s) || s < 0 || s > 30 * 86_400) fail(`ttlSeconds.${task} must be whole seconds from 0 (not cached) to 2592000 (30 days), got ${String(s)}`);
    }
    const minCostUsd = options.minCostUsd ?? d.minCostUsd;
    if (typeof minCostUsd !== 'string' || !/^\d{1,6}(\.\d{1,12})?$/.test(minCostUsd)) fail(`minCostUsd must be a USD amount as a decimal string such as "0.001", got ${JSON.stringify(minCostUsd)}`);
    const waitMs = options.waitMs ?? d.waitMs;
    if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > 600_000) fail(`waitMs must be whole milliseconds from 0 to 600000, got ${String(waitMs)}`);
    const pollMs = options.pollMs ?? 25;
    if (!Number.isInteger(pollMs) || pollMs < 1 || pollMs > 10_000) fail(`pollMs must be whole milliseconds from 1 to 10000, got ${String(pollMs)}`);
    const maxEntryBytes = options.maxEntryBytes ?? d.maxEntryBytes;
    if (!Number.isInteger(maxEntryBytes) || maxEntryBytes < 1024) fail(`maxEntryBytes must be at least 1024, got ${String(maxEntryBytes)}`);
    const shared = options.shared ?? d.shared;
    if (!Array.isArray(shared) || shared.some((t) => typeof t !== 'string' || t.length === 0)) fail('shared must be a list of task types');
    this.pricing = options.pricing;
    this.prefix = `${options.keyPrefix ?? DEFAULT_CONFIG.redisKeyPrefix}cache:`;
    this.entries = createResponseCacheStore(options.redis, this.prefix);
    this.ttlSeconds = ttl;
    this.shared = new Set(shared);
    this.minCost = new Dec(minCostUsd);
    this.waitMs = waitMs;
    this.pollMs = pollMs;
    this.maxEntryBytes = maxEntryBytes;
    this.clock = options.clock ?? Date.now;
    if (options.onLookup !== undefined && typeof options.onLookup !== 'function') fail('onLookup must be a function');
    this.onLookup = options.onLookup;
  }

  /** The scope an entry of this task type belongs to: every tenant's, or one tenant's. */
  scopeOf(taskType: string, tenant: string): string {
    return this.shared.has(taskType) ? 'shared' : `tenant:${tenant}`;
  }

  /** Seconds an entry of this task type lives; 0: the task type is not cached. */
  ttlOf(taskType: string): number {
    return (Object.hasOwn(this.ttlSeconds, taskType) ? this.ttlSeconds[taskType] : this.ttlSeconds.default) ?? 3600;
  }

  /** The entry key (after `<keyPrefix>cache:`) of a request hash for a task type: the task type's prefix, then the hash. */
  keyOf(taskType: string, hash: string): string {
    return (Object.hasOwn(ORIGINAL_KEY_PREFIXES, taskType) ? ORIGINAL_KEY_PREFIXES[taskType] : OTHER_KEY_PREFIX) + hash;
  }

  count(result: LookupResult | 'stored' | 'not_stored'): void {
    this.counts[result]++;
    if (result !== 'stored' && result !== 'not_stored' && this.onLookup) {
      try {
        this.onLookup(result);
      } catch {
        // a metrics callback must never fail a call
      }
    }
  }

  /** The stored entry, or null (a Redis failure is a miss). */
  async get(hash: string): Promise<CacheEntry | null> {
    const text = await this.entries.get(hash);
    if (text === null) return null;
    try {
      const e = JSON.parse(text) as CacheEntry;
      return e?.v === 1 && typeof e.body === 'string' ? e : null;
    } catch {
      return null;
    }
  }

  /**
   * After a miss: joins this process's call in flight for the key (and gets its entry), or takes
   * the cross-process lock and leads, or waits for another process's leader (polling the entry up
   * to `waitMs`), else goes upstream itself.
   */
  async onMiss(hash: string): Promise<MissOutcome> {
    const flight = this.flights.get(hash);
    if (flight) {
      const entry = await withTimeout(flight, this.waitMs);
      this.count(entry ? 'wait_hit' : 'wait_timeout');
      return entry ? { kind: 'hit', entry } : { kind: 'upstream' };
    }
    let resolve!: (e: CacheEntry | null) => void;
    const p = new Promise<CacheEntry | null>((r) => (resolve = r));
    this.flights.set(hash, p);
    const token = randomBytes(8).toString('hex');
    let locked = false;
    try {
      locked = await this.entries.lock(hash, token, Math.max(1000, this.waitMs + 5000));
    } catch {
      locked = true; // Redis is failing: lead (the store will fail too; nothing waits on Redis)
    }
    const settle = (entry: CacheEntry | null) => {
      if (this.flights.get(hash) === p) this.flights.delete(hash);
      resolve(entry);
    };
    if (locked) {
      // Double-checked: a leader elsewhere may have stored the answer and released its lock between
      // this process's miss and its lock.
      const stored = await this.get(hash).catch(() => null);
      if (stored) {
        this.entries.unlock(hash, token).catch(() => undefined);
        this.count('wait_hit');
        settle(stored);
        return { kind: 'hit', entry: stored };
      }
      let done = false;
      return {
        kind: 'lead',
        complete: (entry) => {
          if (done) return;
          done = true;
          settle(entry);
          // Release only our own lock (compare and delete).
          this.entries.unlock(hash, token).catch(() => undefined);
        },
      };
    }
    // Another process leads: poll its entry, then give up and go upstream.
    const deadline = this.clock() + this.waitMs;
    try {
      while (this.clock() < deadline) {
        await sleep(this.pollMs);
        const entry = await this.get(hash).catch(() => null);
        if (entry) {
          this.count('wait_hit');
          settle(entry);
          return { kind: 'hit', entry };
        }
        const held = await this.entries.isLocked(hash).catch(() => false);
        if (!held) {
          // The leader finished: it may have stored the answer just after the read above.
          const last = await this.get(hash).catch(() => null);
          if (last) {
            this.count('wait_hit');
            settle(last);
            return { kind: 'hit', entry: last };
          }
          break; // it finished without storing
        }
      }
    } catch {
      // fall through
    }
    this.count('wait_timeout');
    settle(null);
    return { kind: 'upstream' };
  }

  /** Stores an answer for its task type's TTL, when it is worth storing; returns whether it was. */
  async store(hash: string, taskType: string, entry: CacheEntry): Promise<boolean> {
    if (new Dec(entry.costUsd).lessThan(this.minCost)) {
      this.count('not_stored');
      return false;
    }
    const text = JSON.stringify(entry);
    if (text.length > this.maxEntryBytes) {
      this.count('not_stored');
      return false;
    }
    await this.entries.set(hash, text, this.ttlOf(taskType));
    this.count('stored');
    return true;
  }

  /** Entries of this cache left in Redis (for tests and `costguard` tooling): SCAN, never KEYS. */
  entryCount(): Promise<number> {
    return this.entries.entryCount();
  }

  /** Each entry's key (after `<keyPrefix>cache:`, e.g. `tech:<sha256>`) and seconds to live. */
  listEntries(): Promise<Array<{ key: string; ttlSeconds: number }>> {
    return this.entries.entries();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T | null>, ms: number): Promise<T | null> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      () => {
        clearTimeout(t);
        resolve(null);
      },
    );
  });
}

export function createResponseCache(options: ResponseCacheOptions): ResponseCache {
  return new ResponseCache(options);
}
