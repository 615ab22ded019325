/**
 * The HTTP API against hostile input, on the real stack: one error shape for every error (also for
 * what Node's HTTP parser and fastify's router refuse, seen through a raw socket on a listening
 * server), the JSON depth bound, distinct `accepted` counts and the backfill flag, request timeouts,
 * per-key rate limits (and that simulated ingestion at `costguard simulate --users 1000 --rate 500`
 * is never throttled), and scoped API keys.
 */
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STATUS_OF_CODE } from '../../src/api/errors.js';
import { apiKeyId, scopeAllows, type ApiKeyScope } from '../../src/api/keys.js';
import { buildApi } from '../../src/api/server.js';
import { CostTracker } from '../../src/client/index.js';
import type { ApiConfig, Config } from '../../src/config/index.js';
import { REDACT_PATHS } from '../../src/lib/logger.js';
import { createRateLimitRedis } from '../../src/redis/rate-limit.js';
import { seededRandom } from '../../src/lib/random.js';
import { eventually, type Stack, startStack } from './helpers/stack.js';

const ADMIN = 'cg_hardening_admin_key_0123456789'; // plain: admin, as keys were configured before scopes
const INGEST = 'cg_hardening_ingest_key_012345678';
const READ = 'cg_hardening_read_key_0123456789a';
const KEYS = [ADMIN, `ingest:${INGEST}`, `read:${READ}`];
const KEY_OF: Record<ApiKeyScope, string> = { admin: ADMIN, ingest: INGEST, read: READ };
const ERROR_CODES = Object.keys(STATUS_OF_CODE);

let stack: Stack;
const trackers: CostTracker[] = [];
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  for (const app of apps) await app.close().catch(() => undefined);
  for (const tracker of trackers) await tracker.close().catch(() => undefined);
  await stack?.stop();
});

/** An API over the stack, as `costguard start` builds it, with the scoped keys and `api` settings changed as given. */
async function api(opts: { api?: Partial<ApiConfig>; logLines?: string[]; lingerMs?: number; sharedLimits?: boolean } = {}): Promise<FastifyInstance> {
  const tracker = new CostTracker({ client: stack.client, taskQueue: stack.taskQueue, lingerMs: opts.lingerMs ?? 20 });
  trackers.push(tracker);
  const lines = opts.logLines;
  const logger = lines
    ? pino(
        { level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
        new Writable({
          write(chunk: Buffer, _enc, done) {
            lines.push(chunk.toString());
            done();
          },
        }),
      )
    : pino({ level: 'silent' });
  const config: Config = { ...stack.config, api: { ...stack.config.api, ...opts.api } };
  const rateLimitRedis = opts.sharedLimits ? createRateLimitRedis(stack.redis) : undefined;
  // Until it is connected, requests pass uncounted (by design): count from the first one here.
  if (rateLimitRedis && rateLimitRedis.status !== 'ready') await new Promise((r) => rateLimitRedis.once('ready', r));
  const app = buildApi({ pool: stack.pool, apiKeys: KEYS, logger, temporal: stack.client, tracker, config, metrics: stack.metrics, ...(rateLimitRedis ? { rateLimitRedis } : {}) });
  if (rateLimitRedis) app.addHook('onClose', async () => rateLimitRedis.disconnect());
  apps.push(app);
  await app.ready();
  return app;
}

/** Listens on a free port of 127.0.0.1. */
async function listening(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return (app.server.address() as { port: number }).port;
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection after answering. */
  closed: boolean;
}

/**
 * Writes `text` to a new connection, as is (nothing is added: no Host, no Connection header), and
 * reads until the server closes the connection. Fails when nothing comes back.
 */
function rawRequest(port: number, text: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined); // a reset after the answer: what was read is the answer
    socket.on('close', () => {
      const all = Buffer.concat(chunks).toString('utf8');
      const split = all.indexOf('\r\n\r\n');
      if (split === -1) return reject(new Error(`no HTTP response, got ${JSON.stringify(all.slice(0, 200))}`));
      const [statusLine, ...headerLines] = all.slice(0, split).split('\r\n');
      const headers = Object.fromEntries(headerLines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: all.slice(split + 4), closed: true });
    });
  });
}

/** The one error shape: a JSON object with a known code matching the status, and a message. */
function expectErrorShape(status: number, contentType: string | undefined, body: string, code: string): Record<string, unknown> {
  expect(contentType).toMatch(/^application\/json/);
  const parsed = JSON.parse(body) as Record<string, unknown>;
  expect(Object.keys(parsed).every((k) => ['error', 'message', 'issues', 'requestIds'].includes(k)), body).toBe(true);
  expect(parsed.error).toBe(code);
  expect(ERROR_CODES).toContain(parsed.error);
  expect(STATUS_OF_CODE[code as keyof typeof STATUS_OF_CODE]).toBe(status);
  expect(typeof parsed.message).toBe('string');
  expect((parsed.message as string).length).toBeGreaterThan(10);
  return parsed;
}

function event(userId: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { provider: 'openai', model: 'gpt-4o-mini', userId, usage: { inputTokens: 1200, outputTokens: 300 }, ...over };
}

async function ledgerCount(requestIds: string[]): Promise<number> {
  const { rows } = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_ledger WHERE request_id = ANY($1)', [requestIds]);
  return rows[0]!.n;
}

describe('one error shape for every error', () => {
  let port: number;
  beforeAll(async () => {
    port = await listening(await api());
  });

  const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${ADMIN}\r\n${extra}Connection: close\r\n\r\n`;

  it('401, 403 and 404 (unknown route)', async () => {
    const unauthorized = await rawRequest(port, 'GET /v1/alerts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers['www-authenticate']).toBe('Bearer');
    expectErrorShape(401, unauthorized.headers['content-type'], unauthorized.body, 'unauthorized');

    const forbidden = await rawRequest(port, `GET /v1/alerts HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${INGEST}\r\nConnection: close\r\n\r\n`);
    expect(forbidden.status).toBe(403);
    expectErrorShape(403, forbidden.headers['content-type'], forbidden.body, 'forbidden');

    const missing = await rawRequest(port, get('/v1/no-such-route'));
    expect(missing.status).toBe(404);
    expect(expectErrorShape(404, missing.headers['content-type'], missing.body, 'not_found').message).toBe('no route GET /v1/no-such-route');
    // fastify answers a known path with an unknown method 404 as well (there is no 405)
    const method = await rawRequest(port, `DELETE /v1/alerts HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${ADMIN}\r\nConnection: close\r\n\r\n`);
    expect(method.status).toBe(404);
    expectErrorShape(404, method.headers['content-type'], method.body, 'not_found');
  });

  it('408 when the body is shorter than its Content-Length, or the headers never end, and the connection is closed', async () => {
    const slowPort = await listening(await api({ api: { requestTimeoutMs: 1000, headersTimeoutMs: 500 } }));
    const partialBody = await rawRequest(
      slowPort,
      `POST /v1/usage HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${INGEST}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{"provider":`,
    );
    expect(partialBody.status).toBe(408);
    expect(partialBody.headers.connection).toBe('close');
    const body = expectErrorShape(408, partialBody.headers['content-type'], partialBody.body, 'timeout');
    expect(body.message).toContain('did not arrive in time');

    const partialHeaders = await rawRequest(slowPort, `GET /v1/alerts HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${READ}\r\n`);
    expect(partialHeaders.status).toBe(408);
    expect(partialHeaders.headers.connection).toBe('close');
    expectErrorShape(408, partialHeaders.headers['content-type'], partialHeaders.body, 'timeout');
  });

  it('413 for a body larger than 32 MiB (refused by its Content-Length, before it is read)', async () => {
    const res = await rawRequest(
      port,
      `POST /v1/usage HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${INGEST}\r\nContent-Type: application/json\r\nContent-Length: ${40 * 1024 * 1024}\r\nConnection: close\r\n\r\n[`,
    );
    expect(res.status).toBe(413);
    expect(expectErrorShape(413, res.headers['content-type'], res.body, 'payload_too_large').message).toContain('32 MiB');
  });

  it('414 for a path parameter over 1000 characters and for a URL over 4096', async () => {
    const param = await rawRequest(port, get(`/v1/budgets/user:${'a'.repeat(1200)}`));
    expect(param.status).toBe(414);
    expectErrorShape(414, param.headers['content-type'], param.body, 'uri_too_long');
    const url = await rawRequest(port, get(`/v1/alerts?scope=${'b'.repeat(5000)}`));
    expect(url.status).toBe(414);
    expect(expectErrorShape(414, url.headers['content-type'], url.body, 'uri_too_long').message).toContain('4096');
  });

  it('415 for a body that is not JSON by its content type', async () => {
    const res = await rawRequest(
      port,
      `POST /v1/usage HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${INGEST}\r\nContent-Type: text/csv\r\nContent-Length: 5\r\nConnection: close\r\n\r\na,b,c`,
    );
    expect(res.status).toBe(415);
    expect(expectErrorShape(415, res.headers['content-type'], res.body, 'unsupported_media_type').message).toContain('text/csv');
  });

  it('431 for headers over 16 KiB, with Connection: close', async () => {
    const res = await rawRequest(port, get('/v1/alerts', `X-Big: ${'x'.repeat(20_000)}\r\n`));
    expect(res.status).toBe(431);
    expect(res.headers.connection).toBe('close');
    expect(expectErrorShape(431, res.headers['content-type'], res.body, 'headers_too_large').message).toContain('16384 bytes');
  });

  it('400 for a malformed percent-encoding in the URL (fastify\'s FST_ERR_BAD_URL)', async () => {
    const res = await rawRequest(port, get('/v1/budgets/%E0%A4%A'));
    expect(res.status).toBe(400);
    const body = expectErrorShape(400, res.headers['content-type'], res.body, 'validation');
    expect(body.message).toContain('/v1/budgets/%E0%A4%A');
    expect(body.issues).toEqual([{ path: 'url', message: expect.stringContaining('percent-encoding') }]);
  });

  it('400 with Connection: close for what Node\'s HTTP parser refuses (bad method, bad header, bad Content-Length)', async () => {
    for (const text of [
      'BREW /pot HTTP/1.1\r\nHost: localhost\r\n\r\n',
      `GET /v1/alerts HTTP/1.1\r\nHost: localhost\r\nBad Header: x\r\n\r\n`,
      `POST /v1/usage HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n`,
      'this is not HTTP at all\r\n\r\n',
    ]) {
      const res = await rawRequest(port, text);
      expect(res.status, text).toBe(400);
      expect(res.headers.connection).toBe('close');
      expect(expectErrorShape(400, res.headers['content-type'], res.body, 'validation').message).toMatch(/^malformed HTTP request \(HPE_/);
    }
  });

  it('503 for a request arriving while the API shuts down (on a connection kept open by one in flight)', async () => {
    // A tracker that holds the first request until released, so that close() begins while it is in flight.
    let release!: () => void;
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const gate = new Promise<void>((resolve) => (release = resolve));
    const tracker = {
      recordValidated: async () => {
        entered();
        await gate;
        return [];
      },
    } as unknown as CostTracker;
    const app = buildApi({ pool: stack.pool, apiKeys: KEYS, logger: pino({ level: 'silent' }), temporal: stack.client, tracker, config: stack.config, metrics: stack.metrics });
    const closingPort = await listening(app);
    const body = JSON.stringify([event('hard-closing', { requestId: 'hard-closing-1' })]);
    const socket = connect(closingPort, '127.0.0.1', () =>
      socket.write(
        `POST /v1/usage HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${INGEST}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      ),
    );
    const answered = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString('utf8')));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(text));
    });
    await inHandler;
    const closed = app.close();
    // The server stops listening once the preClose hooks (which mark the API as closing) have run;
    // this connection stays open for the request in flight, and the next one on it arrives now.
    await eventually(async () => app.server.listening, (listeningNow) => !listeningNow, 30_000, 'the server to stop listening');
    socket.write(`GET /v1/alerts HTTP/1.1\r\nHost: localhost\r\nx-api-key: ${READ}\r\n\r\n`);
    release();
    const text = await answered;
    await closed;
    const [first, second] = text.split(/(?=HTTP\/1\.1 )/);
    expect(first).toMatch(/^HTTP\/1\.1 202 /);
    expect(second).toMatch(/^HTTP\/1\.1 503 /);
    expect(second).toMatch(/\r\nconnection: close\r\n/i);
    const [head, json] = second!.split('\r\n\r\n');
    expect(expectErrorShape(503, /content-type: ([^\r]+)/i.exec(head!)?.[1], json!, 'unavailable').message).toContain('shutting down');
  });

  it('429 with Retry-After (see the rate limit tests), and the keyed routes still answer after all this', async () => {
    const ok = await rawRequest(port, get('/v1/openapi.json'));
    expect(ok.status).toBe(200);
  });
});

describe('JSON nesting bound', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await api();
  });

  it('answers 400 naming the problem for metadata nested 8,000 levels (16 KB), without a stack overflow', async () => {
    const deep = '['.repeat(8000) + ']'.repeat(8000);
    const payload = `{"provider":"openai","model":"gpt-4o-mini","userId":"hard-deep","usage":{"inputTokens":1},"metadata":{"x":${deep}}}`;
    const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': INGEST, 'content-type': 'application/json' }, payload });
    expect(res.statusCode).toBe(400);
    const body = expectErrorShape(400, res.headers['content-type'] as string, res.body, 'validation');
    expect(body.message).toContain('nests too deeply');
    expect(body.issues).toEqual([{ path: '', message: 'JSON nests deeper than 32 levels of objects and arrays' }]);
  });

  it('lets 32 levels through to validation and refuses 33, whatever the route', async () => {
    const nested = (levels: number) => '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1);
    const at32 = await app.inject({ method: 'PUT', url: '/v1/budgets/user:hard-depth', headers: { 'x-api-key': ADMIN, 'content-type': 'application/json' }, payload: nested(32) });
    expect(at32.statusCode).toBe(400);
    expect(at32.json()).toMatchObject({ error: 'validation' });
    expect((at32.json() as { message: string }).message).not.toContain('nests too deeply');

    const at33 = await app.inject({ method: 'PUT', url: '/v1/budgets/user:hard-depth', headers: { 'x-api-key': ADMIN, 'content-type': 'application/json' }, payload: nested(33) });
    expect(at33.statusCode).toBe(400);
    expect((at33.json() as { message: string }).message).toContain('nests too deeply');
  });

  it('counts brackets inside strings as text, and still refuses prototype poisoning', async () => {
    const brackets = JSON.stringify([event('hard-brackets', { requestId: 'hard-brackets-1', tags: { note: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{' } })]);
    const ok = await app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': INGEST, 'content-type': 'application/json' }, payload: brackets });
    expect(ok.statusCode, ok.body).toBe(202);

    const poisoned = '{"provider":"openai","model":"m","userId":"u","usage":{},"__proto__":{"isAdmin":true}}';
    const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': INGEST, 'content-type': 'application/json' }, payload: poisoned });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'validation', issues: [{ path: '', message: expect.stringContaining('__proto__') }] });
  });
});

describe('POST /v1/usage: accepted and backfill', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await api();
  });

  it('counts distinct request ids in `accepted` (a requestId twice in one array is one event)', async () => {
    const payload = [event('hard-dup', { requestId: 'hard-dup-1' }), event('hard-dup', { requestId: 'hard-dup-1' }), event('hard-dup', { requestId: 'hard-dup-2' })];
    const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': INGEST }, payload });
    expect(res.statusCode, res.body).toBe(202);
    expect(res.json()).toEqual({ accepted: 2, requestIds: ['hard-dup-1', 'hard-dup-1', 'hard-dup-2'] });
    await eventually(() => ledgerCount(['hard-dup-1', 'hard-dup-2']), (n) => n === 2, 60_000, 'two ledger rows');
  });

  it('records an event older than the usual window only with ?backfill=true', async () => {
    const old = new Date(Date.now() - 30 * 24 * 3_600_000).toISOString();
    const payload = [event('hard-backfill', { requestId: 'hard-backfill-1', occurredAt: old })];
    const refused = await app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': INGEST }, payload });
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ error: 'validation', issues: [{ path: '[0].occurredAt' }] });

    const accepted = await app.inject({ method: 'POST', url: '/v1/usage?backfill=true', headers: { 'x-api-key': INGEST }, payload });
    expect(accepted.statusCode, accepted.body).toBe(202);
    expect(accepted.json()).toEqual({ accepted: 1, requestIds: ['hard-backfill-1'] });
    await eventually(() => ledgerCount(['hard-backfill-1']), (n) => n === 1, 60_000, 'the backfilled ledger row');
  });

  it('refuses any other backfill value with 400 naming the parameter, and records nothing', async () => {
    for (const query of ['backfill=1', 'backfill=yes', 'backfill=TRUE', 'backfill=', 'backfill=false', 'backfill=true&backfill=true']) {
      const res = await app.inject({ method: 'POST', url: `/v1/usage?${query}`, headers: { 'x-api-key': INGEST }, payload: [event('hard-bad-flag', { requestId: 'hard-bad-flag-1' })] });
      expect(res.statusCode, query).toBe(400);
      expect(res.json()).toMatchObject({ error: 'validation', issues: [{ path: 'backfill', message: expect.stringContaining('expected "true"') }] });
    }
    expect(await ledgerCount(['hard-bad-flag-1'])).toBe(0);
  });
});

describe('scoped API keys', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await api();
  });

  const routes: { method: 'GET' | 'POST' | 'PUT'; url: string; needs: ApiKeyScope; payload?: unknown }[] = [
    { method: 'POST', url: '/v1/usage', needs: 'ingest', payload: [] },
    { method: 'GET', url: '/v1/budgets/system', needs: 'read' },
    { method: 'PUT', url: '/v1/budgets/user:hard-scope', needs: 'admin', payload: { budgets: 'none' } },
    { method: 'GET', url: '/v1/alerts', needs: 'read' },
    { method: 'GET', url: '/v1/alerts/000000000000', needs: 'read' },
    { method: 'POST', url: '/v1/alerts/000000000000/ack', needs: 'admin', payload: {} },
    { method: 'GET', url: '/v1/reports/daily/2026-03-08', needs: 'read' },
    { method: 'GET', url: '/v1/reports/daily/2026-03-08.html', needs: 'read' },
    { method: 'GET', url: '/v1/openapi.json', needs: 'read' },
    { method: 'GET', url: '/metrics', needs: 'read' },
  ];

  it('answers 403 naming the scope needed to a key of the wrong scope, and lets the right ones through', async () => {
    for (const route of routes) {
      for (const scope of ['ingest', 'read', 'admin'] as const) {
        const res = await app.inject({ method: route.method, url: route.url, headers: { 'x-api-key': KEY_OF[scope] }, payload: route.payload as object });
        const what = `${scope} key on ${route.method} ${route.url}`;
        if (scopeAllows(scope, route.needs)) {
          expect(res.statusCode, what).not.toBe(403);
          expect(res.statusCode, what).not.toBe(401);
        } else {
          expect(res.statusCode, what).toBe(403);
          const body = res.json() as { error: string; message: string };
          expect(body.error).toBe('forbidden');
          expect(body.message).toContain(`scope (${scope})`);
          expect(body.message).toContain(route.needs === 'admin' ? 'needs an admin key' : `needs an ${route.needs} or admin key`);
        }
      }
    }
  });

  it('takes a scoped key as a Bearer token too; the scope word itself is not part of the key', async () => {
    const bearer = await app.inject({ method: 'GET', url: '/v1/alerts', headers: { authorization: `Bearer ${READ}` } });
    expect(bearer.statusCode).toBe(200);
    const withScope = await app.inject({ method: 'GET', url: '/v1/alerts', headers: { 'x-api-key': `read:${READ}` } });
    expect(withScope.statusCode).toBe(401);
  });

  it('lets any valid key reach the 404 of an unknown route', async () => {
    for (const key of [INGEST, READ, ADMIN]) {
      const res = await app.inject({ method: 'GET', url: '/v1/nothing', headers: { 'x-api-key': key } });
      expect(res.statusCode).toBe(404);
    }
  });

  it('documents each operation\'s scope, every error response, the backfill flag and the limits in the OpenAPI document', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: { 'x-api-key': READ } });
    const doc = res.json() as {
      info: { description: string };
      paths: Record<string, Record<string, { security?: Record<string, string[]>[]; responses: Record<string, unknown>; parameters?: { name: string }[] }>>;
      components: { schemas: { Error: { properties: { error: { enum: string[] } } } } };
    };
    for (const route of routes) {
      const path = route.url
        .replace(/^\/v1\/budgets\/.*/, '/v1/budgets/{scope}')
        .replace(/^\/v1\/alerts\/0+\/ack$/, '/v1/alerts/{id}/ack')
        .replace(/^\/v1\/alerts\/0+$/, '/v1/alerts/{id}')
        .replace(/^\/v1\/reports\/daily\/[^/]+\.html$/, '/v1/reports/{kind}/{period}.html')
        .replace(/^\/v1\/reports\/daily\/[^/.]+$/, '/v1/reports/{kind}/{period}');
      const op = doc.paths[path]![route.method.toLowerCase()]!;
      expect(op.security, path).toEqual([{ apiKey: [route.needs] }, { bearer: [route.needs] }]);
      expect(Object.keys(op.responses), path).toEqual(expect.arrayContaining(['401', '403', '408', '414', '429', '431']));
      if (route.method !== 'GET') expect(Object.keys(op.responses), path).toEqual(expect.arrayContaining(['413', '415']));
    }
    expect(doc.paths['/v1/usage']!.post!.parameters!.map((p) => p.name)).toContain('backfill');
    expect(doc.components.schemas.Error.properties.error.enum.sort()).toEqual([...ERROR_CODES].sort());
    for (const limit of ['32 MiB', '32 levels', '4096 characters', '16 KiB', 'api.headersTimeoutMs', 'api.requestTimeoutMs', 'api.rateLimit']) {
      expect(doc.info.description).toContain(limit);
    }
  });
});

describe('rate limits per API key', () => {
  it('answers 429 in the error shape with Retry-After once a key is over its scope\'s budget; other keys and scopes count apart', async () => {
    const logLines: string[] = [];
    const app = await api({ api: { rateLimit: { windowMs: 600_000, ingest: 3, read: 2, admin: 0 } }, logLines });
    const read = () => app.inject({ method: 'GET', url: '/v1/openapi.json', headers: { 'x-api-key': READ } });
    expect((await read()).statusCode).toBe(200);
    expect((await read()).statusCode).toBe(200);
    const limited = await read();
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.headers['x-ratelimit-limit']).toBe('2');
    const body = expectErrorShape(429, limited.headers['content-type'] as string, limited.body, 'rate_limited');
    expect(body.message).toMatch(/^this API key \(scope read\) made more than 2 requests in 600 s; retry after \d+ s$/);

    // the ingest key has its own budget, untouched by the read key's
    for (let i = 0; i < 3; i++) {
      expect((await app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': INGEST }, payload: [] })).statusCode).toBe(400);
    }
    expect((await app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': INGEST }, payload: [] })).statusCode).toBe(429);
    // admin: 0 means no limit
    for (let i = 0; i < 10; i++) expect((await app.inject({ method: 'GET', url: '/v1/alerts', headers: { 'x-api-key': ADMIN } })).statusCode).toBe(200);
    // a request without a valid key is a 401, never counted against a key
    expect((await app.inject({ method: 'GET', url: '/v1/alerts', headers: { 'x-api-key': 'cg_not_a_key_0123456789' } })).statusCode).toBe(401);

    const logs = logLines.join('');
    expect(logs).toContain('API key over its rate limit');
    expect(logs).toContain(apiKeyId(READ)); // named by a hash...
    for (const key of [READ, INGEST, ADMIN]) expect(logs).not.toContain(key); // ...never by the key
    // warned once per key and window, not once per refused request
    expect(logLines.filter((l) => l.includes('API key over its rate limit') && l.includes(apiKeyId(READ)))).toHaveLength(1);
  });

  it('counts a key once across API replicas sharing Redis (two replicas do not double its budget)', async () => {
    const limits = { rateLimit: { windowMs: 600_000, ingest: 4, read: 3, admin: 0 } };
    const [a, b] = [await api({ api: limits, sharedLimits: true }), await api({ api: limits, sharedLimits: true })];
    const read = (app: FastifyInstance) => app.inject({ method: 'GET', url: '/v1/openapi.json', headers: { 'x-api-key': READ } });
    expect([(await read(a)).statusCode, (await read(b)).statusCode, (await read(a)).statusCode]).toEqual([200, 200, 200]);
    const limited = await read(b);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['x-ratelimit-limit']).toBe('3');
    // the counter lives under the stack's prefix, named by the key's hash, never the key
    const counters = await stack.redis.keys(`${stack.redisPrefix}ratelimit:*`);
    expect(counters.some((k) => k.includes(apiKeyId(READ)))).toBe(true);
    expect(counters.some((k) => k.includes(READ))).toBe(false);
    // another key (ingest) has its own budget on both replicas
    const ingest = (app: FastifyInstance) => app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': INGEST }, payload: [] });
    expect([(await ingest(a)).statusCode, (await ingest(b)).statusCode, (await ingest(a)).statusCode, (await ingest(b)).statusCode, (await ingest(a)).statusCode]).toEqual([400, 400, 400, 400, 429]);
  });

  it('lets requests through uncounted when the shared counters cannot be reached (Redis down is no API outage)', async () => {
    const unreachable = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    unreachable.on('error', () => undefined);
    const tracker = new CostTracker({ client: stack.client, taskQueue: stack.taskQueue });
    trackers.push(tracker);
    const app = buildApi({ pool: stack.pool, apiKeys: KEYS, logger: pino({ level: 'silent' }), temporal: stack.client, tracker, config: { ...stack.config, api: { ...stack.config.api, rateLimit: { windowMs: 600_000, ingest: 1, read: 1, admin: 0 } } }, metrics: stack.metrics, rateLimitRedis: unreachable });
    apps.push(app);
    await app.ready();
    for (let i = 0; i < 3; i++) expect((await app.inject({ method: 'GET', url: '/v1/openapi.json', headers: { 'x-api-key': READ } })).statusCode).toBe(200);
    unreachable.disconnect();
  });

  it('never throttles ingestion at the rate of `costguard simulate --users 1000 --rate 500` (default limits)', async () => {
    // As a client batching per user like CostTracker (linger 200 ms): every 200 ms, 100 events over
    // 1,000 users, one POST per user with events in that tick: about 475 requests/s, 500 events/s,
    // for 12 s, so across more than one rate-limit window (default 10 s).
    const app = await api({ lingerMs: 200 });
    const { windowMs, ingest } = stack.config.api.rateLimit;
    const random = seededRandom(1000);
    const statuses = new Map<number, number>();
    const sentAt: number[] = [];
    const pending: Promise<void>[] = [];
    const ticks = 60;
    let events = 0;
    for (let tick = 0; tick < ticks; tick++) {
      const byUser = new Map<string, Record<string, unknown>[]>();
      for (let i = 0; i < 100; i++) {
        const user = `hard-sim-${Math.floor(random() * 1000)}`;
        const list = byUser.get(user) ?? [];
        list.push(event(user, { requestId: `hard-sim-${tick}-${i}`, usage: { inputTokens: 100 + i, outputTokens: 20 } }));
        byUser.set(user, list);
        events++;
      }
      for (const batch of byUser.values()) {
        sentAt.push(Date.now());
        pending.push(
          app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': INGEST }, payload: batch }).then((res) => {
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          }),
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await Promise.all(pending);
    // The busiest window of the run, measured: the requests sent within any windowMs.
    let busiest = 0;
    for (let i = 0, j = 0; i < sentAt.length; i++) {
      while (sentAt[i]! - sentAt[j]! >= windowMs) j++;
      busiest = Math.max(busiest, i - j + 1);
    }
    expect(events).toBe(6000);
    expect(Object.fromEntries(statuses)).toEqual({ 202: sentAt.length });
    // generous: the busiest window used at most half of the ingest budget
    expect(busiest).toBeLessThanOrEqual(ingest / 2);
  });
});
