/**
 * Hard budgets cannot be overspent: one regression test per way they leaked, each driven over HTTP
 * (POST /v1/authorize, POST /v1/usage, the hold routes, PUT /v1/budgets) against the real stack
 * (Temporal dev server, PostgreSQL, Redis), as a client of the API would. Amounts are ledger sums.
 *
 * Prices: `test/race-model` costs $1 per 1,000 output tokens (so 600 tokens are $0.60); the
 * downgrade case uses the real catalogue prices of OpenAI models.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dec } from '../../src/domain/money.js';
import { createLeaseStore } from '../../src/redis/leases.js';
import { eventually, type Stack, type StackApi, startApi, startStack } from './helpers/stack.js';

const KEY = 'cg_hard_budget_test_key_0123456789';
const THRESHOLDS = { warning: 0.8, critical: 0.95 };
let stack: Stack;
let api: StackApi;
let base = '';

beforeAll(async () => {
  stack = await startStack({
    configYaml: `budgets:
  - { scope: system, period: day, amount: "1", thresholds: { warning: 0.8, critical: 0.95 } }
pricing:
  overrides:
    - { provider: test, model: race-model, inputPer1k: "0", outputPer1k: "1" }
ingest: { shards: 2, lingerMs: 30 }
preflight: { holdTtlMs: 20000, maxHoldTtlMs: 120000, refillTimeoutMs: 10000, unknownPriceUsd: "0.10", acceptedHoldTtlMs: 60000 }
`,
  });
  api = await startApi(stack, KEY, { lingerMs: 20 });
  base = await api.app.listen({ port: 0, host: '127.0.0.1' });
}, 120_000);

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

async function http(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'x-api-key': KEY, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function setBudget(scope: string, amount: string, enforcement?: 'hard' | 'soft'): Promise<void> {
  const r = await http('PUT', `/v1/budgets/${encodeURIComponent(scope)}`, { budgets: [{ period: 'day', amount, thresholds: THRESHOLDS, ...(enforcement ? { enforcement } : {}) }] });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
}

type Check = { decision: string; reason: string | null; holdId: string | null; reservedUsd: string };

async function check(req: Record<string, unknown>): Promise<Check> {
  const r = await http('POST', '/v1/authorize', { provider: 'test', model: 'race-model', ...req });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json as unknown as Check;
}

/** One call's usage over HTTP: `usd` dollars of test/race-model. */
async function usage(userId: string, usd: string, extra: Record<string, unknown> = {}): Promise<void> {
  const outputTokens = new Dec(usd).times(1000).toNumber();
  const r = await http('POST', '/v1/usage', { provider: 'test', model: 'race-model', userId, usage: { outputTokens }, ...extra });
  expect(r.status, JSON.stringify(r.json)).toBe(202);
}

async function ledger(where: { user?: string; team?: string }): Promise<{ cost: string; calls: number }> {
  const [col, value] = where.user !== undefined ? ['user_id', where.user] : ['team', where.team];
  const r = await stack.pool.query<{ cost: string; calls: string }>(`SELECT coalesce(sum(cost_usd), 0)::text AS cost, count(*)::text AS calls FROM usage_ledger WHERE ${col} = $1`, [value]);
  return { cost: new Dec(r.rows[0]!.cost).toFixed(), calls: Number(r.rows[0]!.calls) };
}

const store = () => createLeaseStore(stack.redis, stack.config.redis.keyPrefix);

/** Waits until `calls` rows are in the ledger and the flush that wrote them has finished with the leases. */
async function landed(where: { user?: string; team?: string }, calls: number): Promise<void> {
  await eventually(() => ledger(where), (l) => l.calls >= calls, 30_000, `${calls} ledger rows for ${JSON.stringify(where)}`);
  // The flush records the usage in the leases right after its commit; give it that moment.
  await new Promise((r) => setTimeout(r, 300));
}

/** Makes the scope's lease hold about `usd` available: a check for it, released. */
async function warm(userId: string, usd: string, extra: Record<string, unknown> = {}): Promise<void> {
  const c = await check({ userId, costUsd: usd, ...extra });
  expect(c.decision).toBe('allow');
  expect((await http('DELETE', `/v1/holds/${c.holdId}`)).json.status).toBe('released');
}

describe('hard budgets over HTTP', () => {
  it('a check given only costUsd on an exhausted hard budget is denied, never a $0 downgrade', async () => {
    const user = `cost-only-${randomUUID().slice(0, 8)}`;
    await setBudget(`user:${user}`, '1', 'hard');
    await usage(user, '1');
    await landed({ user }, 1);
    const c = await check({ userId: user, provider: 'openai', model: 'gpt-4', costUsd: '50' });
    expect(c.decision).toBe('deny');
    expect(c.reason).toBe('budget_exhausted');
    expect(c.reservedUsd).toBe('0');
    // With token counts a cheaper model may fit, and then its reservation is its worst case, never 0.
    const user2 = `cost-tokens-${randomUUID().slice(0, 8)}`;
    await setBudget(`user:${user2}`, '0.05', 'hard');
    const t = await check({ userId: user2, provider: 'openai', model: 'gpt-4', inputTokens: 1000, maxOutputTokens: 500 });
    if (t.decision === 'downgrade') expect(Number(t.reservedUsd)).toBeGreaterThan(0);
    else expect(t.decision).toBe('deny');
  });

  it('usage naming an unknown hold id is charged to its own scopes: a later check sees it', async () => {
    const user = `unknown-hold-${randomUUID().slice(0, 8)}`;
    await setBudget(`user:${user}`, '1', 'hard');
    await warm(user, '0.95');
    await usage(user, '0.6', { holdId: `h0.${Date.now().toString(36)}.notaholdthatexists0` });
    await landed({ user }, 1);
    const c = await check({ userId: user, costUsd: '0.6' });
    expect(c.decision, 'only $0.40 is left').toBe('deny');
    const fits = await check({ userId: user, costUsd: '0.4' });
    expect(fits.decision).toBe('allow');
    await http('DELETE', `/v1/holds/${fits.holdId}`);
  });

  it("usage naming another user's hold is charged to its own user, and the hold's owner still pays for its call", async () => {
    const owner = `owner-${randomUUID().slice(0, 8)}`;
    const thief = `thief-${randomUUID().slice(0, 8)}`;
    await setBudget(`user:${owner}`, '1', 'hard');
    await setBudget(`user:${thief}`, '1', 'hard');
    await warm(thief, '0.95');
    const held = await check({ userId: owner, costUsd: '0.5' });
    expect(held.decision).toBe('allow');
    await usage(thief, '0.6', { holdId: held.holdId });
    await landed({ user: thief }, 1);
    expect((await check({ userId: thief, costUsd: '0.6' })).decision, `${thief} has $0.40 left`).toBe('deny');
    // The owner's own call, with the hold another event consumed: charged in full to the owner.
    await usage(owner, '0.5', { holdId: held.holdId });
    await landed({ user: owner }, 1);
    expect((await check({ userId: owner, costUsd: '0.6' })).decision, `${owner} has $0.50 left`).toBe('deny');
    expect(new Dec((await ledger({ user: owner })).cost).lte(1)).toBe(true);
  });

  it('a resend without requestId (two calls for the ledger, one hold) is charged twice, and the budget holds', async () => {
    const user = `resend-${randomUUID().slice(0, 8)}`;
    await setBudget(`user:${user}`, '1.2', 'hard');
    await warm(user, '1.1');
    const held = await check({ userId: user, costUsd: '0.5' });
    expect(held.decision).toBe('allow');
    await usage(user, '0.5', { holdId: held.holdId });
    await usage(user, '0.5', { holdId: held.holdId });
    await landed({ user }, 2);
    // $1.00 spent of $1.20: a $0.30 check must not fit.
    expect((await check({ userId: user, costUsd: '0.3' })).decision).toBe('deny');
    const ok = await check({ userId: user, costUsd: '0.2' });
    expect(ok.decision).toBe('allow');
    await http('DELETE', `/v1/holds/${ok.holdId}`);
  });

  it('a team named only on the event is charged: the check did not name it, the team budget still holds', async () => {
    const team = `team-${randomUUID().slice(0, 8)}`;
    const user = `member-${randomUUID().slice(0, 8)}`;
    await setBudget(`team:${team}`, '1', 'hard');
    await warm(`${user}-warm`, '0.95', { teamId: team });
    const held = await check({ userId: user, costUsd: '0.6' });
    expect(held.decision).toBe('allow');
    await usage(user, '0.6', { holdId: held.holdId, team });
    await landed({ team }, 1);
    expect((await check({ userId: `${user}-2`, teamId: team, costUsd: '0.6' })).decision, 'the team has $0.40 left').toBe('deny');
  });

  it('lowering a budget bounds later admissions, also after an open hold is released', async () => {
    const user = `lower-${randomUUID().slice(0, 8)}`;
    await setBudget(`user:${user}`, '1', 'hard');
    const held = await check({ userId: user, costUsd: '0.5' });
    expect(held.decision).toBe('allow');
    await setBudget(`user:${user}`, '0.3', 'hard');
    expect((await http('DELETE', `/v1/holds/${held.holdId}`)).json.status).toBe('released');
    const lease = await store().scopeLease(`user:${user}`);
    expect(lease!.buckets[0]!.available, 'available after the release').toBeLessThanOrEqual(300_000);
    const a = await check({ userId: user, costUsd: '0.2' });
    const b = await check({ userId: user, costUsd: '0.2' });
    expect([a.decision, b.decision].sort()).toEqual(['allow', 'deny']);
  });

  it('usage accepted before its hold expired settles that hold, even when the flush comes after the expiry', async () => {
    const user = `late-flush-${randomUUID().slice(0, 8)}`;
    await setBudget(`user:${user}`, '1', 'hard');
    const held = await check({ userId: user, costUsd: '0.6', ttlSeconds: 2 });
    expect(held.decision).toBe('allow');
    await stack.stopWorker();
    try {
      await usage(user, '0.6', { holdId: held.holdId }); // accepted (202) while the hold is open
      await new Promise((r) => setTimeout(r, 3000)); // its TTL has passed; nothing flushed yet
      // Only the lease in Redis answers (no worker): $0.40 is all that may be admitted.
      const other = await check({ userId: user, costUsd: '0.6' });
      expect(other.decision).not.toBe('allow');
      expect(other.holdId).toBeNull();
    } finally {
      await stack.startWorker();
    }
    await landed({ user }, 1);
    expect((await http('GET', `/v1/holds/${held.holdId}`)).json.state).toBe('settled');
    expect(new Dec((await ledger({ user })).cost).lte(1)).toBe(true);
  }, 60_000);

  it('a budget nobody made enforcing takes no part in decisions: a spent alerting budget refuses nothing', async () => {
    const user = `free-${randomUUID().slice(0, 8)}`;
    // The system's $1 budget (no enforcement) is spent several times over.
    await usage(`${user}-spender`, '2');
    await landed({ user: `${user}-spender` }, 1);
    await setBudget(`user:${user}`, '0.5');
    await usage(user, '1');
    await landed({ user }, 1);
    const c = await check({ userId: user, costUsd: '0.2' });
    expect(c.decision).toBe('allow');
    expect(c.reason).toBeNull();
    await http('DELETE', `/v1/holds/${c.holdId}`);
    const status = await http('GET', `/v1/budgets/user:${user}`);
    const budgets = (status.json.budgets ?? (status.json.live as Record<string, unknown> | undefined)?.budgets) as Array<{ enforcement: string }> | undefined;
    expect(budgets?.[0]?.enforcement).toBe('none');
  });

  it('the hold routes take an empty body with a JSON content type', async () => {
    const user = `empty-body-${randomUUID().slice(0, 8)}`;
    await setBudget(`user:${user}`, '1', 'hard');
    const a = await check({ userId: user, costUsd: '0.1' });
    const renewed = await fetch(`${base}/v1/holds/${a.holdId}/renew`, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/json' } });
    expect(renewed.status, await renewed.clone().text()).toBe(200);
    const released = await fetch(`${base}/v1/holds/${a.holdId}`, { method: 'DELETE', headers: { 'x-api-key': KEY, 'content-type': 'application/json' } });
    expect(released.status, await released.clone().text()).toBe(200);
    expect(((await released.json()) as { status: string }).status).toBe('released');
    // Routes that need a body still say so.
    const usageEmpty = await fetch(`${base}/v1/usage`, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/json' } });
    expect(usageEmpty.status).toBe(400);
  });
});
