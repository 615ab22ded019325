/**
 * The HTTP API against the real stack (Temporal dev server, the real budget workflow and activities,
 * PostgreSQL, Redis), through fastify's inject: what an HTTP client sees, and what reaches the ledger.
 */
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/server.js';
import { CostTracker } from '../../src/client/index.js';
import { normalizeAmount } from '../../src/domain/money.js';
import { REDACT_PATHS } from '../../src/lib/logger.js';
import type { BudgetStatus } from '../../src/domain/budget-status.js';
import { eventually, type Stack, startStack, type StackApi, startApi } from './helpers/stack.js';

const KEY = 'cg_test_key_0123456789abcdef';
const auth = { 'x-api-key': KEY };

let stack: Stack;
let tracker: CostTracker;
let api: StackApi;
let app: FastifyInstance;
const logLines: string[] = [];

beforeAll(async () => {
  stack = await startStack();
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
  api = await startApi(stack, KEY, { lingerMs: 20, logger });
  ({ app, tracker } = api);
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

function event(userId: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { provider: 'openai', model: 'gpt-4o-mini', userId, usage: { inputTokens: 1200, outputTokens: 300 }, ...over };
}

async function ledgerCount(requestIds: string[]): Promise<number> {
  const { rows } = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_ledger WHERE request_id = ANY($1)', [requestIds]);
  return rows[0]!.n;
}

describe('API keys', () => {
  it('answers 401 JSON without a key or with a wrong one, on every route but /healthz', async () => {
    for (const [method, url] of [
      ['POST', '/v1/usage'],
      ['GET', '/v1/budgets/system'],
      ['PUT', '/v1/budgets/system'],
      ['GET', '/v1/openapi.json'],
      ['GET', '/v1/reports/daily/2026-03-08'],
      ['GET', '/v1/reports/daily/2026-03-08.html'],
      ['GET', '/metrics'],
      ['GET', '/v1/no-such-route'],
    ] as const) {
      for (const headers of [{}, { 'x-api-key': 'cg_wrong_key_0123456789abcdef' }, { authorization: 'Bearer cg_wrong_key_0123456789abcdef' }]) {
        const res = await app.inject({ method, url, headers, payload: method === 'GET' ? undefined : {} });
        expect(res.statusCode, `${method} ${url} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.json()).toMatchObject({ error: 'unauthorized' });
      }
    }
  });

  it('serves /healthz without a key', async () => {
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('takes the key as x-api-key or as a Bearer token, and answers 404 JSON for an unknown route', async () => {
    const a = await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: auth });
    const b = await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: { authorization: `Bearer ${KEY}` } });
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    const res = await app.inject({ method: 'GET', url: '/v1/nothing-here', headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ error: 'not_found' });
  });

  it('never writes a key to the logs', async () => {
    await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: { authorization: `Bearer ${KEY}` } });
    await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: { 'x-api-key': 'cg_wrong_key_0123456789abcdef' } });
    const all = logLines.join('');
    expect(all).toContain('/v1/openapi.json'); // requests are logged...
    expect(all).not.toContain(KEY); // ...without their keys
    expect(all).not.toContain('cg_wrong_key_0123456789abcdef');
  });
});

describe('POST /v1/usage', () => {
  it('answers 400 naming each bad field of each bad event, and records nothing of the batch', async () => {
    const before = tracker.stats().sentEvents;
    const batch = [
      event('api-bad', { requestId: 'api-bad-0' }),
      event('api-bad', { requestId: 'api-bad-1', usage: { inputTokens: -5 } }),
      event('api-bad', { requestId: 'api-bad-2' }),
      event('api-bad', { requestId: 'api-bad-3', occurredAt: 'yesterday', provider: '' }),
      event('api bad', { requestId: 'api-bad-4' }),
      event('api-bad', { requestId: 'api-bad-5', costUsd: 3 }),
    ];
    const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: auth, payload: batch });
    expect(res.statusCode).toBe(400);
    const body = res.json() as { error: string; message: string; issues: { path: string; message: string }[] };
    expect(body.error).toBe('validation');
    expect(body.issues.map((i) => i.path)).toEqual(['[1].usage.inputTokens', '[3].occurredAt', '[3].provider', '[4].userId', '[5]']);
    expect(body.issues[4]!.message).toContain('costUsd');
    expect(body.message).toMatch(/^4 of 6 usage event\(s\) invalid, nothing recorded/);
    expect(tracker.stats().sentEvents).toBe(before);
    expect(await ledgerCount(batch.map((e) => e.requestId as string))).toBe(0);
  });

  it('names fields without an index for a single event', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: auth, payload: event('api-one', { model: 42 }) });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'validation', issues: [{ path: 'model' }] });
  });

  it('answers 415 for a body that is not JSON by its content type, 400 for malformed, empty or oversized input', async () => {
    const text = await app.inject({ method: 'POST', url: '/v1/usage', headers: { ...auth, 'content-type': 'text/plain' }, payload: 'hello' });
    expect(text.statusCode).toBe(415);
    expect(text.json()).toMatchObject({ error: 'unsupported_media_type', message: expect.stringContaining('application/json') });

    const malformed = await app.inject({ method: 'POST', url: '/v1/usage', headers: { ...auth, 'content-type': 'application/json' }, payload: '{"provider": ' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toMatchObject({ error: 'validation', message: 'the request body is not valid JSON' });

    const empty = await app.inject({ method: 'POST', url: '/v1/usage', headers: { ...auth, 'content-type': 'application/json' }, payload: '' });
    expect(empty.statusCode).toBe(400);
    expect(empty.json()).toMatchObject({ error: 'validation' });

    const none = await app.inject({ method: 'POST', url: '/v1/usage', headers: auth, payload: [] });
    expect(none.statusCode).toBe(400);

    const tooMany = await app.inject({ method: 'POST', url: '/v1/usage', headers: auth, payload: Array.from({ length: 10_001 }, () => event('api-many')) });
    expect(tooMany.statusCode).toBe(400);
    expect(tooMany.json()).toMatchObject({ issues: [{ path: '', message: expect.stringContaining('at most 10000 events') }] });
  });

  it('accepts 10,000 events in one request (202 with 10,000 ids) and every one reaches the ledger exactly once', async () => {
    const events = Array.from({ length: 10_000 }, (_, i) =>
      event(`api-bulk-${i % 25}`, {
        ...(i % 2 === 0 ? { requestId: `api-bulk-${i}` } : {}), // half with the caller's ids, half generated
        model: i % 3 === 0 ? 'gpt-4o' : 'gpt-4o-mini',
        usage: { inputTokens: 500 + (i % 100), outputTokens: 50 + (i % 7) },
      }),
    );
    const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: auth, payload: events });
    expect(res.statusCode).toBe(202);
    const body = res.json() as { accepted: number; requestIds: string[] };
    expect(body.accepted).toBe(10_000);
    expect(body.requestIds).toHaveLength(10_000);
    expect(new Set(body.requestIds).size).toBe(10_000);
    expect(body.requestIds[0]).toBe('api-bulk-0');
    expect(body.requestIds[2]).toBe('api-bulk-2');

    await eventually(() => ledgerCount(body.requestIds), (n) => n === 10_000, 90_000, '10,000 ledger rows');
    const { rows } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM usage_ledger WHERE user_id LIKE 'api-bulk-%'`);
    expect(rows[0]!.n).toBe(10_000);
  });
});

describe('GET /v1/budgets/:scope', () => {
  it('returns the live status of a scope after usage, by plain or URL-encoded scope', async () => {
    const posted = await app.inject({
      method: 'POST',
      url: '/v1/usage',
      headers: auth,
      payload: [event('api-status', { requestId: 'api-status-1' }), event('api-status', { requestId: 'api-status-2', model: 'gpt-4o' })],
    });
    expect(posted.statusCode).toBe(202);
    const status = await eventually(
      async () => {
        const res = await app.inject({ method: 'GET', url: '/v1/budgets/user%3Aapi-status', headers: auth });
        return res.json() as BudgetStatus;
      },
      (s) => s.budgets?.[0]?.totals.calls === 2,
      60_000,
      'the status to count both calls',
    );
    expect(status).toMatchObject({ scope: 'user:api-status', scopeKind: 'user' });
    const day = status.budgets.find((b) => b.period === 'day')!;
    const { rows } = await stack.pool.query<{ cost: string }>(`SELECT sum(cost_usd)::text AS cost FROM usage_ledger WHERE user_id = 'api-status'`);
    expect(normalizeAmount(day.spentUsd)).toBe(normalizeAmount(rows[0]!.cost));

    const plain = await app.inject({ method: 'GET', url: '/v1/budgets/user:api-status', headers: auth });
    expect(plain.statusCode).toBe(200);
    expect((plain.json() as BudgetStatus).scope).toBe('user:api-status');
  });

  it('answers for a scope without a budget workflow (its budgets, zero spend), 400 for something that is not a scope', async () => {
    const missing = await app.inject({ method: 'GET', url: '/v1/budgets/user:api-nobody', headers: auth });
    expect(missing.statusCode).toBe(200);
    expect(missing.json()).toMatchObject({
      scope: 'user:api-nobody',
      workflow: 'none',
      budgets: [{ period: 'day', amount: '10', spentUsd: '0', level: 'ok' }],
      live: { budgets: [{ period: 'day', spentUsd: '0', totals: { calls: 0 } }] },
    });

    const bad = await app.inject({ method: 'GET', url: '/v1/budgets/galaxy:far', headers: auth });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'validation', issues: [{ path: 'scope' }] });
  });
});

describe('PUT /v1/budgets/:scope', () => {
  it('sets a scope\'s budgets (starting its workflow), and GET then shows them', async () => {
    const change = {
      budgets: [
        { period: 'day', amount: '25.00', thresholds: { warning: 0.5, critical: 0.9 } },
        { period: 'month', amount: '300', currency: 'EUR', timezone: 'Europe/Paris', thresholds: { warning: 0.8, critical: 0.95 } },
      ],
    };
    const res = await app.inject({ method: 'PUT', url: '/v1/budgets/user%3Aapi-budget', headers: auth, payload: change });
    expect(res.statusCode, res.body).toBe(200);
    const expected = [
      { period: 'day', amount: '25.00', currency: 'USD', timezone: stack.config.timezone, thresholds: { warning: 0.5, critical: 0.9 } },
      { period: 'month', amount: '300', currency: 'EUR', timezone: 'Europe/Paris', thresholds: { warning: 0.8, critical: 0.95 } },
    ];
    expect((res.json() as BudgetStatus).budgets).toMatchObject(expected);

    const got = await app.inject({ method: 'GET', url: '/v1/budgets/user:api-budget', headers: auth });
    expect(got.statusCode).toBe(200);
    expect((got.json() as BudgetStatus).budgets).toMatchObject(expected);
  });

  it('answers 400 naming each bad field of a bad change, and changes nothing', async () => {
    const res = await app.inject({
      method: 'PUT',
      url: '/v1/budgets/user:api-budget',
      headers: auth,
      payload: { budgets: [{ period: 'fortnight', amount: '-5', thresholds: { warning: 0.9, critical: 2 } }] },
    });
    expect(res.statusCode).toBe(400);
    const body = res.json() as { error: string; issues: { path: string }[] };
    expect(body.error).toBe('validation');
    expect(body.issues.map((i) => i.path).sort()).toEqual(['budgets.0.amount', 'budgets.0.period', 'budgets.0.thresholds.critical']);
    const got = await app.inject({ method: 'GET', url: '/v1/budgets/user:api-budget', headers: auth });
    expect((got.json() as BudgetStatus).budgets.map((b) => b.period)).toEqual(['day', 'month']);
  });
});

describe('PUT /v1/budgets/:scope merges by period', () => {
  const put = (payload: Record<string, unknown>) => app.inject({ method: 'PUT', url: '/v1/budgets/user:api-merge', headers: auth, payload });
  const stored = async () => (await stack.pool.query<{ budgets: unknown[] }>('SELECT budgets FROM budget_configs WHERE scope = $1', ['user:api-merge'])).rows[0]?.budgets;

  it('keeps omitted fields of a period that exists, names missing fields of a new one, removes periods left out', async () => {
    const first = await put({
      budgets: [
        { period: 'day', amount: '25', currency: 'EUR', thresholds: { info: 0.5, warning: 0.8, critical: 0.9 }, enforcement: 'hard', failMode: 'open' },
        { period: 'month', amount: '300', thresholds: { warning: 0.8, critical: 0.95 } },
      ],
    });
    expect(first.statusCode, first.body).toBe(200);

    // Only the day's amount: its thresholds, currency, enforcement and failMode are kept.
    const second = await put({ budgets: [{ period: 'day', amount: '40' }, { period: 'month' }] });
    expect(second.statusCode, second.body).toBe(200);
    expect((second.json() as BudgetStatus).budgets).toMatchObject([
      { period: 'day', amount: '40', currency: 'EUR', thresholds: { info: 0.5, warning: 0.8, critical: 0.9 } },
      { period: 'month', amount: '300', currency: 'USD', thresholds: { warning: 0.8, critical: 0.95 } },
    ]);
    expect(await stored()).toEqual([
      { period: 'day', amount: '40', currency: 'EUR', timezone: stack.config.timezone, thresholds: { info: 0.5, warning: 0.8, critical: 0.9 }, enforcement: 'hard', failMode: 'open' },
      { period: 'month', amount: '300', currency: 'USD', timezone: stack.config.timezone, thresholds: { warning: 0.8, critical: 0.95 } },
    ]);

    // A new period without its required fields: 400 naming both, nothing changed.
    const bad = await put({ budgets: [{ period: 'day' }, { period: '7d', currency: 'GBP' }] });
    expect(bad.statusCode).toBe(400);
    expect((bad.json() as { issues: { path: string; message: string }[] }).issues).toEqual([
      { path: 'budgets.1.amount', message: 'required for a new period (the scope has no "7d" budget to keep it from)' },
      { path: 'budgets.1.thresholds', message: 'required for a new period (the scope has no "7d" budget to keep it from)' },
    ]);

    // The month is left out: removed; the day keeps everything.
    const third = await put({ budgets: [{ period: 'day' }] });
    expect(third.statusCode, third.body).toBe(200);
    expect((third.json() as BudgetStatus).budgets.map((b) => `${b.period} ${b.amount}`)).toEqual(['day 40']);
    expect(await stored()).toEqual([
      { period: 'day', amount: '40', currency: 'EUR', timezone: stack.config.timezone, thresholds: { info: 0.5, warning: 0.8, critical: 0.9 }, enforcement: 'hard', failMode: 'open' },
    ]);
  });
});

describe('GET /v1/openapi.json', () => {
  it('is an OpenAPI 3 document listing every route', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: auth });
    expect(res.statusCode).toBe(200);
    const doc = JSON.parse(res.body) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/healthz',
      '/metrics',
      '/v1/advice',
      '/v1/alerts',
      '/v1/alerts/{id}',
      '/v1/alerts/{id}/ack',
      '/v1/authorize',
      '/v1/budgets/{scope}',
      '/v1/holds/{id}',
      '/v1/holds/{id}/renew',
      '/v1/openapi.json',
      '/v1/reports/{kind}/{period}',
      '/v1/reports/{kind}/{period}.html',
      '/v1/summary/{scope}',
      '/v1/traces',
      '/v1/usage',
    ]);
    expect(Object.keys(doc.paths['/v1/budgets/{scope}']!)).toEqual(expect.arrayContaining(['get', 'put']));
    expect(doc.paths['/v1/usage']!.post).toBeDefined();
  });
});

describe('Temporal unavailable', () => {
  it('answers 503 (with the request ids, to resend safely) when Temporal cannot be reached', async () => {
    // A port nothing listens on, and no gRPC-level retries: the tracker's own retries are what is tested.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const connection = Connection.lazy({ address: `127.0.0.1:${port}`, interceptors: [] });
    const deadClient = new Client({ connection });
    const deadTracker = new CostTracker({ client: deadClient, taskQueue: stack.taskQueue, lingerMs: 1, maxSendAttempts: 2, retryBaseMs: 10 });
    const deadApp = buildApi({ pool: stack.pool, apiKeys: [KEY], logger: pino({ level: 'silent' }), temporal: deadClient, tracker: deadTracker, config: stack.config, metrics: stack.metrics });
    try {
      const res = await deadApp.inject({ method: 'POST', url: '/v1/usage', headers: auth, payload: [event('api-dead', { requestId: 'api-dead-1' })] });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ error: 'unavailable', requestIds: ['api-dead-1'] });
      const status = await deadApp.inject({ method: 'GET', url: '/v1/budgets/system', headers: auth });
      expect(status.statusCode).toBe(503);
      expect(status.json()).toMatchObject({ error: 'unavailable' });
    } finally {
      await deadApp.close();
      await deadTracker.close().catch(() => undefined);
      await connection.close();
    }
  });
});
