/**
 * The response cache's Redis keys (the behaviour is src/client/cache/response-cache.ts):
 *
 *   <prefix><task><sha256>       STRING one stored answer (JSON), with its task type's TTL
 *   <prefix>lock:<task><sha256>  STRING the token of the one caller, across processes, that went
 *                                upstream for that key (SET NX PX; deleted only by its owner, else it expires)
 *
 * `<prefix>` is `<keyPrefix>cache:`; `<task>` is the task type's key prefix (the original's `news:`,
 * `tech:`, `strategy:`, `llm:`). The functions below take `<task><sha256>` as the key.
 */
import type { Redis } from 'ioredis';

/** Deletes the lock only if it still holds the caller's token (compare and delete, atomically). */
const UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

export interface ResponseCacheStore {
  /** `<keyPrefix>cache:`: every key of the cache starts with it. */
  readonly prefix: string;
  /** The stored text of `hash`, or null. */
  get(hash: string): Promise<string | null>;
  /** Stores `text` under `hash` for `ttlSeconds`. */
  set(hash: string, text: string, ttlSeconds: number): Promise<void>;
  /** Takes the key's lock for `ttlMs` unless another caller holds it; true when this caller got it. */
  lock(hash: string, token: string, ttlMs: number): Promise<boolean>;
  /** Releases the key's lock if `token` still holds it. */
  unlock(hash: string, token: string): Promise<void>;
  /** Whether anyone holds the key's lock. */
  isLocked(hash: string): Promise<boolean>;
  /** Entries stored (locks left out): SCAN, never KEYS. */
  entryCount(): Promise<number>;
  /** Each entry's key (after `<prefix>`) and seconds to live: SCAN, never KEYS. */
  entries(): Promise<Array<{ key: string; ttlSeconds: number }>>;
}

export function createResponseCacheStore(redis: Redis, prefix: string): ResponseCacheStore {
  const lockKey = (hash: string) => `${prefix}lock:${hash}`;
  return {
    prefix,
    get: (hash) => redis.get(prefix + hash),
    async set(hash, text, ttlSeconds) {
      await redis.set(prefix + hash, text, 'EX', ttlSeconds);
    },
    async lock(hash, token, ttlMs) {
      return (await redis.set(lockKey(hash), token, 'PX', ttlMs, 'NX')) === 'OK';
    },
    async unlock(hash, token) {
      await redis.eval(UNLOCK, 1, lockKey(hash), token);
    },
    async isLocked(hash) {
      return (await redis.exists(lockKey(hash))) !== 0;
    },
    async entryCount() {
      let cursor = '0';
      let n = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        n += keys.filter((k) => !k.startsWith(`${prefix}lock:`)).length;
      } while (cursor !== '0');
      return n;
    },
    async entries() {
      const out: Array<{ key: string; ttlSeconds: number }> = [];
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        const mine = keys.filter((k) => !k.startsWith(`${prefix}lock:`));
        if (mine.length === 0) continue;
        const pipeline = redis.pipeline();
        for (const k of mine) pipeline.ttl(k);
        const ttls = (await pipeline.exec()) ?? [];
        mine.forEach((k, i) => out.push({ key: k.slice(prefix.length), ttlSeconds: Number(ttls[i]?.[1] ?? -2) }));
      } while (cursor !== '0');
      return out;
    },
  };
}
