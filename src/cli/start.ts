import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Config } from '../config/index.js';
import { resolveApiKeys } from '../api/auth.js';
import { buildApi } from '../api/server.js';
import { createLogger } from '../lib/logger.js';
import { createPricingEngine } from '../pricing/index.js';
import { registerSearchAttributes } from '../temporal/search-attributes.js';
import { createWorker } from '../worker/index.js';

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
  const { worker, connection } = await createWorker({ config, pool, redis, pricing, logger });
  const { keys, keyFile } = resolveApiKeys(config.api.keys, config.dataDir);
  const api = buildApi({ pool, apiKeys: keys, logger });
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
    worker.shutdown();
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  try {
    await worker.run();
  } finally {
    await api.close();
    await connection.close();
    await temporalConnection.close();
    redis.disconnect();
    await pool.end();
    logger.info('stopped');
  }
}
