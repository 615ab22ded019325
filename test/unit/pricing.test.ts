/**
 * The pricing engine over the real bundled catalog. Every expected cost is worked out by hand from
 * the catalog's own numbers (USD per million tokens, or per thousand requests), in micro-USD where
 * that keeps the arithmetic readable: 1 token at 3 USD/Mtok = 3 micro-USD.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type RawProvider, buildCatalog } from '../../src/domain/catalog.js';
import { addAmounts, compareAmounts } from '../../src/domain/money.js';
import { type PriceOverride, PricingEngine } from '../../src/domain/pricing.js';
import { type TokenUsage } from '../../src/domain/usage.js';
import { loadCatalog } from '../../src/pricing/genai-catalog.js';
import { DEFAULT_AT, at, costOf, dec, expectPriced, realEngine, usage } from './helpers.js';

const catalog = loadCatalog();
const engine = realEngine();

function price(provider: string, model: string, u: Partial<TokenUsage>, occurredAtMs = DEFAULT_AT) {
  return engine.price({ provider, model, occurredAtMs, usage: usage(u) });
}

describe('every token kind, priced exactly', () => {
  it('gpt-4o-mini: 1000 input + 100 output = 0.00021 (input 0.15, output 0.6 per Mtok)', () => {
    const r = expectPriced(price('openai', 'gpt-4o-mini', { inputTokens: 1000, outputTokens: 100 }));
    expect(r.costUsd).toBe('0.00021');
    expect(r.components.input).toEqual({ units: 1000, costUsd: '0.00015' });
    expect(r.components.output).toEqual({ units: 100, costUsd: '0.00006' });
    expect(r.price).toEqual({
      source: 'catalog',
      provider: 'openai',
      model: 'gpt-4o-mini',
      effectiveFrom: null,
      catalogVersion: catalog.version,
      constraint: null,
      tierStart: null,
    });
    expect(catalog.version).toMatch(/^genai-prices@\d+\.\d+\.\d+$/);
  });

  it('gpt-4o-mini cache reads at 0.075 instead of 0.15: 6000*0.15 + 4000*0.075 = 1200 micro-USD', () => {
    const r = expectPriced(price('openai', 'gpt-4o-mini', { inputTokens: 10_000, cacheReadTokens: 4000 }));
    expect(r.costUsd).toBe('0.0012');
    expect(r.components.input).toEqual({ units: 6000, costUsd: '0.0009' });
    expect(r.components.cacheRead).toEqual({ units: 4000, costUsd: '0.0003' });
  });

  describe('claude-3-5-sonnet (input 3, cache write 3.75, cache read 0.3, 1h write 6, output 15 per Mtok)', () => {
    it.each([
      ['input', { inputTokens: 1_000_000 }, '3'],
      ['cache read', { inputTokens: 1000, cacheReadTokens: 1000 }, '0.0003'],
      ['cache write (5m)', { inputTokens: 1000, cacheWriteTokens: 1000 }, '0.00375'],
      ['cache write (1h)', { inputTokens: 1000, cacheWriteTokens: 1000, cacheWrite1hTokens: 1000 }, '0.006'],
      ['output', { outputTokens: 1000 }, '0.015'],
      ['one token of input', { inputTokens: 1 }, '0.000003'],
    ])('%s', (_kind, u, expected) => {
      expect(costOf(engine, 'anthropic', 'claude-3-5-sonnet', u)).toBe(expected);
    });

    it('all kinds together: 5000*3 + 3000*0.3 + 1500*3.75 + 500*6 + 700*15 = 35025 micro-USD', () => {
      const r = expectPriced(
        price('anthropic', 'claude-3-5-sonnet', {
          inputTokens: 10_000,
          cacheReadTokens: 3000,
          cacheWriteTokens: 2000,
          cacheWrite1hTokens: 500,
          outputTokens: 700,
        }),
      );
      expect(r.costUsd).toBe('0.035025');
      expect(r.components).toEqual({
        input: { units: 5000, costUsd: '0.015' },
        cacheRead: { units: 3000, costUsd: '0.0009' },
        cacheWrite: { units: 1500, costUsd: '0.005625' },
        cacheWrite1h: { units: 500, costUsd: '0.003' },
        output: { units: 700, costUsd: '0.0105' },
      });
    });
  });

  it('finds a model with a separate reasoning price in the catalog', () => {
    const withReasoning = catalog.providers.flatMap((p) =>
      p.models.filter((m) => m.prices.some((pr) => pr.table.reasoning)).map((m) => `${p.id}/${m.id}`),
    );
    expect(withReasoning).toContain('perplexity/sonar-deep-research');
  });

  it('reasoning: sonar-deep-research 1000 in + 1000 out of which 400 reasoning = 1000*2 + 600*8 + 400*3 = 8000 micro-USD', () => {
    const r = expectPriced(price('perplexity', 'sonar-deep-research', { inputTokens: 1000, outputTokens: 1000, reasoningTokens: 400 }));
    expect(r.costUsd).toBe('0.008');
    expect(r.components.output).toEqual({ units: 600, costUsd: '0.0048' });
    expect(r.components.reasoning).toEqual({ units: 400, costUsd: '0.0012' });
  });

  it('reasoning on a model without a reasoning price is billed as output (never dropped)', () => {
    // gpt-4o-mini: 1000 output tokens at 0.6, whatever part of them was reasoning
    expect(costOf(engine, 'openai', 'gpt-4o-mini', { outputTokens: 1000, reasoningTokens: 400 })).toBe('0.0006');
  });

  it('cache tokens on a model without cache prices are billed as input (never dropped)', () => {
    // gpt-4: 30 USD/Mtok input, no cache prices
    expect(costOf(engine, 'openai', 'gpt-4', { inputTokens: 1000, cacheReadTokens: 400, cacheWriteTokens: 300 })).toBe('0.03');
  });

  it('finds models with a per-request price in the catalog', () => {
    const withRequests = catalog.providers.flatMap((p) =>
      p.models.filter((m) => m.prices.some((pr) => pr.table.request)).map((m) => `${p.id}/${m.id}`),
    );
    expect(withRequests).toContain('perplexity/sonar');
  });

  it('per-request price: sonar 1000 in + 500 out + 1 request = 1000*1 + 500*1 + 12000 micro-USD', () => {
    const r = expectPriced(price('perplexity', 'sonar', { inputTokens: 1000, outputTokens: 500 }));
    expect(r.costUsd).toBe('0.0135');
    expect(r.components.request).toEqual({ units: 1, costUsd: '0.012' });
    // a call that used no tokens still costs its request fee
    expect(costOf(engine, 'perplexity', 'sonar', {})).toBe('0.012');
  });

  it('a call with no tokens on a per-token model costs exactly 0 and is still priced', () => {
    const r = expectPriced(price('openai', 'gpt-4o-mini', {}));
    expect(r.costUsd).toBe('0');
  });

  it('keeps sub-nano-dollar precision: 1 token of deepseek-v4-flash cache read at 0.0028 USD/Mtok', () => {
    expect(costOf(engine, 'deepseek', 'deepseek-v4-flash', { inputTokens: 1, cacheReadTokens: 1 }, at('2026-01-01T12:00:00Z'))).toBe(
      '0.0000000028',
    );
  });
});

describe('long-context tiers: the tier price applies to ALL units of the call', () => {
  it('claude-sonnet-4-5 at exactly 200000 input tokens is base price', () => {
    const r = expectPriced(price('anthropic', 'claude-sonnet-4-5', { inputTokens: 200_000, outputTokens: 1000 }));
    expect(r.costUsd).toBe('0.615'); // 200000*3 + 1000*15 micro-USD
    expect(r.price.tierStart).toBeNull();
  });

  it('claude-sonnet-4-5 at 200001 input tokens is tier price for every token, output included', () => {
    const r = expectPriced(price('anthropic', 'claude-sonnet-4-5-20250929', { inputTokens: 200_001, outputTokens: 1000 }));
    expect(r.costUsd).toBe('1.222506'); // 200001*6 + 1000*22.5 micro-USD
    expect(r.price.tierStart).toBe(200_000);
    expect(r.price.model).toBe('claude-sonnet-4-5');
  });

  it('claude-sonnet-4-5 tier applies to cache reads and writes too (the tier counts all input, cached included)', () => {
    const r = expectPriced(
      price('anthropic', 'claude-sonnet-4-5', {
        inputTokens: 200_001,
        cacheReadTokens: 100_000,
        cacheWriteTokens: 50_000,
        cacheWrite1hTokens: 10_000,
        outputTokens: 1000,
      }),
    );
    // 50001*6 + 100000*0.6 + 40000*7.5 + 10000*12 + 1000*22.5 = 300006 + 60000 + 300000 + 120000 + 22500
    expect(r.costUsd).toBe('0.802506');
  });

  it('gemini-2.5-pro: 200000 input is base (1.25/10), 200001 is tier (2.5/15)', () => {
    const base = expectPriced(price('google', 'gemini-2.5-pro', { inputTokens: 200_000, outputTokens: 2000 }));
    expect(base.costUsd).toBe('0.27'); // 250000 + 20000 micro-USD
    expect(base.price.tierStart).toBeNull();
    const tier = expectPriced(price('google', 'gemini-2.5-pro', { inputTokens: 200_001, outputTokens: 2000 }));
    expect(tier.costUsd).toBe('0.5300025'); // 500002.5 + 30000 micro-USD
    expect(tier.price.tierStart).toBe(200_000);
  });
});

describe('model and provider ids', () => {
  it('gpt-4o-2024-08-06 is gpt-4o', () => {
    const r = expectPriced(price('openai', 'gpt-4o-2024-08-06', { inputTokens: 1000, outputTokens: 1000 }));
    expect(r.price.model).toBe('gpt-4o');
    expect(r.costUsd).toBe('0.0125'); // 1000*2.5 + 1000*10
  });

  it.each(['claude-3-5-sonnet-latest', 'claude-3-5-sonnet-20241022'])('%s is claude-3-5-sonnet', (id) => {
    const r = expectPriced(price('anthropic', id, { inputTokens: 1000, outputTokens: 1000 }));
    expect(r.price.model).toBe('claude-3-5-sonnet');
    expect(r.costUsd).toBe('0.018');
  });

  it('ignores case and surrounding whitespace in provider and model', () => {
    const r = expectPriced(price('  OpenAI ', '  GPT-4o-Mini\t', { inputTokens: 1000, outputTokens: 100 }));
    expect(r.price).toMatchObject({ provider: 'openai', model: 'gpt-4o-mini' });
    expect(r.costUsd).toBe('0.00021');
  });

  it('a compact date suffix matches only after expansion (gpt-4o-20240806 -> gpt-4o-2024-08-06)', () => {
    const openai = catalog.providers.find((p) => p.id === 'openai')!;
    expect(openai.models.some((m) => m.matches('gpt-4o-20240806'))).toBe(false);
    const r = expectPriced(price('openai', 'gpt-4o-20240806', { inputTokens: 1000, outputTokens: 1000 }));
    expect(r.price.model).toBe('gpt-4o');
    expect(r.costUsd).toBe('0.0125');
  });

  it('date expansion in a tiny catalog: only real calendar dates are expanded', () => {
    const raw: RawProvider[] = [
      {
        id: 'acme',
        name: 'Acme',
        models: [{ id: 'acme-1', match: { equals: 'acme-1-2024-02-29' }, prices: { input_mtok: 1, output_mtok: 2 } }],
      },
    ];
    const tiny = new PricingEngine(buildCatalog(raw, 'test@1'));
    const p = (model: string) => tiny.price({ provider: 'acme', model, occurredAtMs: DEFAULT_AT, usage: usage({ inputTokens: 1_000_000 }) });
    expect(expectPriced(p('acme-1-20240229')).price).toMatchObject({ model: 'acme-1', catalogVersion: 'test@1' });
    expect(expectPriced(p('acme-1-20240229')).costUsd).toBe('1');
    expect(p('acme-1-20230229')).toMatchObject({ priced: false, code: 'unknown_model' }); // 2023 has no 29 February
  });

  it('finds the provider by its provider_match when the id is not a catalog id', () => {
    const r = expectPriced(price('my-anthropic-proxy', 'claude-3-5-sonnet', { inputTokens: 1000 }));
    expect(r.price.provider).toBe('anthropic');
    expect(r.costUsd).toBe('0.003');
  });

  it('falls back to the provider fallback list (google -> anthropic) for a model only the fallback has', () => {
    const r = expectPriced(price('google', 'claude-2', { inputTokens: 1000 }));
    expect(r.price.provider).toBe('anthropic');
    expect(r.price.model).toBe('claude-2');
  });
});

describe('effective dates and time-of-day prices', () => {
  it('the catalog has start-date-constrained prices (o3 among them)', () => {
    const dated = catalog.providers.flatMap((p) =>
      p.models.filter((m) => m.prices.some((pr) => pr.constraint.type === 'start_date')).map((m) => `${p.id}/${m.id}`),
    );
    expect(dated).toContain('openai/o3');
  });

  it('o3 before 2025-06-10 is 10/40 per Mtok, from that day 2/8', () => {
    const u = { inputTokens: 1000, outputTokens: 1000 };
    const before = expectPriced(price('openai', 'o3', u, at('2025-06-09T23:59:59.999Z')));
    expect(before.costUsd).toBe('0.05');
    expect(before.price.effectiveFrom).toBeNull();
    const from = expectPriced(price('openai', 'o3', u, at('2025-06-10T00:00:00.000Z')));
    expect(from.costUsd).toBe('0.01');
    expect(from.price.effectiveFrom).toBe('2025-06-10');
  });

  it('deepseek-chat: 0.27/1.1 between 00:30 and 16:30 UTC, 0.135/0.55 otherwise', () => {
    const u = { inputTokens: 1_000_000, outputTokens: 1_000_000 };
    const peak = expectPriced(price('deepseek', 'deepseek-chat', u, at('2025-09-01T12:00:00Z')));
    expect(peak.costUsd).toBe('1.37');
    expect(peak.price.constraint).toBe('time_of_day 00:30:00Z-16:30:00Z');
    const offPeak = expectPriced(price('deepseek', 'deepseek-chat', u, at('2025-09-01T20:00:00Z')));
    expect(offPeak.costUsd).toBe('0.685');
    expect(offPeak.price.constraint).toBeNull();
    // the window includes its start and excludes its end
    expect(costOf(engine, 'deepseek', 'deepseek-chat', u, at('2025-09-01T00:30:00Z'))).toBe('1.37');
    expect(costOf(engine, 'deepseek', 'deepseek-chat', u, at('2025-09-01T00:29:59.999Z'))).toBe('0.685');
    expect(costOf(engine, 'deepseek', 'deepseek-chat', u, at('2025-09-01T16:30:00Z'))).toBe('0.685');
  });

  it('deepseek-v4-flash: a later time window beats an earlier start date; the start date beats the base', () => {
    const u = { inputTokens: 1_000_000, outputTokens: 1_000_000 };
    expect(costOf(engine, 'deepseek', 'deepseek-v4-flash', u, at('2026-01-01T12:00:00Z'))).toBe('0.42'); // base 0.14 + 0.28
    expect(costOf(engine, 'deepseek', 'deepseek-v4-flash', u, at('2026-09-01T12:00:00Z'))).toBe('0.88'); // from 2026-08-17: 0.22 + 0.66
    expect(costOf(engine, 'deepseek', 'deepseek-v4-flash', u, at('2026-09-01T02:00:00Z'))).toBe('1.76'); // 01:00-04:00: 0.44 + 1.32
    expect(costOf(engine, 'deepseek', 'deepseek-v4-flash', u, at('2026-09-01T09:59:59Z'))).toBe('1.76'); // 06:00-10:00
  });

  it('a time-of-day window given with an offset and across midnight (tiny catalog)', () => {
    const raw: RawProvider[] = [
      {
        id: 'acme',
        name: 'Acme',
        models: [
          {
            id: 'acme-night',
            match: { equals: 'acme-night' },
            prices: [
              { prices: { input_mtok: 1 } },
              // 22:00-06:00 at +02:00 is 20:00-04:00 UTC
              { constraint: { start_time: '22:00:00+02:00', end_time: '06:00:00+02:00', type: 'time_of_date' }, prices: { input_mtok: 2 } },
            ],
          },
        ],
      },
    ];
    const tiny = new PricingEngine(buildCatalog(raw, 'test@1'));
    const cost = (iso: string) =>
      expectPriced(tiny.price({ provider: 'acme', model: 'acme-night', occurredAtMs: at(iso), usage: usage({ inputTokens: 1_000_000 }) })).costUsd;
    expect(cost('2025-01-01T19:59:59Z')).toBe('1');
    expect(cost('2025-01-01T20:00:00Z')).toBe('2');
    expect(cost('2025-01-02T03:59:59Z')).toBe('2');
    expect(cost('2025-01-02T04:00:00Z')).toBe('1');
  });
});

/** The original specification's price table (USD per 1K tokens), as config overrides. */
const ORIGINAL_OVERRIDES: PriceOverride[] = [
  { provider: 'openai', model: 'gpt-4-turbo', inputPer1k: '0.01', outputPer1k: '0.03' },
  { provider: 'openai', model: 'gpt-4', inputPer1k: '0.03', outputPer1k: '0.06' },
  { provider: 'openai', model: 'gpt-3.5-turbo', inputPer1k: '0.0015', outputPer1k: '0.002' },
  { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', inputPer1k: '0.003', outputPer1k: '0.015' },
  { provider: 'anthropic', model: 'claude-3-opus', inputPer1k: '0.015', outputPer1k: '0.075' },
  { provider: 'google', model: 'gemini-pro', inputPer1k: '0.0005', outputPer1k: '0.0015' },
];

describe('price overrides from config (per 1K tokens)', () => {
  const withOriginal = realEngine(ORIGINAL_OVERRIDES);
  const u = { inputTokens: 1000, outputTokens: 1000 };

  it.each([
    ['openai', 'gpt-4-turbo', '0.04'],
    ['openai', 'gpt-4', '0.09'],
    ['openai', 'gpt-3.5-turbo', '0.0035'], // catalog says 0.002 (0.5/1.5 per Mtok)
    ['anthropic', 'claude-3-5-sonnet-20241022', '0.018'],
    ['anthropic', 'claude-3-opus', '0.09'],
    ['google', 'gemini-pro', '0.002'], // catalog says 0.0005 (0.125/0.375 per Mtok)
  ])('%s/%s: 1000 in + 1000 out = %s, from the override', (provider, model, expected) => {
    const r = expectPriced(withOriginal.price({ provider, model, occurredAtMs: DEFAULT_AT, usage: usage(u) }));
    expect(r.costUsd).toBe(expected);
    expect(r.price).toMatchObject({ source: 'override', provider, model, catalogVersion: 'config', effectiveFrom: null });
  });

  it('the overrides that differ from the catalog really change the price', () => {
    expect(costOf(engine, 'openai', 'gpt-3.5-turbo', u)).toBe('0.002');
    expect(costOf(engine, 'google', 'gemini-pro', u)).toBe('0.0005');
  });

  it('an override for claude-3-opus prices claude-3-opus-20240229, -2024-02-29 and -latest', () => {
    for (const id of ['claude-3-opus-20240229', 'claude-3-opus-2024-02-29', 'claude-3-opus-latest', 'Claude-3-Opus-Latest']) {
      const r = expectPriced(withOriginal.price({ provider: 'anthropic', model: id, occurredAtMs: DEFAULT_AT, usage: usage(u) }));
      expect(r.price.source).toBe('override');
      expect(r.price.model).toBe('claude-3-opus');
      expect(r.costUsd).toBe('0.09');
    }
  });

  it('an override for an exact version does not price other versions', () => {
    const r = expectPriced(withOriginal.price({ provider: 'anthropic', model: 'claude-3-5-sonnet-latest', occurredAtMs: DEFAULT_AT, usage: usage(u) }));
    expect(r.price.source).toBe('catalog');
  });

  it('an exact model id beats the suffix-stripped one', () => {
    const e = realEngine([
      { provider: 'anthropic', model: 'claude-3-opus', inputPer1k: '0.015', outputPer1k: '0.075' },
      { provider: 'anthropic', model: 'claude-3-opus-20240229', inputPer1k: '0.02', outputPer1k: '0.1' },
    ]);
    expect(costOf(e, 'anthropic', 'claude-3-opus-20240229', u)).toBe('0.12');
    expect(costOf(e, 'anthropic', 'claude-3-opus-latest', u)).toBe('0.09');
  });

  it('the newest effectiveFrom not after occurredAt wins', () => {
    const e = realEngine([
      { provider: 'openai', model: 'gpt-4', inputPer1k: '0.03', outputPer1k: '0.06' },
      { provider: 'openai', model: 'gpt-4', effectiveFrom: '2025-06-01', inputPer1k: '0.01', outputPer1k: '0.02' },
      { provider: 'openai', model: 'gpt-4', effectiveFrom: '2025-01-01', inputPer1k: '0.02', outputPer1k: '0.04' },
    ]);
    const p = (iso: string) => expectPriced(e.price({ provider: 'openai', model: 'gpt-4', occurredAtMs: at(iso), usage: usage(u) }));
    expect(p('2024-12-31T23:59:59.999Z')).toMatchObject({ costUsd: '0.09', price: { effectiveFrom: null } });
    expect(p('2025-01-01T00:00:00Z')).toMatchObject({ costUsd: '0.06', price: { effectiveFrom: '2025-01-01' } });
    expect(p('2025-05-31T23:59:59Z')).toMatchObject({ costUsd: '0.06' });
    expect(p('2025-06-01T00:00:00Z')).toMatchObject({ costUsd: '0.03', price: { effectiveFrom: '2025-06-01' } });
  });

  it('an override effective only in the future falls back to the catalog until then', () => {
    const e = realEngine([{ provider: 'openai', model: 'gpt-4o-mini', effectiveFrom: '2030-01-01', inputPer1k: '1', outputPer1k: '1' }]);
    const now = expectPriced(e.price({ provider: 'openai', model: 'gpt-4o-mini', occurredAtMs: DEFAULT_AT, usage: usage({ inputTokens: 1000, outputTokens: 100 }) }));
    expect(now).toMatchObject({ costUsd: '0.00021', price: { source: 'catalog' } });
    const later = expectPriced(e.price({ provider: 'openai', model: 'gpt-4o-mini', occurredAtMs: at('2030-01-01T00:00:00Z'), usage: usage({ inputTokens: 1000, outputTokens: 100 }) }));
    expect(later).toMatchObject({ costUsd: '1.1', price: { source: 'override' } });
  });

  it('an override for another provider does not apply', () => {
    const e = realEngine([{ provider: 'azure', model: 'gpt-4o-mini', inputPer1k: '1', outputPer1k: '1' }]);
    expect(expectPriced(e.price({ provider: 'openai', model: 'gpt-4o-mini', occurredAtMs: DEFAULT_AT, usage: usage({ inputTokens: 1000, outputTokens: 100 }) }))).toMatchObject({
      costUsd: '0.00021',
      price: { source: 'catalog' },
    });
  });

  it('matches the override provider and model case-insensitively', () => {
    const e = realEngine([{ provider: ' OpenAI ', model: 'GPT-4', inputPer1k: '0.03', outputPer1k: '0.06' }]);
    expect(expectPriced(e.price({ provider: 'openai', model: 'gpt-4', occurredAtMs: DEFAULT_AT, usage: usage(u) })).price.source).toBe('override');
  });

  it('prices a provider and model the catalog does not know', () => {
    const e = realEngine([{ provider: 'acme', model: 'acme-large', inputPer1k: '0.002', outputPer1k: '0.004' }]);
    expect(costOf(e, 'acme', 'acme-large', u)).toBe('0.006');
  });

  it('applies optional cache and reasoning prices; without them cache is input and reasoning is output', () => {
    const e = realEngine([
      {
        provider: 'acme',
        model: 'full',
        inputPer1k: '0.001',
        outputPer1k: '0.002',
        cacheReadPer1k: '0.0001',
        cacheWritePer1k: '0.00125',
        cacheWrite1hPer1k: '0.002',
        reasoningPer1k: '0.003',
      },
      { provider: 'acme', model: 'plain', inputPer1k: '0.001', outputPer1k: '0.002' },
    ]);
    const all = { inputTokens: 10_000, cacheReadTokens: 3000, cacheWriteTokens: 2000, cacheWrite1hTokens: 500, outputTokens: 1000, reasoningTokens: 400 };
    // full: 5000*0.001 + 3000*0.0001 + 1500*0.00125 + 500*0.002 + 600*0.002 + 400*0.003 per 1K
    //     = 0.005 + 0.0003 + 0.001875 + 0.001 + 0.0012 + 0.0012
    expect(costOf(e, 'acme', 'full', all)).toBe('0.010575');
    // plain: 10000*0.001 + 1000*0.002 per 1K
    expect(costOf(e, 'acme', 'plain', all)).toBe('0.012');
  });
});

describe('unknown provider or model: explicit, never a silent 0, never an exception', () => {
  it('unknown provider', () => {
    const r = price('nope-ai', 'whatever-1', { inputTokens: 1000 });
    expect(r).toEqual({
      priced: false,
      costUsd: '0',
      code: 'unknown_provider',
      reason: expect.stringContaining('"nope-ai"') as string,
    });
  });

  it('unknown model of a known provider', () => {
    const r = price('openai', 'gpt-99-ultra', { inputTokens: 1000 });
    expect(r.priced).toBe(false);
    if (r.priced) return;
    expect(r.costUsd).toBe('0');
    expect(r.code).toBe('unknown_model');
    expect(r.reason).toContain('"gpt-99-ultra"');
    expect(r.reason).toContain('"openai"');
  });

  it('is stable when asked again (misses are cached, not turned into a price)', () => {
    expect(price('openai', 'gpt-99-ultra', {}).priced).toBe(false);
    expect(price('openai', 'gpt-99-ultra', {}).priced).toBe(false);
  });
});

describe('models whose catalog prices are all in units Cost Guard does not meter', () => {
  it('a genuinely free model (no prices at all) is priced at exactly 0', () => {
    const r = expectPriced(price('openrouter', 'qwen/qwq-32b:free', { inputTokens: 1000, outputTokens: 1000 }));
    expect(r.costUsd).toBe('0');
    expect(r.price.model).toBe('qwen/qwq-32b:free');
  });

  it('whisper-1 (priced only per audio hour) is flagged unpriced with a reason, not silently $0', () => {
    // The catalog prices whisper-1 by audio_hours / input_audio_hours only; a call recorded as
    // priced at 0 would hide real spend (DESIGN invariant 3: never silently priced at zero).
    const r = price('openai', 'whisper-1', { inputTokens: 1000 });
    expect(r.costUsd).toBe('0');
    expect(r.priced).toBe(false);
    expect(r.priced ? '' : r.reason).toContain('whisper-1');
  });
});

// ---------------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------------

/**
 * A valid usage built from its leaves, so the convention holds by construction:
 * plain input, cache reads, 5m writes, 1h writes, plain output, reasoning.
 */
interface Leaves {
  plainIn: number;
  read: number;
  write5m: number;
  write1h: number;
  plainOut: number;
  reasoning: number;
}
const leavesArb = (max: number): fc.Arbitrary<Leaves> =>
  fc.record({
    plainIn: fc.nat({ max }),
    read: fc.nat({ max }),
    write5m: fc.nat({ max }),
    write1h: fc.nat({ max }),
    plainOut: fc.nat({ max }),
    reasoning: fc.nat({ max }),
  });

function fromLeaves(l: Leaves): TokenUsage {
  return {
    inputTokens: l.plainIn + l.read + l.write5m + l.write1h,
    cacheReadTokens: l.read,
    cacheWriteTokens: l.write5m + l.write1h,
    cacheWrite1hTokens: l.write1h,
    outputTokens: l.plainOut + l.reasoning,
    reasoningTokens: l.reasoning,
  };
}

/** One valid usage per kind, each with only that kind (cache and reasoning carried inside input/output). */
function singleKinds(l: Leaves): TokenUsage[] {
  return [
    usage({ inputTokens: l.plainIn }),
    usage({ inputTokens: l.read, cacheReadTokens: l.read }),
    usage({ inputTokens: l.write5m, cacheWriteTokens: l.write5m }),
    usage({ inputTokens: l.write1h, cacheWriteTokens: l.write1h, cacheWrite1hTokens: l.write1h }),
    usage({ outputTokens: l.plainOut }),
    usage({ outputTokens: l.reasoning, reasoningTokens: l.reasoning }),
  ];
}

function sumUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    cacheReadTokens: a.cacheReadTokens + b.cacheReadTokens,
    cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens,
    cacheWrite1hTokens: a.cacheWrite1hTokens + b.cacheWrite1hTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    reasoningTokens: a.reasoningTokens + b.reasoningTokens,
  };
}

const RUNS = 300;
const costAt = (provider: string, model: string, u: TokenUsage) => costOf(engine, provider, model, u);

/** Representative models: cache + 1h, cache read only, reasoning, per-request, and a tiered one kept below its tier. */
const MODELS: { provider: string; model: string; perRequest: boolean; max: number }[] = [
  { provider: 'anthropic', model: 'claude-3-5-sonnet', perRequest: false, max: 100_000_000 },
  { provider: 'openai', model: 'gpt-4o-mini', perRequest: false, max: 100_000_000 },
  { provider: 'perplexity', model: 'sonar-deep-research', perRequest: false, max: 100_000_000 },
  { provider: 'perplexity', model: 'sonar', perRequest: true, max: 100_000_000 },
  // 4 input leaves of at most 50000 keep input <= 200000, the tier start
  { provider: 'anthropic', model: 'claude-sonnet-4-5', perRequest: false, max: 50_000 },
];

describe('properties', () => {
  it.each(MODELS)('$provider/$model: cost is additive over token kinds', ({ provider, model, max }) => {
    const zero = costAt(provider, model, usage());
    fc.assert(
      fc.property(leavesArb(max), (l) => {
        const whole = costAt(provider, model, fromLeaves(l));
        const parts = singleKinds(l).map((u) => costAt(provider, model, u));
        // each single-kind call carries the fixed per-call charge (if any) once; the whole call once
        const expected = dec(addAmounts(...parts)).minus(dec(zero).times(parts.length - 1));
        expect(dec(whole).equals(expected)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it.each(MODELS)('$provider/$model: adding tokens of any kind never lowers the cost', ({ provider, model, max }) => {
    fc.assert(
      fc.property(leavesArb(max / 2), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: Math.floor(max / 2) }), (l, kind, extra) => {
        const keys: (keyof Leaves)[] = ['plainIn', 'read', 'write5m', 'write1h', 'plainOut', 'reasoning'];
        const more = { ...l, [keys[kind]!]: l[keys[kind]!] + extra };
        const before = costAt(provider, model, fromLeaves(l));
        const after = costAt(provider, model, fromLeaves(more));
        expect(compareAmounts(after, before)).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: RUNS },
    );
  });

  it.each(MODELS.filter((m) => !m.perRequest && m.max > 200_000))(
    '$provider/$model: splitting one call into two never changes the summed cost',
    ({ provider, model, max }) => {
      fc.assert(
        fc.property(leavesArb(max / 2), leavesArb(max / 2), (a, b) => {
          const ua = fromLeaves(a);
          const ub = fromLeaves(b);
          const whole = costAt(provider, model, sumUsage(ua, ub));
          expect(addAmounts(costAt(provider, model, ua), costAt(provider, model, ub))).toBe(whole);
        }),
        { numRuns: RUNS },
      );
    },
  );

  it('a tiered model crossing its tier is NOT additive (so the property tests above are meaningful)', () => {
    // 200001 input at once is tier-priced; 100000 + 100001 separately are both base-priced.
    const whole = costAt('anthropic', 'claude-sonnet-4-5', usage({ inputTokens: 200_001 }));
    const split = addAmounts(
      costAt('anthropic', 'claude-sonnet-4-5', usage({ inputTokens: 100_000 })),
      costAt('anthropic', 'claude-sonnet-4-5', usage({ inputTokens: 100_001 })),
    );
    expect(whole).toBe('1.200006');
    expect(split).toBe('0.600003');
  });
});
