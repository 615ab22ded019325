import { fileURLToPath } from 'node:url';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLedgerActivities, type UsageBatchInput } from '../../activities/ledger.js';
import type { FlushResult } from '../../src/domain/ledger.js';
import { loadConfig } from '../../src/config/index.js';
import { PricingEngine } from '../../src/domain/pricing.js';
import { createLogger } from '../../src/lib/logger.js';
import { createMetrics } from '../../src/metrics/index.js';
import { loadCatalog } from '../../src/pricing/genai-catalog.js';
import { parsePromText, sumOf } from '../prom-text.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { startTemporal } from './helpers/temporal.js';

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  [env, db, bundle] = await Promise.all([
    startTemporal(),
    createTestDatabase(),
    bundleWorkflowCode({ workflowsPath: fileURLToPath(new URL('../fixtures/workflows/ledger-retry.ts', import.meta.url)), logger: { log: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined, trace: () => undefined } }),
  ]);
});
afterAll(async () => {
  await env?.teardown();
  await db?.drop();
});

it('returns the first attempt\'s result when Temporal retries the activity after its commit, and counts it once in the metrics', async () => {
  const metrics = createMetrics({ config: loadConfig({}), processMetrics: false });
  const real = createLedgerActivities({
    pool: db.pool,
    pricing: new PricingEngine(loadCatalog()),
    timezone: 'UTC',
    clock: Date.now,
    logger: createLogger('silent'),
    metrics,
  });
  const attempts: FlushResult[] = [];
  // Attempt 1 commits, then its completion is lost (here: it fails after the commit, which Temporal
  // treats the same way: it retries with the same input).
  const activities = {
    async recordUsageBatch(batch: UsageBatchInput): Promise<FlushResult> {
      const result = await real.recordUsageBatch(batch);
      attempts.push(result);
      if (attempts.length === 1) throw ApplicationFailure.retryable('completion lost after commit', 'LostCompletion');
      return result;
    },
  };
  const taskQueue = 'ledger-retry';
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities });
  const occurredAt = new Date().toISOString();
  const batch: UsageBatchInput = {
    batchId: 'batch-lost-completion',
    events: [
      { requestId: 'e1', occurredAt, provider: 'openai', model: 'gpt-4o-mini', userId: 'u', usage: { inputTokens: 1000, outputTokens: 100 } },
      { requestId: 'e2', occurredAt, provider: 'openai', model: 'gpt-4o-mini', userId: 'u', usage: { inputTokens: 2000, outputTokens: 200 } },
    ],
  };
  const result: FlushResult = await worker.runUntil(
    env.client.workflow.execute('recordOnce', { taskQueue, workflowId: 'ledger-retry-1', args: [batch] }),
  );
  expect(attempts).toHaveLength(2);
  expect(result).toEqual(attempts[0]);
  expect(result).toMatchObject({ duplicates: 0, rejected: [] });
  expect(result.counted.map((c) => [c.requestId, c.costUsd, c.model])).toEqual([['e1', '0.00021', 'gpt-4o-mini'], ['e2', '0.00042', 'gpt-4o-mini']]);
  const ledger = await db.pool.query<{ n: number; cost: string }>('SELECT count(*)::int AS n, sum(cost_usd)::text AS cost FROM usage_ledger');
  expect(ledger.rows[0]).toEqual({ n: 2, cost: '0.00063' });
  // Two attempts, one stored: the Prometheus counters hold each event once.
  const samples = parsePromText(await metrics.render());
  expect(sumOf(samples, 'llm_api_calls_total')).toBe(2);
  expect(sumOf(samples, 'llm_cost_usd_total')).toBeCloseTo(0.00063, 12);
  expect(sumOf(samples, 'llm_token_usage_sum', { kind: 'input' })).toBe(3000);
  expect(sumOf(samples, 'costguard_flush_duration_seconds_count', { outcome: 'stored' })).toBe(1);
  expect(sumOf(samples, 'costguard_flush_duration_seconds_count', { outcome: 'replayed' })).toBe(1);
});
