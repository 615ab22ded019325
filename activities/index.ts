/**
 * All activities, built once by the worker over clients it owns:
 * `createActivities({ pool, redis, config, pricing, metrics, logger, clock })`.
 */
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { Config } from '../src/config/index.js';
import type { PricingEngine } from '../src/domain/pricing.js';
import type { Logger } from '../src/lib/logger.js';
import type { CostGuardMetrics } from '../src/metrics/index.js';
import { createBudgetActivities } from './budget.js';
import { createLedgerActivities } from './ledger.js';
import { createRealtimeView } from './realtime.js';

export interface ActivityDeps {
  pool: Pool;
  redis: Redis;
  config: Config;
  pricing: PricingEngine;
  /** The process's Prometheus registry (src/metrics): the ledger activity feeds it. */
  metrics: CostGuardMetrics;
  logger: Logger;
  clock: () => number;
}

export const createActivities = (deps: ActivityDeps) => ({
  ...createLedgerActivities({
    pool: deps.pool,
    pricing: deps.pricing,
    timezone: deps.config.timezone,
    clock: deps.clock,
    logger: deps.logger,
    metrics: deps.metrics,
    realtime: createRealtimeView(deps.redis, deps.config.redis.keyPrefix),
  }),
  ...createBudgetActivities({ pool: deps.pool, config: deps.config }),
});

export type Activities = ReturnType<typeof createActivities>;
