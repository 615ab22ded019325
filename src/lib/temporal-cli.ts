/**
 * Where the Temporal CLI that scripts/temporal-cli.sh provisions lives (it is never downloaded):
 * `TEMPORAL_CLI_PATH`, else the cache directory. Used by the tests and the benchmarks, which start
 * dev servers of their own; `env` is passed in (nothing in src/ reads process.env directly).
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const TEMPORAL_CLI_VERSION = 'v1.5.1';

export function findTemporalCli(env: Record<string, string | undefined>): string {
  const cache = env.COSTGUARD_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'costguard');
  const found = [env.TEMPORAL_CLI_PATH, join(cache, `temporal-cli/${TEMPORAL_CLI_VERSION}/temporal`)].find((p): p is string => Boolean(p) && existsSync(p!));
  if (!found) throw new Error('Temporal CLI not found: run `bash scripts/temporal-cli.sh` (npm test and npm run bench do) or set TEMPORAL_CLI_PATH');
  return found;
}
