/**
 * POST /v1/traces against the real stack, fed by real OpenTelemetry clients: the OpenTelemetry JS
 * SDK with its OTLP protobuf and JSON exporters, the OpenTelemetry instrumentation of the `openai`
 * SDK and the Anthropic SDK's own tracing, both calling the local provider server. The ledger rows
 * must equal what `costguard price` gives for the same usage, once per span however often it is sent.
 */
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { gzipSync } from 'node:zlib';
import Anthropic from '@anthropic-ai/sdk';
import type { Span } from '@opentelemetry/api';
import { OTLPTraceExporter as OTLPHttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { OpenAIInstrumentation } from '@opentelemetry/instrumentation-openai';
import otlpRoot from '@opentelemetry/otlp-transformer/build/src/generated/root.js';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { Client, Connection } from '@temporalio/client';
import type OpenAIType from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../src/api/server.js';
import { CostTracker } from '../../src/client/index.js';
import { runPriceCommand } from '../../src/cli/price.js';
import { createLogger } from '../../src/lib/logger.js';
import { type LlmServer, startLlmServer } from './helpers/llm-servers.js';
import { eventually, type Stack, type StackApi, startApi, startStack } from './helpers/stack.js';

const KEY = 'cg_otlp_ingest_key_0123456789';
const headers = { 'x-api-key': KEY };

interface MessageType {
  decode(bytes: Uint8Array): Record<string, unknown>;
  encode(message: unknown): { finish(): Uint8Array };
}
const v1 = (otlpRoot as unknown as { opentelemetry: { proto: { collector: { trace: { v1: Record<string, MessageType> } } } } }).opentelemetry.proto.collector.trace.v1;

let stack: Stack;
let api: StackApi;
let llm: LlmServer;
let tracesUrl: string;
const providers: { shutdown(): Promise<void> }[] = [];

beforeAll(async () => {
  stack = await startStack();
  // An ingest-scoped key, as a Collector would be given.
  api = await startApi(stack, `ingest:${KEY}`, { lingerMs: 20 });
  const address = await api.app.listen({ host: '127.0.0.1', port: 0 });
  tracesUrl = `${address}/v1/traces`;
  llm = await startLlmServer();
});

afterAll(async () => {
  for (const p of providers) await p.shutdown().catch(() => undefined);
  await llm?.close();
  await api?.close();
  await stack?.stop();
});

interface LedgerRow {
  request_id: string;
  provider: string;
  model: string;
  user_id: string;
  team: string | null;
  task_type: string;
  input_tokens: string;
  cache_read_tokens: string;
  cache_write_tokens: string;
  output_tokens: string;
  reasoning_tokens: string;
  cost_usd: string;
}

async function ledgerRows(userId: string, atLeast: number): Promise<LedgerRow[]> {
  return eventually(
    async () => (await stack.pool.query<LedgerRow>('SELECT * FROM usage_ledger WHERE user_id = $1 ORDER BY request_id', [userId])).rows,
    (rows) => rows.length >= atLeast,
    30_000,
    `${atLeast} ledger row(s) of ${userId}`,
  );
}

/** What `costguard price` answers for one ledger row's provider, model, usage and time. */
function priceOf(row: LedgerRow, occurredAt: Date): string {
  const usage = {
    inputTokens: Number(row.input_tokens),
    cacheReadTokens: Number(row.cache_read_tokens),
    cacheWriteTokens: Number(row.cache_write_tokens),
    outputTokens: Number(row.output_tokens),
    reasoningTokens: Number(row.reasoning_tokens),
  };
  return runPriceCommand(stack.config, { provider: row.provider, model: row.model, usage: JSON.stringify(usage), usageFormat: 'costguard', at: occurredAt.toISOString(), currency: 'USD' }, Date.now()).totalUsd;
}

function tracerProvider(serviceName: string, exporter: SpanExporter): NodeTracerProvider {
  const provider = new NodeTracerProvider({ resource: resourceFromAttributes({ 'service.name': serviceName }), spanProcessors: [new SimpleSpanProcessor(exporter)] });
  providers.push(provider);
  return provider;
}

const protoExporter = () => new OTLPProtoExporter({ url: tracesUrl, headers });

describe('real clients through the OTLP exporters', () => {
  it('the openai SDK, instrumented by @opentelemetry/instrumentation-openai, exported as protobuf: priced as costguard price prices it', async () => {
    const provider = tracerProvider('otel-openai-svc', protoExporter());
    registerInstrumentations({ tracerProvider: provider, instrumentations: [new OpenAIInstrumentation()] });
    // The instrumentation patches the module as it is required (require-in-the-middle).
    const { OpenAI } = createRequire(import.meta.url)('openai') as { OpenAI: typeof OpenAIType };
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${llm.url}/v1` });
    for (const [input, output] of [[1200, 300], [800, 40]]) {
      await client.chat.completions.create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] },
        { headers: { 'x-fake-reply': JSON.stringify({ usage: { input, output } }) } },
      );
    }
    await provider.forceFlush();
    const rows = await ledgerRows('otel-openai-svc', 2);
    expect(rows.map((r) => [r.provider, r.model, r.task_type, r.input_tokens, r.output_tokens].map(String)).sort()).toEqual([
      ['openai', 'gpt-4o-mini', 'chat', '1200', '300'],
      ['openai', 'gpt-4o-mini', 'chat', '800', '40'],
    ]);
    for (const row of rows) {
      expect(row.request_id).toMatch(/^otel:[0-9a-f]{32}:[0-9a-f]{16}$/);
      const { rows: at } = await stack.pool.query<{ occurred_at: Date }>('SELECT occurred_at FROM usage_ledger WHERE request_id = $1', [row.request_id]);
      expect(String(row.cost_usd)).toBe(priceOf(row, at[0]!.occurred_at));
      expect(Number(row.cost_usd)).toBeGreaterThan(0);
    }
  });

  it('the Anthropic SDK tracing its own calls, gzip protobuf: cache reads and writes counted once, as costguard price --usage-format anthropic prices them', async () => {
    const exporter = new OTLPProtoExporter({ url: tracesUrl, headers, compression: 'gzip' as never });
    const provider = tracerProvider('otel-anthropic-svc', exporter);
    const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: llm.url, openTelemetry: { tracerProvider: provider } });
    const message = await client.messages.create(
      { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'hello' }] },
      { headers: { 'x-fake-reply': JSON.stringify({ usage: { input: 5000, cacheRead: 3000, cacheWrite: 1200, output: 90 } }) } },
    );
    await provider.forceFlush();
    const [row] = await ledgerRows('otel-anthropic-svc', 1);
    // Anthropic's input_tokens leave the cache out; the row holds the inclusive total, the cache once.
    expect(message.usage.input_tokens).toBe(800);
    expect([row!.input_tokens, row!.cache_read_tokens, row!.cache_write_tokens, row!.output_tokens].map(String)).toEqual(['5000', '3000', '1200', '90']);
    const { rows: at } = await stack.pool.query<{ occurred_at: Date }>('SELECT occurred_at FROM usage_ledger WHERE request_id = $1', [row!.request_id]);
    const priced = runPriceCommand(
      stack.config,
      { provider: 'anthropic', model: row!.model, usage: JSON.stringify(message.usage), usageFormat: 'anthropic', at: at[0]!.occurred_at.toISOString(), currency: 'USD' },
      Date.now(),
    );
    expect(priced.priced).toBe(true);
    expect(String(row!.cost_usd)).toBe(priced.totalUsd);
  });

  it('older OpenLLMetry attribute names over the OTLP/JSON exporter; spans without GenAI usage are ignored and counted', async () => {
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'otel-json-svc', 'service.namespace': 'growth' }),
      spanProcessors: [new SimpleSpanProcessor(new OTLPHttpJsonExporter({ url: tracesUrl, headers }))],
    });
    providers.push(provider);
    const tracer = provider.getTracer('openllmetry-style');
    const before = await ignoredCount();
    const llmSpan: Span = tracer.startSpan('openai.chat');
    llmSpan.setAttributes({
      'gen_ai.system': 'OpenAI',
      'gen_ai.request.model': 'gpt-4o',
      'gen_ai.usage.prompt_tokens': 10_000,
      'gen_ai.usage.completion_tokens': 500,
      'gen_ai.usage.cache_read_input_tokens': 4000,
      'costguard.project': 'search',
      'costguard.tag.feature': 'digest',
    });
    llmSpan.end();
    tracer.startSpan('GET /health', { attributes: { 'http.request.method': 'GET' } }).end();
    await provider.forceFlush();
    const [row] = await ledgerRows('otel-json-svc', 1);
    expect(row).toMatchObject({ provider: 'openai', model: 'gpt-4o', team: 'growth', project: 'search', tags: { feature: 'digest' } });
    // gpt-4o: 6000 x 2.5 + 4000 x 1.25 + 500 x 10 per Mtok = 0.025 USD, the cached 4000 counted once.
    expect([row!.input_tokens, row!.cache_read_tokens].map(String)).toEqual(['10000', '4000']);
    const { rows: at } = await stack.pool.query<{ occurred_at: Date }>('SELECT occurred_at FROM usage_ledger WHERE request_id = $1', [row!.request_id]);
    expect(String(row!.cost_usd)).toBe(priceOf(row!, at[0]!.occurred_at));
    expect(await ignoredCount()).toBe(before + 1);
  });
});

async function ignoredCount(): Promise<number> {
  const metric = await stack.metrics.registry.getSingleMetric('costguard_otlp_spans_total')?.get();
  return metric?.values.find((v) => v.labels.outcome === 'ignored')?.value ?? 0;
}

describe('exactly once', () => {
  it('the same spans exported again (protobuf twice, then as JSON) count once', async () => {
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'otel-retry-svc' }), spanProcessors: [new SimpleSpanProcessor(memory)] });
    providers.push(provider);
    const tracer = provider.getTracer('retry');
    for (let i = 0; i < 3; i++) {
      tracer.startSpan(`chat ${i}`, { attributes: { 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o-mini', 'gen_ai.usage.input_tokens': 100 + i, 'gen_ai.usage.output_tokens': 10 } }).end();
    }
    const spans: ReadableSpan[] = memory.getFinishedSpans();
    expect(spans).toHaveLength(3);
    const send = (exporter: SpanExporter) => new Promise<number>((resolve) => exporter.export(spans, (r) => resolve(r.code)));
    const proto = protoExporter();
    expect(await send(proto)).toBe(0);
    expect(await send(proto)).toBe(0);
    expect(await send(new OTLPHttpJsonExporter({ url: tracesUrl, headers }))).toBe(0);
    const rows = await ledgerRows('otel-retry-svc', 3);
    // Let any late duplicate reach the ledger before counting.
    await api.tracker.flush();
    const { rows: again } = await stack.pool.query<{ n: number; input: string }>(
      "SELECT count(*)::int AS n, sum(input_tokens)::text AS input FROM usage_ledger WHERE user_id = 'otel-retry-svc'",
    );
    expect(again[0]).toEqual({ n: 3, input: '303' });
    expect(rows.map((r) => r.request_id).sort()).toEqual(spans.map((s) => `otel:${s.spanContext().traceId}:${s.spanContext().spanId}`).sort());
  });
});

const TRACE = '5b8efff798038103d269b633813fc60c';

function jsonSpan(spanId: string, name: string, attrs: Record<string, string | number>) {
  const now = `${BigInt(Date.now()) * 1_000_000n}`;
  return {
    traceId: TRACE,
    spanId,
    name,
    kind: 3,
    startTimeUnixNano: now,
    endTimeUnixNano: now,
    attributes: Object.entries(attrs).map(([key, v]) => ({ key, value: typeof v === 'string' ? { stringValue: v } : { intValue: String(v) } })),
  };
}

function exportOf(...spans: ReturnType<typeof jsonSpan>[]) {
  return { resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'otel-bad-svc' } }] }, scopeSpans: [{ scope: { name: 'test' }, spans }] }] };
}

describe('bad spans are refused by name and never block the rest', () => {
  const good = { 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o-mini', 'gen_ai.usage.input_tokens': 50, 'gen_ai.usage.output_tokens': 5 };

  it('JSON: 200 with partialSuccess naming each refused span and why; the good span is recorded', async () => {
    const body = exportOf(
      jsonSpan('1000000000000001', 'good chat', good),
      jsonSpan('1000000000000002', 'negative tokens', { ...good, 'gen_ai.usage.input_tokens': -5 }),
      jsonSpan('1000000000000003', 'bell in model', { ...good, 'gen_ai.request.model': 'gpt\u0007' }),
      jsonSpan('1000000000000004', 'cache over input', { ...good, 'gen_ai.usage.cache_read.input_tokens': 60 }),
      jsonSpan('1000000000000005', 'no usage', { 'gen_ai.provider.name': 'openai' }),
    );
    const res = await fetch(tracesUrl, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } };
    expect(answer.partialSuccess.rejectedSpans).toBe('3');
    const message = answer.partialSuccess.errorMessage;
    expect(message).toContain(`span "negative tokens" (trace ${TRACE}, span 1000000000000002): gen_ai.usage.input_tokens: must be a whole number from 0 to`);
    expect(message).toContain('span "bell in model"');
    expect(message).toMatch(/span "bell in model" \(trace [0-9a-f]+, span 1000000000000003\): gen_ai\.request\.model: model .*control character/);
    expect(message).toContain('span "cache over input" (trace 5b8efff798038103d269b633813fc60c, span 1000000000000004): gen_ai.usage.cache_read.input_tokens: cacheReadTokens (60) + cacheWriteTokens (0) exceed inputTokens (50)');
    const rows = await ledgerRows('otel-bad-svc', 1);
    expect(rows.map((r) => r.request_id)).toEqual([`otel:${TRACE}:1000000000000001`]);
  });

  it('gzip protobuf: the answer is a protobuf ExportTraceServiceResponse with the partial success', async () => {
    const toProto = (s: ReturnType<typeof jsonSpan>) => ({ ...s, traceId: Buffer.from(s.traceId, 'hex'), spanId: Buffer.from(s.spanId, 'hex') });
    const body = exportOf(jsonSpan('2000000000000001', 'good', good), jsonSpan('2000000000000002', 'no model', { 'gen_ai.provider.name': 'openai', 'gen_ai.usage.input_tokens': 1 }));
    body.resourceSpans[0]!.scopeSpans[0]!.spans = body.resourceSpans[0]!.scopeSpans[0]!.spans.map(toProto) as never;
    const bytes = gzipSync(v1.ExportTraceServiceRequest!.encode(body).finish());
    const res = await fetch(tracesUrl, { method: 'POST', headers: { ...headers, 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' }, body: bytes });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-protobuf');
    const answer = v1.ExportTraceServiceResponse!.decode(new Uint8Array(await res.arrayBuffer())) as { partialSuccess: { rejectedSpans: { toString(): string }; errorMessage: string } };
    expect(answer.partialSuccess.rejectedSpans.toString()).toBe('1');
    expect(answer.partialSuccess.errorMessage).toContain('span "no model" (trace 5b8efff798038103d269b633813fc60c, span 2000000000000002): gen_ai.response.model: is missing');
    await ledgerRows('otel-bad-svc', 2);
  });

  it('a body that is not OTLP is 400 (not retryable), a google.rpc.Status for protobuf; no key is 401', async () => {
    const res = await fetch(tracesUrl, { method: 'POST', headers: { ...headers, 'content-type': 'application/x-protobuf' }, body: Buffer.from([0x0a, 0xff, 0xff, 0xff]) });
    expect(res.status).toBe(400);
    const status = Buffer.from(await res.arrayBuffer());
    expect(status[0]).toBe(0x08); // field 1 (code), varint
    expect(status[1]).toBe(3); // INVALID_ARGUMENT
    expect(status.toString('utf8')).toContain('not an OTLP ExportTraceServiceRequest');
    const json = await fetch(tracesUrl, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '[1,2]' });
    expect(json.status).toBe(400);
    const brotli = await fetch(tracesUrl, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-encoding': 'br' }, body: '{}' });
    expect(brotli.status).toBe(415);
    const anonymous = await fetch(tracesUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(anonymous.status).toBe(401);
  });
});

describe('Temporal unavailable', () => {
  it('503 with Retry-After (retryable), a google.rpc.Status UNAVAILABLE for protobuf', async () => {
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
    const deadApp = buildApi({ pool: stack.pool, apiKeys: [KEY], logger: createLogger('silent'), temporal: deadClient, tracker: deadTracker, config: stack.config, metrics: stack.metrics });
    try {
      const good = { 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o-mini', 'gen_ai.usage.input_tokens': 5 };
      const body = exportOf(jsonSpan('3000000000000001', 'chat', good));
      const json = await deadApp.inject({ method: 'POST', url: '/v1/traces', headers, payload: body });
      expect(json.statusCode).toBe(503);
      expect(json.headers['retry-after']).toBe('5');
      expect(json.json()).toMatchObject({ error: 'unavailable' });
      const proto = { ...body.resourceSpans[0]!, scopeSpans: [{ spans: body.resourceSpans[0]!.scopeSpans[0]!.spans.map((x) => ({ ...x, traceId: Buffer.from(x.traceId, 'hex'), spanId: Buffer.from(x.spanId, 'hex') })) }] };
      const res = await deadApp.inject({
        method: 'POST',
        url: '/v1/traces',
        headers: { ...headers, 'content-type': 'application/x-protobuf' },
        payload: Buffer.from(v1.ExportTraceServiceRequest!.encode({ resourceSpans: [proto] }).finish()),
      });
      expect(res.statusCode).toBe(503);
      expect([...res.rawPayload.subarray(0, 2)]).toEqual([0x08, 14]); // google.rpc.Status code UNAVAILABLE
    } finally {
      await deadApp.close();
      await deadTracker.close().catch(() => undefined);
      await connection.close();
    }
  });
});
