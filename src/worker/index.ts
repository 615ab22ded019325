/**
 * The worker: builds the clients once and hands them to the activity factories; runs the workflows
 * from workflows/ (bundled once at start).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import { createActivities } from '../../activities/index.js';
import type { Config } from '../config/index.js';
import type { PricingEngine } from '../domain/pricing.js';
import type { Logger } from '../lib/logger.js';
import type { CostGuardMetrics } from '../metrics/index.js';

export interface WorkerDeps {
  config: Config;
  pool: Pool;
  redis: Redis;
  pricing: PricingEngine;
  /** This process's registry (`createMetrics`); serve it with startMetricsServer or the API. */
  metrics: CostGuardMetrics;
  logger: Logger;
  clock?: () => number;
  /** A pre-built bundle (tests build one per file); otherwise workflows/ is bundled at start. */
  workflowBundle?: WorkflowBundleWithSourceMap;
  connection?: NativeConnection;
  /** A client for activities that start workflows (alerts); one is connected when absent. */
  client?: Client;
}

/** workflows/index.js next to the compiled code, or workflows/index.ts when running from source. */
export function workflowsPath(): string {
  const js = fileURLToPath(new URL('../../workflows/index.js', import.meta.url));
  return existsSync(js) ? js : js.replace(/\.js$/, '.ts');
}

export async function createWorker(deps: WorkerDeps): Promise<{ worker: Worker; connection: NativeConnection; close(): Promise<void> }> {
  const connection = deps.connection ?? (await NativeConnection.connect({ address: deps.config.temporal.address }));
  const clientConnection = deps.client ? null : await Connection.connect({ address: deps.config.temporal.address });
  const client = deps.client ?? new Client({ connection: clientConnection!, namespace: deps.config.temporal.namespace });
  const activities = createActivities({
    pool: deps.pool,
    redis: deps.redis,
    config: deps.config,
    pricing: deps.pricing,
    metrics: deps.metrics,
    logger: deps.logger.child({ component: 'activities' }),
    clock: deps.clock ?? Date.now,
    temporal: () => client,
  });
  const worker = await Worker.create({
    connection,
    namespace: deps.config.temporal.namespace,
    taskQueue: deps.config.temporal.taskQueue,
    activities,
    ...(deps.workflowBundle ? { workflowBundle: deps.workflowBundle } : { workflowsPath: workflowsPath() }),
  });
  return {
    worker,
    connection,
    /** Closes what createWorker opened (after the worker stopped). */
    async close() {
      await clientConnection?.close();
      if (!deps.connection) await connection.close();
    },
  };
}
