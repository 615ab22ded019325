import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Config } from '../config/index.js';
import { resolveApiKeys } from '../api/auth.js';
import { buildApi } from '../api/server.js';
import { CostTracker } from '../client/index.js';
import { createLogger } from '../lib/logger.js';
import { createPricingEngine } from '../pricing/index.js';
import { ensureReportSchedules } from '../temporal/schedules.js';
import { registerSearchAttributes } from '../temporal/search-attributes.js';
import { BUDGET_WORKFLOW_TYPE, budgetWorkflowId } from '../messages.js';
import { createWorker } from '../worker/index.js';

/** `system`, plus each team/project scope that has a budget of its own in the config. */
export function aggregateScopes(config: Config): string[] {
  const scopes = new Set(['system']);
  for (const b of config.budgets) if (/^(team|project):/.test(b.scope)) scopes.add(b.scope);
  return [...scopes];
}

/** Runs the worker and the API in one process until SIGINT/SIGTERM, then shuts both down cleanly. */
export async function startAll(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel);
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 10 });
  pool.on('error', (err) => logger.error({ err }, 'idle PostgreSQL client error'));
  const redis = new Redis(config.redis.url, { lazyConnect: true, maxRetriesPerRequest: 3 });
  redis.on('error', (err) => logger.warn({ err: err.message }, 'Redis connection error'));
  await redis.connect();
  const pricing = createPricingEngine(config);
  const temporalConnection = await Connection.connect({ address: config.temporal.address });
  const temporal = new Client({ connection: temporalConnection, namespace: config.temporal.namespace });
  const added = await registerSearchAttributes(temporal, config.temporal.namespace);
  if (added.length > 0) logger.info({ added }, 'registered search attributes');
  // Created or updated in place: restarting (or running several processes) never duplicates them.
  await ensureReportSchedules(temporal, config, logger);
  const { worker, connection } = await createWorker({ config, pool, redis, pricing, logger, client: temporal });
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
  const { keys, keyFile } = resolveApiKeys(config.api.keys, config.dataDir);
  // API: usage goes to the budget workflows through a CostTracker on the Temporal client above.
  const tracker = new CostTracker({ client: temporal, taskQueue: config.temporal.taskQueue, logger });
  const api = buildApi({ pool, apiKeys: keys, logger, temporal, tracker, config });
  let apiClosed: Promise<void> | undefined;
  /** Stops taking requests, then delivers every event already accepted (before the worker stops). */
  const closeApi = () =>
    (apiClosed ??= (async () => {
      await api.close();
      await tracker.close();
    })().catch((err: unknown) => logger.error({ err }, 'error while closing the API')));
  await api.listen({ host: config.api.host, port: config.api.port });

  const base = `http://${config.api.host}:${config.api.port}`;
  process.stdout.write(
    [
      'Cost Guard is running.',
      `  API:         ${base}  (health: ${base}/healthz)`,
      `  API key:     ${keyFile ? `in ${keyFile} (send it as the x-api-key header)` : 'from API_KEYS'}`,
      `  Temporal:    ${config.temporal.address}, namespace ${config.temporal.namespace}, task queue ${config.temporal.taskQueue}`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // The SDK's runtime may already have begun stopping the worker on this signal.
    void closeApi().finally(() => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  try {
    await worker.run();
  } finally {
    await closeApi();
    await connection.close();
    await temporalConnection.close();
    redis.disconnect();
    await pool.end();
    logger.info('stopped');
  }
}
