import protobuf from 'protobufjs/minimal.js';
import { describe, expect, it } from 'vitest';
import { type OtlpKeyValue, type OtlpSpan, OTEL_DEFAULTS, attributeMap, describeRefusal, issuesByAttribute, mapSpan, otelConfigSchema, spansOf } from '../../src/domain/otel.js';
import { fromAnthropicUsage, fromOpenAIUsage, parseUsageEvent } from '../../src/domain/usage.js';
import { loadConfig } from '../../src/config/index.js';

/** The 64-bit integer class protobufjs decodes int64 fields to. */
const Long = protobuf.util.Long as unknown as { fromString(s: string, unsigned: boolean): object; fromNumber(n: number): object };
const TRACE = '0af7651916cd43dd8448eb211c80319c';
const SPAN = 'b7ad6b7169203331';
const END_NS = '1764892800000000000'; // 2025-12-05T00:00:00Z
const NOW = Date.parse('2025-12-05T00:01:00Z');

function kv(attrs: Record<string, string | number | boolean>): OtlpKeyValue[] {
  return Object.entries(attrs).map(([key, v]) => ({
    key,
    value: typeof v === 'string' ? { stringValue: v } : typeof v === 'boolean' ? { boolValue: v } : Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v },
  }));
}

function span(attrs: Record<string, string | number | boolean>, over: Partial<OtlpSpan> = {}): OtlpSpan {
  return { traceId: TRACE, spanId: SPAN, name: 'chat gpt-4o', startTimeUnixNano: END_NS, endTimeUnixNano: END_NS, attributes: kv(attrs), ...over };
}

const resource = attributeMap(kv({ 'service.name': 'checkout-svc', 'service.namespace': 'payments' }));

function eventOf(s: OtlpSpan, mapping = OTEL_DEFAULTS, res = resource) {
  const out = mapSpan(s, res, mapping);
  if (out.kind !== 'event') expect.fail(`expected an event, got ${JSON.stringify(out)}`);
  return out;
}

describe('mapSpan: the current GenAI semantic conventions', () => {
  it('maps provider, response model, tokens, time and ids; the user falls back to service.name, the team to service.namespace', () => {
    const out = eventOf(
      span({
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.response.model': 'gpt-4o-2024-08-06',
        'gen_ai.operation.name': 'chat',
        'gen_ai.usage.input_tokens': 1000,
        'gen_ai.usage.output_tokens': 300,
        'gen_ai.usage.cache_read.input_tokens': 400,
        'gen_ai.usage.reasoning.output_tokens': 100,
      }),
    );
    expect(out.input).toEqual({
      requestId: `otel:${TRACE}:${SPAN}`,
      occurredAt: new Date('2025-12-05T00:00:00.000Z'),
      provider: 'openai',
      model: 'gpt-4o-2024-08-06',
      userId: 'checkout-svc',
      team: 'payments',
      taskType: 'chat',
      usage: { inputTokens: 1000, outputTokens: 300, cacheReadTokens: 400, reasoningTokens: 100 },
    });
    expect(out.sources).toMatchObject({ model: 'gen_ai.response.model', userId: 'service.name', 'usage.inputTokens': 'gen_ai.usage.input_tokens' });
  });

  it('reads the protobuf shapes: ids as bytes, 64-bit integers as Long', () => {
    const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));
    const s: OtlpSpan = {
      traceId: bytes(TRACE),
      spanId: bytes(SPAN),
      name: 'chat',
      endTimeUnixNano: Long.fromString(END_NS, true),
      attributes: [
        { key: 'gen_ai.system', value: { stringValue: 'anthropic' } },
        { key: 'gen_ai.request.model', value: { stringValue: 'claude-sonnet-4-5' } },
        { key: 'gen_ai.usage.input_tokens', value: { intValue: Long.fromNumber(5000) } },
        { key: 'gen_ai.usage.output_tokens', value: { intValue: Long.fromNumber(70) } },
        { key: 'user.id', value: { stringValue: 'alice' } },
      ],
    };
    const out = eventOf(s);
    expect(out.input).toMatchObject({ requestId: `otel:${TRACE}:${SPAN}`, occurredAt: new Date('2025-12-05T00:00:00.000Z'), provider: 'anthropic', userId: 'alice', usage: { inputTokens: 5000, outputTokens: 70 } });
  });

  it('maps the semantic conventions provider names to the catalog ones', () => {
    for (const [given, expected] of [['aws.bedrock', 'aws'], ['gcp.gemini', 'google'], ['azure.ai.openai', 'azure'], ['x_ai', 'x-ai'], ['OpenAI', 'openai']]) {
      const out = eventOf(span({ 'gen_ai.provider.name': given!, 'gen_ai.request.model': 'm', 'gen_ai.usage.input_tokens': 1, 'user.id': 'u' }));
      expect(out.input.provider).toBe(expected);
    }
  });
});

describe('mapSpan: the older OpenLLMetry names', () => {
  it('reads gen_ai.system, gen_ai.usage.prompt_tokens / completion_tokens and the cache attributes', () => {
    const out = eventOf(
      span({
        'gen_ai.system': 'OpenAI',
        'gen_ai.request.model': 'gpt-4o-mini',
        'gen_ai.usage.prompt_tokens': 1200,
        'gen_ai.usage.completion_tokens': 30,
        'gen_ai.usage.cache_read_input_tokens': 200,
        'user.id': 'bob',
      }),
    );
    expect(out.input).toMatchObject({ provider: 'openai', model: 'gpt-4o-mini', userId: 'bob', usage: { inputTokens: 1200, outputTokens: 30, cacheReadTokens: 200 } });
  });

  it('reads llm.usage.* and llm.request.model', () => {
    const out = eventOf(span({ 'gen_ai.system': 'openai', 'llm.request.model': 'gpt-4o', 'llm.usage.prompt_tokens': 10, 'llm.usage.completion_tokens': 5, 'user.id': 'c' }));
    expect(out.input.usage).toEqual({ inputTokens: 10, outputTokens: 5 });
    expect(out.input.model).toBe('gpt-4o');
  });
});

describe('cached tokens are never counted twice', () => {
  const openaiRaw = { prompt_tokens: 2000, completion_tokens: 50, prompt_tokens_details: { cached_tokens: 1500 }, completion_tokens_details: { reasoning_tokens: 20 } };
  const anthropicRaw = { input_tokens: 300, output_tokens: 40, cache_read_input_tokens: 1500, cache_creation_input_tokens: 200 };

  it('OpenAI (input includes the cache, the default): the span counts equal fromOpenAIUsage', () => {
    const out = eventOf(
      span({
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.usage.input_tokens': openaiRaw.prompt_tokens,
        'gen_ai.usage.output_tokens': openaiRaw.completion_tokens,
        'gen_ai.usage.cache_read.input_tokens': openaiRaw.prompt_tokens_details.cached_tokens,
        'gen_ai.usage.reasoning.output_tokens': openaiRaw.completion_tokens_details.reasoning_tokens,
        'user.id': 'u',
      }),
    );
    const expected = fromOpenAIUsage(openaiRaw);
    expect(out.input.usage).toEqual({ inputTokens: expected.inputTokens, outputTokens: expected.outputTokens, cacheReadTokens: expected.cacheReadTokens, reasoningTokens: expected.reasoningTokens });
  });

  it('Anthropic counted inclusively (the default, as the semantic conventions and the Anthropic SDK tracing send it): unchanged', () => {
    const inclusive = fromAnthropicUsage(anthropicRaw);
    const out = eventOf(
      span({
        'gen_ai.provider.name': 'anthropic',
        'gen_ai.request.model': 'claude-sonnet-4-5',
        'gen_ai.usage.input_tokens': inclusive.inputTokens!,
        'gen_ai.usage.output_tokens': 40,
        'gen_ai.usage.cache_read.input_tokens': 1500,
        'gen_ai.usage.cache_creation.input_tokens': 200,
        'user.id': 'u',
      }),
    );
    expect(out.input.usage).toEqual({ inputTokens: 2000, outputTokens: 40, cacheReadTokens: 1500, cacheWriteTokens: 200 });
  });

  it('Anthropic configured as exclusive (raw input_tokens): the cache counts are added back, equal to fromAnthropicUsage', () => {
    const mapping = otelConfigSchema.parse({ providers: { anthropic: { inputIncludesCache: false } } });
    const out = eventOf(
      span({
        'gen_ai.system': 'anthropic',
        'gen_ai.request.model': 'claude-sonnet-4-5',
        'gen_ai.usage.input_tokens': anthropicRaw.input_tokens,
        'gen_ai.usage.output_tokens': anthropicRaw.output_tokens,
        'gen_ai.usage.cache_read_input_tokens': anthropicRaw.cache_read_input_tokens,
        'gen_ai.usage.cache_creation_input_tokens': anthropicRaw.cache_creation_input_tokens,
        'user.id': 'u',
      }),
      mapping,
    );
    const expected = fromAnthropicUsage(anthropicRaw);
    expect(out.input.usage).toEqual({ inputTokens: expected.inputTokens, outputTokens: expected.outputTokens, cacheReadTokens: expected.cacheReadTokens, cacheWriteTokens: expected.cacheWriteTokens });
  });

  it('exclusive counts sent under the inclusive default are refused by the event check, never guessed at', () => {
    const out = eventOf(
      span({
        'gen_ai.provider.name': 'anthropic',
        'gen_ai.request.model': 'claude-sonnet-4-5',
        'gen_ai.usage.input_tokens': 300,
        'gen_ai.usage.output_tokens': 40,
        'gen_ai.usage.cache_read.input_tokens': 1500,
        'user.id': 'u',
      }),
    );
    const parsed = parseUsageEvent(out.input, { now: NOW });
    expect(parsed.ok).toBe(false);
    const issues = issuesByAttribute(parsed.ok ? [] : parsed.issues, out.sources);
    expect(issues).toEqual([{ path: 'gen_ai.usage.cache_read.input_tokens', message: expect.stringContaining('exceed inputTokens') }]);
  });

  it('reasoning counted outside the output (a provider so configured) is added to it', () => {
    const mapping = otelConfigSchema.parse({ providers: { google: { inputIncludesCache: true, outputIncludesReasoning: false } } });
    const out = eventOf(span({ 'gen_ai.provider.name': 'gcp.gemini', 'gen_ai.request.model': 'gemini-2.5-pro', 'gen_ai.usage.input_tokens': 100, 'gen_ai.usage.output_tokens': 50, 'gen_ai.usage.reasoning.output_tokens': 30, 'user.id': 'u' }), mapping);
    expect(out.input.usage).toEqual({ inputTokens: 100, outputTokens: 80, reasoningTokens: 30 });
  });
});

describe('what a span is', () => {
  it('ignores spans without GenAI token counts (an HTTP span, a GenAI span without usage)', () => {
    expect(mapSpan(span({ 'http.request.method': 'POST' }), resource, OTEL_DEFAULTS)).toEqual({ kind: 'ignored' });
    expect(mapSpan(span({ 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o' }), resource, OTEL_DEFAULTS)).toEqual({ kind: 'ignored' });
  });

  it('refuses a usage span without model, user, valid ids or time, naming each', () => {
    const out = mapSpan(span({ 'gen_ai.usage.input_tokens': 5, 'gen_ai.provider.name': 'openai' }, { traceId: '00000000000000000000000000000000', spanId: 'xyz', endTimeUnixNano: '0', startTimeUnixNano: '0' }), new Map(), OTEL_DEFAULTS);
    expect(out.kind).toBe('refused');
    if (out.kind !== 'refused') return;
    expect(out.issues.map((i) => i.path)).toEqual(['traceId', 'spanId', 'gen_ai.response.model', 'user.id', 'endTimeUnixNano']);
    expect(describeRefusal(out.span, out.issues)).toMatch(/^span "chat gpt-4o" \(trace 00000000000000000000000000000000, span xyz\): traceId: must be 16 bytes/);
  });

  it('names a bad token attribute by its attribute name', () => {
    const out = eventOf(span({ 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': 'many', 'user.id': 'u' }));
    const parsed = parseUsageEvent(out.input, { now: NOW });
    expect(parsed.ok).toBe(false);
    expect(issuesByAttribute(parsed.ok ? [] : parsed.issues, out.sources)).toEqual([{ path: 'gen_ai.usage.input_tokens', message: 'must be a number of tokens, got "many"' }]);
  });

  it('takes user, team, project, task type and tags from configured span and resource attributes', () => {
    const mapping = otelConfigSchema.parse({ attributes: { userId: ['app.user'], team: ['app.team'], project: ['app.project'], taskType: ['app.task'], tags: ['deployment.environment.name'] }, tagPrefix: 'cg.' });
    const res = attributeMap(kv({ 'service.name': 'svc', 'app.team': 'growth', 'deployment.environment.name': 'prod', 'cg.region': 'eu' }));
    const out = eventOf(span({ 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o', 'gen_ai.usage.input_tokens': 1, 'app.user': 'dana', 'app.project': 'search', 'app.task': 'summarize', 'cg.feature': 'digest' }), mapping, res);
    expect(out.input).toMatchObject({ userId: 'dana', team: 'growth', project: 'search', taskType: 'summarize', tags: { 'deployment.environment.name': 'prod', region: 'eu', feature: 'digest' } });
  });

  it('walks every resource and scope of a request, each span with its own resource', () => {
    const req = {
      resourceSpans: [
        { resource: { attributes: kv({ 'service.name': 'a' }) }, scopeSpans: [{ spans: [span({}), span({})] }] },
        { resource: { attributes: kv({ 'service.name': 'b' }) }, scopeSpans: [{ spans: [span({})] }, { spans: null }] },
        { scopeSpans: null },
      ],
    };
    expect([...spansOf(req)].map((s) => s.resource.get('service.name'))).toEqual(['a', 'a', 'b']);
    expect([...spansOf({})]).toEqual([]);
  });
});

describe('the otel config section', () => {
  it('defaults to the documented attributes, and the file replaces a field or adds providers', () => {
    expect(loadConfig({}).otel).toEqual(OTEL_DEFAULTS);
    const m = otelConfigSchema.parse({ attributes: { userId: ['app.user'] }, providers: { Anthropic: { inputIncludesCache: false } } });
    expect(m.attributes.userId).toEqual(['app.user']);
    expect(m.attributes.team).toEqual(OTEL_DEFAULTS.attributes.team);
    expect(m.providers.anthropic).toEqual({ inputIncludesCache: false, outputIncludesReasoning: true });
    expect(m.providers.openai).toEqual(OTEL_DEFAULTS.providers.openai);
    expect(() => otelConfigSchema.parse({ providers: { x: { inputIncludesCache: 'yes' } } })).toThrow();
  });
});
