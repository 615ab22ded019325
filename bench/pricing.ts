/**
 * Pricing throughput: our exact engine vs genai-prices' calcPrice on the same synthetic events,
 * measured in the same run (a ratio, so a noisy shared machine affects both sides alike).
 */
import { calcPrice } from '@pydantic/genai-prices';
import { PricingEngine } from '../src/domain/pricing.js';
import type { TokenUsage } from '../src/domain/usage.js';
import { loadCatalog, loadRawProviders } from '../src/pricing/genai-catalog.js';
import { catalogSamples, progress, rng } from './lib.js';

export interface PricingBenchResult {
  events: number;
  models: number;
  engineEventsPerSec: number;
  calcPriceEventsPerSec: number;
  ratio: number;
  unpriced: number;
  disagreements: number;
}

interface SyntheticEvent {
  provider: string;
  model: string;
  usage: TokenUsage;
  genai: Record<string, number>;
}

function synthesize(count: number): { events: SyntheticEvent[]; models: number } {
  const samples = catalogSamples(loadRawProviders());
  const random = rng(42);
  const events: SyntheticEvent[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const s = samples[Math.floor(random() * samples.length)]!;
    const input = Math.floor(random() * 20_000);
    const cacheRead = random() < 0.3 ? Math.floor(random() * input * 0.5) : 0;
    const cacheWrite = random() < 0.2 ? Math.floor(random() * (input - cacheRead) * 0.5) : 0;
    const output = Math.floor(random() * 2_000);
    const reasoning = random() < 0.2 ? Math.floor(random() * output) : 0;
    const usage: TokenUsage = {
      inputTokens: input,
      cacheReadTokens: cacheRead,
      cacheWriteTokens: cacheWrite,
      cacheWrite1hTokens: 0,
      outputTokens: output,
      reasoningTokens: reasoning,
    };
    const genai: Record<string, number> = {
      input_tokens: input,
      cache_read_tokens: cacheRead,
      cache_write_tokens: cacheWrite,
      output_tokens: output,
      output_reasoning_tokens: reasoning,
    };
    events[i] = { provider: s.provider, model: s.model, usage, genai };
  }
  return { events, models: samples.length };
}

export function runPricingBench(count: number): PricingBenchResult {
  process.stderr.write(`pricing: synthesising ${count.toLocaleString('en-US')} events across the catalog\n`);
  const { events, models } = synthesize(count);
  const engine = new PricingEngine(loadCatalog());
  const at = Date.parse('2026-06-01T00:00:00Z');
  const timestamp = new Date(at);
  const step = Math.max(1, Math.floor(count / 20));

  // Warm both up (JIT, resolution caches) on the first events.
  for (let i = 0; i < Math.min(20_000, count); i++) {
    const e = events[i]!;
    engine.price({ provider: e.provider, model: e.model, occurredAtMs: at, usage: e.usage });
    calcPrice(e.genai, e.model, { providerId: e.provider, timestamp });
  }

  const ours: string[] = new Array(count);
  let unpriced = 0;
  let t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const e = events[i]!;
    const r = engine.price({ provider: e.provider, model: e.model, occurredAtMs: at, usage: e.usage });
    ours[i] = r.costUsd;
    if (!r.priced) unpriced++;
    if (i % step === 0) progress('  exact engine', i, count);
  }
  const engineSec = (performance.now() - t0) / 1000;
  progress('  exact engine', count, count);

  let disagreements = 0;
  t0 = performance.now();
  const theirs: number[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const e = events[i]!;
    theirs[i] = calcPrice(e.genai, e.model, { providerId: e.provider, timestamp })?.total_price ?? 0;
    if (i % step === 0) progress('  calcPrice   ', i, count);
  }
  const calcSec = (performance.now() - t0) / 1000;
  progress('  calcPrice   ', count, count);
  for (let i = 0; i < count; i++) {
    const a = Number(ours[i]);
    const b = theirs[i]!;
    if (Math.abs(a - b) > 1e-12 + 1e-9 * Math.abs(b)) disagreements++;
  }
  return {
    events: count,
    models,
    engineEventsPerSec: count / engineSec,
    calcPriceEventsPerSec: count / calcSec,
    ratio: calcSec / engineSec,
    unpriced,
    disagreements,
  };
}
