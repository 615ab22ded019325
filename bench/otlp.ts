/**
 * The OTLP receiver against POST /v1/usage, in one run, interleaved round by round: spans/s through
 * POST /v1/traces (protobuf as the OTLP exporters send it, and OTLP/JSON) against events/s through
 * POST /v1/usage, the same usage in each (target: the receiver at least 0.8x).
 *
 * The API is the real one (buildApi: key check, rate limit, parsing, the domain check, CostTracker),
 * over real HTTP on 127.0.0.1 with `fetch` keeping `--concurrency` requests in flight; the tracker's
 * Temporal client accepts every signal at once, so what is measured is the API's own work per item
 * (Temporal's side is the same for both paths: one usage event per span). Each request carries
 * `--batch` items (a span exporter's default batch is 512); the span bodies are what the OTLP
 * exporters send, built by @opentelemetry/otlp-transformer's serializers from SDK spans with the
 * attributes the OpenAI instrumentation sets.
 *
 *   npx tsx bench/otlp.ts [--batch 500] [--concurrency 4] [--seconds 3] [--rounds 5]
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Client } from '@temporalio/client';
import pg from 'pg';
import { buildApi } from '../src/api/server.js';
import { CostTracker } from '../src/client/cost-tracker.js';
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/lib/logger.js';
import { createMetrics } from '../src/metrics/index.js';
import { fmt, machine } from './lib.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i === -1 ? undefined : Number(process.argv[i + 1]);
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : fallback;
}

const BATCH = arg('batch', 500);
const CONCURRENCY = arg('concurrency', 4);
const SECONDS = arg('seconds', 3);
const ROUNDS = arg('rounds', 5);
/** Distinct bodies per path, sent in turn (the same ids again cost the API the same). */
const BODIES = 8;
const KEY = 'cg_bench_otlp_key_0123456789';

const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' });
// Never connected: the two routes measured do not query the database.
const pool = new pg.Pool({ connectionString: 'postgres://127.0.0.1:1/unused' });
const tracker = new CostTracker({ client: { workflow: { signalWithStart: async () => undefined as never } }, taskQueue: 'bench', lingerMs: 50 });
const app = buildApi({
  pool,
  apiKeys: [`ingest:${KEY}`],
  logger: createLogger('silent'),
  temporal: {} as Client,
  tracker,
  config: { ...config, api: { ...config.api, rateLimit: { ...config.api.rateLimit, ingest: 0 } } },
  metrics: createMetrics({ config, processMetrics: false }),
});
await app.listen({ host: '127.0.0.1', port: 0 });
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

const users = Array.from({ length: 50 }, (_, i) => `bench-user-${i}`);

function usageBody(): string {
  return JSON.stringify(
    Array.from({ length: BATCH }, (_, i) => ({
      requestId: randomUUID(),
      // A span always carries its time; so does each event here, like for like.
      occurredAt: new Date().toISOString(),
      provider: 'openai',
      model: 'gpt-4o-mini-2024-07-18',
      userId: users[i % users.length],
      taskType: 'chat',
      usage: { inputTokens: 1200 + i, outputTokens: 300, cacheReadTokens: 200 },
    })),
  );
}

function spanBodies(): { proto: Uint8Array; json: Uint8Array } {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'bench-svc', 'telemetry.sdk.language': 'nodejs', 'telemetry.sdk.name': 'opentelemetry', 'telemetry.sdk.version': '2.12.1' }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('@opentelemetry/instrumentation-openai', '0.21.0');
  for (let i = 0; i < BATCH; i++) {
    tracer
      .startSpan('chat gpt-4o-mini', {
        kind: 2,
        attributes: {
          'gen_ai.operation.name': 'chat',
          'gen_ai.request.model': 'gpt-4o-mini',
          'gen_ai.system': 'openai',
          'server.address': 'api.openai.com',
          'server.port': 443,
          'gen_ai.response.id': `chatcmpl-${i}`,
          'gen_ai.response.model': 'gpt-4o-mini-2024-07-18',
          'gen_ai.response.finish_reasons': ['stop'],
          'gen_ai.usage.input_tokens': 1200 + i,
          'gen_ai.usage.output_tokens': 300,
          'gen_ai.usage.cache_read.input_tokens': 200,
          'user.id': users[i % users.length]!,
        },
      })
      .end();
  }
  const spans = memory.getFinishedSpans() as unknown as Parameters<typeof ProtobufTraceSerializer.serializeRequest>[0];
  return { proto: ProtobufTraceSerializer.serializeRequest(spans)!, json: JsonTraceSerializer.serializeRequest(spans)! };
}

interface Path {
  name: string;
  url: string;
  contentType: string;
  bodies: (string | Uint8Array)[];
  expect: number;
}

const spanSets = Array.from({ length: BODIES }, spanBodies);
const paths: Path[] = [
  { name: 'POST /v1/usage (JSON events)', url: `${base}/v1/usage`, contentType: 'application/json', bodies: Array.from({ length: BODIES }, usageBody), expect: 202 },
  { name: 'POST /v1/traces (OTLP protobuf spans)', url: `${base}/v1/traces`, contentType: 'application/x-protobuf', bodies: spanSets.map((s) => s.proto), expect: 200 },
  { name: 'POST /v1/traces (OTLP/JSON spans)', url: `${base}/v1/traces`, contentType: 'application/json', bodies: spanSets.map((s) => s.json), expect: 200 },
];

/** Items per second through `path` for `seconds`, `CONCURRENCY` requests in flight. */
async function drive(path: Path, seconds: number): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let items = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const body = path.bodies[next++ % path.bodies.length]!;
        const res = await fetch(path.url, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': path.contentType }, body });
        const text = await res.text();
        if (res.status !== path.expect || text.includes('partialSuccess')) throw new Error(`${path.name}: ${res.status} ${text.slice(0, 300)}`);
        items += BATCH;
      }
    }),
  );
  return items / ((performance.now() - t0) / 1000);
}

// `--only N` drives path N alone (for profiling).
const only = process.argv.indexOf('--only');
if (only !== -1) paths.splice(0, paths.length, paths[Number(process.argv[only + 1])]!);
// Warm-up (JIT, connections), then interleaved rounds.
for (const p of paths) await drive(p, 1);
const rates = new Map<string, number[]>(paths.map((p) => [p.name, []]));
for (let r = 0; r < ROUNDS; r++) for (const p of paths) rates.get(p.name)!.push(await drive(p, SECONDS));
await tracker.close();
await app.close();
await pool.end();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const usageRate = median(rates.get(paths[0]!.name)!);
const lines = [
  `Machine: ${machine()}. ${ROUNDS} interleaved rounds of ${SECONDS} s per path, ${BATCH} items per request, ${CONCURRENCY} requests in flight; median of the rounds.`,
  '',
  '| path | items/s (median) | rounds | vs POST /v1/usage |',
  '|---|---:|---|---:|',
  ...paths.map((p) => {
    const xs = rates.get(p.name)!;
    return `| ${p.name} | ${fmt(median(xs))} | ${xs.map((x) => fmt(x)).join(', ')} | ${(median(xs) / usageRate).toFixed(2)}x |`;
  }),
];
process.stdout.write(`${lines.join('\n')}\n`);
