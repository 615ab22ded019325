/**
 * The pure parts of the drop-in tracking: the SSE parser, what is read from each API's responses,
 * the estimates, the prompt guard, the request preparation, and the cost context.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CostContext, mergeAttribution, runWithCostContext, withCostAttribution, currentCostContext } from '../../src/client/context.js';
import { CostTracker } from '../../src/client/cost-tracker.js';
import type { UsageEventInput } from '../../src/domain/usage.js';
import { apiOf, CALL, type Call, createMeter, observeAttempt, prepareCall } from '../../src/client/wrappers/meter.js';
import { applyPromptGuard, ORIGINAL_MAX_TOKENS, ORIGINAL_PROMPT_GUARD, truncatePrompt, validatePromptGuard } from '../../src/client/wrappers/prompt-guard.js';
import { estimateTokens, newObservation, observeJson, observeSseEvent, promptChars } from '../../src/client/wrappers/protocols.js';
import { type SseEvent, SseParser } from '../../src/client/wrappers/sse.js';
import { realEngine } from './helpers.js';

function parseAll(pieces: string[]): SseEvent[] {
  const parser = new SseParser();
  const out: SseEvent[] = [];
  for (const p of pieces) parser.push(p, (e) => out.push(e));
  parser.end((e) => out.push(e));
  return out;
}

describe('SseParser', () => {
  const wire = 'event: message_start\ndata: {"a":1}\n\n: a comment\n\ndata: line one\ndata: line two\n\nevent: ping\ndata:{"type":"ping"}\r\n\r\ndata: [DONE]\n\n';

  it('reads events, names, multi-line data, comments, CRLF', () => {
    expect(parseAll([wire]).map(({ event, data }) => ({ event, data }))).toEqual([
      { event: 'message_start', data: '{"a":1}' },
      { event: null, data: 'line one\nline two' },
      { event: 'ping', data: '{"type":"ping"}' },
      { event: null, data: '[DONE]' },
    ]);
  });

  it('gives the same events however the text is split, and the raw texts add up to the input', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(wire.length), { maxLength: 12 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const pieces: string[] = [];
        let last = 0;
        for (const p of points) {
          pieces.push(wire.slice(last, p));
          last = p;
        }
        pieces.push(wire.slice(last));
        const events = parseAll(pieces);
        expect(events).toEqual(parseAll([wire]));
      }),
    );
    expect(parseAll([wire]).map((e) => e.raw).join('')).toBe(wire.replace(': a comment\n\n', ''));
  });

  it('keeps an incomplete event until it completes, and takes a last event without its blank line at the end', () => {
    const parser = new SseParser();
    const out: SseEvent[] = [];
    parser.push('data: {"x"', (e) => out.push(e));
    expect(out).toEqual([]);
    expect(parser.pending).toBe('data: {"x"');
    parser.push(':1}\n', (e) => out.push(e));
    parser.end((e) => out.push(e));
    expect(out.map((e) => e.data)).toEqual(['{"x":1}']);
  });
});

describe('reading responses', () => {
  it('Chat Completions JSON: usage in the convention, model, id, delivered text', () => {
    const obs = newObservation();
    observeJson(
      'chat.completions',
      {
        id: 'chatcmpl-1',
        model: 'gpt-4o-2024-08-06',
        choices: [{ message: { content: 'abcd', tool_calls: [{ function: { name: 'f', arguments: '{"q":1}' } }] } }],
        usage: { prompt_tokens: 100, completion_tokens: 20, prompt_tokens_details: { cached_tokens: 60 }, completion_tokens_details: { reasoning_tokens: 5 } },
      },
      obs,
    );
    expect(obs).toMatchObject({
      model: 'gpt-4o-2024-08-06',
      responseId: 'chatcmpl-1',
      usage: { inputTokens: 100, cacheReadTokens: 60, outputTokens: 20, reasoningTokens: 5 },
      deliveredChars: 4 + 1 + 7,
      terminal: true,
    });
  });

  it('Chat Completions stream: text counted, the injected usage-only chunk dropped (only then), [DONE] terminal', () => {
    const obs = newObservation();
    const ev = (data: unknown): SseEvent => ({ event: null, data: typeof data === 'string' ? data : JSON.stringify(data), raw: '' });
    expect(observeSseEvent('chat.completions', ev({ model: '', choices: [{ delta: { role: 'assistant', content: '' } }] }), obs, true)).toBe('keep');
    expect(obs.model).toBeUndefined(); // Azure's first chunk names no model
    observeSseEvent('chat.completions', ev({ id: 'c1', model: 'gpt-4o-mini', choices: [{ delta: { content: 'hello' } }], usage: null }), obs, true);
    const usageChunk = ev({ model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 9, completion_tokens: 2 } });
    expect(observeSseEvent('chat.completions', usageChunk, newObservation(), false)).toBe('keep');
    expect(observeSseEvent('chat.completions', usageChunk, obs, true)).toBe('drop');
    expect(obs.terminal).toBe(false);
    observeSseEvent('chat.completions', ev('[DONE]'), obs, true);
    expect(obs).toMatchObject({ model: 'gpt-4o-mini', responseId: 'c1', deliveredChars: 5, usage: { inputTokens: 9, outputTokens: 2 }, terminal: true });
  });

  it('Responses stream: deltas counted (not audio), usage from response.completed, errors', () => {
    const obs = newObservation();
    const ev = (type: string, fields: Record<string, unknown>): SseEvent => ({ event: type, data: JSON.stringify({ type, ...fields }), raw: '' });
    observeSseEvent('responses', ev('response.created', { response: { id: 'resp_1', model: 'gpt-4.1' } }), obs, false);
    observeSseEvent('responses', ev('response.output_text.delta', { delta: 'abc' }), obs, false);
    observeSseEvent('responses', ev('response.function_call_arguments.delta', { delta: '{"a"' }), obs, false);
    observeSseEvent('responses', ev('response.audio.delta', { delta: 'QUJD' }), obs, false);
    expect(obs.deliveredChars).toBe(7);
    observeSseEvent('responses', ev('response.completed', { response: { id: 'resp_1', model: 'gpt-4.1-2025-04-14', usage: { input_tokens: 50, input_tokens_details: { cached_tokens: 10 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 3 } } } }), obs, false);
    expect(obs).toMatchObject({ model: 'gpt-4.1-2025-04-14', usage: { inputTokens: 50, cacheReadTokens: 10, outputTokens: 7, reasoningTokens: 3 }, terminal: true, error: undefined });
    const failed = newObservation();
    observeSseEvent('responses', ev('error', { code: 'server_error', message: 'boom' }), failed, false);
    expect(failed).toMatchObject({ error: 'server_error', terminal: true });
  });

  it('Anthropic stream: input from message_start, message_delta counts are cumulative and keep the cache tokens', () => {
    const obs = newObservation();
    const ev = (type: string, fields: Record<string, unknown>): SseEvent => ({ event: type, data: JSON.stringify({ type, ...fields }), raw: '' });
    observeSseEvent('messages', ev('message_start', { message: { id: 'msg_1', model: 'claude-sonnet-4-5', usage: { input_tokens: 10, cache_read_input_tokens: 900, cache_creation_input_tokens: 100, output_tokens: 1 } } }), obs, false);
    expect(obs.inputUsage).toEqual({ inputTokens: 1010, cacheReadTokens: 900, cacheWriteTokens: 100, cacheWrite1hTokens: 0 });
    expect(obs.usage).toBeUndefined();
    observeSseEvent('messages', ev('content_block_delta', { delta: { type: 'text_delta', text: 'hello' } }), obs, false);
    observeSseEvent('messages', ev('content_block_delta', { delta: { type: 'input_json_delta', partial_json: '{"a":' } }), obs, false);
    observeSseEvent('messages', ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 42, input_tokens: null } }), obs, false);
    expect(obs).toMatchObject({ deliveredChars: 10, usage: { inputTokens: 1010, cacheReadTokens: 900, cacheWriteTokens: 100, outputTokens: 42 }, outputReported: 42 });
    observeSseEvent('messages', ev('message_stop', {}), obs, false);
    expect(obs.terminal).toBe(true);
  });

  it('estimates: prompt characters (not ids, roles, urls or base64) and tools, 4 a token, rounded up', () => {
    const body = {
      model: 'x',
      messages: [
        { role: 'system', content: 'abcd' },
        { role: 'user', content: [{ type: 'text', text: 'efgh' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] },
      ],
      tools: [{ type: 'function' }],
    };
    expect(promptChars(body)).toBe(8 + JSON.stringify(body.tools).length);
    expect(promptChars({ input: 'hello', instructions: 'be brief' })).toBe(13);
    expect(promptChars({ system: [{ type: 'text', text: 'sys' }], messages: [{ role: 'user', content: 'hi' }] })).toBe(5);
    expect([0, 1, 4, 5, 8, 9].map(estimateTokens)).toEqual([0, 1, 1, 2, 2, 3]);
  });
});

describe('prompt guard', () => {
  const deepFreeze = <T>(v: T): T => {
    if (typeof v === 'object' && v !== null) {
      Object.values(v).forEach(deepFreeze);
      Object.freeze(v);
    }
    return v;
  };

  it('caps the output limit per task type: lowers it, sets it when absent, keeps a lower one; each API its field', () => {
    const guard = { maxTokensByTaskType: ORIGINAL_MAX_TOKENS };
    const lowered = applyPromptGuard('chat.completions', deepFreeze({ max_completion_tokens: 4000, messages: [] }), 'summarization', guard);
    expect(lowered).toEqual({ body: { max_completion_tokens: 1000, messages: [] }, change: { maxTokensCappedFrom: 4000, maxTokensCappedTo: 1000 } });
    const legacy = applyPromptGuard('chat.completions', { max_tokens: 3000 }, 'analysis', guard);
    expect(legacy.body).toEqual({ max_tokens: 2000 });
    const absent = applyPromptGuard('responses', { input: 'x' }, 'summarization', guard);
    expect(absent).toEqual({ body: { input: 'x', max_output_tokens: 1000 }, change: { maxTokensCappedFrom: null, maxTokensCappedTo: 1000 } });
    const body = { max_tokens: 500 };
    expect(applyPromptGuard('messages', body, 'analysis', guard)).toEqual({ body, change: undefined });
    expect(applyPromptGuard('messages', body, 'chat', guard).change).toBeUndefined();
    expect(applyPromptGuard('messages', { max_tokens: 9000 }, 'chat', { ...guard, defaultMaxTokens: 4000 }).change).toEqual({ maxTokensCappedFrom: 9000, maxTokensCappedTo: 4000 });
    expect(applyPromptGuard('messages', { max_tokens: 9000 }, 'constructor', guard).change).toBeUndefined(); // no prototype keys
  });

  it('promptGuard: true is the original optimize_token_usage: over 8,000 characters cut to 8,000 plus "...", then summarization 1,000, else analysis 2,000', () => {
    const guard = validatePromptGuard(true)!;
    expect(guard).toBe(ORIGINAL_PROMPT_GUARD);
    expect(validatePromptGuard(false)).toBeUndefined();
    const ask = (content: string, max_tokens = 4000) => applyPromptGuard('chat.completions', deepFreeze({ max_tokens, messages: [{ role: 'user', content }] }), 'default', guard);
    const text = (r: ReturnType<typeof ask>) => (r.body as { messages: Array<{ content: string }> }).messages[0]!.content;
    // 8,000 characters exactly: kept; 8,001: the first 8,000 and "...".
    const at = 'y'.repeat(8000);
    expect(ask(at)).toEqual({ body: { max_tokens: 4000, messages: [{ role: 'user', content: at }] }, change: undefined });
    const over = ask(`${at}z`);
    expect(text(over)).toBe(`${at}...`);
    expect(over.change).toEqual({ truncatedChars: 1 });
    // The keyword test, case-insensitive, summarization first; min() keeps a lower limit.
    expect(ask('Do a SUMMARIZATION and an analysis').change).toEqual({ maxTokensCappedFrom: 4000, maxTokensCappedTo: 1000 });
    expect(ask('Write an Analysis').change).toEqual({ maxTokensCappedFrom: 4000, maxTokensCappedTo: 2000 });
    expect(ask('summarization please', 500).change).toBeUndefined();
    expect(ask('summarise this').change).toBeUndefined(); // the original's word, exactly
    // The keyword is looked for in the prompt as cut: one past the 8,000th character does not count.
    expect(ask(`${at} analysis`).change).toEqual({ truncatedChars: 9 });
    expect(() => validatePromptGuard({ maxTokensByKeyword: [['', 5]] })).toThrow(/maxTokensByKeyword\[0\] must be \[keyword, cap\]/);
    expect(() => validatePromptGuard('yes' as never)).toThrow(/promptGuard must be true/);
  });

  it('truncates from the end of the longest user text, never system text, never to nothing, never mid surrogate pair', () => {
    const body = deepFreeze({
      system: 'S'.repeat(20),
      messages: [
        { role: 'user', content: 'a'.repeat(50) },
        { role: 'assistant', content: 'b'.repeat(30) },
        { role: 'user', content: [{ type: 'text', text: 'c'.repeat(100) }, { type: 'image', source: { data: 'zzz' } }] },
      ],
      tools: [{ name: 't' }],
    });
    const cut = truncatePrompt('messages', body, 120)!;
    expect(cut.truncatedChars).toBe(80);
    const m = cut.body.messages as Array<{ content: unknown }>;
    expect(cut.body.system).toBe(body.system);
    expect(m[0]!.content).toBe('a'.repeat(50));
    expect(m[1]).toBe(body.messages[1]); // untouched parts are the same objects
    expect((m[2]!.content as Array<{ text?: string }>)[0]!.text).toBe('c'.repeat(20));
    expect((m[2]!.content as unknown[])[1]).toBe(body.messages[2]!.content[1]);
    expect(cut.body.tools).toBe(body.tools);
    // More than the longest text can give: the next longest gives the rest; none goes below one character.
    const deep = truncatePrompt('messages', body, 30)!;
    const dm = deep.body.messages as Array<{ content: unknown }>;
    expect((dm[2]!.content as Array<{ text: string }>)[0]!.text).toBe('c');
    expect(dm[0]!.content).toBe('a');
    expect(deep.truncatedChars).toBe(99 + 49);
    // Surrogate pairs stay whole.
    const emoji = truncatePrompt('responses', { input: '😀😀😀' }, 3)!;
    expect(emoji.body.input).toBe('😀');
    expect(truncatePrompt('responses', { input: 'short' }, 10)).toBeUndefined();
  });

  it('refuses bad options when the wrapper is created', () => {
    expect(() => validatePromptGuard({ maxPromptChars: 0 })).toThrow(/maxPromptChars/);
    expect(() => validatePromptGuard({ maxTokensByTaskType: { summarization: 1.5 } })).toThrow(/summarization/);
    expect(validatePromptGuard(undefined)).toBeUndefined();
  });
});

describe('preparing a call', () => {
  const tracker = { record: async () => ({}) };

  it('knows the metered endpoints', () => {
    expect(apiOf('openai', 'post', '/chat/completions')).toBe('chat.completions');
    expect(apiOf('openai', 'post', '/responses')).toBe('responses');
    expect(apiOf('openai', 'get', '/responses')).toBeUndefined();
    expect(apiOf('openai', 'post', '/embeddings')).toBeUndefined();
    expect(apiOf('anthropic', 'post', '/v1/messages?beta=true')).toBe('messages');
    expect(apiOf('anthropic', 'post', '/v1/messages/count_tokens')).toBeUndefined();
  });

  it('asks Chat Completions streams for usage by mode, never changing the caller\'s objects', () => {
    const body = Object.freeze({ model: 'm', stream: true, messages: [] });
    const options = Object.freeze({ method: 'post', path: '/chat/completions', body, stream: true });
    const prep = (mode: 'auto' | 'always' | 'never', b: object = body) =>
      prepareCall(createMeter('openai', { tracker, streamUsage: mode }), { ...options, body: b }, undefined, 2) as { body: Record<string, unknown>; [CALL]: Call };
    expect(prep('auto').body.stream_options).toEqual({ include_usage: true });
    expect(prep('auto')[CALL].injectedStreamUsage).toBe(true);
    expect(prep('never').body).toBe(body);
    const own = { ...body, stream_options: { include_obfuscation: false } };
    expect(prep('auto', own).body).toBe(own);
    expect(prep('always', own).body.stream_options).toEqual({ include_obfuscation: false, include_usage: true });
    expect(prep('always', { ...body, stream_options: { include_usage: false } }).body.stream_options).toEqual({ include_usage: false });
    expect(options.body).toBe(body);
  });

  it('leaves other endpoints alone and merges the request context\'s signal with the caller\'s', () => {
    const meter = createMeter('openai', { tracker });
    const other = { method: 'post', path: '/embeddings', body: {} };
    expect(prepareCall(meter, other, undefined, 2)).toBe(other);
    const ctx = new CostContext({ attribution: { userId: 'alice' } });
    const callerSignal = new AbortController();
    const prepared = prepareCall(meter, { method: 'post', path: '/responses', body: { model: 'm', input: 'x' }, signal: callerSignal.signal, maxRetries: 5 }, ctx, 2) as {
      signal: AbortSignal;
      fetchOptions: Record<symbol, Call>;
    };
    const call = prepared.fetchOptions[CALL]!;
    expect(call).toMatchObject({ api: 'responses', maxRetries: 5, attribution: { userId: 'alice', taskType: 'default' } });
    expect(prepared.signal.aborted).toBe(false);
    ctx.abort();
    expect(prepared.signal.aborted).toBe(true);
    expect(callerSignal.signal.aborted).toBe(false);
  });

  it('a failure inside never reaches the caller: the options go out as given', () => {
    const seen: unknown[] = [];
    const meter = createMeter('openai', { tracker, onError: (e) => seen.push(e), promptGuard: { maxPromptChars: 5 } });
    const hostile = { method: 'post', path: '/chat/completions', get body(): unknown { throw new Error('boom'); } };
    expect(prepareCall(meter, hostile, undefined, 2)).toBe(hostile);
    expect(seen).toHaveLength(1);
  });
});

describe('observing a response (no network): what reaches a real CostTracker', () => {
  function setup() {
    const events: UsageEventInput[] = [];
    const errors: unknown[] = [];
    const tracker = new CostTracker({ client: { workflow: { signalWithStart: async () => undefined as never } }, taskQueue: 'q', lingerMs: 0 });
    const meter = createMeter('openai', { tracker, onRecord: (e) => events.push(e), onError: (e) => errors.push(e), userId: 'u1' });
    const start = (body: Record<string, unknown>) =>
      (prepareCall(meter, { method: 'post', path: '/chat/completions', body, stream: body.stream === true }, undefined, 0) as { [CALL]: Call })[CALL];
    return { events, errors, tracker, start };
  }
  const sse = (...events: string[]) =>
    new Response(events.map((e) => `data: ${e}\n\n`).join(''), { headers: { 'content-type': 'text/event-stream', 'x-request-id': 'req_1' } });

  it('a provider error with control characters is recorded, made fit for metadata', async () => {
    const { events, errors, tracker, start } = setup();
    const call = start({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], stream: true });
    const res = await observeAttempt(call, undefined, async () => sse(JSON.stringify({ model: 'gpt-4o-mini', choices: [{ delta: { content: 'abcd' } }] }), JSON.stringify({ error: { message: 'bad\u0001thing' } })));
    await res.text();
    await tracker.close();
    expect(errors).toEqual([]);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ estimated: true, usage: { inputTokens: 3, outputTokens: 1 }, metadata: { status: 'error', error: 'bad\ufffdthing', providerRequestId: 'req_1' } });
    expect(tracker.stats()).toMatchObject({ sentEvents: 1, failedBatches: 0 });
  });

  it('a stream read twice over (tee-like reads, cancel after the end) is recorded once', async () => {
    const { events, tracker, start } = setup();
    const call = start({ model: 'gpt-4o-mini', messages: [], stream: true });
    const res = await observeAttempt(call, undefined, async () =>
      sse(JSON.stringify({ model: 'm', choices: [{ delta: { content: 'x' } }] }), JSON.stringify({ model: 'm', choices: [], usage: { prompt_tokens: 4, completion_tokens: 1 } }), '[DONE]'),
    );
    const reader = res.body!.getReader();
    let chunks = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) chunks += new TextDecoder().decode(r.value);
    await reader.cancel();
    await tracker.close();
    expect(chunks).not.toContain('prompt_tokens'); // the usage chunk the wrapper asked for is not handed on
    expect(chunks).toContain('[DONE]');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ estimated: false, usage: { inputTokens: 4, outputTokens: 1 }, metadata: { status: 'ok', streamUsageRequested: true } });
  });
});

describe('cost context', () => {
  it('inner attribution wins, tags merge', () => {
    expect(mergeAttribution({ userId: 'a', taskType: 't', tags: { x: '1', y: '2' } }, { taskType: 'u', tags: { y: '3' } })).toEqual({ userId: 'a', taskType: 'u', tags: { x: '1', y: '3' } });
  });

  it('nested contexts count in their parents, price with the engine, and count what it cannot price', () => {
    const usage = { inputTokens: 1000, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 100, reasoningTokens: 0 };
    const root = new CostContext({ attribution: { userId: 'u' }, pricer: realEngine() });
    const call = { provider: 'openai', model: 'gpt-4o-mini', usage, estimated: false, status: 'ok' as const, occurredAtMs: Date.now() };
    runWithCostContext(root, () => {
      expect(currentCostContext()).toBe(root);
      withCostAttribution({ taskType: 'summarization' }, () => {
        const inner = currentCostContext()!;
        expect(inner.attribution).toEqual({ userId: 'u', taskType: 'summarization' });
        expect(inner.signal).toBe(root.signal);
        inner.addCall(call);
        inner.addCall({ ...call, model: 'no-such-model', estimated: true, status: 'aborted' });
        expect(inner.calls).toBe(2);
      });
    });
    expect(root.snapshot()).toMatchObject({ calls: 2, estimatedCalls: 1, failedCalls: 1, unpricedCalls: 1, tokens: { inputTokens: 2000, outputTokens: 200 } });
    expect(root.costUsd).toBe('0.00021'); // gpt-4o-mini: 1,000 x 0.15/M + 100 x 0.60/M
    expect(new CostContext().costUsd).toBeNull();
  });
});
