/**
 * The response cache and the wrappers' `authorize` option, with the official SDKs against the local
 * LLM server (helpers/llm-servers.ts), on the real stack: Redis for the cache and the holds,
 * Temporal + PostgreSQL for the ledger and budgets. Nothing is mocked. A hit must be recorded as
 * cost avoided (ledger kind cache_hit, cost 0, avoided_usd = the call's price) and never as spend.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setScopeBudgets } from '../../src/client/budgets.js';
import type { CostTracker } from '../../src/client/index.js';
import { BudgetDeniedError, type ResponseCache, type WrapperOptions, createResponseCache, wrapAnthropic, wrapOpenAI } from '../../src/client/wrappers/index.js';
import { generateStoredReport } from '../../activities/reports.js';
import { reportPeriodAt } from '../../src/domain/report-period.js';
import { createLogger } from '../../src/lib/logger.js';
import { createPricingEngine } from '../../src/pricing/index.js';
import { parsePromText, sumOf } from '../prom-text.js';
import { type FakeReply, type LlmServer, startLlmServer } from './helpers/llm-servers.js';
import { eventually, type Stack, type StackApi, startApi, startStack } from './helpers/stack.js';

const KEY = 'cg_cache_test_key_0123456789abcdef';
let stack: Stack;
let api: StackApi;
let tracker: CostTracker;
let srv: LlmServer;
let cache: ResponseCache;
const errors: unknown[] = [];

/** $0.01 per 1k input, $0.03 per 1k output: 1000 in + 100 out = $0.013 a call. */
const USAGE = { input: 1000, output: 100 };
const CALL_COST = '0.013';

beforeAll(async () => {
  [stack, srv] = await Promise.all([
    startStack({
      configYaml: `pricing:
  overrides:
    - { provider: openai, model: cache-model, inputPer1k: "0.01", outputPer1k: "0.03" }
    - { provider: anthropic, model: cache-claude, inputPer1k: "0.01", outputPer1k: "0.03" }
    - { provider: openai, model: cheap-model, inputPer1k: "0.000001", outputPer1k: "0.000001" }
ingest: { shards: 2, lingerMs: 30 }
preflight: { holdTtlMs: 20000, maxHoldTtlMs: 60000, refillTimeoutMs: 10000 }
`,
    }),
    startLlmServer({ usage: USAGE }),
  ]);
  api = await startApi(stack, KEY, { lingerMs: 20 });
  tracker = api.tracker;
  cache = createResponseCache({ redis: stack.redis, pricing: createPricingEngine(stack.config), keyPrefix: stack.config.redis.keyPrefix, shared: ['faq'] });
}, 120_000);

afterAll(async () => {
  await api?.close();
  await srv?.close();
  await stack?.stop();
});

let seq = 0;
const newUser = (label: string) => `cache-${label}-${++seq}-${Date.now()}`;
const reply = (r: FakeReply) => ({ headers: { 'x-fake-reply': JSON.stringify(r) } });

function options(userId: string, extra: Partial<WrapperOptions> = {}): WrapperOptions {
  return { tracker, cache, userId, onError: (err) => errors.push(err), ...extra };
}
const openai = (userId: string, extra: Partial<WrapperOptions> = {}, baseURL = srv.openaiBaseURL) =>
  wrapOpenAI(new OpenAI({ apiKey: 'sk-test', baseURL, maxRetries: 0 }), options(userId, extra));
const anthropic = (userId: string, extra: Partial<WrapperOptions> = {}) =>
  wrapAnthropic(new Anthropic({ apiKey: 'sk-ant-test', baseURL: srv.anthropicBaseURL, maxRetries: 0 }), options(userId, extra));

/** Upstream requests the server received with this marker in the prompt. */
const upstream = (marker: string) => srv.requests.filter((r) => JSON.stringify(r.body ?? {}).includes(marker)).length;

interface LedgerRow {
  kind: string;
  cost_usd: string;
  avoided_usd: string;
  metadata: Record<string, unknown>;
}

async function ledgerRows(userId: string, n: number): Promise<LedgerRow[]> {
  await tracker.flush();
  return eventually(
    async () =>
      (
        await stack.pool.query<LedgerRow>(
          'SELECT kind, cost_usd::text, avoided_usd::text, metadata FROM usage_ledger WHERE user_id = $1 ORDER BY occurred_at, request_id',
          [userId],
        )
      ).rows,
    (r) => r.length >= n,
    60_000,
    `${n} ledger rows of ${userId}`,
  );
}

async function rollup(userId: string): Promise<{ cost: string; avoided: string; calls: number; hits: number; input: number }> {
  const r = await stack.pool.query<{ cost: string; avoided: string; calls: string; hits: string; input: string }>(
    `SELECT coalesce(sum(cost_usd), 0)::text AS cost, coalesce(sum(avoided_usd), 0)::text AS avoided, coalesce(sum(calls), 0)::text AS calls,
            coalesce(sum(cache_hits), 0)::text AS hits, coalesce(sum(input_tokens), 0)::text AS input
       FROM usage_rollup_totals WHERE scope = $1 AND period_kind = 'day'`,
    [`user:${userId}`],
  );
  const row = r.rows[0]!;
  return { cost: row.cost, avoided: row.avoided, calls: Number(row.calls), hits: Number(row.hits), input: Number(row.input) };
}

/** A proxy that turns the server's normal finishes into length cuts (real bytes, rewritten in flight). */
async function lengthCuttingProxy(): Promise<{ url: string; close(): Promise<void> }> {
  const target = new URL(srv.url);
  const server: Server = createServer((req, res) => {
    const up = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (upRes) => {
      const chunks: Buffer[] = [];
      upRes.on('data', (c: Buffer) => chunks.push(c));
      upRes.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8').replaceAll('"finish_reason":"stop"', '"finish_reason":"length"').replaceAll('"stop_reason":"end_turn"', '"stop_reason":"max_tokens"');
        const headers = { ...upRes.headers };
        delete headers['content-length'];
        delete headers['transfer-encoding'];
        res.writeHead(upRes.statusCode ?? 500, headers);
        res.end(text);
      });
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}

describe('response cache', () => {
  it('a repeated Chat Completions request is answered from the cache: one upstream call, the hit recorded as cost avoided and no spend', async () => {
    const user = newUser('chat');
    const marker = `m-${user}`;
    const client = openai(user);
    const body = { model: 'cache-model', messages: [{ role: 'user' as const, content: `What is our refund policy? ${marker}` }], temperature: 0.2 };
    const first = await client.chat.completions.create(body);
    const second = await client.chat.completions.create({ ...body, top_p: 1 }); // a default made explicit: the same request
    expect(second.choices[0]!.message.content).toBe(first.choices[0]!.message.content);
    expect(second.id).toBe(first.id);
    expect(upstream(marker)).toBe(1);
    const rows = await ledgerRows(user, 2);
    expect(rows.map((r) => r.kind)).toEqual(['call', 'cache_hit']);
    expect(rows[0]!.cost_usd).toBe(CALL_COST);
    expect(rows[1]).toMatchObject({ cost_usd: '0', avoided_usd: CALL_COST });
    expect(rows[1]!.metadata).toMatchObject({ cacheHit: true, status: 'ok' });
    const totals = await eventually(() => rollup(user), (t) => t.calls === 2, 30_000, 'rollups');
    // Spend is the one call; the hit adds cost avoided, a call and a hit, and no processed tokens.
    expect(totals).toEqual({ cost: CALL_COST, avoided: CALL_COST, calls: 2, hits: 1, input: USAGE.input });
    // The budget status shows it (live totals from the rollups).
    const status = await api.app.inject({ method: 'GET', url: `/v1/budgets/user:${user}`, headers: { authorization: `Bearer ${KEY}` } });
    expect(status.statusCode).toBe(200);
    expect(JSON.stringify(status.json())).toContain(`"avoidedUsd":"${CALL_COST}"`);
  });

  it('streams are stored as their events and replayed as the SDK stream (for await, finalMessage, tee)', async () => {
    const user = newUser('stream');
    const marker = `m-${user}`;
    const client = anthropic(user);
    const params = { model: 'cache-claude', max_tokens: 200, messages: [{ role: 'user' as const, content: `Draft a haiku ${marker}` }] };
    const first = await client.messages.stream(params).finalMessage();
    const replay = client.messages.stream(params);
    const events: string[] = [];
    for await (const ev of replay) events.push(ev.type);
    const final = await replay.finalMessage();
    expect(final.content).toEqual(first.content);
    expect(events[0]).toBe('message_start');
    expect(events.at(-1)).toBe('message_stop');
    // The plain streaming call: tee() gives two complete copies.
    const [a, b] = (await client.messages.create({ ...params, stream: true })).tee();
    const count = async (s: AsyncIterable<unknown>) => {
      let n = 0;
      for await (const _ of s) n++;
      return n;
    };
    expect(await count(a)).toBe(await count(b));
    // OpenAI Chat Completions streams too.
    const oa = openai(user);
    const chat = { model: 'cache-model', stream: true as const, messages: [{ role: 'user' as const, content: `Stream ${marker}` }] };
    const text = async () => {
      let t = '';
      for await (const c of await oa.chat.completions.create(chat)) t += c.choices[0]?.delta.content ?? '';
      return t;
    };
    const t1 = await text();
    expect(await text()).toBe(t1);
    expect(upstream(marker)).toBe(2); // one Anthropic, one OpenAI: the other three were replays
    const rows = await ledgerRows(user, 5);
    expect(rows.filter((r) => r.kind === 'cache_hit')).toHaveLength(3);
    expect(rows.filter((r) => r.kind === 'cache_hit').every((r) => r.cost_usd === '0' && r.avoided_usd === CALL_COST)).toBe(true);
  });

  it('two tenants never share an entry unless the task type is configured as shared', async () => {
    const marker = `m-tenants-${Date.now()}`;
    const body = { model: 'cache-model', messages: [{ role: 'user' as const, content: `Same question ${marker}` }] };
    const u1 = newUser('t1');
    const u2 = newUser('t2');
    const a1 = await openai(u1).chat.completions.create(body);
    const a2 = await openai(u2).chat.completions.create(body);
    expect(a2.id).not.toBe(a1.id);
    expect(upstream(marker)).toBe(2);
    // An explicit tenant groups users; other tenants still never see it.
    await openai(newUser('t3'), { tenant: 'acme' }).chat.completions.create(body);
    await openai(newUser('t4'), { tenant: 'acme' }).chat.completions.create(body);
    await openai(newUser('t5'), { tenant: 'globex' }).chat.completions.create(body);
    expect(upstream(marker)).toBe(4);
    // A shared task type: every tenant reads the one entry.
    const faq = { ...body, messages: [{ role: 'user' as const, content: `Shared ${marker}` }] };
    await openai(newUser('s1'), { taskType: 'faq' }).chat.completions.create(faq);
    await openai(newUser('s2'), { taskType: 'faq', tenant: 'other' }).chat.completions.create(faq);
    expect(upstream(`Shared ${marker}`)).toBe(1);
  });

  it('errors, 429s, error events, length cuts, aborted streams and answers under $0.001 are never stored', async () => {
    const user = newUser('never');
    const client = openai(user);
    const ask = (tag: string) => ({ model: 'cache-model', messages: [{ role: 'user' as const, content: `${tag} m-${user}` }] });
    const askStream = (tag: string) => ({ ...ask(tag), stream: true as const });
    // A 429 and a 500: the next identical call goes upstream again.
    for (const status of [429, 500]) {
      await expect(client.chat.completions.create(ask(`err${status}`), reply({ status, retryAfter: '0' }))).rejects.toThrow();
      await client.chat.completions.create(ask(`err${status}`));
      expect(upstream(`err${status} m-${user}`)).toBe(2);
    }
    // An error event in a stream.
    const broken = await client.chat.completions.create(askStream('errev'), reply({ errorAfterPieces: 2 }));
    await expect((async () => {
      for await (const _ of broken) void _;
    })()).rejects.toThrow();
    await (async () => {
      for await (const _ of await client.chat.completions.create(askStream('errev'))) void _;
    })();
    expect(upstream(`errev m-${user}`)).toBe(2);
    // A stream the caller broke off.
    for await (const _ of await client.chat.completions.create(askStream('brk'), reply({ pieces: 20 }))) break;
    await client.chat.completions.create(askStream('brk'));
    expect(upstream(`brk m-${user}`)).toBe(2);
    // Length cuts (finish_reason length / stop_reason max_tokens), through a rewriting proxy.
    const proxy = await lengthCuttingProxy();
    try {
      const cut = openai(user, {}, `${proxy.url}/v1`);
      expect((await cut.chat.completions.create(ask('len'))).choices[0]!.finish_reason).toBe('length');
      await cut.chat.completions.create(ask('len'));
      expect(upstream(`len m-${user}`)).toBe(2);
      const cutA = wrapAnthropic(new Anthropic({ apiKey: 'k', baseURL: proxy.url, maxRetries: 0 }), options(user));
      const p = { model: 'cache-claude', max_tokens: 5, messages: [{ role: 'user' as const, content: `lenA m-${user}` }] };
      expect((await cutA.messages.create(p)).stop_reason).toBe('max_tokens');
      await cutA.messages.create(p);
      expect(upstream(`lenA m-${user}`)).toBe(2);
    } finally {
      await proxy.close();
    }
    // Under $0.001.
    await client.chat.completions.create({ model: 'cheap-model', messages: [{ role: 'user', content: `cheap m-${user}` }] });
    await client.chat.completions.create({ model: 'cheap-model', messages: [{ role: 'user', content: `cheap m-${user}` }] });
    expect(upstream(`cheap m-${user}`)).toBe(2);
    await tracker.flush();
    const hits = await stack.pool.query('SELECT 1 FROM usage_ledger WHERE user_id = $1 AND kind = $2', [user, 'cache_hit']);
    expect(hits.rowCount).toBe(0);
  });

  it('the original key prefixes and TTLs per task type; other task types under llm: for the default TTL, or not cached with default 0', async () => {
    const own = createResponseCache({ redis: stack.redis, pricing: createPricingEngine(stack.config), keyPrefix: `${stack.config.redis.keyPrefix}ttl${Date.now()}:` });
    const user = newUser('ttl');
    const expected: Array<[taskType: string, prefix: string, ttl: number]> = [
      ['news_analysis', 'news:', 3600],
      ['technical_analysis', 'tech:', 300],
      ['strategy_generation', 'strategy:', 1800],
      ['llm_response', 'llm:', 7200],
      ['chat', 'llm:', 3600],
    ];
    for (const [taskType] of expected) {
      await openai(user, { cache: own, taskType }).chat.completions.create({ model: 'cache-model', messages: [{ role: 'user', content: `ttl ${taskType} m-${user}` }] });
    }
    const entries = await eventually(() => own.listEntries(), (e) => e.length === expected.length, 10_000, 'entries stored');
    for (const [taskType, prefix, ttl] of expected) {
      const mine = entries.filter((e) => e.key.startsWith(prefix) && e.ttlSeconds <= ttl && e.ttlSeconds > ttl - 60);
      expect(mine, `${taskType}: ${JSON.stringify(entries)}`).toHaveLength(1);
      expect(mine[0]!.key).toMatch(new RegExp(`^${prefix}[0-9a-f]{64}$`));
    }
    // As the original: only the four task types cached.
    const onlyFour = createResponseCache({ redis: stack.redis, pricing: createPricingEngine(stack.config), keyPrefix: `${stack.config.redis.keyPrefix}four${Date.now()}:`, ttlSeconds: { default: 0 } });
    for (let i = 0; i < 2; i++) {
      await openai(user, { cache: onlyFour, taskType: 'chat' }).chat.completions.create({ model: 'cache-model', messages: [{ role: 'user', content: `four chat m-${user}` }] });
      await openai(user, { cache: onlyFour, taskType: 'news_analysis' }).chat.completions.create({ model: 'cache-model', messages: [{ role: 'user', content: `four news m-${user}` }] });
    }
    expect(upstream(`four chat m-${user}`)).toBe(2);
    expect(upstream(`four news m-${user}`)).toBe(1);
  });

  it('an answer costing exactly $0.001 is stored, $0.00099 is not', async () => {
    const user = newUser('min');
    const client = openai(user);
    for (const [tag, input] of [['at', 100], ['under', 99]] as const) {
      for (let i = 0; i < 2; i++) {
        await client.chat.completions.create({ model: 'cache-model', messages: [{ role: 'user', content: `${tag} m-${user}` }] }, reply({ usage: { input, output: 0 } }));
      }
    }
    expect(upstream(`at m-${user}`)).toBe(1);
    expect(upstream(`under m-${user}`)).toBe(2);
  });

  it('a cached Chat Completions stream gives each caller what the SDK would: the usage chunk only to callers who asked for it', async () => {
    const user = newUser('usage');
    const client = openai(user);
    const chunks = async (content: string, includeUsage: boolean) => {
      const out: Array<{ delta: boolean; usage: boolean }> = [];
      const stream = await client.chat.completions.create({
        model: 'cache-model',
        stream: true,
        messages: [{ role: 'user', content }],
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
      });
      for await (const c of stream) {
        // What a caller who did not ask for usage writes: every chunk has a choice.
        if (!includeUsage) expect(c.choices[0]!.delta).toBeDefined();
        out.push({ delta: c.choices.length > 0, usage: c.usage != null });
      }
      return out;
    };
    const lastIsUsage = (c: Array<{ delta: boolean; usage: boolean }>) => c.at(-1)!.usage && !c.at(-1)!.delta;
    // First a caller who did not ask, then callers who did (the first of them goes upstream).
    const a = `first-plain m-${user}`;
    expect((await chunks(a, false)).some((c) => c.usage)).toBe(false);
    expect(lastIsUsage(await chunks(a, true))).toBe(true);
    expect(lastIsUsage(await chunks(a, true))).toBe(true); // a hit
    expect((await chunks(a, false)).some((c) => c.usage || !c.delta)).toBe(false); // a hit
    expect(upstream(a)).toBe(2);
    // The other order.
    const b = `first-usage m-${user}`;
    expect(lastIsUsage(await chunks(b, true))).toBe(true);
    expect((await chunks(b, false)).some((c) => c.usage || !c.delta)).toBe(false);
    expect((await chunks(b, false)).some((c) => c.usage || !c.delta)).toBe(false); // a hit
    expect(lastIsUsage(await chunks(b, true))).toBe(true); // a hit
    expect(upstream(b)).toBe(2);
    const rows = await ledgerRows(user, 8);
    expect(rows.filter((r) => r.kind === 'cache_hit')).toHaveLength(4);
  });

  it('100 identical concurrent misses make one upstream call; the other 99 are hits', async () => {
    const user = newUser('flight');
    const marker = `m-${user}`;
    const client = openai(user);
    const body = { model: 'cache-model', messages: [{ role: 'user' as const, content: `Concurrent ${marker}` }] };
    const answers = await Promise.all(Array.from({ length: 100 }, () => client.chat.completions.create(body, reply({ headersDelayMs: 200 }))));
    expect(new Set(answers.map((a) => a.id)).size).toBe(1);
    expect(upstream(marker)).toBe(1);
    const rows = await ledgerRows(user, 100);
    expect(rows.filter((r) => r.kind === 'call')).toHaveLength(1);
    expect(rows.filter((r) => r.kind === 'cache_hit')).toHaveLength(99);
    const totals = await eventually(() => rollup(user), (t) => t.calls === 100, 30_000, 'rollups');
    expect(totals.cost).toBe(CALL_COST);
    expect(totals.avoided).toBe('1.287'); // 99 x 0.013
    expect(errors).toEqual([]);
  });

  it('a concurrent miss waiting for the upstream call gives up on its caller\'s abort (before the leader answers)', async () => {
    const user = newUser('abortwait');
    const client = openai(user);
    const body = { model: 'cache-model', messages: [{ role: 'user' as const, content: `Abort wait m-${user}` }] };
    const order: string[] = [];
    const leader = client.chat.completions.create(body, reply({ headersDelayMs: 1500 })).then(() => order.push('leader'));
    await new Promise((r) => setTimeout(r, 50));
    const controller = new AbortController();
    const waiter = client.chat.completions.create(body, { signal: controller.signal }).then(
      () => order.push('waiter answered'),
      (err: unknown) => order.push(`waiter ${err instanceof OpenAI.APIUserAbortError ? 'aborted' : String(err)}`),
    );
    setTimeout(() => controller.abort(), 100);
    await Promise.all([leader, waiter]);
    expect(order).toEqual(['waiter aborted', 'leader']);
  });

  it('across processes (two caches, each with its own in-process map, one Redis): 2 x 50 concurrent misses make one upstream call', async () => {
    const user = newUser('xproc');
    const marker = `m-${user}`;
    const other = createResponseCache({ redis: stack.redis, pricing: createPricingEngine(stack.config), keyPrefix: stack.config.redis.keyPrefix, pollMs: 10 });
    const c1 = openai(user);
    const c2 = openai(user, { cache: other });
    const body = { model: 'cache-model', messages: [{ role: 'user' as const, content: `Across ${marker}` }] };
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? c1 : c2).chat.completions.create(body, reply({ headersDelayMs: 300 }))),
    );
    expect(new Set(answers.map((a) => a.id)).size).toBe(1);
    expect(upstream(marker)).toBe(1);
    expect(other.counts.wait_hit + cache.counts.wait_hit).toBeGreaterThanOrEqual(99);
  });
});

describe('cost avoided downstream', () => {
  it('the report says what the cache saved (JSON and HTML) apart from the cost and calls; Prometheus counts it apart from spend', async () => {
    await tracker.flush();
    const readLedger = async () =>
      (
        await stack.pool.query<{ calls: string; hits: string; cost: string; avoided: string }>(
          `SELECT count(*) FILTER (WHERE kind = 'call')::text AS calls, count(*) FILTER (WHERE kind = 'cache_hit')::text AS hits,
                  sum(cost_usd)::text AS cost, sum(avoided_usd)::text AS avoided FROM usage_ledger`,
        )
      ).rows[0]!;
    // Events of earlier tests may still be on their way (a call's event is sent after its answer):
    // take the ledger, the metrics and the report together, and again until none of them moved.
    const same = (a: Awaited<ReturnType<typeof readLedger>>, b: Awaited<ReturnType<typeof readLedger>>) => a.calls === b.calls && a.hits === b.hits && a.cost === b.cost && a.avoided === b.avoided;
    const period = reportPeriodAt('daily', 'UTC', Date.now());
    const { ledger, prom, report, html } = await eventually(
      async () => {
        const l = await readLedger();
        const p = parsePromText(await stack.metrics.render());
        const r = await generateStoredReport({ pool: stack.pool, pricing: createPricingEngine(stack.config), config: stack.config, logger: createLogger('silent'), clock: Date.now }, period);
        return { ledger: l, prom: p, report: r.report, html: r.html, again: await readLedger() };
      },
      // The worker counts a flush just after its commit: the metrics must agree with the ledger too.
      (x) => Number(x.ledger.hits) > 100 && same(x.ledger, x.again) && sumOf(x.prom, 'costguard_cache_hits_total') === Number(x.ledger.hits) && sumOf(x.prom, 'llm_api_calls_total') === Number(x.ledger.calls),
      30_000,
      'the ledger, the metrics and the report of the last flush',
    );
    expect(report.savedByCache).toEqual({ usd: ledger.avoided, hits: Number(ledger.hits) });
    expect(report.totals.calls).toBe(Number(ledger.calls));
    expect(report.totals.costUsd).toBe(ledger.cost);
    expect(html).toContain('Saved by the cache');
    expect(sumOf(prom, 'costguard_cost_avoided_usd_total')).toBeCloseTo(Number(ledger.avoided), 6);
    expect(sumOf(prom, 'costguard_cache_hits_total')).toBe(Number(ledger.hits));
    expect(sumOf(prom, 'llm_cost_usd_total')).toBeCloseTo(Number(ledger.cost), 6);
    expect(sumOf(prom, 'llm_api_calls_total')).toBe(Number(ledger.calls));
  });
});

describe('wrapper authorize option', () => {
  async function setBudget(userId: string, amount: string): Promise<void> {
    await setScopeBudgets(stack.client, {
      scope: `user:${userId}`,
      taskQueue: stack.taskQueue,
      change: { budgets: [{ period: 'day', amount, thresholds: { warning: 0.8, critical: 0.95 }, enforcement: 'hard' }] },
      defaultTimezone: 'UTC', pool: stack.pool, config: stack.config,
    });
  }
  const noCache = (userId: string, authorize: WrapperOptions['authorize']) => ({ cache: undefined, authorize, userId }) as Partial<WrapperOptions>;

  it('denied: BudgetDeniedError with the decision, and nothing sent upstream', async () => {
    const user = newUser('deny');
    await setBudget(user, '0.01');
    const client = openai(user, noCache(user, true));
    const err = await client.chat.completions
      .create({ model: 'cache-model', max_tokens: 1000, messages: [{ role: 'user', content: `deny m-${user}` }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetDeniedError);
    expect((err as BudgetDeniedError).decision.decision).toBe('deny');
    expect((err as BudgetDeniedError).message).toMatch(/denied the call before it was sent/);
    expect(upstream(`deny m-${user}`)).toBe(0);
  });

  it('denied but cached: a call the cache can answer is served from it (a hit costs nothing); others are denied', async () => {
    const user = newUser('deny-cached');
    await setBudget(user, '10');
    const client = openai(user, { authorize: true, userId: user } as Partial<WrapperOptions>);
    const ask = (text: string) => client.chat.completions.create({ model: 'cache-model', max_tokens: 1000, messages: [{ role: 'user', content: text }] });
    await ask(`cached m-${user}`);
    expect(upstream(`cached m-${user}`)).toBe(1);
    await setBudget(user, '0.01');
    const again = await ask(`cached m-${user}`);
    expect(again.choices[0]!.message.content).toBeTruthy();
    expect(upstream(`cached m-${user}`)).toBe(1);
    const err = await ask(`new m-${user}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetDeniedError);
    expect(upstream(`new m-${user}`)).toBe(0);
  });

  it('denied but cached, for a request that set no output limit (stored with the limit its reservation assumed)', async () => {
    const user = newUser('deny-cached-nolimit');
    await setBudget(user, '10');
    const client = openai(user, { authorize: true, userId: user } as Partial<WrapperOptions>);
    const ask = () => client.chat.completions.create({ model: 'cache-model', messages: [{ role: 'user', content: `nolimit m-${user}` }] });
    await ask();
    expect(srv.requests.at(-1)!.body).toMatchObject({ max_completion_tokens: 4096 }); // the assumed limit, sent
    await setBudget(user, '0.01');
    expect((await ask()).choices[0]!.message.content).toBeTruthy();
    expect(upstream(`nolimit m-${user}`)).toBe(1);
  });

  it('allowed: the hold settles with the usage event; a failed call releases it', async () => {
    const user = newUser('allow');
    await setBudget(user, '10');
    const holds: string[] = [];
    const granted: string[] = [];
    // The real tracker, noting the holds it grants.
    const noting = {
      record: (e: Parameters<CostTracker['record']>[0]) => tracker.record(e),
      authorize: async (r: Parameters<CostTracker['authorize']>[0]) => {
        const res = await tracker.authorize(r);
        if (res.holdId) granted.push(res.holdId);
        return res;
      },
      renewHold: (id: string, ttl?: number) => tracker.renewHold(id, ttl),
      releaseHold: (id: string) => tracker.releaseHold(id),
    };
    const client = openai(user, { ...noCache(user, true), tracker: noting, onRecord: (e) => e.holdId && holds.push(e.holdId) });
    await client.chat.completions.create({ model: 'cache-model', max_tokens: 200, messages: [{ role: 'user', content: `ok m-${user}` }] });
    await tracker.flush();
    expect(holds).toHaveLength(1);
    await eventually(() => tracker.holdState(holds[0]!), (h) => h?.state === 'settled', 30_000, 'hold settled');
    // A 500 (no retries): nothing billable, the hold goes back.
    await expect(client.chat.completions.create({ model: 'cache-model', max_tokens: 200, messages: [{ role: 'user', content: `fail m-${user}` }] }, reply({ status: 500 }))).rejects.toThrow();
    const rows = await ledgerRows(user, 2);
    expect(rows[1]!.metadata).toMatchObject({ status: 'error', httpStatus: 500 });
    expect(holds).toHaveLength(1); // the error event carries no hold...
    expect(granted).toHaveLength(2);
    await eventually(() => tracker.holdState(granted[1]!), (h) => h?.state === 'released', 10_000, 'hold released'); // ...it was given back
  });

  it('a stream that outlives its 2 s hold is renewed every third of the TTL and settles (a ~6 s slow stream)', async () => {
    const user = newUser('renew');
    await setBudget(user, '10');
    const holds: string[] = [];
    const client = anthropic(user, { ...noCache(user, { ttlSeconds: 2 }), onRecord: (e) => e.holdId && holds.push(e.holdId) });
    const stream = client.messages.stream(
      { model: 'cache-claude', max_tokens: 300, messages: [{ role: 'user', content: `slow m-${user}` }] },
      reply({ pieces: 30, delayMs: 200 }),
    );
    const final = await stream.finalMessage();
    expect(final.stop_reason).toBe('end_turn');
    const rows = await ledgerRows(user, 1);
    // ~6 s at one renewal per ~0.67 s: several renewals (the exact number depends on timers).
    expect(rows[0]!.metadata.holdRenewals as number).toBeGreaterThanOrEqual(3);
    expect(holds).toHaveLength(1);
    const h = await eventually(() => tracker.holdState(holds[0]!), (s) => s?.state === 'settled', 30_000, 'hold settled');
    expect(h?.state).toBe('settled'); // not expired: the renewals kept it open past 2 s
  }, 60_000);
});
