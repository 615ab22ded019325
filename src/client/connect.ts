import { Client, type Connection } from '@temporalio/client';
import type { Config } from '../config/index.js';
import { connectTemporalClient } from '../temporal/connection.js';

/**
 * Connects a Temporal client for the CLI and for CostTracker users, with the TLS and API key of
 * `config.temporal`; an unreachable or refusing server is an UnavailableError (exit 5) saying what to set.
 */
export async function connectTemporal(
  config: Pick<Config, 'temporal'>,
  opts: { connectTimeoutMs?: number } = {},
): Promise<{ client: Client; connection: Connection }> {
  const connection = await connectTemporalClient(config.temporal, { connectTimeoutMs: opts.connectTimeoutMs ?? 5_000 });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), connection };
}
