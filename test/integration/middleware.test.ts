/**
 * The fastify plugin and the express middleware on real HTTP servers, with a wrapped OpenAI client
 * calling the local protocol server (helpers/llm-servers.ts) and recording through a real
 * CostTracker into the real stack. Attribution per request (50 concurrent requests for 50 users,
 * nothing leaking between them), the request's totals in the handler and in response headers, and a
 * client disconnect aborting the upstream call.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CostContext,
  CostTracker,
  costGuardExpress,
  costGuardFastify,
  currentCostContext,
  type UsageEventInput,
  withCostAttribution,
  wrapOpenAI,
} from '../../src/client/index.js';
import { createResponseCache } from '../../src/client/wrappers/index.js';
import { addAmounts, normalizeAmount } from '../../src/domain/money.js';
import { createPricingEngine } from '../../src/pricing/index.js';
import { defaultInputTokens, type LlmServer, startLlmServer } from './helpers/llm-servers.js';
import { eventually, type Stack, startStack } from './helpers/stack.js';

let stack: Stack;
let srv: LlmServer;
let tracker: CostTracker;
let client: OpenAI;
/** The same, with the response cache. */
let cachedClient: OpenAI;
const recorded: UsageEventInput[] = [];
const errors: unknown[] = [];

beforeAll(async () => {
  [stack, srv] = await Promise.all([startStack(), startLlmServer()]);
  tracker = new CostTracker({ client: stack.client, taskQueue: stack.taskQueue, lingerMs: 20 });
  client = wrapOpenAI(new OpenAI({ apiKey: 'sk-test', baseURL: srv.openaiBaseURL, maxRetries: 0 }), {
    tracker,
    taskType: 'default-task',
    onRecord: (e) => recorded.push(e),
    onError: (err) => errors.push(err),
  });
  const cache = createResponseCache({ redis: stack.redis, pricing: createPricingEngine(stack.config), keyPrefix: stack.config.redis.keyPrefix });
  cachedClient = wrapOpenAI(new OpenAI({ apiKey: 'sk-test', baseURL: srv.openaiBaseURL, maxRetries: 0 }), { tracker, cache, onError: (err) => errors.push(err) });
});

afterAll(async () => {
  await tracker?.close();
  await srv?.close();
  await stack?.stop();
});

interface Row {
  user_id: string;
  task_type: string;
  tags: Record<string, string>;
  input_tokens: number;
  output_tokens: number;
  estimated: boolean;
  cost_usd: string;
  metadata: { status: string; api: string; estimated: boolean };
}

async function rowsOf(userId: string, n: number): Promise<Row[]> {
  await tracker.flush();
  const rows = await eventually(
    async () =>
      (
        await stack.pool.query<Row>(
          `SELECT user_id, task_type, tags, input_tokens::int, output_tokens::int, estimated, cost_usd::text, metadata
             FROM usage_ledger WHERE user_id = $1 ORDER BY occurred_at`,
          [userId],
        )
      ).rows,
    (r) => r.length >= n,
    60_000,
    `${n} ledger row(s) for ${userId}`,
  );
  expect(rows).toHaveLength(n);
  return rows;
}

/** What a handler does: a plain Chat Completions call and a streamed Responses call, then reports its context. */
async function twoCalls(prompt: string, ctx: CostContext | null | undefined) {
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
  const stream = await client.responses.create({ model: 'gpt-4o-mini', input: prompt, stream: true });
  for await (const _ of stream) {
    // to the end
  }
  return { calls: ctx?.calls, costUsd: ctx?.costUsd, totals: ctx?.snapshot(), sameContext: currentCostContext() === ctx };
}

/** A handler that streams slowly until the client goes away. */
async function slowCall(): Promise<{ chunks: number }> {
  let chunks = 0;
  const stream = await client.chat.completions.create(
    { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a long answer please' }], stream: true },
    { headers: { 'x-fake-reply': JSON.stringify({ pieces: 500, delayMs: 20 }) } },
  );
  for await (const _ of stream) chunks++;
  return { chunks };
}

/** The same question twice through the cache: a miss, then a hit (10,000 input tokens: worth storing). */
async function askTwice(prompt: string, ctx: CostContext | null | undefined) {
  const ask = () => cachedClient.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] }, { headers: { 'x-fake-reply': JSON.stringify({ usage: { input: 10_000, output: 5 } }) } });
  const first = await ask();
  const second = await ask();
  return { same: first.choices[0]!.message.content === second.choices[0]!.message.content, totals: ctx?.snapshot() };
}

const pricing = () => createPricingEngine(stack.config);

interface Harness {
  name: string;
  start(): Promise<{ url: string; close(): Promise<void> }>;
}

const harnesses: Harness[] = [
  {
    name: 'fastify',
    async start() {
      const app: FastifyInstance = Fastify({ forceCloseConnections: true }); // the test's fetch may leave an unused connection open
      await app.register(costGuardFastify, {
        userIdHeader: 'x-user-id',
        tags: (request) => ({ route: request.url.split('?')[0]! }),
        responseHeaders: true,
        pricing: pricing(),
      });
      app.post('/ask', async (request) => twoCalls((request.body as { prompt: string }).prompt, request.costGuard));
      app.post('/nested', async (request) => {
        await withCostAttribution({ taskType: 'summarization' }, () => client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'nested' }] }));
        await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'outer' }] });
        return { calls: request.costGuard!.calls };
      });
      app.post('/slow', async () => slowCall());
      app.post('/cached', async (request) => askTwice((request.body as { prompt: string }).prompt, request.costGuard));
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
    },
  },
  {
    name: 'express',
    async start() {
      const app = express();
      app.use(express.json());
      app.use(costGuardExpress({ userIdHeader: 'x-user-id', tags: (req) => ({ route: req.path }), responseHeaders: true, pricing: pricing() }));
      app.post('/ask', async (req, res) => {
        res.json(await twoCalls((req.body as { prompt: string }).prompt, res.locals.costGuard as CostContext));
      });
      app.post('/nested', async (_req, res) => {
        await withCostAttribution({ taskType: 'summarization' }, () => client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'nested' }] }));
        await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'outer' }] });
        res.json({ calls: (res.locals.costGuard as CostContext).calls });
      });
      app.post('/slow', async (_req, res) => {
        res.json(await slowCall());
      });
      app.post('/cached', async (req, res) => {
        res.json(await askTwice((req.body as { prompt: string }).prompt, res.locals.costGuard as CostContext));
      });
      const server = app.listen(0, '127.0.0.1');
      await once(server, 'listening');
      return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () =>
          new Promise<void>((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      };
    },
  },
];

describe.each(harnesses)('$name', (harness) => {
  let app: { url: string; close(): Promise<void> };
  beforeAll(async () => {
    app = await harness.start();
  });
  afterAll(async () => {
    await app?.close();
  });

  const post = (path: string, user: string, body: unknown, signal?: AbortSignal) =>
    fetch(`${app.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-user-id': user }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });

  it('attributes the calls of 50 concurrent requests to their own users, and reports each request\'s totals', async () => {
    const users = Array.from({ length: 50 }, (_, i) => `mw-${harness.name}-${i}`);
    const prompts = users.map((_, i) => `question ${'?'.repeat(i + 1)}`);
    const responses = await Promise.all(users.map((u, i) => post('/ask', u, { prompt: prompts[i] })));
    const bodies = await Promise.all(responses.map(async (r) => ({ status: r.status, headers: r.headers, body: (await r.json()) as Awaited<ReturnType<typeof twoCalls>> })));
    for (const [i, { status, headers, body }] of bodies.entries()) {
      expect(status).toBe(200);
      const input = defaultInputTokens({ input: prompts[i] });
      expect(body).toMatchObject({ calls: 2, sameContext: true });
      expect(body.totals!.tokens).toMatchObject({ inputTokens: 2 * input, outputTokens: 10 });
      expect(headers.get('x-costguard-calls')).toBe('2');
      expect(headers.get('x-costguard-cost-usd')).toBe(body.costUsd);
    }
    for (const [i, user] of users.entries()) {
      const rows = await rowsOf(user, 2);
      const input = defaultInputTokens({ input: prompts[i] });
      for (const row of rows) {
        expect(row).toMatchObject({ user_id: user, input_tokens: input, output_tokens: 5, estimated: false, task_type: 'default-task', tags: { route: '/ask' } });
      }
      // The locally estimated cost is the ledger's, to the last digit.
      expect(bodies[i]!.body.costUsd).toBe(normalizeAmount(addAmounts(...rows.map((r) => r.cost_usd))));
    }
  });

  it('nested attribution inside a request counts in the request', async () => {
    const user = `mw-${harness.name}-nested`;
    const res = await post('/nested', user, {});
    expect(await res.json()).toEqual({ calls: 2 });
    const rows = await rowsOf(user, 2);
    expect(rows.map((r) => r.task_type).sort()).toEqual(['default-task', 'summarization']);
  });

  it('a cache hit counts in the request\'s totals (a call, no tokens, no spend)', async () => {
    const user = `mw-${harness.name}-cached`;
    const before = srv.requests.length;
    const res = await post('/cached', user, { prompt: `cached question ${harness.name} ${Date.now()}` });
    const body = (await res.json()) as Awaited<ReturnType<typeof askTwice>>;
    expect(srv.requests.length - before).toBe(1); // the second was a hit
    expect(body.same).toBe(true);
    expect(body.totals).toMatchObject({ calls: 2, cacheHits: 1, tokens: { inputTokens: 10_000, outputTokens: 5 } });
    expect(res.headers.get('x-costguard-calls')).toBe('2');
    const rows = await rowsOf(user, 2);
    // The request's cost is the miss's alone, as in the ledger (a hit is cost avoided).
    expect(res.headers.get('x-costguard-cost-usd')).toBe(normalizeAmount(addAmounts(...rows.map((r) => r.cost_usd))));
  });

  it('a client that disconnects aborts the upstream call, recorded as aborted with estimated tokens', async () => {
    const user = `mw-${harness.name}-gone`;
    const before = srv.requests.length;
    const ac = new AbortController();
    const pending = post('/slow', user, {}, ac.signal).catch((err: unknown) => err);
    await srv.waitForRequests(before + 1);
    const upstream = srv.requests[before]!;
    await new Promise((r) => setTimeout(r, 200)); // a few chunks
    ac.abort();
    expect(await pending).toMatchObject({ name: 'AbortError' });
    await upstream.done;
    expect(upstream.closedEarly).toBe(true);
    const [row] = await rowsOf(user, 1);
    expect(row!.metadata).toMatchObject({ status: 'aborted', estimated: true });
    expect(row!.estimated).toBe(true);
    expect(row!.output_tokens).toBeGreaterThan(0);
    expect(row!.output_tokens).toBeLessThan(500 * 2);
  });
});

describe('outside any request', () => {
  it('calls are attributed to the wrapper\'s defaults (the fallback user)', async () => {
    const before = recorded.length;
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'no request here' }] });
    expect(recorded.slice(before)).toMatchObject([{ userId: 'anonymous', taskType: 'default-task' }]);
  });

  it('recorded without failures', () => {
    expect(errors).toEqual([]);
  });
});
