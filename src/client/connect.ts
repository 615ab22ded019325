import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config/index.js';
import { UnavailableError } from '../domain/errors.js';

/** Connects a Temporal client for the CLI; an unreachable server is an UnavailableError (exit 5). */
export async function connectTemporal(
  config: Pick<Config, 'temporal'>,
  opts: { connectTimeoutMs?: number } = {},
): Promise<{ client: Client; connection: Connection }> {
  const { address, namespace } = config.temporal;
  let connection: Connection;
  try {
    connection = await Connection.connect({ address, connectTimeout: opts.connectTimeoutMs ?? 5_000 });
  } catch (err) {
    throw new UnavailableError(`cannot reach Temporal at ${address}: ${(err as Error).message}`, { cause: err });
  }
  return { client: new Client({ connection, namespace }), connection };
}
