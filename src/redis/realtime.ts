/**
 * The Redis real-time view (the original design keeps recent calls in Redis; README "The original
 * contract" says how this differs): per-scope cost per minute, and each user's recent calls in a
 * sorted set kept for 7 days. Written after the ledger commit, from the events the ledger newly
 * counted, with idempotent commands only: a retried activity writes the same values again and
 * counts nothing twice. Read by the rolling summaries' `recent` part (src/client/summary.ts).
 *  - `<prefix>cpm:<scope>:<minute>` HASH batchId -> that batch's cost in that minute (decimal string);
 *    the minute's cost is the exact decimal sum of the hash's values.
 *  - `<prefix>calls:<user:id>` ZSET score = occurredAt ms, member = the call as JSON (deterministic).
 */
import type { Redis } from 'ioredis';
import type { BatchResult } from '../domain/ledger.js';
import { addAmounts } from '../domain/money.js';
import type { UsageEvent } from '../domain/usage.js';

export const REALTIME_TTL_SECONDS = 7 * 24 * 3600;
const MINUTE_MS = 60_000;

export interface RealtimeView {
  recordBatch(batchId: string, events: readonly UsageEvent[], result: BatchResult, now: number): Promise<void>;
  costPerMinute(scope: string, fromMs: number, toMs: number): Promise<{ minute: string; costUsd: string }[]>;
  recentCalls(userId: string, limit: number): Promise<Record<string, unknown>[]>;
}

export function createRealtimeView(redis: Redis, prefix: string): RealtimeView {
  const cpmKey = (scope: string, minute: number) => `${prefix}cpm:${scope}:${minute}`;
  const callsKey = (userId: string) => `${prefix}calls:user:${userId}`;
  return {
    async recordBatch(batchId, events, result, now) {
      if (result.events.length === 0) return;
      const byId = new Map(events.map((e) => [e.requestId, e]));
      const minuteCosts = new Map<string, string[]>(); // "scope\u0000minute" -> costs
      const calls = new Map<string, (string | number)[]>(); // userId -> ZADD score/member pairs
      for (const counted of result.events) {
        const e = byId.get(counted.requestId);
        if (!e) continue;
        const at = Date.parse(counted.occurredAt);
        const minute = Math.floor(at / MINUTE_MS);
        for (const scope of ['system', `user:${e.userId}`]) {
          const k = `${scope}\u0000${minute}`;
          const list = minuteCosts.get(k) ?? [];
          list.push(counted.costUsd);
          minuteCosts.set(k, list);
        }
        const member = JSON.stringify({
          requestId: e.requestId,
          occurredAt: counted.occurredAt,
          provider: e.provider,
          model: e.model,
          taskType: e.taskType,
          costUsd: counted.costUsd,
          unpriced: counted.unpriced,
          usage: e.usage,
        });
        const pairs = calls.get(e.userId) ?? [];
        pairs.push(at, member);
        calls.set(e.userId, pairs);
      }
      // One ZADD per user with all its calls (a flush is one user's): far fewer commands to build.
      const multi = redis.multi();
      for (const [userId, pairs] of calls) multi.zadd(callsKey(userId), ...pairs);
      for (const [k, costs] of minuteCosts) {
        const [scope, minute] = k.split('\u0000') as [string, string];
        const key = cpmKey(scope, Number(minute));
        multi.hset(key, batchId, addAmounts(...costs));
        multi.expire(key, REALTIME_TTL_SECONDS);
      }
      for (const userId of calls.keys()) {
        multi.zremrangebyscore(callsKey(userId), '-inf', now - REALTIME_TTL_SECONDS * 1000);
        multi.expire(callsKey(userId), REALTIME_TTL_SECONDS);
      }
      const replies = await multi.exec();
      const failed = replies?.find(([err]) => err);
      if (!replies || failed) throw new Error(`redis real-time update failed: ${failed?.[0]?.message ?? 'transaction aborted'}`);
    },

    async costPerMinute(scope, fromMs, toMs) {
      const minutes: number[] = [];
      for (let m = Math.floor(fromMs / MINUTE_MS); m <= Math.floor(toMs / MINUTE_MS); m++) minutes.push(m);
      const pipeline = redis.pipeline();
      for (const m of minutes) pipeline.hvals(cpmKey(scope, m));
      const replies = (await pipeline.exec()) ?? [];
      return minutes.map((m, i) => ({
        minute: new Date(m * MINUTE_MS).toISOString(),
        costUsd: addAmounts('0', ...((replies[i]?.[1] as string[] | undefined) ?? [])),
      }));
    },

    async recentCalls(userId, limit) {
      const members = await redis.zrevrange(callsKey(userId), 0, limit - 1);
      return members.map((m) => JSON.parse(m) as Record<string, unknown>);
    },
  };
}
