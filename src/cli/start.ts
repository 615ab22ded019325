import { Client } from '@temporalio/client';
import { Redis } from 'ioredis';
import pg from 'pg';
import { type Config, ConfigError } from '../config/index.js';
import { resolveApiKeys } from '../api/auth.js';
import { buildApi } from '../api/server.js';
import { CostTracker } from '../client/index.js';
import { createLogger } from '../lib/logger.js';
import { startBanner } from './banner.js';
import { createMetrics } from '../metrics/index.js';
import { type MetricsServer, startMetricsServer } from '../metrics/server.js';
import { createPricingEngine } from '../pricing/index.js';
import { createRateLimitRedis } from '../redis/rate-limit.js';
import { connectTemporalClient } from '../temporal/connection.js';
import { ensureReportSchedules } from '../temporal/schedules.js';
import { registerSearchAttributes } from '../temporal/search-attributes.js';
import { BUDGET_WORKFLOW_TYPE, budgetWorkflowId } from '../messages.js';
import { createWorker } from '../worker/index.js';
import { createRealtimeView } from '../redis/realtime.js';

/** `system`, plus each team/project scope that has a budget of its own in the config. */
export function aggregateScopes(config: Config): string[] {
  const scopes = new Set(['system']);
  for (const b of config.budgets) if (/^(team|project):/.test(b.scope)) scopes.add(b.scope);
  return [...scopes];
}

/** What one `costguard start` process runs (`--no-api`, `--no-worker`). */
export interface StartRoles {
  worker: boolean;
  api: boolean;
}

/**
 * Runs the worker and/or the API in one process until SIGINT/SIGTERM, then shuts them down cleanly.
 * One Prometheus registry per process: the API serves it at GET /metrics (API key); a process
 * without the API serves it on the metrics listener (METRICS_PORT, unauthenticated, 0 = off).
 */
export async function startAll(config: Config, roles: StartRoles = { worker: true, api: true }): Promise<void> {
  if (!roles.worker && !roles.api) throw new ConfigError('nothing to run: --no-worker and --no-api together leave nothing to start');
  const logger = createLogger(config.logLevel, undefined, config.logFormat);
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 10 });
  pool.on('error', (err) => logger.error({ err }, 'idle PostgreSQL client error'));
  // Reconnects at most 500 ms apart (ioredis backs off to 2 s by default): after a Redis restart,
  // pre-flight checks answer again within a second.
  const redis = new Redis(config.redis.url, { lazyConnect: true, maxRetriesPerRequest: 3, retryStrategy: (times) => Math.min(times * 50, 500) });
  redis.on('error', (err) => logger.warn({ err: err.message }, 'Redis connection error'));
  await redis.connect();
  const pricing = createPricingEngine(config);
  const temporalConnection = await connectTemporalClient(config.temporal);
  const temporal = new Client({ connection: temporalConnection, namespace: config.temporal.namespace });
  const added = await registerSearchAttributes(temporal, config.temporal.namespace);
  if (added.length > 0) logger.info({ added }, 'registered search attributes');
  // Created or updated in place: restarting (or running several processes) never duplicates them.
  await ensureReportSchedules(temporal, config, logger);
  const metrics = createMetrics({ config, pool, logger: logger.child({ component: 'metrics' }) });
  const running = roles.worker ? await createWorker({ config, pool, redis, pricing, metrics, logger, client: temporal }) : undefined;
  const metricsServer: MetricsServer | undefined =
    !roles.api && config.metrics.port !== 0
      ? await startMetricsServer(metrics, { host: config.metrics.host, port: config.metrics.port, logger })
      : undefined;
  // The system budget (and every configured team/project budget) runs from start-up, whether or not
  // usage has arrived yet; starting an existing one is a no-op.
  for (const scope of aggregateScopes(config)) {
    await temporal.workflow.start(BUDGET_WORKFLOW_TYPE, {
      workflowId: budgetWorkflowId(scope),
      taskQueue: config.temporal.taskQueue,
      args: [{ scope }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      staticSummary: `Cost Guard budget for ${scope}`,
    });
  }
  let closeApi: () => Promise<void> = async () => undefined;
  let apiBase: string | undefined;
  let keyFileShown: string | null = null;
  if (roles.api) {
    const { keys, keyFile } = resolveApiKeys(config.api.keys, config.dataDir);
    // API: usage goes to the budget workflows through a CostTracker on the Temporal client above.
    const tracker = new CostTracker({
      client: temporal,
      taskQueue: config.temporal.taskQueue,
      ingestShards: config.ingest.shards,
      logger,
      // This process stops the API, then closes the tracker (which flushes), on SIGINT/SIGTERM itself.
      flushOnExit: false,
      preflight: { redis, pricing, keyPrefix: config.redis.keyPrefix, ...config.preflight, advice: config.advice, onDecision: (decision, reason) => metrics.recordPreflight(decision, reason ?? 'none') },
    });
    const realtime = createRealtimeView(redis, config.redis.keyPrefix);
    const rateLimitRedis = createRateLimitRedis(redis);
    rateLimitRedis.on('error', () => undefined); // reported by the main connection's handler above
    const api = buildApi({ pool, apiKeys: keys, logger, temporal, tracker, config, metrics, realtime, rateLimitRedis });
    let apiClosed: Promise<void> | undefined;
    /** Stops taking requests, then delivers every event already accepted (before the worker stops). */
    closeApi = () =>
      (apiClosed ??= (async () => {
        await api.close();
        await tracker.close();
        rateLimitRedis.disconnect();
      })().catch((err: unknown) => logger.error({ err }, 'error while closing the API')));
    await api.listen({ host: config.api.host, port: config.api.port });
    apiBase = `http://${config.api.host}:${config.api.port}`;
    keyFileShown = keyFile ?? null;
  }
  process.stdout.write(
    startBanner({
      ...(apiBase ? { apiBase, keyFile: keyFileShown } : {}),
      ...(metricsServer ? { metricsUrl: metricsServer.url } : {}),
      ...(running ? { worker: { taskQueue: config.temporal.taskQueue, alertTaskQueue: config.temporal.alertTaskQueue } } : {}),
      temporal: { address: config.temporal.address, namespace: config.temporal.namespace, uiUrl: config.temporal.uiUrl },
    }),
  );

  let stopping = false;
  let stopped!: () => void;
  const signalled = new Promise<void>((resolve) => (stopped = resolve));
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // The SDK's runtime may already have begun stopping the worker on this signal.
    void closeApi().finally(() => {
      if (running?.worker.getState() === 'RUNNING') running.worker.shutdown();
      stopped();
    });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  try {
    await (running ? running.worker.run() : signalled);
  } finally {
    await closeApi();
    await metricsServer?.close();
    await running?.connection.close();
    await temporalConnection.close();
    redis.disconnect();
    await pool.end();
    logger.info('stopped');
  }
}
