import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { normalizeAmount } from '../../src/domain/money.js';
import { BUDGET_WORKFLOW_TYPE, budgetWorkflowId, statusQuery, usageSignal } from '../../src/messages.js';
import type { UsageBatch } from '../../src/domain/usage.js';
import { recordHistory } from './helpers/histories.js';
import { spawnWorkerProcess } from './helpers/worker-process.js';
import { type Stack, eventually, startStack } from './helpers/stack.js';

let stack: Stack;
const children: ChildProcess[] = [];

/** Starts a worker in a child process of its own (so the test can SIGKILL it). */
async function spawnWorker(env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = await spawnWorkerProcess(stack, env);
  children.push(child);
  return child;
}

beforeAll(async () => {
  stack = await startStack({ noWorker: true });
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (stack) await recordHistory(stack.env.address, stack.client.workflow.getHandle(budgetWorkflowId('user:dana')), 'budget-user-dana-worker-crash').catch((e: unknown) => console.warn('recordHistory failed:', e));
  if (stack) await recordHistory(stack.env.address, stack.client.workflow.getHandle(budgetWorkflowId('user:gus')), 'budget-user-gus-flush-result-lost').catch((e: unknown) => console.warn('recordHistory failed:', e));
  await stack?.stop();
});

const events = (prefix: string, n: number, userId = 'dana') =>
  Array.from({ length: n }, (_, i) => ({
    requestId: `${prefix}-${i}`,
    occurredAt: new Date().toISOString(),
    provider: 'anthropic',
    model: 'claude-3-5-sonnet-20241022',
    userId,
    usage: { inputTokens: 1000 + i, cacheReadTokens: 200, outputTokens: 50 },
  }));

async function send(batch: UsageBatch, scope = 'user:dana') {
  await stack.client.workflow.signalWithStart(BUDGET_WORKFLOW_TYPE, {
    workflowId: budgetWorkflowId(scope),
    taskQueue: stack.taskQueue,
    args: [{ scope }],
    signal: usageSignal,
    signalArgs: [batch],
  });
}

it('loses nothing and counts nothing twice when the worker is killed in the middle of a flush', async () => {
  const first = await spawnWorker();
  const handle = stack.client.workflow.getHandle(budgetWorkflowId('user:dana'));
  await send({ batchId: 'crash:1', events: events('pre', 5) });
  await eventually(() => handle.query(statusQuery), (s) => s.counters.eventsCounted === 5, 30_000, 'first batch counted');

  // Hold the ledger so the next flush blocks inside its INSERT, then kill the worker there.
  const locker = new pg.Client({ connectionString: stack.config.databaseUrl });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE usage_ledger IN SHARE ROW EXCLUSIVE MODE');
  await send({ batchId: 'crash:2', events: events('mid', 5) });
  await eventually(
    async () => (await stack.pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO usage_ledger%'`)).rows[0].n,
    (n) => n > 0,
    30_000,
    'flush blocked in its insert',
  );
  first.kill('SIGKILL');
  await once(first, 'exit');
  await locker.query('COMMIT');
  await locker.end();

  // A new worker picks the workflow and the flush up (after the heartbeat timeout).
  await spawnWorker();
  await send({ batchId: 'crash:3', events: events('post', 5) });
  const s = await eventually(() => handle.query(statusQuery), (x) => x.counters.eventsCounted === 15, 60_000, 'all batches counted');
  const ledger = await stack.pool.query<{ n: number; cost: string }>(`SELECT count(*)::int AS n, sum(cost_usd)::text AS cost FROM usage_ledger WHERE user_id = 'dana'`);
  expect(ledger.rows[0]!.n).toBe(15);
  expect(s.budgets[0]!.spentUsd).toBe(normalizeAmount(ledger.rows[0]!.cost));
  expect(s.budgets[0]!.totals.calls).toBe(15);
  const rollup = await stack.pool.query(`SELECT cost_usd::text AS c, calls::int AS n FROM usage_rollup_totals WHERE scope = 'user:dana' AND period_kind = 'day'`);
  expect({ c: normalizeAmount(rollup.rows[0].c), n: rollup.rows[0].n }).toEqual({ c: normalizeAmount(ledger.rows[0]!.cost), n: 15 });
});

it('counts a flush whose commit outlived its worker once, when the replayed flush comes back with more events', async () => {
  // The first worker's Redis never answers: its flush commits to the ledger, then hangs in the
  // real-time update, and the worker dies there, before the workflow task that ran the flush
  // completes. Its result is lost; the ledger has the events under the flush's id.
  for (const c of children.filter((c) => c.exitCode === null && c.signalCode === null)) {
    c.kill('SIGKILL');
    await once(c, 'exit');
  }
  const blackhole = createServer(() => undefined);
  blackhole.listen(0, '127.0.0.1');
  await once(blackhole, 'listening');
  const port = (blackhole.address() as AddressInfo).port;
  const first = await spawnWorker({ REDIS_URL: `redis://127.0.0.1:${port}` });
  const handle = stack.client.workflow.getHandle(budgetWorkflowId('user:gus'));
  await send({ batchId: 'lost:1', events: events('lost', 5, 'gus') }, 'user:gus');
  const inLedger = async () => (await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM usage_ledger WHERE user_id = 'gus'`)).rows[0]!.n;
  await eventually(inLedger, (n) => n === 5, 30_000, 'the first flush committed');
  first.kill('SIGKILL');
  await once(first, 'exit');
  blackhole.close();

  // More usage arrives before the workflow task times out: the replay's first flush (same flush id)
  // now holds these too. Every event must be counted exactly once.
  await send({ batchId: 'lost:2', events: events('late', 5, 'gus') }, 'user:gus');
  await spawnWorker();
  const s = await eventually(() => handle.query(statusQuery), (x) => x.counters.eventsCounted === 10, 60_000, 'both batches counted');
  const ledger = await stack.pool.query<{ n: number; cost: string }>(`SELECT count(*)::int AS n, sum(cost_usd)::text AS cost FROM usage_ledger WHERE user_id = 'gus'`);
  expect(ledger.rows[0]!.n).toBe(10);
  expect(s.budgets[0]!.spentUsd).toBe(normalizeAmount(ledger.rows[0]!.cost));
  expect(s.budgets[0]!.totals.calls).toBe(10);
  // The replayed first flush found its five events in the ledger under its id (none is a duplicate).
  expect(s.counters).toMatchObject({ eventsCounted: 10, duplicateEvents: 0 });
  // The real-time view got every event too (written by the flush that completed).
  const calls = await stack.redis.zcard(`${stack.redisPrefix}calls:user:gus`);
  expect(calls).toBe(10);
});
