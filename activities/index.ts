/**
 * All activities, built once by the worker over clients it owns:
 * `createActivities({ pool, redis, config, pricing, metrics, logger, clock, temporal })`.
 */
import type { Client } from '@temporalio/client';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import type { Config } from '../src/config/index.js';
import type { PricingEngine } from '../src/domain/pricing.js';
import type { Logger } from '../src/lib/logger.js';
import { createAlertActivities } from './alerts.js';
import type { CostGuardMetrics } from '../src/metrics/index.js';
import { createBudgetActivities } from './budget.js';
import { createChannelActivities } from './channels.js';
import { createIngestActivities } from './ingest.js';
import { createLeaseActivities } from './leases.js';
import { createLedgerActivities } from './ledger.js';
import { createLeaseStore } from '../src/redis/leases.js';
import { createRealtimeView } from '../src/redis/realtime.js';
import { createReportActivities } from './reports.js';

export interface ActivityDeps {
  pool: Pool;
  redis: Redis;
  config: Config;
  pricing: PricingEngine;
  /** The process's Prometheus registry (src/metrics): the ledger activity feeds it. */
  metrics: CostGuardMetrics;
  logger: Logger;
  clock: () => number;
  /** A Temporal client (alert activities start and signal alert workflows). */
  temporal: () => Client;
}

export const createActivities = (deps: ActivityDeps) => {
  const ledgerDeps = {
    pool: deps.pool,
    pricing: deps.pricing,
    timezone: deps.config.timezone,
    clock: deps.clock,
    logger: deps.logger,
    metrics: deps.metrics,
    realtime: createRealtimeView(deps.redis, deps.config.redis.keyPrefix),
  };
  const leases = createLeaseStore(deps.redis, deps.config.redis.keyPrefix);
  return {
    ...createLedgerActivities(ledgerDeps),
    ...createIngestActivities({ ...ledgerDeps, config: deps.config, temporal: deps.temporal, leases: () => leases }),
    ...createBudgetActivities({ pool: deps.pool, config: deps.config }),
    ...createLeaseActivities({ pool: deps.pool, config: deps.config, leases: () => leases }),
    ...createAlertActivities({ pool: deps.pool, config: deps.config, logger: deps.logger, clock: deps.clock, temporal: deps.temporal }),
    ...createChannelActivities({
      pool: deps.pool,
      config: deps.config,
      logger: deps.logger,
      clock: deps.clock,
      onDelivery: (channel, channelType, outcome) => deps.metrics.recordNotification(channel, channelType, outcome),
    }),
    ...createReportActivities({ pool: deps.pool, pricing: deps.pricing, config: deps.config, logger: deps.logger, clock: deps.clock }),
  };
};

export type Activities = ReturnType<typeof createActivities>;
