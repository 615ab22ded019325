/**
 * The worker: builds the clients once and hands them to the activity factories.
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Pool } from 'pg';
import { createLedgerActivities } from '../../activities/ledger.js';
import type { Config } from '../config/index.js';
import type { PricingEngine } from '../domain/pricing.js';
import type { Logger } from '../lib/logger.js';

export interface WorkerDeps {
  config: Config;
  pool: Pool;
  pricing: PricingEngine;
  logger: Logger;
  clock?: () => number;
}

export async function createWorker(deps: WorkerDeps): Promise<{ worker: Worker; connection: NativeConnection }> {
  const connection = await NativeConnection.connect({ address: deps.config.temporal.address });
  const activities = createLedgerActivities({
    pool: deps.pool,
    pricing: deps.pricing,
    timezone: deps.config.timezone,
    clock: deps.clock ?? Date.now,
    logger: deps.logger.child({ component: 'activities' }),
  });
  const worker = await Worker.create({
    connection,
    namespace: deps.config.temporal.namespace,
    taskQueue: deps.config.temporal.taskQueue,
    activities,
  });
  return { worker, connection };
}
