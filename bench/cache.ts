/**
 * Response cache hit latency against a plain Redis GET, in the same run, interleaved round by round:
 *
 *   - `redis GET`: `redis.get()` of the very entry a hit reads (ioredis, the same connection);
 *   - `cache hit`: a wrapped SDK call answered from the cache (wrapOpenAI / wrapAnthropic with
 *     `cache`): the SDK builds its request, the wrapper computes the canonical key (SHA-256), GETs the
 *     entry, hands the SDK the stored body as its Response, the SDK parses it, and the hit is
 *     recorded through a real CostTracker (whose Temporal client accepts every signal at once);
 *   - `SDK floor`: the bare SDK with a `fetch` that answers the same body at once (no network, no
 *     Redis): what the SDK itself costs per call, which any hit served as an SDK object pays;
 *   - `upstream`: the bare SDK against the local protocol server (child process): what a hit saves.
 *
 *   npx tsx bench/cache.ts [--calls 2000] [--rounds 5]
 *
 * Prints p50 and p99 per path (microseconds, one call in flight at a time) and the ratio of the hit
 * p99 to the GET p99 (target: under 2x). Needs Redis (REDIS_URL, default redis://127.0.0.1:6379);
 * its keys go under a random prefix and are deleted at the end.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import Anthropic from '@anthropic-ai/sdk';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { createResponseCache } from '../src/client/cache/index.js';
import { CostTracker } from '../src/client/cost-tracker.js';
import { wrapAnthropic, wrapOpenAI } from '../src/client/wrappers/index.js';
import { loadConfig } from '../src/config/index.js';
import { createPricingEngine } from '../src/pricing/index.js';
import { machine } from './lib.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i === -1 ? undefined : Number(process.argv[i + 1]);
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : fallback;
}

const CALLS = arg('calls', 2000);
const ROUNDS = arg('rounds', 5);

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function startServer(): Promise<{ url: string; stop(): void }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', `const { startLlmServer } = await import(${JSON.stringify(new URL('../test/integration/helpers/llm-servers.ts', import.meta.url).href)}); const s = await startLlmServer({ pieces: 5, usage: { input: 2000, output: 500 } }); console.log(s.url);`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return { url: line.toString().trim(), stop: () => child.kill() };
}

async function sample(fn: () => Promise<unknown>, n: number, out: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push((performance.now() - t0) * 1000);
  }
}

async function main(): Promise<void> {
  const server = await startServer();
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const prefix = `costguard-bench-cache:${randomBytes(4).toString('hex')}:`;
  const config = loadConfig({});
  const cache = createResponseCache({ redis, pricing: createPricingEngine(config), keyPrefix: prefix });
  const tracker = new CostTracker({ client: { workflow: { signalWithStart: async () => undefined as never } }, taskQueue: 'bench', lingerMs: 50 });
  let failures = 0;
  const opts = { tracker, cache, userId: 'bench', onError: () => failures++ };
  const messages = [{ role: 'user' as const, content: 'Summarise the quarterly report in three bullet points.' }];
  const bareOpenAI = new OpenAI({ apiKey: 'sk-bench', baseURL: `${server.url}/v1`, maxRetries: 0 });
  const openai = wrapOpenAI(bareOpenAI, opts);
  const anthropic = wrapAnthropic(new Anthropic({ apiKey: 'sk-ant-bench', baseURL: server.url, maxRetries: 0 }), opts);
  const chat = () => openai.chat.completions.create({ model: 'gpt-4o', messages });
  const msg = () => anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 256, messages });
  // Fill the cache (the first call of each is a miss that stores).
  const stored = await chat();
  await msg();
  await tracker.flush();
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}cache:*`, 'COUNT', 100);
    cursor = next;
    keys.push(...found.filter((k) => !k.includes(':lock:')));
  } while (cursor !== '0');
  if (keys.length !== 2) throw new Error(`expected 2 cache entries, found ${keys.length}: are the models priced at >= $0.001 a call?`);
  let entryKey = keys[0]!;
  for (const k of keys) if ((await redis.get(k))?.includes('"api":"chat.completions"')) entryKey = k;
  const body = JSON.stringify(stored);
  const floorOpenAI = new OpenAI({
    apiKey: 'sk-bench',
    baseURL: 'http://127.0.0.1:9/v1',
    maxRetries: 0,
    fetch: async () => new Response(body, { status: 200, headers: { 'content-type': 'application/json' } }),
  });

  const paths: Array<{ name: string; fn: () => Promise<unknown>; us: number[] }> = [
    { name: 'redis GET of the entry', fn: () => redis.get(entryKey), us: [] },
    { name: 'cache hit, OpenAI chat.completions (JSON)', fn: chat, us: [] },
    { name: 'cache hit, Anthropic messages (JSON)', fn: msg, us: [] },
    { name: 'SDK floor: bare OpenAI SDK, fetch answering at once', fn: () => floorOpenAI.chat.completions.create({ model: 'gpt-4o', messages }), us: [] },
    { name: 'upstream: bare OpenAI SDK against the local server', fn: () => bareOpenAI.chat.completions.create({ model: 'gpt-4o', messages }), us: [] },
  ];
  for (const p of paths) await sample(p.fn, 500, []); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? paths : [...paths].reverse();
    for (const p of order) await sample(p.fn, CALLS, p.us);
  }
  console.log(`Response cache hit latency (${CALLS} calls x ${ROUNDS} rounds per path, interleaved; ${machine()})`);
  console.log('');
  console.log('| path | p50 us | p99 us |');
  console.log('|---|---:|---:|');
  for (const p of paths) console.log(`| ${p.name} | ${quantile(p.us, 0.5).toFixed(0)} | ${quantile(p.us, 0.99).toFixed(0)} |`);
  const get99 = quantile(paths[0]!.us, 0.99);
  console.log('');
  for (const p of paths.slice(1, 3)) console.log(`${p.name}: p99 ${(quantile(p.us, 0.99) / get99).toFixed(2)}x the GET p99 (target < 2x)`);
  console.log(`lookups: ${JSON.stringify(cache.counts)}; recording failures: ${failures}`);
  await tracker.close();
  const all = await redis.keys(`${prefix}*`);
  if (all.length > 0) await redis.del(...all);
  redis.disconnect();
  server.stop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
