/**
 * Pre-flight checks on the real stack: budget workflows grant leases in Redis, checks reserve on
 * every scope at once, usage events settle their holds after the ledger commit. The stack runs on a
 * Redis server of its own (started here), so the test can flush and restart it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { setScopeBudgets } from '../../src/client/budgets.js';
import type { CostTracker } from '../../src/client/index.js';
import type { AuthorizeResult } from '../../src/client/preflight.js';
import { Dec } from '../../src/domain/money.js';
import { periodAt } from '../../src/domain/periods.js';
import { createLeaseStore } from '../../src/redis/leases.js';
import { projectRoot } from '../../src/lib/paths.js';
import { budgetWorkflowId, statusQuery } from '../../src/messages.js';
import { recordHistory } from './helpers/histories.js';
import { spawnWorkerProcess, stackProcessEnv } from './helpers/worker-process.js';
import { eventually, type Stack, type StackApi, startApi, startStack } from './helpers/stack.js';

const KEY = 'cg_preflight_test_key_0123456789';
const THRESHOLDS = { warning: 0.8, critical: 0.95 };
let redisPort = 0;
let redisServer: ChildProcess | undefined;
let stack: Stack;
let api: StackApi;
let tracker: CostTracker;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<void> {
  redisServer = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const probe = new Redis(redisPort, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  await eventually(async () => {
    await probe.connect().catch(() => undefined);
    return probe.ping();
  }, (p) => p === 'PONG', 10_000, 'redis-server up');
  probe.disconnect();
}

async function stopRedis(): Promise<void> {
  const r = redisServer;
  redisServer = undefined;
  if (!r || r.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    r.once('exit', () => resolve());
    r.kill('SIGKILL');
  });
}

beforeAll(async () => {
  redisPort = await freePort();
  await startRedis();
  stack = await startStack({
    configYaml: `budgets:
  - { scope: system, period: day, amount: "100000", thresholds: { warning: 0.8, critical: 0.95 } }
pricing:
  overrides:
    - { provider: test, model: race-model, inputPer1k: "0", outputPer1k: "1" }
ingest: { shards: 2, lingerMs: 30 }
preflight: { holdTtlMs: 20000, maxHoldTtlMs: 120000, refillTimeoutMs: 10000, unknownPriceUsd: "0.10" }
`,
    rewriteRedisUrl: () => `redis://127.0.0.1:${redisPort}`,
  });
  api = await startApi(stack, KEY, { lingerMs: 20 });
  tracker = api.tracker;
}, 120_000);

afterAll(async () => {
  // A budget workflow that granted leases (updates running activities), its budget changed once.
  if (stack) await recordHistory(stack.env.address, stack.client.workflow.getHandle(budgetWorkflowId('user:basic')), 'budget-user-leases').catch(() => undefined);
  await api?.close();
  await stack?.stop();
  await stopRedis();
});

const store = () => createLeaseStore(stack.redis, stack.config.redis.keyPrefix);

async function setBudget(scope: string, amount: string, enforcement: 'hard' | 'soft', period = 'day'): Promise<void> {
  await setScopeBudgets(stack.client, {
    scope,
    taskQueue: stack.taskQueue,
    change: { budgets: [{ period, amount, thresholds: THRESHOLDS, enforcement }] },
    defaultTimezone: 'UTC',
    pool: stack.pool,
    config: stack.config,
  });
}

async function ledgerOf(userId: string): Promise<{ cost: string; calls: number }> {
  const r = await stack.pool.query<{ cost: string; calls: string }>('SELECT coalesce(sum(cost_usd), 0)::text AS cost, count(*)::text AS calls FROM usage_ledger WHERE user_id = $1', [userId]);
  return { cost: r.rows[0]!.cost, calls: Number(r.rows[0]!.calls) };
}

/** µ$ open and available over a scope's current buckets. */
async function leaseOf(scope: string): Promise<{ open: number; available: number }> {
  const lease = await store().scopeLease(scope);
  return { open: lease?.buckets.reduce((a, b) => a + b.open, 0) ?? 0, available: lease?.buckets.reduce((a, b) => a + b.available, 0) ?? 0 };
}

interface Racer {
  child: ChildProcess;
  ask(command: string): Promise<Record<string, unknown>>;
}

async function spawnRacer(): Promise<Racer> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/preflight-process.ts'], {
    cwd: projectRoot(),
    env: stackProcessEnv(stack, { COSTGUARD_CONFIG: stack.config.configFile ?? '' }),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else lines.push(line);
  });
  const next = () => new Promise<string>((resolve) => (lines.length > 0 ? resolve(lines.shift()!) : waiters.push(resolve)));
  expect(await next()).toBe('preflight ready');
  return {
    child,
    async ask(command) {
      child.stdin!.write(`${command}\n`);
      const answer = JSON.parse(await next()) as Record<string, unknown>;
      if (answer.error) throw new Error(String(answer.error));
      return answer;
    },
  };
}

describe('pre-flight checks', () => {
  it('reserves, settles through the usage event once it is in the ledger, and answers the hold state', async () => {
    await setBudget('user:basic', '1', 'hard');
    const d = await tracker.authorize({ userId: 'basic', provider: 'test', model: 'race-model', inputTokens: 0, maxOutputTokens: 40 });
    expect(d).toMatchObject({ decision: 'allow', reason: null, reservedUsd: '0.04', worstCaseUsd: '0.04', enforced: true });
    expect(d.scopes.find((s) => s.scope === 'user:basic')).toMatchObject({ enforcement: 'hard', budgetUsd: '1' });
    expect((await leaseOf('user:basic')).open).toBe(40_000);
    await tracker.record({ provider: 'test', model: 'race-model', userId: 'basic', usage: { outputTokens: 12 }, holdId: d.holdId! });
    await eventually(() => tracker.holdState(d.holdId!), (h) => h?.state === 'settled', 20_000, 'hold settled');
    expect(await ledgerOf('basic')).toEqual({ cost: '0.012', calls: 1 });
    const lease = await leaseOf('user:basic');
    expect(lease.open).toBe(0);
    // A repeated settlement (the same event again, a retried flush) charges nothing more.
    expect(await tracker['preflight']().settle(d.holdId!, '0.012')).toBe('duplicate');
    expect((await leaseOf('user:basic')).available).toBe(lease.available);
    // A released hold gives everything back; releasing again changes nothing.
    const r = await tracker.authorize({ userId: 'basic', provider: 'test', model: 'race-model', costUsd: '0.3' });
    expect(r.decision).toBe('allow');
    expect(await tracker.releaseHold(r.holdId!)).toBe('released');
    expect(await tracker.releaseHold(r.holdId!)).toBe('duplicate');
    expect((await leaseOf('user:basic')).open).toBe(0);
    // A smaller budget shrinks the lease to what it leaves.
    await setBudget('user:basic', '0.05', 'hard');
    expect((await leaseOf('user:basic')).available).toBe(50_000 - 12_000);
    const over = await tracker.authorize({ userId: 'basic', provider: 'test', model: 'race-model', costUsd: '0.04' });
    expect(over).toMatchObject({ decision: 'deny', reason: 'budget_exhausted' });
    // The workflow shows its leases in its status.
    const status = await stack.client.workflow.getHandle(budgetWorkflowId('user:basic')).query(statusQuery);
    expect(status.leases?.grants).toBeGreaterThan(0);
    expect(status.leases?.buckets[0]).toMatchObject({ enforcement: 'hard', budgetUsd: '0.05' });
    // As of the last grant (the shrink): the two admitted checks.
    expect(status.leases?.decisions).toMatchObject({ allow: 2 });
  });

  it('over HTTP: POST /v1/authorize, the hold routes, GET /v1/advice and the budget status', async () => {
    await setBudget('user:http', '2', 'hard');
    const headers = { authorization: `Bearer ${KEY}` };
    const bad = await api.app.inject({ method: 'POST', url: '/v1/authorize', headers, payload: { userId: 'http', provider: 'openai', model: 'gpt-4o', inputTokens: -1 } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().issues.map((i: { path: string }) => i.path)).toEqual(expect.arrayContaining(['inputTokens', '']));
    const ok = await api.app.inject({ method: 'POST', url: '/v1/authorize', headers, payload: { userId: 'http', provider: 'openai', model: 'gpt-4o', inputTokens: 1000, maxOutputTokens: 500 } });
    expect(ok.statusCode).toBe(200);
    const d = ok.json() as AuthorizeResult;
    // gpt-4o: $2.50 / $10 per million tokens: 1,000 in + 500 out = $0.0075.
    expect(d).toMatchObject({ decision: 'allow', reservedUsd: '0.0075', worstCaseUsd: '0.0075' });
    const state = await api.app.inject({ method: 'GET', url: `/v1/holds/${d.holdId}`, headers });
    expect(state.json()).toMatchObject({ holdId: d.holdId, state: 'open', reservedUsd: '0.0075' });
    const renewed = await api.app.inject({ method: 'POST', url: `/v1/holds/${d.holdId}/renew`, headers, payload: { ttlSeconds: 60 } });
    expect(renewed.statusCode).toBe(200);
    expect(Date.parse(renewed.json().expiresAt)).toBeGreaterThan(Date.now() + 50_000);
    const released = await api.app.inject({ method: 'DELETE', url: `/v1/holds/${d.holdId}`, headers });
    expect(released.json()).toEqual({ holdId: d.holdId, status: 'released' });
    const again = await api.app.inject({ method: 'POST', url: `/v1/holds/${d.holdId}/renew`, headers, payload: {} });
    expect(again.statusCode).toBe(409);
    expect((await api.app.inject({ method: 'GET', url: '/v1/holds/not-a-hold', headers })).statusCode).toBe(400);
    const denied = await api.app.inject({ method: 'POST', url: '/v1/authorize', headers, payload: { userId: 'http', provider: 'openai', model: 'gpt-4o', costUsd: '2.5' } });
    expect(denied.json()).toMatchObject({ decision: 'deny', reason: 'budget_exhausted', holdId: null });
    const advice = await api.app.inject({ method: 'GET', url: '/v1/advice?userId=http&provider=openai&model=gpt-4&taskType=summarization&complexity=simple&inputTokens=2000&maxOutputTokens=3000', headers });
    expect(advice.statusCode).toBe(200);
    expect(advice.json().advice).toMatchObject({ tier: 'economy', provider: 'openai', maxOutputTokens: 1000, downgrade: true });
    const status = await api.app.inject({ method: 'GET', url: '/v1/budgets/user:http', headers });
    expect(status.json().preflight.decisions).toMatchObject({ allow: 1, deny: 1 });
    expect(status.json().preflight.lease.buckets[0]).toMatchObject({ enforcement: 'hard', failMode: 'closed', budgetUsd: '2', heldUsd: '0' });
    const metrics = await api.app.inject({ method: 'GET', url: '/metrics', headers });
    expect(metrics.body).toMatch(/costguard_preflight_decisions_total\{decision="deny",reason="budget_exhausted"\} [1-9]/);
  });

  it('race: 4 processes x 250 concurrent checks on a $1 hard budget never spend more than $1.000000 (20 trials)', async () => {
    const racers = await Promise.all([0, 1, 2, 3].map(() => spawnRacer()));
    try {
      for (let t = 0; t < 20; t++) {
        const user = `race-${t}`;
        await setBudget(`user:${user}`, '1', 'hard');
        const results = await Promise.all(racers.map((r) => r.ask(`race ${user} 250 race-model`)));
        const admitted = results.reduce((a, r) => a + (r.admitted as number), 0);
        expect(admitted, JSON.stringify(results)).toBeGreaterThanOrEqual(20);
        if (process.env.CG_DEBUG) console.log(t, JSON.stringify(results), JSON.stringify(await store().scopeLease(`user:${user}`)));
        const spend = await eventually(() => ledgerOf(user), (l) => l.calls === admitted, 60_000, `trial ${t}: every admitted call in the ledger`);
        expect(new Dec(spend.cost).lte('1.000000'), `trial ${t} spent ${spend.cost}`).toBe(true);
        const lease = await eventually(() => leaseOf(`user:${user}`), (l) => l.open === 0, 20_000, `trial ${t}: holds settled`);
        expect(lease.available).toBeGreaterThanOrEqual(0);
        // What was not spent is available again: the lease and the ledger add up to at most the budget.
        expect(new Dec(spend.cost).plus(new Dec(lease.available).div(1e6)).lte('1')).toBe(true);
      }
    } finally {
      for (const r of racers) r.child.kill('SIGKILL');
    }
  }, 600_000);

  it('several scopes at once: user, team and system all hold; no scope exceeded; nothing outstanding afterwards', async () => {
    await setBudget('team:t1', '0.5', 'hard');
    await setBudget('user:multi-a', '0.4', 'hard');
    await setBudget('user:multi-b', '0.4', 'hard');
    const calls = Array.from({ length: 60 }, (_, i) => ({ userId: i % 2 === 0 ? 'multi-a' : 'multi-b', teamId: 't1', provider: 'test', model: 'race-model', inputTokens: 0, maxOutputTokens: 30 }));
    const decisions = await Promise.all(calls.map((c) => tracker.authorize(c)));
    const admitted = decisions.filter((d) => d.holdId !== null);
    // The team's $0.5 binds first: 16 calls of $0.03.
    expect(admitted.length).toBe(16);
    expect(decisions.filter((d) => d.decision === 'deny').every((d) => d.reason === 'budget_exhausted')).toBe(true);
    await Promise.all(admitted.map((d, i) => tracker.record({ provider: 'test', model: 'race-model', userId: calls[decisions.indexOf(d)]!.userId, team: 't1', usage: { outputTokens: 10 + (i % 20) }, holdId: d.holdId! })));
    await eventually(async () => (await ledgerOf('multi-a')).calls + (await ledgerOf('multi-b')).calls, (n) => n === admitted.length, 30_000, 'all in the ledger');
    const team = await stack.pool.query<{ cost: string }>("SELECT sum(cost_usd)::text AS cost FROM usage_ledger WHERE team = 't1'");
    expect(new Dec(team.rows[0]!.cost).lte('0.5')).toBe(true);
    for (const scope of ['team:t1', 'user:multi-a', 'user:multi-b', 'system']) {
      const lease = await eventually(() => leaseOf(scope), (l) => l.open === 0, 20_000, `${scope} holds settled`);
      expect(lease.available).toBeGreaterThanOrEqual(0);
    }
  });

  it('usage recorded without a hold uses up the lease too: a hard budget holds against spend that did not ask first', async () => {
    await setBudget('user:unheld', '1', 'hard');
    const first = await tracker.authorize({ userId: 'unheld', provider: 'test', model: 'race-model', costUsd: '0.01' });
    await tracker.releaseHold(first.holdId!);
    const before = await leaseOf('user:unheld');
    expect(before.available).toBeGreaterThanOrEqual(250_000);
    // $0.90 recorded straight, without a pre-flight check.
    for (let i = 0; i < 9; i++) await tracker.record({ provider: 'test', model: 'race-model', userId: 'unheld', usage: { outputTokens: 100 } });
    await eventually(() => ledgerOf('unheld'), (l) => l.calls === 9, 30_000, 'the unheld usage in the ledger');
    await eventually(() => leaseOf('user:unheld'), (l) => l.available === before.available - 900_000, 10_000, 'the lease charged');
    // $0.20 no longer fits in the $1 budget; $0.10 does, exactly.
    expect(await tracker.authorize({ userId: 'unheld', provider: 'test', model: 'race-model', costUsd: '0.2' })).toMatchObject({ decision: 'deny', reason: 'budget_exhausted' });
    const last = await tracker.authorize({ userId: 'unheld', provider: 'test', model: 'race-model', costUsd: '0.1' });
    expect(last.decision).toBe('allow');
    await tracker.releaseHold(last.holdId!);
  });

  it('a team without a budget costs its workflow nothing while idle (no ledger polling)', async () => {
    const d = await tracker.authorize({ userId: 'multi-a', teamId: 'quiet-team', provider: 'test', model: 'race-model', costUsd: '0.01' });
    expect(d.decision).toBe('allow');
    await tracker.releaseHold(d.holdId!);
    const handle = stack.client.workflow.getHandle(budgetWorkflowId('team:quiet-team'));
    const length = async () => (await handle.describe()).historyLength;
    await new Promise((r) => setTimeout(r, 1000));
    const before = await length();
    // budgetWorkflow.ledgerPollMs is 2 s: a polling workflow would add events in 5 s.
    await new Promise((r) => setTimeout(r, 5000));
    expect(await length()).toBe(before);
  });

  it('soft budget: overshoot at most one worst case, and advice on every check past 90%', async () => {
    await setBudget('user:soft', '1', 'soft');
    const results: AuthorizeResult[] = [];
    for (let i = 0; i < 40; i++) {
      // gpt-4: premium; 500 in + 500 out = $0.045 worst case.
      const d = await tracker.authorize({ userId: 'soft', provider: 'openai', model: 'gpt-4', inputTokens: 500, maxOutputTokens: 500 });
      results.push(d);
      if (d.holdId) await tracker.record({ provider: 'openai', model: 'gpt-4', userId: 'soft', usage: { inputTokens: 500, outputTokens: 500 }, holdId: d.holdId });
    }
    const admitted = results.filter((d) => d.holdId !== null);
    expect(admitted.length).toBeGreaterThan(20);
    expect(results.some((d) => d.decision === 'deny' && d.reason === 'budget_exhausted')).toBe(true);
    await eventually(() => ledgerOf('soft'), (l) => l.calls === admitted.length, 30_000, 'all soft calls in the ledger');
    const spend = await ledgerOf('soft');
    expect(new Dec(spend.cost).lte(new Dec('1').plus('0.045')), `spent ${spend.cost}`).toBe(true);
    expect(new Dec(spend.cost).gt('0.95')).toBe(true);
    for (const d of admitted) {
      const used = Math.max(...d.scopes.filter((s) => s.scope === 'user:soft').map((s) => s.usedRatio));
      if (used >= 0.9) {
        expect(d.decision, JSON.stringify(d)).toBe('downgrade');
        expect(d.advice?.downgrade).toBe(true);
        expect(d.advice?.tier).not.toBe('premium');
      }
    }
    expect(admitted.some((d) => d.decision === 'downgrade')).toBe(true);
  });

  it('unknown price: a hard budget denies with price_unknown, a soft one reserves the configured default', async () => {
    await setBudget('user:unpriced-hard', '5', 'hard');
    await setBudget('user:unpriced-soft', '5', 'soft');
    const hard = await tracker.authorize({ userId: 'unpriced-hard', provider: 'nobody', model: 'no-such-model', inputTokens: 10, maxOutputTokens: 10 });
    expect(hard).toMatchObject({ decision: 'deny', reason: 'price_unknown', holdId: null, worstCaseUsd: null });
    const soft = await tracker.authorize({ userId: 'unpriced-soft', provider: 'nobody', model: 'no-such-model', inputTokens: 10, maxOutputTokens: 10 });
    expect(soft).toMatchObject({ decision: 'allow', reservedUsd: '0.1', worstCaseUsd: null });
    expect(await tracker.releaseHold(soft.holdId!)).toBe('released');
  });

  it('a hold renewed through a stream ten times its TTL settles once', async () => {
    await setBudget('user:stream', '1', 'hard');
    const d = await tracker.authorize({ userId: 'stream', provider: 'test', model: 'race-model', inputTokens: 0, maxOutputTokens: 100, ttlSeconds: 2 });
    expect(d.decision).toBe('allow');
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 600));
      const renewed = await tracker.renewHold(d.holdId!, 2);
      expect(renewed.ok).toBe(true);
    }
    expect((await tracker.holdState(d.holdId!))?.state).toBe('open');
    await tracker.record({ provider: 'test', model: 'race-model', userId: 'stream', usage: { outputTokens: 80 }, holdId: d.holdId! });
    await eventually(() => tracker.holdState(d.holdId!), (h) => h?.state === 'settled', 20_000, 'stream hold settled');
    expect(await ledgerOf('stream')).toEqual({ cost: '0.08', calls: 1 });
    expect((await leaseOf('user:stream')).open).toBe(0);
  }, 60_000);

  it('a period reset with 100 holds in flight: each settles in its own period', async () => {
    await setBudget('user:reset', '5', 'hard', '20s');
    // Start right after a period boundary, so the 100 holds are made well inside one period.
    const spec = '20s';
    const first = periodAt(spec, 'UTC', Date.now());
    if (first.endMs - Date.now() < 12_000) await new Promise((r) => setTimeout(r, first.endMs - Date.now() + 200));
    const p1 = periodAt(spec, 'UTC', Date.now());
    const holds = await Promise.all(Array.from({ length: 100 }, () => tracker.authorize({ userId: 'reset', provider: 'test', model: 'race-model', costUsd: '0.02', ttlSeconds: 90 })));
    expect(holds.every((h) => h.decision === 'allow')).toBe(true);
    // Settle after the period has ended.
    await new Promise((r) => setTimeout(r, Math.max(0, p1.endMs - Date.now() + 500)));
    const after = await tracker.authorize({ userId: 'reset', provider: 'test', model: 'race-model', costUsd: '4.9' });
    expect(after.decision, 'the new period starts with the whole budget').toBe('allow');
    await tracker.releaseHold(after.holdId!);
    await Promise.all(holds.map((h) => tracker.record({ provider: 'test', model: 'race-model', userId: 'reset', usage: { outputTokens: 15 }, holdId: h.holdId! })));
    await eventually(() => ledgerOf('reset'), (l) => l.calls === 100, 30_000, 'the 100 calls in the ledger');
    const rows = await stack.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM usage_ledger WHERE user_id = $1 AND occurred_at >= $2 AND occurred_at < $3', ['reset', new Date(p1.startMs), new Date(p1.endMs)]);
    expect(Number(rows.rows[0]!.n), 'every call dated to its reservation').toBe(100);
    for (const h of holds) expect((await tracker.holdState(h.holdId!))?.state).toBe('settled');
    // The old period's bucket has nothing open; the new one never saw those holds.
    const old = await stack.redis.hmget(`${store().prefix}b:user:reset|20s|UTC|${p1.startMs}`, 'open', 'spent');
    expect(old).toEqual(['0', String(100 * 15_000)]);
    expect((await leaseOf('user:reset')).open).toBe(0);
  }, 90_000);

  it('crash: the worker and the checking process killed with 50 holds open; no false denial once the holds expire', async () => {
    await setBudget('user:crash', '1', 'hard');
    await stack.stopWorker();
    const worker = await spawnWorkerProcess(stack);
    const racer = await spawnRacer();
    const held = await racer.ask('hold crash 50 0.02 30');
    const heldAt = Date.now();
    expect(held.held).toBe(50);
    racer.child.kill('SIGKILL');
    worker.kill('SIGKILL');
    // The whole budget is held: a check now is denied (its lease request waits for the dead
    // worker's workflow task to time out and move to the new worker).
    await stack.startWorker();
    const during = await tracker.authorize({ userId: 'crash', provider: 'test', model: 'race-model', costUsd: '0.5' });
    expect(Date.now() - heldAt, 'the check ran while the holds were open').toBeLessThan(30_000);
    // Denied: the budget is held (or, while the workflow's task waits for the dead worker's to time out, unavailable: hard budgets fail closed).
    expect(during.decision).toBe('deny');
    expect(['budget_exhausted', 'unavailable']).toContain(during.reason);
    await new Promise((r) => setTimeout(r, Math.max(0, heldAt + 30_500 - Date.now())));
    const after = await tracker.authorize({ userId: 'crash', provider: 'test', model: 'race-model', costUsd: '0.9' });
    expect(after.decision).toBe('allow');
    await tracker.releaseHold(after.holdId!);
    expect((await leaseOf('user:crash')).open).toBe(0);
  }, 120_000);

  it('Redis flushed and restarted under load: a hard scope refuses for at most 5 s, then answers correctly', async () => {
    await setBudget('user:flush', '10', 'hard');
    await setScopeBudgets(stack.client, {
      scope: 'user:flush-open',
      taskQueue: stack.taskQueue,
      change: { budgets: [{ period: 'day', amount: '10', thresholds: THRESHOLDS, enforcement: 'soft', failMode: 'open' }] },
      defaultTimezone: 'UTC',
      pool: stack.pool,
      config: stack.config,
    });
    const learn = await tracker.authorize({ userId: 'flush-open', provider: 'test', model: 'race-model', costUsd: '0.01' });
    await tracker.releaseHold(learn.holdId!);
    let stop = false;
    const log: { at: number; decision: string; reason: string | null }[] = [];
    const load = (async () => {
      while (!stop) {
        const d = await tracker.authorize({ userId: 'flush', provider: 'test', model: 'race-model', costUsd: '0.01' }).catch(() => null);
        if (d) {
          log.push({ at: Date.now(), decision: d.decision, reason: d.reason });
          if (d.holdId) await tracker.releaseHold(d.holdId).catch(() => undefined);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    expect(log.length).toBeGreaterThan(10);
    expect(log.every((l) => l.decision === 'allow')).toBe(true);
    const flushedAt = Date.now();
    await stack.redis.flushall();
    await stopRedis();
    // While Redis is away: a fail-open budget admits without a reservation, a hard one refuses.
    const open = await tracker.authorize({ userId: 'flush-open', provider: 'test', model: 'race-model', costUsd: '0.01' });
    expect(open).toMatchObject({ decision: 'allow', reason: 'unavailable', holdId: null, enforced: false });
    const closed = await tracker.authorize({ userId: 'flush', provider: 'test', model: 'race-model', costUsd: '0.01' });
    expect(closed).toMatchObject({ decision: 'deny', reason: 'unavailable', enforced: false });
    await startRedis();
    const restartedAt = Date.now();
    await eventually(async () => log.filter((l) => l.at > restartedAt && l.decision === 'allow').length, (n) => n >= 20, 30_000, 'allowed again after the restart');
    stop = true;
    await load;
    const refused = log.filter((l) => l.at > flushedAt && l.decision !== 'allow');
    if (process.env.CG_DEBUG) console.log(JSON.stringify({ flushedAt, restartedAt, log: log.filter((l) => l.at > flushedAt - 200).slice(0, 60) }));
    const firstAllowAfter = log.find((l) => l.at > restartedAt && l.decision === 'allow')!;
    expect(firstAllowAfter.at - restartedAt, 'refused for at most 5 s after the restart').toBeLessThanOrEqual(5000);
    expect(refused.every((l) => l.reason === 'unavailable' || l.reason === 'budget_exhausted')).toBe(true);
    // After the rebuild the answers are right: what was outstanding is held in reserve, the rest of the budget is usable.
    const big = await tracker.authorize({ userId: 'flush', provider: 'test', model: 'race-model', costUsd: '5' });
    expect(big.decision).toBe('allow');
    await tracker.releaseHold(big.holdId!);
    const status = await stack.client.workflow.getHandle(budgetWorkflowId('user:flush')).query(statusQuery);
    expect(Number(status.leases?.lostReserveUsd)).toBeGreaterThan(0);
    const tooBig = await tracker.authorize({ userId: 'flush', provider: 'test', model: 'race-model', costUsd: '9.99' });
    expect(tooBig).toMatchObject({ decision: 'deny', reason: 'budget_exhausted' });
  }, 120_000);
});
