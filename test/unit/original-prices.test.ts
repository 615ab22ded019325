import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfigFile } from '../../src/config/index.js';
import { projectRoot } from '../../src/lib/paths.js';
import { ORIGINAL_PRICE_TABLE, createPricingEngine } from '../../src/pricing/index.js';

const at = Date.parse('2026-03-01T12:00:00Z');
const tokens = (input: number, output: number, cacheRead = 0) => ({ inputTokens: input, cacheReadTokens: cacheRead, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: output, reasoningTokens: 0 });
const usage = tokens(1000, 1000);

describe('pricing.table: the original specification\'s table', () => {
  const original = createPricingEngine({ pricing: { table: 'original', overrides: [] } });
  const catalog = createPricingEngine({ pricing: { table: 'catalog', overrides: [] } });

  it.each([
    ['openai', 'gpt-4', '0.09'],
    ['openai', 'gpt-4-turbo', '0.04'],
    ['openai', 'gpt-3.5-turbo', '0.0035'],
    ['anthropic', 'claude-3-opus', '0.09'],
    ['anthropic', 'claude-3-5-sonnet-20241022', '0.018'],
    ['google', 'gemini-pro', '0.002'],
  ])('%s/%s: 1K input + 1K output cost $%s, recorded as the original table', (provider, model, cost) => {
    const r = original.price({ provider, model, occurredAtMs: at, usage });
    expect(r).toMatchObject({ priced: true, costUsd: cost, price: { source: 'override', catalogVersion: 'original-spec' } });
  });

  it('dated versions match their model (claude-3-opus-20240229), other models still use the catalog', () => {
    expect(original.price({ provider: 'anthropic', model: 'claude-3-opus-20240229', occurredAtMs: at, usage })).toMatchObject({ costUsd: '0.09' });
    const mini = original.price({ provider: 'openai', model: 'gpt-4o-mini', occurredAtMs: at, usage });
    expect(mini).toEqual(catalog.price({ provider: 'openai', model: 'gpt-4o-mini', occurredAtMs: at, usage }));
  });

  it('differs from the catalog exactly where the README says so', () => {
    const both = (provider: string, model: string, u = usage) => [original, catalog].map((e) => e.price({ provider, model, occurredAtMs: at, usage: u }).costUsd);
    expect(both('google', 'gemini-pro', tokens(1000, 0))).toEqual(['0.0005', '0.000125']);
    expect(both('google', 'gemini-pro', tokens(0, 1000))).toEqual(['0.0015', '0.000375']);
    expect(both('openai', 'gpt-3.5-turbo', tokens(1000, 0))).toEqual(['0.0015', '0.0005']);
    expect(both('openai', 'gpt-3.5-turbo', tokens(0, 1000))).toEqual(['0.002', '0.0015']);
    // `-0125` is no date suffix: the dated version keeps its catalog price under `table: original`.
    expect(both('openai', 'gpt-3.5-turbo-0125')).toEqual(['0.002', '0.002']);
    // The original names the dated id only; the undated alias keeps the catalog's (equal) price.
    expect(original.price({ provider: 'anthropic', model: 'claude-3-5-sonnet-latest', occurredAtMs: at, usage })).not.toMatchObject({ price: { catalogVersion: 'original-spec' } });
    // No cache price in the original table: cache reads cost full input there, a tenth in the catalog.
    expect(both('anthropic', 'claude-3-opus', tokens(1000, 0, 1000))).toEqual(['0.015', '0.0015']);
    for (const [provider, model] of [['openai', 'gpt-4'], ['openai', 'gpt-4-turbo'], ['anthropic', 'claude-3-opus'], ['anthropic', 'claude-3-5-sonnet-20241022']] as const) {
      const [a, b] = both(provider, model);
      expect(a, `${provider}/${model}`).toBe(b);
    }
  });

  it('config overrides win over the original table', () => {
    const engine = createPricingEngine({ pricing: { table: 'original', overrides: [{ provider: 'openai', model: 'gpt-4', inputPer1k: '0.02', outputPer1k: '0.04' }] } });
    expect(engine.price({ provider: 'openai', model: 'gpt-4', occurredAtMs: at, usage })).toMatchObject({ costUsd: '0.06', price: { catalogVersion: 'config' } });
  });

  it('is the original specification\'s table, six models', () => {
    expect(ORIGINAL_PRICE_TABLE.map((r) => `${r.provider}/${r.model} ${r.inputPer1k}/${r.outputPer1k}`)).toEqual([
      'openai/gpt-4 0.03/0.06', 'openai/gpt-4-turbo 0.01/0.03', 'openai/gpt-3.5-turbo 0.0015/0.002', 'anthropic/claude-3-opus 0.015/0.075',
      'anthropic/claude-3-5-sonnet-20241022 0.003/0.015', 'google/gemini-pro 0.0005/0.0015',
    ]);
  });

  it('the example config (the one docker-compose.yml runs) overrides the original\'s models only with the original\'s prices', () => {
    const file = readFileSync(`${projectRoot()}/config/costguard.example.yaml`, 'utf8');
    const { overrides } = parseConfigFile(file, 'costguard.example.yaml', {}).pricing;
    const rows = new Map(ORIGINAL_PRICE_TABLE.map((r) => [`${r.provider}/${r.model}`, `${r.inputPer1k}/${r.outputPer1k}`]));
    const touched = overrides.filter((o) => rows.has(`${o.provider}/${o.model}`));
    expect(touched.length).toBeGreaterThan(0);
    for (const o of touched) expect(`${o.inputPer1k}/${o.outputPer1k}`, `${o.provider}/${o.model}`).toBe(rows.get(`${o.provider}/${o.model}`));
  });

  it('config: default catalog; a bad value names the key', () => {
    expect(loadConfig({}).pricing.table).toBe('catalog');
    expect(parseConfigFile('pricing: { table: original }\n', 't.yaml', {}).pricing.table).toBe('original');
    expect(() => parseConfigFile('pricing: { table: spec }\n', 't.yaml', {})).toThrow(/pricing\.table.*expected "catalog" or "original"/s);
  });
});
