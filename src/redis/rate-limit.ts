/**
 * The API's rate-limit counters in Redis (@fastify/rate-limit's own Redis store), so that every API
 * replica counts against one budget per key: two replicas behind a load balancer must not double it.
 */
import type { Redis } from 'ioredis';

/**
 * A connection of its own for the counters that never queues and gives up fast: when Redis is down or
 * slow, a request is let through uncounted (`skipOnError`) rather than held up or refused, so a Redis
 * outage never becomes an API outage (ingestion does not need Redis).
 */
export function createRateLimitRedis(base: Redis): Redis {
  return base.duplicate({ enableOfflineQueue: false, commandTimeout: 250, maxRetriesPerRequest: 0 });
}

/** The plugin's store options: counters under `<prefix>ratelimit:<key id>` (a hash, never the key). */
export function rateLimitStoreOptions(redis: Redis, keyPrefix: string): { redis: Redis; nameSpace: string; skipOnError: boolean } {
  return { redis, nameSpace: `${keyPrefix}ratelimit:`, skipOnError: true };
}
