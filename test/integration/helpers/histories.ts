import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { projectRoot } from '../../../src/lib/paths.js';
import { temporalCliPath } from './temporal.js';

const run = promisify(execFile);

/**
 * With RECORD_HISTORIES=1, saves a workflow's history (the Temporal CLI's JSON export, the same
 * format the Web UI downloads) under test/replay/histories/, which test/replay/replay.test.ts
 * replays against the current workflow code in every CI run.
 */
export async function recordHistory(address: string, handle: WorkflowHandle, name: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const { stdout } = await run(temporalCliPath(), ['workflow', 'show', '--workflow-id', handle.workflowId, '--address', address, '--output', 'json'], {
    maxBuffer: 64 * 1024 * 1024,
  });
  const dir = join(projectRoot(), 'test/replay/histories');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify({ workflowId: handle.workflowId, history: JSON.parse(stdout) })}\n`);
}
