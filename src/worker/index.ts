/**
 * The worker: builds the clients once and hands them to the activity factories; runs the workflows
 * from workflows/ (bundled once at start) on two task queues: the main one (budget and report
 * workflows, whose flushes run as local activities inside their workflow tasks) and the alert one
 * (alert workflows and their channel deliveries), each with its own pollers and slots, so a burst of
 * ingestion never makes a notification wait for a workflow-task slot.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { NativeConnection, Runtime, type State, Worker, type WorkflowBundleWithSourceMap, bundleWorkflowCode } from '@temporalio/worker';
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import { createActivities } from '../../activities/index.js';
import type { Config } from '../config/index.js';
import { UnavailableError } from '../domain/errors.js';
import { connectTemporalClient, explainConnectFailure, temporalConnectionOptions } from '../temporal/connection.js';
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

/** The worker's NativeConnection, TLS and API key included; a failure says what to set. */
export async function connectNative(temporal: Config['temporal']): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect(temporalConnectionOptions(temporal));
  } catch (err) {
    throw new UnavailableError(await explainConnectFailure(temporal, err), { cause: err });
  }
}

/** workflows/index.js next to the compiled code, or workflows/index.ts when running from source. */
export function workflowsPath(): string {
  const js = fileURLToPath(new URL('../../workflows/index.js', import.meta.url));
  return existsSync(js) ? js : js.replace(/\.js$/, '.ts');
}

export async function createWorker(deps: WorkerDeps): Promise<{ worker: CostGuardWorker; connection: NativeConnection; close(): Promise<void> }> {
  const connection = deps.connection ?? (await connectNative(deps.config.temporal));
  const clientConnection = deps.client ? null : await connectTemporalClient(deps.config.temporal);
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
  const workflowBundle = deps.workflowBundle ?? (await bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: Runtime.instance().logger }));
  const common = { connection, namespace: deps.config.temporal.namespace, activities, workflowBundle };
  const worker = new CostGuardWorker(
    // Two workflow threads: budget-workflow activations use the second core while the main thread
    // runs their local-activity flushes.
    await Worker.create({ ...common, taskQueue: deps.config.temporal.taskQueue, workflowThreadPoolSize: 2 }),
    await Worker.create({ ...common, taskQueue: deps.config.temporal.alertTaskQueue }),
  );
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

/**
 * The main worker and the alert worker, run and stopped together (the surface of the SDK's Worker
 * that the CLI and the tests use).
 */
export class CostGuardWorker {
  constructor(
    readonly main: Worker,
    readonly alerts: Worker,
  ) {}

  getState(): State {
    return this.main.getState();
  }

  /** Starts stopping both (idempotent); `run()` resolves once both have drained. */
  shutdown(): void {
    for (const w of [this.main, this.alerts]) if (w.getState() === 'RUNNING') w.shutdown();
  }

  /** Runs both until shutdown; if one fails, the other is stopped and the failure is thrown. */
  async run(): Promise<void> {
    const outcomes = await Promise.allSettled([this.main, this.alerts].map((w) => w.run().finally(() => this.shutdown())));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Runs both while `work` runs, then stops them; rejects if a worker fails first. */
  async runUntil<R>(work: Promise<R>): Promise<R> {
    const running = this.run();
    const stoppedEarly = running.then(() => {
      throw new Error('the worker stopped before the work was done');
    });
    try {
      return await Promise.race([work, stoppedEarly]);
    } finally {
      this.shutdown();
      await running.catch(() => undefined);
    }
  }
}
