/**
 * The response cache's key (src/client/cache/canonical.ts): requests that differ in any one
 * parameter never share a key (10,000 random pairs per API), documented defaults made explicit do,
 * and key order never matters.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cacheKeyHash, canonicalBody, stableJson } from '../../src/client/cache/canonical.js';
import type { Api } from '../../src/client/wrappers/protocols.js';

const APIS: Api[] = ['chat.completions', 'responses', 'messages'];

/** A request body with random parameters (the ones the APIs have, and some they do not). */
const scalar = fc.oneof(fc.string({ maxLength: 12 }), fc.integer({ min: -5, max: 5000 }), fc.double({ min: 0, max: 2, noNaN: true }), fc.boolean());
const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), scalar, { maxKeys: 3 }));
const PARAMS = ['temperature', 'top_p', 'max_tokens', 'max_output_tokens', 'seed', 'stop', 'tools', 'tool_choice', 'response_format', 'text', 'user', 'metadata', 'n', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'reasoning_effort', 'top_k', 'system', 'store', 'x_unknown'];

const body = fc.record({
  model: fc.constantFrom('gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-5'),
  messages: fc.array(fc.record({ role: fc.constantFrom('user', 'assistant'), content: fc.string({ maxLength: 30 }) }), { minLength: 1, maxLength: 3 }),
  params: fc.dictionary(fc.constantFrom(...PARAMS), value, { maxKeys: 6 }),
});

/** A change to exactly one parameter: a new value, a parameter added, or one removed (never a documented-equivalent form). */
const change = fc.record({ param: fc.constantFrom(...PARAMS, 'model', 'messages'), to: value, remove: fc.boolean() });

function key(api: Api, b: Record<string, unknown>, scope = 'tenant:a'): string {
  return cacheKeyHash({ provider: 'openai', api, body: b, scope });
}

describe('cache key', () => {
  for (const api of APIS) {
    it(`${api}: 10,000 random request pairs differing in one parameter give 0 false hits`, () => {
      let pairs = 0;
      let falseHits = 0;
      fc.assert(
        fc.property(body, change, (b, c) => {
          const a: Record<string, unknown> = { model: b.model, messages: b.messages, ...b.params };
          const other: Record<string, unknown> = { ...a };
          if (c.remove && c.param in other) delete other[c.param];
          else other[c.param] = c.param === 'messages' ? [...b.messages, { role: 'user', content: stableJson(c.to) }] : c.to;
          // Only pairs that really differ once the defaults are made explicit: a value equal to the default is the same request.
          if (stableJson(canonicalBody(api, a)) === stableJson(canonicalBody(api, other))) return;
          pairs++;
          if (key(api, a) === key(api, other)) falseHits++;
        }),
        { numRuns: 10_000, seed: 12 },
      );
      expect(pairs).toBeGreaterThan(9_000);
      expect(falseHits).toBe(0);
    });
  }

  it('defaults made explicit are the same request; other values are not', () => {
    const m = [{ role: 'user', content: 'hi' }];
    expect(key('chat.completions', { model: 'x', messages: m })).toBe(key('chat.completions', { model: 'x', messages: m, temperature: 1, top_p: 1, n: 1, stream: false, tool_choice: 'none' }));
    expect(key('chat.completions', { model: 'x', messages: m, temperature: null })).toBe(key('chat.completions', { model: 'x', messages: m }));
    expect(key('chat.completions', { model: 'x', messages: m, temperature: 0.9 })).not.toBe(key('chat.completions', { model: 'x', messages: m }));
    expect(key('chat.completions', { model: 'x', messages: m, stream: true })).not.toBe(key('chat.completions', { model: 'x', messages: m }));
    expect(key('responses', { model: 'x', input: 'hi' })).toBe(key('responses', { model: 'x', input: [{ role: 'user', content: 'hi' }] }));
    expect(key('messages', { model: 'x', max_tokens: 5, messages: m, system: 'be brief' })).toBe(
      key('messages', { model: 'x', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], system: [{ type: 'text', text: 'be brief' }] }),
    );
    const tools = [{ type: 'function', function: { name: 'f', parameters: {} } }];
    expect(key('chat.completions', { model: 'x', messages: m, tools })).toBe(key('chat.completions', { model: 'x', messages: m, tools, tool_choice: 'auto', parallel_tool_calls: true }));
    expect(key('chat.completions', { model: 'x', messages: m, tools })).not.toBe(key('chat.completions', { model: 'x', messages: m, tools, tool_choice: 'required' }));
  });

  it('key order does not matter at any depth; the scope, provider, API and beta headers do', () => {
    const a = { model: 'x', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { a: 1, b: 2 } } } };
    const b = { response_format: { json_schema: { schema: { b: 2, a: 1 }, name: 'n' }, type: 'json_schema' }, messages: [{ content: 'hi', role: 'user' }], model: 'x' };
    expect(key('chat.completions', a)).toBe(key('chat.completions', b));
    expect(key('chat.completions', a, 'tenant:a')).not.toBe(key('chat.completions', a, 'tenant:b'));
    expect(key('chat.completions', a, 'tenant:a')).not.toBe(key('chat.completions', a, 'shared'));
    expect(cacheKeyHash({ provider: 'openai', api: 'chat.completions', body: a, scope: 's' })).not.toBe(cacheKeyHash({ provider: 'azure', api: 'chat.completions', body: a, scope: 's' }));
    expect(cacheKeyHash({ provider: 'p', api: 'messages', body: a, scope: 's' })).not.toBe(cacheKeyHash({ provider: 'p', api: 'messages', body: a, scope: 's', headers: { 'anthropic-beta': 'x' } }));
  });
});

describe('a cache hit on the wire', () => {
  it('travels through the compact ingest form and validation (both paths) as cacheHit: true', async () => {
    const { decodeBatch, encodeBatch } = await import('../../src/domain/ingest.js');
    const { parseUsageEvent } = await import('../../src/domain/usage.js');
    const e = { requestId: 'r1', occurredAt: '2025-06-15T12:00:00.000Z', provider: 'openai', model: 'gpt-4o', userId: 'u', taskType: 'default', usage: { inputTokens: 10, outputTokens: 2 }, cacheHit: true };
    const batch = encodeBatch('b1', [e, { ...e, requestId: 'r2', cacheHit: false }]);
    expect(batch.events[0]![7]).toEqual({ hit: true });
    expect(batch.events[1]).toHaveLength(7); // no extra object for a plain call
    const [d1, d2] = decodeBatch(batch);
    expect(d1).toMatchObject({ cacheHit: true });
    expect(d2).not.toHaveProperty('cacheHit');
    const now = Date.parse('2025-06-15T12:00:01Z');
    for (const schemaOnly of [false, true]) {
      const r = parseUsageEvent(d1, { now, schemaOnly });
      expect(r.ok && r.value.cacheHit).toBe(true);
      const bad = parseUsageEvent({ ...e, cacheHit: 'yes' }, { now, schemaOnly });
      expect(bad.ok ? [] : bad.issues).toEqual([{ path: 'cacheHit', message: 'must be true or false, got "yes"' }]);
    }
  });
});
