import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';

/** The Temporal CLI the scripts provisioned (scripts/temporal-cli.sh); never downloaded. */
export function temporalCliPath(): string {
  const candidates = [
    process.env.TEMPORAL_CLI_PATH,
    join(process.env.COSTGUARD_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'costguard'), 'temporal-cli/v1.5.1/temporal'),
  ];
  const found = candidates.find((p): p is string => Boolean(p) && existsSync(p!));
  if (!found) throw new Error('Temporal CLI not found: run `bash scripts/temporal-cli.sh` (npm test does) or set TEMPORAL_CLI_PATH');
  return found;
}

/** A real Temporal dev server (in-memory) for one test file. */
export async function startTemporal(extraArgs: string[] = []): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalCliPath() },
      ip: '127.0.0.1',
      extraArgs: ['--log-level', 'error', ...extraArgs],
    },
  });
}
