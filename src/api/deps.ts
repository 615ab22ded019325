import type { Client } from '@temporalio/client';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { CostTracker } from '../client/cost-tracker.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../lib/logger.js';
import type { CostGuardMetrics } from '../metrics/index.js';
import type { RealtimeView } from '../redis/realtime.js';
import type { ApiKey } from './keys.js';

/** What the HTTP API is built from (src/cli/start.ts wires the real ones, tests their own). */
export interface ApiDeps {
  pool: Pool;
  /** Parsed keys, or strings as configured (`<scope>:<key>`, or a plain key meaning admin). */
  apiKeys: readonly (string | ApiKey)[];
  logger: Logger;
  temporal: Client;
  tracker: CostTracker;
  config: Config;
  /** The process's Prometheus registry, served at GET /metrics (API key required, as everywhere). */
  metrics: CostGuardMetrics;
  /** The Redis real-time view the ledger activity writes; summaries read their last hour from it (none: `recent` is null). */
  realtime?: RealtimeView;
  /** Where rate-limit counters live, shared by every API replica (createRateLimitRedis); absent: in this process's memory. */
  rateLimitRedis?: Redis;
  /** Injected for tests; default Date.now and randomUUID. */
  clock?: () => number;
  generateId?: () => string;
}

/** What each route plugin is given: the dependencies, with the clock and id generator resolved. */
export type RouteDeps = Omit<ApiDeps, 'clock' | 'generateId' | 'apiKeys' | 'logger' | 'rateLimitRedis'> & { clock: () => number; generateId: () => string };
