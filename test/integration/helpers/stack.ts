/**
 * The real stack for integration tests: a Temporal dev server (or, with COSTGUARD_TEST_TEMPORAL=cluster,
 * a namespace of its own on the mTLS cluster of scripts/cluster.sh), a migrated PostgreSQL database of
 * its own, a Redis key prefix of its own, and a worker running the real budget workflow and activities.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry, Runtime, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { Redis } from 'ioredis';
import pg from 'pg';

const pgPool = pg.Pool;
import { type Config, loadConfig } from '../../../src/config/index.js';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../../src/api/server.js';
import { CostTracker } from '../../../src/client/index.js';
import { type Logger, createLogger } from '../../../src/lib/logger.js';
import { type CostGuardMetrics, createMetrics } from '../../../src/metrics/index.js';
import { BUDGET_WORKFLOW_TYPE, budgetWorkflowId, usageSignal } from '../../../src/messages.js';
import type { UsageBatch } from '../../../src/domain/usage.js';
import { createPricingEngine } from '../../../src/pricing/index.js';
import { registerSearchAttributes } from '../../../src/temporal/search-attributes.js';
import { type CostGuardWorker, createWorker, workflowsPath } from '../../../src/worker/index.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { type ClusterNamespace, clusterNamespace, temporalTarget } from './cluster.js';
import { startTemporal } from './temporal.js';

let runtimeInstalled = false;
/**
 * Quiet the SDK's own logging in test output (once per process, as the SDK requires). `sink`, given
 * by the first caller, receives every warning and error of the worker runtime (activity retries,
 * workflow task failures) instead of the console, for tests that check nothing is retried for ever.
 */
export function quietTemporalRuntime(sink?: (entry: LogEntry) => void): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: sink ? new DefaultLogger('WARN', sink) : new DefaultLogger('WARN') });
}

const silentWebpackLogger = { log() {}, info() {}, warn() {}, error() {}, debug() {}, trace() {} };
let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflows bundled once per test file (process). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: silentWebpackLogger });
  return bundle;
}

/** Reconnect quickly after a Redis restart (the default backs off to 2 s). */
const redisRetry = (times: number) => Math.min(times * 50, 500);

export interface Stack {
  env: TestWorkflowEnvironment;
  client: Client;
  /** The dev server of this file, or a namespace of its own on the cluster. */
  target: 'dev' | 'cluster';
  /** False on the cluster: its dynamic config is a file of the server's, not per test. */
  temporalArgsApplied: boolean;
  taskQueue: string;
  db: TestDatabase;
  pool: pg.Pool;
  redis: Redis;
  redisPrefix: string;
  config: Config;
  /** The workers' Prometheus registry (one for the whole stack, as in one process). */
  metrics: CostGuardMetrics;
  worker: CostGuardWorker;
  /** Starts another worker (e.g. after stopping the first). */
  startWorker(): Promise<CostGuardWorker>;
  stopWorker(): Promise<void>;
  stop(): Promise<void>;
}

export interface StackOptions {
  /** YAML config file content (budgets, budgetWorkflow, pricing...). */
  configYaml?: string;
  /** Extra arguments for `temporal server start-dev` (e.g. dynamic config); not applied on the cluster (see `temporalArgsApplied`). */
  temporalArgs?: string[];
  /** Start without a worker (tests that run the worker in another process). */
  noWorker?: boolean;
  /** Use this running server (e.g. startPersistentTemporal) instead of an in-memory one. */
  temporalAddress?: string;
  /** Rewrites the database and Redis URLs the stack's config (and so its worker and API) use, e.g. through a proxy. */
  rewriteDatabaseUrl?: (url: string) => string;
  rewriteRedisUrl?: (url: string) => string;
}

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  quietTemporalRuntime();
  const onCluster = !opts.temporalAddress && temporalTarget() === 'cluster';
  const [temporal, db, workflowBundleBuilt] = await Promise.all([
    opts.temporalAddress ? TestWorkflowEnvironment.createFromExistingServer({ address: opts.temporalAddress }) : onCluster ? clusterNamespace() : startTemporal(opts.temporalArgs),
    createTestDatabase(),
    workflowBundle(),
  ]);
  const cluster = onCluster ? (temporal as ClusterNamespace) : undefined;
  const env = cluster ? cluster.env : (temporal as TestWorkflowEnvironment);
  const redisPrefix = `costguard-test:${randomBytes(4).toString('hex')}:`;
  const taskQueue = `costguard-test-${randomBytes(4).toString('hex')}`;
  let configPath: string | undefined;
  if (opts.configYaml) {
    configPath = join(mkdtempSync(join(tmpdir(), 'cg-stack-')), 'costguard.yaml');
    writeFileSync(configPath, opts.configYaml);
  }
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const config = loadConfig({
    DATABASE_URL: opts.rewriteDatabaseUrl ? opts.rewriteDatabaseUrl(db.url) : db.url,
    REDIS_URL: opts.rewriteRedisUrl ? opts.rewriteRedisUrl(redisUrl) : redisUrl,
    REDIS_KEY_PREFIX: redisPrefix,
    TEMPORAL_ADDRESS: env.address,
    ...cluster?.connectionEnv,
    TEMPORAL_TASK_QUEUE: taskQueue,
    LOG_LEVEL: 'silent',
    ...(configPath ? { COSTGUARD_CONFIG: configPath } : {}),
  });
  const redis = new Redis(config.redis.url, { maxRetriesPerRequest: 3, retryStrategy: redisRetry });
  redis.on('error', () => undefined);
  // The worker's own pool: through the rewritten URL when one is given (the test's assertions keep
  // using the direct pool).
  const workerPool = opts.rewriteDatabaseUrl ? new pgPool({ connectionString: config.databaseUrl, max: 10 }) : db.pool;
  workerPool.on('error', () => undefined);
  await registerSearchAttributes(env.client, config.temporal.namespace);
  if (cluster) await clusterSearchAttributesVisible(env.client, config.temporal.namespace);
  const logger = createLogger('silent');
  const pricing = createPricingEngine(config);
  const metrics = createMetrics({ config, pool: db.pool, logger });

  let running: { worker: CostGuardWorker; done: Promise<void> } | undefined;
  const startWorker = async () => {
    const { worker } = await createWorker({
      config,
      pool: workerPool,
      redis,
      pricing,
      metrics,
      logger,
      workflowBundle: workflowBundleBuilt,
      connection: env.nativeConnection,
      client: env.client,
    });
    running = { worker, done: worker.run() };
    return worker;
  };
  const stopWorker = async () => {
    if (!running) return;
    const r = running;
    running = undefined;
    r.worker.shutdown();
    await r.done;
  };
  const worker = opts.noWorker ? (undefined as unknown as CostGuardWorker) : await startWorker();

  return {
    env,
    client: env.client,
    target: cluster ? 'cluster' : 'dev',
    temporalArgsApplied: !cluster,
    taskQueue,
    db,
    pool: db.pool,
    redis,
    redisPrefix,
    config,
    metrics,
    worker,
    startWorker,
    stopWorker,
    async stop() {
      await stopWorker().catch(() => undefined);
      await (cluster ? cluster.teardown() : env.teardown()).catch(() => undefined);
      const keys = await redis.keys(`${redisPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
      if (workerPool !== db.pool) await workerPool.end().catch(() => undefined);
      await db.drop();
    },
  };
}

/** The cluster's SQL visibility maps new search attributes onto its columns: wait until they are listed. */
async function clusterSearchAttributesVisible(client: Client, namespace: string): Promise<void> {
  await eventually(
    async () => Object.keys((await client.connection.operatorService.listSearchAttributes({ namespace })).customAttributes ?? {}),
    (names) => names.includes('CostScopeKind'),
    30_000,
    'search attributes on the cluster',
  );
}

/** Signals a usage batch to a scope's budget workflow, starting it if needed (as CostTracker does). */
export async function sendUsage(stack: Pick<Stack, 'client' | 'taskQueue'>, scope: string, batch: UsageBatch): Promise<void> {
  await stack.client.workflow.signalWithStart(BUDGET_WORKFLOW_TYPE, {
    workflowId: budgetWorkflowId(scope),
    taskQueue: stack.taskQueue,
    args: [{ scope }],
    signal: usageSignal,
    signalArgs: [batch],
  });
}

/** Polls `probe` until `accept` holds (or the deadline passes, then fails with the last value). */
export async function eventually<T>(probe: () => Promise<T>, accept: (v: T) => boolean, timeoutMs = 30_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (accept(last)) return last;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}${lastError ? `; last error: ${String(lastError)}` : ''}`);
}

export interface StackApi {
  app: FastifyInstance;
  /** The API's CostTracker (on the stack's client). */
  tracker: CostTracker;
  /** Closes the API, then delivers what its tracker still holds. */
  close(): Promise<void>;
}

/** The HTTP API over the stack, as `costguard start` builds it, ready for `app.inject`. */
export async function startApi(stack: Stack, apiKey: string, opts: { logger?: Logger; lingerMs?: number } = {}): Promise<StackApi> {
  const tracker = new CostTracker({
    client: stack.client,
    taskQueue: stack.taskQueue,
    ingestShards: stack.config.ingest.shards,
    ...(opts.lingerMs !== undefined ? { lingerMs: opts.lingerMs } : {}),
    preflight: { redis: stack.redis, pricing: createPricingEngine(stack.config), keyPrefix: stack.config.redis.keyPrefix, ...stack.config.preflight, advice: stack.config.advice, onDecision: (d, r) => stack.metrics.recordPreflight(d, r ?? 'none') },
  });
  const app = buildApi({
    pool: stack.pool,
    apiKeys: [apiKey],
    logger: opts.logger ?? createLogger('silent'),
    temporal: stack.client,
    tracker,
    config: stack.config,
    metrics: stack.metrics,
  });
  await app.ready();
  return {
    app,
    tracker,
    async close() {
      await app.close();
      await tracker.close();
    },
  };
}
