import { calcPrice, extractUsage, findProvider } from '@pydantic/genai-prices';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FieldIssue } from '../../src/domain/errors.js';
import {
  MAX_TOKENS,
  type TokenUsage,
  type UsageEvent,
  fromAnthropicUsage,
  fromOpenAIUsage,
  parseUsageEvent,
  parseUsageEvents,
} from '../../src/domain/usage.js';
import { DEFAULT_AT, costOf, realEngine, usage } from './helpers.js';

const NOW = Date.parse('2025-06-15T12:00:00.000Z');
const DAY_MS = 24 * 60 * 60 * 1000;

function goodEvent(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId: 'req-1',
    occurredAt: '2025-06-15T11:59:00Z',
    provider: 'openai',
    model: 'gpt-4o-mini',
    userId: 'alice',
    usage: { inputTokens: 1000, outputTokens: 100 },
    ...over,
  };
}

function parseOk(input: unknown, generateId?: () => string): UsageEvent {
  const r = parseUsageEvent(input, { now: NOW, generateId });
  if (!r.ok) expect.fail(`expected a valid event, got ${JSON.stringify(r.issues)}`);
  return r.value;
}

function parseIssues(input: unknown, generateId?: () => string): FieldIssue[] {
  const r = parseUsageEvent(input, { now: NOW, generateId });
  if (r.ok) expect.fail(`expected a rejection, got ${JSON.stringify(r.value)}`);
  return r.issues;
}

const paths = (issues: FieldIssue[]) => issues.map((i) => i.path);

describe('parseUsageEvent: a good event', () => {
  it('is accepted with defaults filled in', () => {
    expect(parseOk(goodEvent())).toEqual({
      requestId: 'req-1',
      occurredAt: '2025-06-15T11:59:00.000Z',
      provider: 'openai',
      model: 'gpt-4o-mini',
      userId: 'alice',
      taskType: 'default',
      team: null,
      project: null,
      tags: {},
      metadata: {},
      estimated: false,
      usage: {
        inputTokens: 1000,
        cacheReadTokens: 0,
        cacheWriteTokens: 0,
        cacheWrite1hTokens: 0,
        outputTokens: 100,
        reasoningTokens: 0,
      },
    } satisfies UsageEvent);
  });

  it('keeps every optional field it is given, trims labels and lowercases the provider', () => {
    const event = parseOk(
      goodEvent({
        provider: '  OpenAI ',
        model: ' gpt-4o-mini ',
        userId: ' bob ',
        taskType: 'summarise',
        team: 'search',
        project: 'alpha',
        tags: { env: 'prod' },
        metadata: { trace: 'abc', n: 3 },
        usage: {
          inputTokens: 10,
          cacheReadTokens: 4,
          cacheWriteTokens: 6,
          cacheWrite1hTokens: 2,
          outputTokens: 5,
          reasoningTokens: 5,
        },
      }),
    );
    expect(event).toMatchObject({
      provider: 'openai',
      model: 'gpt-4o-mini',
      userId: 'bob',
      taskType: 'summarise',
      team: 'search',
      project: 'alpha',
      tags: { env: 'prod' },
      metadata: { trace: 'abc', n: 3 },
      usage: { inputTokens: 10, cacheReadTokens: 4, cacheWriteTokens: 6, cacheWrite1hTokens: 2, outputTokens: 5, reasoningTokens: 5 },
    });
  });

  it('accepts the largest allowed count, 1e9', () => {
    expect(parseOk(goodEvent({ usage: { inputTokens: MAX_TOKENS } })).usage.inputTokens).toBe(1_000_000_000);
  });

  it('normalises occurredAt to UTC with milliseconds, from an offset or a Date', () => {
    expect(parseOk(goodEvent({ occurredAt: '2025-06-15T13:30:00+02:00' })).occurredAt).toBe('2025-06-15T11:30:00.000Z');
    expect(parseOk(goodEvent({ occurredAt: '2025-06-15T10:00:00.123Z' })).occurredAt).toBe('2025-06-15T10:00:00.123Z');
    expect(parseOk(goodEvent({ occurredAt: new Date('2025-06-14T00:00:00Z') })).occurredAt).toBe('2025-06-14T00:00:00.000Z');
  });

  it('stamps an event without occurredAt with the injected now', () => {
    const { occurredAt: _omit, ...rest } = goodEvent();
    expect(parseOk(rest).occurredAt).toBe('2025-06-15T12:00:00.000Z');
  });
});

describe('parseUsageEvent: token counts', () => {
  it.each([
    ['negative', -1],
    ['fractional', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a string', '100'],
    ['above 1e9', MAX_TOKENS + 1],
  ])('rejects a %s count, naming the field', (_what, bad) => {
    for (const kind of ['inputTokens', 'cacheReadTokens', 'cacheWriteTokens', 'cacheWrite1hTokens', 'outputTokens', 'reasoningTokens']) {
      const issues = parseIssues(goodEvent({ usage: { inputTokens: 10, [kind]: bad } }));
      expect(paths(issues)).toContain(`usage.${kind}`);
    }
  });

  it('says what it got in the message', () => {
    const [issue] = parseIssues(goodEvent({ usage: { inputTokens: -5 } }));
    expect(issue).toEqual({ path: 'usage.inputTokens', message: 'must be a whole number from 0 to 1000000000, got -5' });
    const [nan] = parseIssues(goodEvent({ usage: { outputTokens: Number.NaN } }));
    expect(nan).toEqual({ path: 'usage.outputTokens', message: 'must be a number of tokens, got NaN' });
  });

  it('rejects cache reads + writes above inputTokens (Anthropic-style exclusive input)', () => {
    const issues = parseIssues(goodEvent({ usage: { inputTokens: 100, cacheReadTokens: 60, cacheWriteTokens: 41 } }));
    expect(paths(issues)).toEqual(['usage.cacheReadTokens']);
    expect(issues[0]!.message).toContain('exceed inputTokens (100)');
    // exactly equal is fine: every input token came from or went to the cache
    expect(parseOk(goodEvent({ usage: { inputTokens: 100, cacheReadTokens: 60, cacheWriteTokens: 40 } })).usage.inputTokens).toBe(100);
  });

  it('rejects cacheWrite1hTokens above cacheWriteTokens', () => {
    const issues = parseIssues(goodEvent({ usage: { inputTokens: 100, cacheWriteTokens: 10, cacheWrite1hTokens: 11 } }));
    expect(paths(issues)).toEqual(['usage.cacheWrite1hTokens']);
  });

  it('rejects reasoningTokens above outputTokens', () => {
    const issues = parseIssues(goodEvent({ usage: { inputTokens: 1, outputTokens: 10, reasoningTokens: 11 } }));
    expect(paths(issues)).toEqual(['usage.reasoningTokens']);
  });

  it('rejects a usage that is not an object', () => {
    expect(paths(parseIssues(goodEvent({ usage: 42 })))).toEqual(['usage']);
    expect(paths(parseIssues(goodEvent({ usage: undefined })))).toEqual(['usage']);
  });

  it('rejects an unknown token kind inside usage', () => {
    const issues = parseIssues(goodEvent({ usage: { inputTokens: 1, cachedTokens: 1 } }));
    expect(issues).toEqual([{ path: 'usage', message: 'unknown field(s) cachedTokens' }]);
  });
});

describe('parseUsageEvent: labels', () => {
  it.each(['provider', 'model', 'userId'])('rejects an empty or whitespace-only %s', (field) => {
    expect(paths(parseIssues(goodEvent({ [field]: '' })))).toEqual([field]);
    expect(paths(parseIssues(goodEvent({ [field]: '   ' })))).toEqual([field]);
    expect(paths(parseIssues(goodEvent({ [field]: 7 })))).toEqual([field]);
    const { [field]: _omit, ...missing } = goodEvent();
    expect(paths(parseIssues(missing))).toEqual([field]);
  });
});

describe('parseUsageEvent: occurredAt', () => {
  it.each([
    ['unparseable', 'yesterday'],
    ['a date without a time', '2025-06-15'],
    ['a time without a time zone', '2025-06-15T10:00:00'],
    ['a number', 1_750_000_000_000],
  ])('rejects %s', (_what, bad) => {
    expect(paths(parseIssues(goodEvent({ occurredAt: bad })))).toEqual(['occurredAt']);
  });

  it('rejects an impossible calendar date instead of rolling it into the next month', () => {
    // 30 February does not exist; Date.parse would quietly read it as 2 March and the event
    // would count in the wrong day (and, across a month end, the wrong monthly budget).
    expect(paths(parseIssues(goodEvent({ occurredAt: '2025-02-30T10:00:00Z' })))).toEqual(['occurredAt']);
  });

  it('accepts exactly one day ahead of now and rejects one second more', () => {
    const dayAhead = new Date(NOW + DAY_MS).toISOString();
    expect(parseOk(goodEvent({ occurredAt: dayAhead })).occurredAt).toBe('2025-06-16T12:00:00.000Z');
    const tooFar = new Date(NOW + DAY_MS + 1000).toISOString();
    const issues = parseIssues(goodEvent({ occurredAt: tooFar }));
    expect(issues).toEqual([{ path: 'occurredAt', message: 'is more than a day in the future (2025-06-16T12:00:01.000Z)' }]);
  });

  it('refuses events older than the window (7 days by default), naming the backfill flag', () => {
    const [issue] = parseIssues(goodEvent({ occurredAt: '2020-01-01T00:00:00Z' }));
    expect(issue).toMatchObject({ path: 'occurredAt' });
    expect(issue!.message).toMatch(/more than 7 days in the past .*backfill=true/);
    const edge = new Date(NOW - 7 * DAY_MS).toISOString();
    expect(parseOk(goodEvent({ occurredAt: edge })).occurredAt).toBe(edge);
    const r = parseUsageEvent(goodEvent({ occurredAt: new Date(NOW - 2 * DAY_MS).toISOString() }), { now: NOW, maxAgeMs: DAY_MS });
    expect(r.ok).toBe(false);
  });

  it('accepts events from long ago as a backfill (late reports are still usage), but never before 2000', () => {
    const r = parseUsageEvent(goodEvent({ occurredAt: '2020-01-01T00:00:00Z' }), { now: NOW, backfill: true });
    expect(r.ok && r.value.occurredAt).toBe('2020-01-01T00:00:00.000Z');
    const ancient = parseUsageEvent(goodEvent({ occurredAt: '0100-01-01T00:00:00Z' }), { now: NOW, backfill: true });
    expect(ancient.ok).toBe(false);
    expect(!ancient.ok && ancient.issues[0]!.message).toMatch(/is before 2000-01-01/);
  });
});

describe('parseUsageEvent: unknown fields and requestId', () => {
  it('rejects an unknown top-level field, naming it', () => {
    const issues = parseIssues(goodEvent({ costUsd: '0.5' }));
    expect(issues).toEqual([{ path: '', message: 'unknown field(s) costUsd' }]);
  });

  it('requires a requestId when no generator is given', () => {
    const { requestId: _omit, ...noId } = goodEvent();
    expect(parseIssues(noId)).toEqual([{ path: 'requestId', message: 'is required' }]);
  });

  it('generates the requestId when a generator is given, and keeps a given one', () => {
    const { requestId: _omit, ...noId } = goodEvent();
    let calls = 0;
    const gen = () => `gen-${++calls}`;
    expect(parseOk(noId, gen).requestId).toBe('gen-1');
    expect(parseOk(goodEvent(), gen).requestId).toBe('req-1');
    expect(calls).toBe(1);
  });

  it('rejects a malformed requestId', () => {
    expect(paths(parseIssues(goodEvent({ requestId: 'has space' })))).toEqual(['requestId']);
    expect(paths(parseIssues(goodEvent({ requestId: '' })))).toEqual(['requestId']);
    expect(paths(parseIssues(goodEvent({ requestId: 'x'.repeat(201) })))).toEqual(['requestId']);
  });

  it('rejects something that is not an object at all', () => {
    expect(paths(parseIssues(null))).toEqual(['']);
    expect(paths(parseIssues([goodEvent()]))).toEqual(['']);
  });
});

describe('parseUsageEvent: the hand-written fast path agrees with the schema', () => {
  // parseUsageEvent checks the common case by hand and leaves everything else to the zod schema;
  // whatever the input, the result (value or issues) must be the schema's.
  const maybe = <T,>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
  const junk = fc.oneof(fc.constant(null), fc.integer(), fc.double(), fc.boolean(), fc.constant([]), fc.constant({}), fc.string({ maxLength: 3 }));
  const label = (max: number) =>
    fc.oneof(
      fc.constantFrom('openai', ' OpenAI ', 'gpt-4o', 'a', '   ', '', 'user:x', 'bad id', 'é', 'x'.repeat(max), `x${'y'.repeat(max)}`, ` ${'z'.repeat(max)} `),
      fc.string({ maxLength: 12 }),
      junk,
    );
  const tokens = fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.constantFrom(0, MAX_TOKENS, MAX_TOKENS + 1, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY), junk);
  const usage = fc.oneof(
    fc.record(
      {
        inputTokens: tokens,
        cacheReadTokens: tokens,
        cacheWriteTokens: tokens,
        cacheWrite1hTokens: tokens,
        outputTokens: tokens,
        reasoningTokens: tokens,
        cachedTokens: tokens,
      },
      { requiredKeys: [] },
    ),
    junk,
  );
  const when = fc.oneof(
    fc.constantFrom('2025-06-15T11:59:00Z', '2025-06-15T11:59:00.123+02:00', '2025-02-30T00:00:00Z', '2025-06-15', '2025-06-17T12:00:00Z', 'yesterday'),
    fc.date({ min: new Date('2020-01-01'), max: new Date('2026-01-01'), noInvalidDate: false }),
    junk,
  );
  const record = fc.oneof(
    fc.dictionary(fc.oneof(fc.string({ maxLength: 4 }), fc.constant('k'.repeat(101))), fc.oneof(fc.string({ maxLength: 4 }), fc.constant('v'.repeat(501)), junk), { maxKeys: 4 }),
    fc.constant(Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`t${i}`, 'v']))),
    fc.constant(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`t${i}`, 'v']))),
    fc.constant({ ['k'.repeat(100)]: 'v'.repeat(500) }),
    fc.constant({ blob: 'x'.repeat(16_370) }),
    fc.constant({ blob: 'x'.repeat(16_400) }),
    fc.constant(JSON.parse('{"__proto__": {"polluted": "yes"}}') as unknown),
    junk,
  );
  const valid = fc.record({
    requestId: fc.stringMatching(/^[A-Za-z0-9._:@/+=-]{1,20}$/),
    occurredAt: fc.date({ min: new Date(NOW - 7 * DAY_MS), max: new Date(NOW), noInvalidDate: true }).map((d) => d.toISOString()),
    provider: fc.constantFrom('openai', 'Anthropic', ' google '),
    model: fc.string({ minLength: 1, maxLength: 30 }).filter((m) => m.trim().length > 0),
    userId: fc.stringMatching(/^[A-Za-z0-9._@+=:/-]{1,20}$/),
    usage: fc.record({ inputTokens: fc.integer({ min: 1000, max: 10_000 }), cacheReadTokens: fc.integer({ min: 0, max: 500 }), outputTokens: fc.integer({ min: 0, max: 900 }) }),
    tags: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 5 }),
    metadata: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  });
  const fields: Record<string, fc.Arbitrary<unknown>> = {
    requestId: fc.oneof(fc.constantFrom('req-1', 'a/b:c@d+e=f.g_h-i', 'has space', '', 'x'.repeat(200), 'x'.repeat(201)), junk),
    occurredAt: when,
    provider: label(100),
    model: label(200),
    userId: label(200),
    taskType: label(100),
    team: fc.oneof(label(200), fc.constant(null)),
    project: fc.oneof(label(200), fc.constant(null)),
    tags: record,
    usage,
    metadata: record,
    cacheHit: fc.oneof(fc.boolean(), junk),
    extra: junk,
  };
  // A well-formed event with one or two fields replaced by a borderline or bad value, or removed.
  const event = fc
    .tuple(valid, fc.array(fc.oneof(...Object.entries(fields).map(([k, arb]) => fc.tuple(fc.constant(k), fc.oneof(arb, fc.constant(undefined))))), { minLength: 1, maxLength: 2 }))
    .map(([e, changes]) => {
      const out: Record<string, unknown> = { ...e };
      for (const [k, v] of changes) {
        if (v === undefined) delete out[k];
        else out[k] = v;
      }
      return out;
    });

  it('for every borderline value of every field, one field at a time', () => {
    const base = { requestId: 'req-1', occurredAt: '2025-06-15T11:59:00Z', provider: 'openai', model: 'gpt-4o', userId: 'alice', usage: { inputTokens: 100, outputTokens: 10 } };
    const labels = (max: number) => ['a', ' A ', '', '   ', 'user:x', 'bad id', 'é', 'x'.repeat(max), `x${'y'.repeat(max)}`, ` ${'z'.repeat(max)} `, null, 7, {}];
    const records = [
      {},
      { k: 'v' },
      { ['k'.repeat(100)]: 'v'.repeat(500) },
      { ['k'.repeat(101)]: 'v' },
      { k: 'v'.repeat(501) },
      { k: 1 },
      Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`t${i}`, 'v'])),
      Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`t${i}`, 'v'])),
      { blob: 'x'.repeat(16_370) },
      { blob: 'x'.repeat(16_400) },
      JSON.parse('{"__proto__": {"polluted": "yes"}}') as unknown,
      Object.create(null) as unknown,
      [],
      null,
      'tags',
    ];
    const variants: Record<string, unknown[]> = {
      requestId: ['r', 'a/b:c@d+e=f.g_h-i', 'has space', '', 'x'.repeat(200), 'x'.repeat(201), 5, null],
      occurredAt: ['2025-06-15T11:59:00.123+02:00', '2025-02-30T00:00:00Z', '2025-06-15', '2025-06-16T11:59:00Z', '2025-06-17T12:00:00Z', new Date(NOW), new Date(Number.NaN), 0, null],
      provider: labels(100),
      model: labels(200),
      userId: labels(200),
      taskType: labels(100),
      team: labels(200),
      project: labels(200),
      tags: records,
      metadata: records,
      cacheHit: [true, false, 'true', 1, null],
      usage: [
        {},
        { inputTokens: MAX_TOKENS },
        { inputTokens: MAX_TOKENS + 1 },
        { inputTokens: -1 },
        { inputTokens: 1.5 },
        { inputTokens: Number.NaN },
        { inputTokens: '5' },
        { inputTokens: null, outputTokens: undefined },
        { inputTokens: 10, cacheReadTokens: 6, cacheWriteTokens: 4 },
        { inputTokens: 10, cacheReadTokens: 6, cacheWriteTokens: 5 },
        { inputTokens: 10, cacheWriteTokens: 5, cacheWrite1hTokens: 5 },
        { inputTokens: 10, cacheWriteTokens: 5, cacheWrite1hTokens: 6 },
        { outputTokens: 5, reasoningTokens: 5 },
        { outputTokens: 5, reasoningTokens: 6 },
        { cachedTokens: 1 },
        [],
        null,
      ],
      extra: [undefined, null, 1],
    };
    let fastAccepted = 0;
    for (const [field, values] of Object.entries(variants)) {
      for (const value of [...values, undefined]) {
        const input: Record<string, unknown> = { ...base, [field]: value };
        if (value === undefined && field !== 'extra') delete input[field];
        const fast = parseUsageEvent(input, { now: NOW });
        expect(fast, `${field}: ${(JSON.stringify(value) ?? String(value)).slice(0, 40)}`).toEqual(parseUsageEvent(input, { now: NOW, schemaOnly: true }));
        if (fast.ok) fastAccepted++;
      }
    }
    expect(fastAccepted).toBeGreaterThan(40);
  });

  it('for events of good, bad and borderline fields', () => {
    fc.assert(
      fc.property(fc.oneof(event, event, event, junk), maybe(fc.constant(() => 'generated-id')), (input, generateId) => {
        const fast = parseUsageEvent(input, { now: NOW, generateId, path: '[0]' });
        const schema = parseUsageEvent(input, { now: NOW, generateId, path: '[0]', schemaOnly: true });
        expect(fast).toEqual(schema);
      }),
      { numRuns: 5000 },
    );
  });

  it('for well-formed events (the fast path itself)', () => {
    fc.assert(
      fc.property(valid, (input) => {
        const fast = parseUsageEvent(input, { now: NOW });
        expect(fast.ok).toBe(true);
        expect(fast).toEqual(parseUsageEvent(input, { now: NOW, schemaOnly: true }));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseUsageEvents: batches are all or nothing', () => {
  it('returns every event of a good batch, in order', () => {
    const r = parseUsageEvents([goodEvent({ requestId: 'a' }), goodEvent({ requestId: 'b' })], { now: NOW });
    expect(r.ok && r.value.map((e) => e.requestId)).toEqual(['a', 'b']);
  });

  it('names each bad field with its [i]. prefix and returns no events', () => {
    const r = parseUsageEvents(
      [
        goodEvent({ requestId: 'a' }),
        goodEvent({ requestId: 'b', usage: { inputTokens: -1 } }),
        goodEvent({ requestId: 'c', provider: ' ' }),
        goodEvent({ requestId: 'd', extra: true }),
      ],
      { now: NOW },
    );
    expect(r.ok).toBe(false);
    expect('value' in r).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => i.path)).toEqual(['[1].usage.inputTokens', '[2].provider', '[3]']);
    expect(r.issues[2]!.message).toBe('unknown field(s) extra');
  });

  it('prefixes a missing requestId too', () => {
    const { requestId: _omit, ...noId } = goodEvent();
    const r = parseUsageEvents([goodEvent(), noId], { now: NOW });
    expect(r).toEqual({ ok: false, issues: [{ path: '[1].requestId', message: 'is required' }] });
  });

  it('generates distinct ids for a batch when a generator is given', () => {
    const { requestId: _omit, ...noId } = goodEvent();
    let n = 0;
    const r = parseUsageEvents([noId, noId], { now: NOW, generateId: () => `g${n++}` });
    expect(r.ok && r.value.map((e) => e.requestId)).toEqual(['g0', 'g1']);
  });
});

// ---------------------------------------------------------------------------------------------
// Provider adapters.
// ---------------------------------------------------------------------------------------------

const openAIChat = {
  model: 'gpt-4o-2024-08-06',
  usage: {
    prompt_tokens: 1200,
    completion_tokens: 700,
    total_tokens: 1900,
    prompt_tokens_details: { cached_tokens: 1024, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 300, audio_tokens: 0 },
  },
};

const openAIResponses = {
  model: 'o3',
  usage: {
    input_tokens: 5000,
    input_tokens_details: { cached_tokens: 2048 },
    output_tokens: 1500,
    output_tokens_details: { reasoning_tokens: 1024 },
    total_tokens: 6500,
  },
};

const anthropicMessage = {
  model: 'claude-3-5-sonnet-20241022',
  usage: {
    input_tokens: 1200, // EXCLUDES the cache tokens below
    cache_read_input_tokens: 3000,
    cache_creation_input_tokens: 2000,
    cache_creation: { ephemeral_5m_input_tokens: 1500, ephemeral_1h_input_tokens: 500 },
    output_tokens: 700,
  },
};

describe('fromOpenAIUsage', () => {
  it('reads Chat Completions usage: prompt_tokens already includes cached_tokens', () => {
    expect(fromOpenAIUsage(openAIChat.usage)).toEqual({
      inputTokens: 1200,
      cacheReadTokens: 1024,
      cacheWriteTokens: 0,
      outputTokens: 700,
      reasoningTokens: 300,
    });
  });

  it('reads Responses API usage (input_tokens_details / output_tokens_details)', () => {
    expect(fromOpenAIUsage(openAIResponses.usage)).toEqual({
      inputTokens: 5000,
      cacheReadTokens: 2048,
      cacheWriteTokens: 0,
      outputTokens: 1500,
      reasoningTokens: 1024,
    });
  });

  it('gives zeros for missing details and garbage', () => {
    expect(fromOpenAIUsage({ prompt_tokens: 10, completion_tokens: 2 })).toEqual({
      inputTokens: 10,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: 2,
      reasoningTokens: 0,
    });
    expect(fromOpenAIUsage(null)).toEqual({ inputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0 });
  });

  it('produces a usage the validator accepts', () => {
    expect(parseOk(goodEvent({ usage: fromOpenAIUsage(openAIChat.usage) })).usage.inputTokens).toBe(1200);
  });
});

describe('fromAnthropicUsage', () => {
  it('adds cache reads and writes back into inputTokens, and reads the 1h part', () => {
    expect(fromAnthropicUsage(anthropicMessage.usage)).toEqual({
      inputTokens: 6200,
      cacheReadTokens: 3000,
      cacheWriteTokens: 2000,
      cacheWrite1hTokens: 500,
      outputTokens: 700,
      reasoningTokens: 0,
    });
  });

  it('reads thinking tokens as reasoning', () => {
    expect(fromAnthropicUsage({ input_tokens: 5, output_tokens: 90, output_tokens_details: { thinking_tokens: 60 } })).toMatchObject({
      inputTokens: 5,
      outputTokens: 90,
      reasoningTokens: 60,
    });
  });

  it('produces a usage the validator accepts, while the raw input_tokens would be rejected', () => {
    expect(parseOk(goodEvent({ model: 'claude-3-5-sonnet', usage: fromAnthropicUsage(anthropicMessage.usage) })).usage.inputTokens).toBe(6200);
    const raw = { inputTokens: 1200, cacheReadTokens: 3000, cacheWriteTokens: 2000, outputTokens: 700 };
    expect(paths(parseIssues(goodEvent({ usage: raw })))).toEqual(['usage.cacheReadTokens']);
  });
});

/**
 * The double-counting guard. Our convention (inclusive input, inclusive output) must equal the
 * catalog's: its own usage extractors turn the same provider responses into the usage keys its
 * prices are defined over. If an adapter added OpenAI's cached_tokens on top of prompt_tokens, or
 * passed Anthropic's exclusive input_tokens straight through, the totals below would differ and
 * every cached call would be over- or under-charged.
 */
describe('adapters agree with the catalog extractors (double-counting guard)', () => {
  function asGenai(u: Partial<TokenUsage>) {
    const full = usage(u);
    return {
      input_tokens: full.inputTokens,
      cache_read_tokens: full.cacheReadTokens,
      cache_write_tokens: full.cacheWriteTokens,
      cache_write_1h_tokens: full.cacheWrite1hTokens,
      output_tokens: full.outputTokens,
      output_reasoning_tokens: full.reasoningTokens,
    };
  }
  function extracted(providerId: string, response: unknown, flavor?: string) {
    const provider = findProvider({ providerId });
    if (!provider) expect.fail(`genai-prices has no provider ${providerId}`);
    const u = extractUsage(provider, response, flavor).usage;
    return {
      input_tokens: u.input_tokens ?? 0,
      cache_read_tokens: u.cache_read_tokens ?? 0,
      cache_write_tokens: u.cache_write_tokens ?? 0,
      cache_write_1h_tokens: u.cache_write_1h_tokens ?? 0,
      output_tokens: u.output_tokens ?? 0,
      output_reasoning_tokens: u.output_reasoning_tokens ?? 0,
    };
  }

  it('Anthropic Messages: inputTokens equals the extractor input_tokens (6200, not 1200)', () => {
    const ours = fromAnthropicUsage(anthropicMessage.usage);
    const theirs = extracted('anthropic', anthropicMessage);
    expect(theirs).toEqual({
      input_tokens: 6200,
      cache_read_tokens: 3000,
      cache_write_tokens: 2000,
      cache_write_1h_tokens: 500,
      output_tokens: 700,
      output_reasoning_tokens: 0,
    });
    expect(asGenai(ours)).toEqual(theirs);
  });

  it('Anthropic with thinking tokens', () => {
    const response = { model: 'claude-3-5-sonnet-20241022', usage: { input_tokens: 50, output_tokens: 900, output_tokens_details: { thinking_tokens: 400 } } };
    expect(asGenai(fromAnthropicUsage(response.usage))).toEqual(extracted('anthropic', response));
  });

  it('OpenAI Chat Completions: inputTokens equals prompt_tokens (cached tokens not added again)', () => {
    const theirs = extracted('openai', openAIChat, 'chat');
    expect(theirs.input_tokens).toBe(1200);
    expect(asGenai(fromOpenAIUsage(openAIChat.usage))).toEqual(theirs);
  });

  it('OpenAI Responses API', () => {
    expect(asGenai(fromOpenAIUsage(openAIResponses.usage))).toEqual(extracted('openai', openAIResponses, 'responses'));
  });

  it('OpenAI usage that reports prompt cache writes (prompt_tokens_details.cache_write_tokens)', () => {
    // The catalog's OpenAI extractor maps cache_write_tokens; the adapter must too, or those tokens
    // are billed at the plain input rate on models with a cache-write price (gpt-6-astra: input 10,
    // cache read 1, cache write 12.5, output 50 USD per Mtok).
    const response = {
      model: 'gpt-6-astra',
      usage: {
        prompt_tokens: 10_000,
        completion_tokens: 100,
        prompt_tokens_details: { cached_tokens: 2000, cache_write_tokens: 3000 },
      },
    };
    expect(asGenai(fromOpenAIUsage(response.usage))).toEqual(extracted('openai', response, 'chat'));
    // 5000*10 + 2000*1 + 3000*12.5 + 100*50 = 94500 micro-USD
    expect(costOf(realEngine(), 'openai', response.model, fromOpenAIUsage(response.usage))).toBe('0.0945');
  });

  it('prices the same: our engine on the adapter output equals calcPrice on the extracted usage', () => {
    const engine = realEngine();
    const cases = [
      { provider: 'anthropic', response: anthropicMessage, ours: fromAnthropicUsage(anthropicMessage.usage), flavor: undefined },
      { provider: 'openai', response: openAIChat, ours: fromOpenAIUsage(openAIChat.usage), flavor: 'chat' },
      { provider: 'openai', response: openAIResponses, ours: fromOpenAIUsage(openAIResponses.usage), flavor: 'responses' },
    ];
    for (const c of cases) {
      const provider = findProvider({ providerId: c.provider })!;
      const ex = extractUsage(provider, c.response, c.flavor);
      const theirs = calcPrice(ex.usage, ex.model!, { providerId: c.provider, timestamp: new Date(DEFAULT_AT) });
      const cost = costOf(engine, c.provider, c.response.model, c.ours);
      expect(theirs).not.toBeNull();
      expect(Number(cost)).toBeCloseTo(theirs!.total_price, 12);
    }
    // and the exact value for the Anthropic sample, by hand from the catalog's claude-3-5-sonnet
    // prices per Mtok (input 3, cache read 0.3, cache write 3.75, 1h write 6, output 15):
    // 1200*3 + 3000*0.3 + 1500*3.75 + 500*6 + 700*15 = 3600 + 900 + 5625 + 3000 + 10500 = 23625 micro-USD
    expect(costOf(engine, 'anthropic', anthropicMessage.model, fromAnthropicUsage(anthropicMessage.usage))).toBe('0.023625');
  });
});
