/**
 * Response cache hit latency against a plain Redis GET, in the same run, interleaved round by round:
 *
 *   - `redis GET`: `redis.get()` of the very entry a hit reads (ioredis, the same connection), in
 *     two conditions: back to back (GET after GET: Redis and the socket stay hot), and each GET
 *     right after a cache hit, alternating GET, hit, GET, hit (the GET follows the same amount of
 *     client work as the hit's own GET does). The second is the fair baseline: a GET issued after a
 *     few hundred microseconds of other work costs about twice a back-to-back one on this machine
 *     (the socket write that wakes an idle Redis is most of it), and a hit's GET is always such a GET;
 *   - `cache hit`: a wrapped SDK call answered from the cache (wrapOpenAI / wrapAnthropic with
 *     `cache`): the SDK builds its request, the wrapper computes the canonical key (SHA-256), GETs the
 *     entry, hands the SDK the stored body as its Response, the SDK parses it, and the hit is
 *     recorded through a real CostTracker (whose Temporal client accepts every signal at once);
 *   - `SDK floor`: the bare SDK with a `fetch` that answers the same body after one turn of the
 *     event loop (no network, no Redis): what the SDK itself costs per call, which any hit served as an SDK object pays;
 *   - `wrapped floor`: the wrapped SDK without a cache, same `fetch`: the SDK, the wrapper and the
 *     recording of the call, i.e. everything a hit does except its GET;
 *   - `upstream`: the bare SDK against the local protocol server (child process): what a hit saves.
 *
 *   npx tsx bench/cache.ts [--calls 2000] [--rounds 5]
 *
 * Prints p50 and p99 per path (microseconds, one call in flight at a time) and the ratio of the hit
 * p99 to both GET p99s (target: under 2x). Needs Redis (REDIS_URL, default redis://127.0.0.1:6379);
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

/** Alternates `a` and `b` call by call, timing each: `a` always runs right after `b`'s work. */
async function alternate(a: { fn: () => Promise<unknown>; us: number[] }, b: { fn: () => Promise<unknown>; us: number[] }, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    let t0 = performance.now();
    await a.fn();
    a.us.push((performance.now() - t0) * 1000);
    t0 = performance.now();
    await b.fn();
    b.us.push((performance.now() - t0) * 1000);
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
    // Answers after one turn of the event loop, as any real I/O (a hit's GET included) does: timers
    // that are due (the tracker's linger flush) then run within the path that made them due, not
    // within whichever path next waits on I/O.
    fetch: async () => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
    },
  });

  const wrappedFloor = wrapOpenAI(floorOpenAI, { tracker, userId: 'bench', onError: () => failures++ });
  type Path = { name: string; fn: () => Promise<unknown>; us: number[]; after?: Path };
  const getHot: Path = { name: 'redis GET of the entry, back to back', fn: () => redis.get(entryKey), us: [] };
  const getAfterHit: Path = { name: 'redis GET of the entry, each right after a hit', fn: () => redis.get(entryKey), us: [] };
  const hitOpenAI: Path = { name: 'cache hit, OpenAI chat.completions (JSON)', fn: chat, us: [], after: getAfterHit };
  const hitAnthropic: Path = { name: 'cache hit, Anthropic messages (JSON)', fn: msg, us: [], after: getAfterHit };
  const paths: Path[] = [
    getHot,
    hitOpenAI,
    hitAnthropic,
    { name: 'SDK floor: bare OpenAI SDK, fetch answering after one event-loop turn', fn: () => floorOpenAI.chat.completions.create({ model: 'gpt-4o', messages }), us: [] },
    { name: 'wrapped floor: wrapped OpenAI SDK without cache, same fetch', fn: () => wrappedFloor.chat.completions.create({ model: 'gpt-4o', messages }), us: [] },
    { name: 'upstream: bare OpenAI SDK against the local server', fn: () => bareOpenAI.chat.completions.create({ model: 'gpt-4o', messages }), us: [] },
  ];
  for (const p of paths) await sample(p.fn, 500, []); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? paths : [...paths].reverse();
    for (const p of order) {
      if (p.after) await alternate(p.after, p, CALLS);
      else await sample(p.fn, CALLS, p.us);
    }
  }
  const table = [getHot, getAfterHit, ...paths.slice(1)];
  console.log(`Response cache hit latency (${CALLS} calls x ${ROUNDS} rounds per path, interleaved; ${machine()})`);
  console.log('');
  console.log('| path | p50 us | p99 us |');
  console.log('|---|---:|---:|');
  for (const p of table) console.log(`| ${p.name} | ${quantile(p.us, 0.5).toFixed(0)} | ${quantile(p.us, 0.99).toFixed(0)} |`);
  console.log('');
  for (const p of [hitOpenAI, hitAnthropic]) {
    const hit99 = quantile(p.us, 0.99);
    console.log(`${p.name}: p99 ${(hit99 / quantile(getAfterHit.us, 0.99)).toFixed(2)}x the GET p99 after a hit, ${(hit99 / quantile(getHot.us, 0.99)).toFixed(2)}x the back-to-back GET p99 (target < 2x)`);
  }
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
