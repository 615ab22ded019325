import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import { expect, it } from 'vitest';
import { projectRoot } from '../../src/lib/paths.js';
import { quietTemporalRuntime, workflowBundle } from '../integration/helpers/stack.js';

const dir = join(projectRoot(), 'test/replay/histories');
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

it('has recorded histories to replay', () => {
  expect(files.length).toBeGreaterThanOrEqual(4);
});

// Every module the workflows import is evaluated again for each workflow the worker loads: zod's
// schemas there cost each budget workflow about 40 ms of CPU and a megabyte of heap.
it('bundles the workflows without zod', async () => {
  const { code } = await workflowBundle();
  expect(code).toContain('./src/domain/budget-state.ts');
  expect(code).not.toContain('./node_modules/zod/');
});

// Determinism check: every recorded history must replay against today's workflow code.
it.each(files)('replays %s without a determinism error', async (file) => {
  quietTemporalRuntime();
  // The worker parses the JSON export itself (its own protobuf types).
  const { workflowId, history } = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { workflowId: string; history: unknown };
  await expect(Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, workflowId)).resolves.toBeUndefined();
});
