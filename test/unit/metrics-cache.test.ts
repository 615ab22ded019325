/** Cost avoided in Prometheus: a cache hit counts as cost avoided and a hit, never as cost, a call or tokens. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { type CountedEventSample, createMetrics } from '../../src/metrics/index.js';
import { parsePromText, sumOf } from '../prom-text.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const sample = (over: Partial<CountedEventSample> = {}): CountedEventSample => ({
  provider: 'openai',
  model: 'gpt-4o-mini',
  userId: 'alice',
  taskType: 'default',
  costUsd: '0.1',
  unpriced: false,
  inputTokens: 1000,
  outputTokens: 100,
  occurredAt: new Date(NOW - 1500).toISOString(),
  ...over,
});

describe('cost avoided metrics', () => {
  it('a hit adds cost avoided and a hit with the cost counter labels, and no spend, call or tokens', async () => {
    const metrics = createMetrics({ config: loadConfig({}), processMetrics: false });
    metrics.recordFlush({
      batch: { received: 3, rejected: 0, duplicates: 0 },
      persistedAtMs: NOW,
      counted: [sample(), sample({ costUsd: '0', cacheHit: true, avoidedUsd: '0.1' }), sample({ costUsd: '0', cacheHit: true, avoidedUsd: '0.05' })],
    });
    metrics.recordCacheLookup('hit');
    metrics.recordCacheLookup('miss');
    metrics.recordCacheLookup('hit');
    const s = parsePromText(await metrics.render());
    expect(sumOf(s, 'llm_cost_usd_total', { provider: 'openai', model: 'gpt-4o-mini' })).toBeCloseTo(0.1, 15);
    expect(sumOf(s, 'llm_api_calls_total', { provider: 'openai', model: 'gpt-4o-mini' })).toBe(1);
    expect(sumOf(s, 'llm_token_usage_sum', { provider: 'openai', kind: 'input' })).toBe(1000);
    expect(sumOf(s, 'costguard_cost_avoided_usd_total', { provider: 'openai', model: 'gpt-4o-mini' })).toBeCloseTo(0.15, 15);
    expect(sumOf(s, 'costguard_cache_hits_total', { provider: 'openai', model: 'gpt-4o-mini' })).toBe(2);
    expect(sumOf(s, 'costguard_response_cache_lookups_total', { result: 'hit' })).toBe(2);
    expect(sumOf(s, 'costguard_response_cache_lookups_total', { result: 'miss' })).toBe(1);
  });
});
