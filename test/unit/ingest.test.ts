/**
 * The ingest tier's pure parts: routing, the compact wire format, and when a shard tells a budget
 * workflow (materiality), from exact totals alone.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Budget } from '../../src/domain/budget.js';
import { type WireEvent, decodeBatch, encodeBatch, ingestBatchProblem, shardOf } from '../../src/domain/ingest.js';
import { materialReason } from '../../src/domain/materiality.js';
import { DEFAULT_EXCHANGE_RATES } from '../../src/domain/money.js';
import { periodAt } from '../../src/domain/periods.js';

const NOW = Date.parse('2026-11-30T12:00:00Z');

describe('routing', () => {
  it('sends a user to one shard, always, and spreads users over the shards', () => {
    expect(shardOf('alice', 4)).toBe(shardOf('alice', 4));
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[shardOf(`user-${i}`, 4)]!++;
    for (const c of counts) expect(c).toBeGreaterThan(800);
  });
});

describe('compact batches', () => {
  const wire = fc.record(
    {
      requestId: fc.stringMatching(/^[A-Za-z0-9._:@/+=-]{1,40}$/),
      occurredAt: fc.integer({ min: Date.parse('2020-01-01'), max: Date.parse('2030-01-01') }).map((ms) => new Date(ms).toISOString()),
      provider: fc.constantFrom('openai', 'anthropic', 'google'),
      model: fc.constantFrom('gpt-4o-mini', 'claude-3-5-sonnet-20241022', 'gemini-2.5-pro', 'weird model é'),
      userId: fc.stringMatching(/^[A-Za-z0-9._@+=:/-]{1,20}$/),
      taskType: fc.constantFrom('default', 'chat', 'summarise'),
      usage: fc.record(
        { inputTokens: fc.integer({ min: 1, max: 1e9 }), cacheReadTokens: fc.integer({ min: 0, max: 10 }), outputTokens: fc.integer({ min: 0, max: 1e6 }), reasoningTokens: fc.constant(0) },
        { requiredKeys: ['inputTokens'] },
      ),
      team: fc.constantFrom('search', 'ads'),
      project: fc.constantFrom('alpha'),
      tags: fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
      metadata: fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }),
      estimated: fc.constant(true),
    },
    { requiredKeys: ['requestId', 'occurredAt', 'provider', 'model', 'userId', 'taskType', 'usage'] },
  );

  it('round-trips every event exactly (zero token counts and empty extras left out)', () => {
    fc.assert(
      fc.property(fc.array(wire, { minLength: 1, maxLength: 20 }), (events) => {
        const decoded = decodeBatch(JSON.parse(JSON.stringify(encodeBatch('b1', events as WireEvent[]))));
        decoded.forEach((d, i) => {
          const e = events[i]!;
          const usage = Object.fromEntries(Object.entries(e.usage).filter(([, n]) => n !== 0));
          const expected: Record<string, unknown> = { requestId: e.requestId, occurredAt: e.occurredAt, provider: e.provider, model: e.model, userId: e.userId, taskType: e.taskType, usage };
          if (e.team) expected.team = e.team;
          if (e.project) expected.project = e.project;
          if (e.tags && Object.keys(e.tags).length > 0) expected.tags = e.tags;
          if (e.metadata && Object.keys(e.metadata).length > 0) expected.metadata = JSON.parse(JSON.stringify(e.metadata));
          if (e.estimated) expected.estimated = true;
          expect(d).toEqual(expected);
        });
      }),
    );
  });

  it('takes fewer bytes than the object form: strings repeated across events are sent once', () => {
    const events: WireEvent[] = Array.from({ length: 500 }, (_, i) => ({
      requestId: `0b8f3c1e-6a2d-4b7e-9c1a-${String(i).padStart(12, '0')}`,
      occurredAt: new Date(NOW + i).toISOString(),
      provider: 'openai',
      model: 'gpt-4o-mini-2024-07-18',
      userId: `user-${i % 50}`,
      taskType: 'chat',
      usage: { inputTokens: 1200, outputTokens: 300 },
    }));
    const compact = JSON.stringify(encodeBatch('b', events)).length;
    const objects = JSON.stringify({ batchId: 'b', events }).length;
    expect(compact / objects).toBeLessThan(0.6);
  });

  it('decodes a malformed event as such (never throws), so its batch-mates are recorded', () => {
    const good = encodeBatch('b', [{ requestId: 'r', occurredAt: new Date(NOW).toISOString(), provider: 'openai', model: 'm', userId: 'u', taskType: 'default', usage: { inputTokens: 1 } }]);
    const out = decodeBatch({ ...good, events: [good.events[0]!, ['x'] as never, [1, 2, 3, 4, 5, 6, 7] as never, ['r2', NOW, 99, 0, 0, 0, []] as never] });
    expect(out[0]).toMatchObject({ requestId: 'r', model: 'm' });
    expect(out.slice(1).every((e) => 'malformed' in e)).toBe(true);
    expect(ingestBatchProblem({ v: 2, batchId: 'x', strings: [], events: [] })).toMatch(/version/);
    expect(ingestBatchProblem(null)).not.toBeNull();
    expect(ingestBatchProblem(good)).toBeNull();
  });
});

describe('materiality: when a shard tells a budget workflow', () => {
  const budget = (over: Partial<Budget> = {}): Budget => ({ period: 'day', amount: '10', currency: 'USD', timezone: 'UTC', thresholds: { warning: 0.8, critical: 0.95 }, ...over });
  const day = periodAt('day', 'UTC', NOW).startMs;
  const month = periodAt('month', 'UTC', NOW).startMs;
  const opts = { rollupTimezone: 'UTC', nowMs: NOW, rates: DEFAULT_EXCHANGE_RATES, settings: { stepFraction: 0.05, forecast: { enabled: false, minElapsedFraction: 0.1 } } };
  const change = (total: string, delta: string, kind: 'day' | 'month' = 'day') => ({ kind, startMs: kind === 'day' ? day : month, totalUsd: total, deltaUsd: delta });

  it('a step is 5% of the smallest budget: crossing a multiple of it is material, moving within it is not', () => {
    expect(materialReason([budget()], [change('0.49', '0.01')], opts)).toBeNull();
    expect(materialReason([budget()], [change('0.51', '0.02')], opts)).toBe('step');
    expect(materialReason([budget(), budget({ period: 'month', amount: '2' })], [change('0.11', '0.02')], opts)).toBe('step');
    expect(materialReason([budget()], [change('3.7', '0.0001')], opts)).toBeNull();
  });

  it('crossing a threshold is material at once, whatever the step', () => {
    const big = { ...opts, settings: { ...opts.settings, stepFraction: 1 } };
    expect(materialReason([budget()], [change('8.0001', '0.0002')], big)).toBe('threshold');
    expect(materialReason([budget({ period: 'month', amount: '100' })], [change('1', '0.5'), change('95.2', '0.5', 'month')], big)).toBe('threshold');
    expect(materialReason([budget()], [change('8.5', '0.0002')], big)).toBeNull();
  });

  it('the projected end-of-period spend crossing the budget is material (forecast)', () => {
    const f = { ...opts, settings: { stepFraction: 1, forecast: { enabled: true, minElapsedFraction: 0.1 } } };
    // At noon, half the day is gone: $5 projects to $10.
    expect(materialReason([budget()], [change('5.0001', '0.001')], f)).toBe('forecast');
    expect(materialReason([budget()], [change('4.9', '0.001')], f)).toBeNull();
  });

  it('no budget, late or early usage (another day), or none: not material', () => {
    expect(materialReason([], [change('100', '100')], opts)).toBeNull();
    expect(materialReason([budget()], [{ kind: 'day', startMs: day - 86_400_000, totalUsd: '9', deltaUsd: '9' }], opts)).toBeNull();
    expect(materialReason([budget()], [], opts)).toBeNull();
  });

  it('is memoryless: the same flush gives the same answer on any worker, after any restart', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 0, max: 50_000 }), (totalCents, deltaCents) => {
        const t = (totalCents / 100).toFixed(2);
        const d = (Math.min(deltaCents, totalCents) / 100).toFixed(2);
        const a = materialReason([budget()], [change(t, d)], opts);
        const b = materialReason([budget()], [change(t, d)], opts);
        expect(a).toBe(b);
        // A step crossed is reported whenever the flush spans a multiple of $0.50.
        const crossed = Math.floor(totalCents / 50) > Math.floor((totalCents - Math.min(deltaCents, totalCents)) / 50);
        if (crossed) expect(a).not.toBeNull();
      }),
    );
  });
});
