/**
 * wrapOpenAI / wrapAnthropic against local servers speaking the real protocols
 * (helpers/llm-servers.ts), the official SDKs unmodified, recording through a real CostTracker into
 * the real stack (Temporal dev server, budget workflow, PostgreSQL ledger). Every scenario checks
 * the ledger: exactly one row per call, exact when the provider reported usage, flagged estimated
 * otherwise; and that the SDK's own results and helpers are what they would be without the wrapper.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CostTracker,
  ORIGINAL_MAX_TOKENS,
  currentCostContext,
  runWithCostContext,
  withCostAttribution,
  wrapAnthropic,
  wrapOpenAI,
  type UsageEventInput,
  type WrapperOptions,
} from '../../src/client/index.js';
import { defaultInputTokens, type FakeReply, type LlmServer, PIECE_CHARS, startLlmServer } from './helpers/llm-servers.js';
import { eventually, type Stack, startStack } from './helpers/stack.js';

let stack: Stack;
let srv: LlmServer;
let tracker: CostTracker;
const recorded = new Map<string, UsageEventInput[]>();
const errors: unknown[] = [];

beforeAll(async () => {
  [stack, srv] = await Promise.all([startStack(), startLlmServer()]);
  tracker = new CostTracker({ client: stack.client, taskQueue: stack.taskQueue, lingerMs: 20 });
});

afterAll(async () => {
  await tracker?.close();
  await srv?.close();
  await stack?.stop();
});

const PROMPT = 'Summarise the quarterly report in three bullet points.';
const MESSAGES = [{ role: 'user' as const, content: PROMPT }];
/** The wrappers' estimate of the prompt above: its characters / 4. */
const PROMPT_ESTIMATE = Math.ceil(PROMPT.length / 4);
/** What the fake server reports as input for it. */
const PROMPT_EXACT = defaultInputTokens({ messages: MESSAGES });

let seq = 0;
const newUser = (label: string) => `wr-${label}-${++seq}`;

function wrapperOptions(extra: Partial<WrapperOptions> = {}): WrapperOptions {
  return {
    tracker,
    onRecord: (e) => {
      const list = recorded.get(e.userId) ?? [];
      list.push(e);
      recorded.set(e.userId, list);
    },
    onError: (err) => errors.push(err),
    ...extra,
  };
}

function openai(extra: Partial<WrapperOptions> = {}, clientOptions: ConstructorParameters<typeof OpenAI>[0] = {}): OpenAI {
  return wrapOpenAI(new OpenAI({ apiKey: 'sk-test', baseURL: srv.openaiBaseURL, maxRetries: 0, ...clientOptions }), wrapperOptions(extra));
}

function anthropic(extra: Partial<WrapperOptions> = {}, clientOptions: ConstructorParameters<typeof Anthropic>[0] = {}): Anthropic {
  return wrapAnthropic(new Anthropic({ apiKey: 'sk-ant-test', baseURL: srv.anthropicBaseURL, maxRetries: 0, ...clientOptions }), wrapperOptions(extra));
}

const reply = (r: FakeReply) => ({ headers: { 'x-fake-reply': JSON.stringify(r) } });

interface Row {
  request_id: string;
  user_id: string;
  provider: string;
  model: string;
  task_type: string;
  team: string | null;
  project: string | null;
  tags: Record<string, string>;
  input_tokens: number;
  cache_read_tokens: number;
  output_tokens: number;
  estimated: boolean;
  unpriced: boolean;
  cost_usd: string;
  metadata: Record<string, unknown> & { status: string; estimated: boolean; durationMs: number; providerRequestId?: string };
}

/** The user's ledger rows once there are `n`; also checks that exactly `n` events were handed to the tracker. */
async function rowsOf(userId: string, n = 1): Promise<Row[]> {
  await tracker.flush();
  expect(recorded.get(userId) ?? [], `events recorded for ${userId}`).toHaveLength(n);
  const rows = await eventually(
    async () =>
      (
        await stack.pool.query<Row>(
          `SELECT request_id, user_id, provider, model, task_type, team, project, tags, input_tokens::int, cache_read_tokens::int,
                  output_tokens::int, estimated, unpriced, cost_usd::text, metadata
             FROM usage_ledger WHERE user_id = $1 ORDER BY occurred_at, request_id`,
          [userId],
        )
      ).rows,
    (r) => r.length >= n,
    60_000,
    `${n} ledger row(s) for ${userId}`,
  );
  expect(rows).toHaveLength(n);
  return rows;
}

async function oneRow(userId: string): Promise<Row> {
  return (await rowsOf(userId, 1))[0]!;
}

function expectExact(row: Row, input: number, output: number): void {
  expect(row).toMatchObject({ input_tokens: input, output_tokens: output, estimated: false });
  expect(row.metadata).toMatchObject({ estimated: false });
  expect(typeof row.metadata.durationMs).toBe('number');
}

describe('plain calls: exact usage, the model the API named, the provider request id', () => {
  it('OpenAI Chat Completions', async () => {
    const user = newUser('chat');
    const res = await openai({ userId: user, taskType: 'chat' }).chat.completions.create(
      { model: 'gpt-4o-mini', messages: MESSAGES },
      reply({ model: 'gpt-4o-mini-2024-07-18', pieces: 7, usage: { input: 1200, cacheRead: 1024, output: 7 } }),
    );
    expect(res.choices[0]!.message.content).toBe('tok0000 tok0001 tok0002 tok0003 tok0004 tok0005 tok0006 ');
    const row = await oneRow(user);
    expectExact(row, 1200, 7);
    expect(row).toMatchObject({ provider: 'openai', model: 'gpt-4o-mini-2024-07-18', task_type: 'chat', cache_read_tokens: 1024, unpriced: false });
    expect(row.metadata).toMatchObject({ api: 'chat.completions', stream: false, status: 'ok', providerRequestId: res._request_id, responseId: res.id });
    expect(Number(row.cost_usd)).toBeGreaterThan(0);
  });

  it('OpenAI Responses', async () => {
    const user = newUser('responses');
    const res = await openai({ userId: user }).responses.create({ model: 'gpt-4o-mini', input: PROMPT }, reply({ model: 'gpt-4o-mini-2024-07-18', usage: { reasoning: 2, output: 9 } }));
    expect(res.output_text).toBe('tok0000 tok0001 tok0002 tok0003 tok0004 ');
    const row = await oneRow(user);
    expectExact(row, defaultInputTokens({ input: PROMPT }), 9);
    expect(row.model).toBe('gpt-4o-mini-2024-07-18');
    expect(row.metadata).toMatchObject({ api: 'responses', status: 'ok', providerRequestId: res._request_id });
  });

  it('Anthropic Messages (input_tokens plus its cache tokens)', async () => {
    const user = newUser('messages');
    const res = await anthropic({ userId: user }).messages.create(
      { model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages: MESSAGES },
      reply({ model: 'claude-3-5-sonnet-20241022', usage: { input: 5000, cacheRead: 4000, cacheWrite: 500, output: 5 } }),
    );
    expect(res.content[0]).toMatchObject({ type: 'text', text: 'tok0000 tok0001 tok0002 tok0003 tok0004 ' });
    const row = await oneRow(user);
    expectExact(row, 5000, 5);
    expect(row).toMatchObject({ provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', cache_read_tokens: 4000, unpriced: false });
    expect(row.metadata).toMatchObject({ api: 'messages', status: 'ok', providerRequestId: res._request_id, responseId: res.id });
  });
});

describe('streams read to the end: the provider\'s exact usage', () => {
  it('Chat Completions: asks for usage, and keeps the usage-only chunk from the caller', async () => {
    const user = newUser('chat-stream');
    const stream = await openai({ userId: user }).chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true }, reply({ pieces: 6 }));
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks).toHaveLength(8); // role, 6 pieces, finish: what a caller without include_usage gets
    expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
    expect(srv.requests.at(-1)!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    const row = await oneRow(user);
    expectExact(row, PROMPT_EXACT, 6);
    expect(row.metadata).toMatchObject({ stream: true, status: 'ok', streamUsageRequested: true });
  });

  it('Chat Completions: a caller who asked for usage gets the usage chunk', async () => {
    const user = newUser('chat-stream-own');
    const stream = await openai({ userId: user }).chat.completions.create(
      { model: 'gpt-4o-mini', messages: MESSAGES, stream: true, stream_options: { include_usage: true } },
      reply({ pieces: 3 }),
    );
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 3 } });
    const row = await oneRow(user);
    expectExact(row, PROMPT_EXACT, 3);
    expect(row.metadata.streamUsageRequested).toBeUndefined();
  });

  it('Responses (response.completed)', async () => {
    const user = newUser('responses-stream');
    const stream = await openai({ userId: user }).responses.create({ model: 'gpt-4o-mini', input: PROMPT, stream: true }, reply({ pieces: 4 }));
    const types = [];
    for await (const e of stream) types.push(e.type);
    expect(types.at(-1)).toBe('response.completed');
    expectExact(await oneRow(user), defaultInputTokens({ input: PROMPT }), 4);
  });

  it('Anthropic Messages (message_start + message_delta)', async () => {
    const user = newUser('messages-stream');
    const stream = await anthropic({ userId: user }).messages.create(
      { model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages: MESSAGES, stream: true },
      reply({ pieces: 4, usage: { input: 300, cacheRead: 200, output: 4 } }),
    );
    const types = [];
    for await (const e of stream) types.push(e.type);
    expect(types.at(-1)).toBe('message_stop');
    const row = await oneRow(user);
    expectExact(row, 300, 4);
    expect(row.cache_read_tokens).toBe(200);
  });
});

type Kind = 'chat' | 'responses' | 'messages';
const KINDS: Kind[] = ['chat', 'responses', 'messages'];
/** Events before the first piece of text, as the SDK yields them. */
const LEAD_EVENTS: Record<Kind, number> = { chat: 1, responses: 4, messages: 2 };
const PIECES = 30;

async function openStream(kind: Kind, user: string, r: FakeReply, signal?: AbortSignal) {
  const options = { ...reply(r), ...(signal ? { signal } : {}) };
  if (kind === 'chat') return openai({ userId: user }).chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true }, options);
  if (kind === 'responses') return openai({ userId: user }).responses.create({ model: 'gpt-4o-mini', input: PROMPT, stream: true }, options);
  return anthropic({ userId: user }).messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages: MESSAGES, stream: true }, options);
}

/** Input of a broken-off stream: Anthropic's message_start already gave the exact input; the OpenAI APIs report usage only at the end. */
function brokenInput(kind: Kind, eventsRead: number): number {
  return kind === 'messages' && eventsRead >= 1 ? PROMPT_EXACT : PROMPT_ESTIMATE;
}

describe.each(KINDS)('%s streams broken off, aborted or failed: one row, estimated', (kind) => {
  it.each([1, 10])('broken off (break) after %i events', async (k) => {
    const user = newUser(`${kind}-break${k}`);
    const stream = await openStream(kind, user, { pieces: PIECES, delayMs: 20 });
    let n = 0;
    for await (const _ of stream as AsyncIterable<unknown>) if (++n >= k) break;
    const row = await oneRow(user);
    expect(row.estimated).toBe(true);
    expect(row.metadata).toMatchObject({ status: 'incomplete', estimated: true });
    expect(row.input_tokens).toBe(brokenInput(kind, k));
    // At least the text the consumer got (8 characters a piece = 2 tokens), at most all of it.
    const piecesSeen = Math.max(0, k - LEAD_EVENTS[kind]);
    expect(row.output_tokens).toBeGreaterThanOrEqual((piecesSeen * PIECE_CHARS) / 4);
    expect(row.output_tokens).toBeLessThan((PIECES * PIECE_CHARS) / 4);
  });

  it('broken off after 0 events (the raw body cancelled before any)', async () => {
    const user = newUser(`${kind}-cancel0`);
    const options = reply({ pieces: PIECES, delayMs: 20, firstEventDelayMs: 300 });
    const promise =
      kind === 'chat'
        ? openai({ userId: user }).chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true }, options)
        : kind === 'responses'
          ? openai({ userId: user }).responses.create({ model: 'gpt-4o-mini', input: PROMPT, stream: true }, options)
          : anthropic({ userId: user }).messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages: MESSAGES, stream: true }, options);
    const response = await promise.asResponse();
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    await response.body!.cancel();
    const row = await oneRow(user);
    expect(row).toMatchObject({ input_tokens: PROMPT_ESTIMATE, output_tokens: 0, estimated: true });
    expect(row.metadata.status).toBe('incomplete');
  });

  it('aborted with controller.abort() before the first event', async () => {
    const user = newUser(`${kind}-abort0`);
    const stream = await openStream(kind, user, { pieces: PIECES, delayMs: 20, firstEventDelayMs: 300 });
    const received = srv.requests.at(-1)!;
    (stream as { controller: AbortController }).controller.abort();
    const row = await oneRow(user);
    expect(row).toMatchObject({ input_tokens: PROMPT_ESTIMATE, output_tokens: 0, estimated: true });
    expect(row.metadata.status).toBe('aborted');
    await received.done;
    expect(received.closedEarly).toBe(true);
  });

  it('aborted by the caller\'s AbortSignal mid-stream: the upstream connection is closed', async () => {
    const user = newUser(`${kind}-signal`);
    const ac = new AbortController();
    const stream = await openStream(kind, user, { pieces: PIECES, delayMs: 20 }, ac.signal);
    const received = srv.requests.at(-1)!;
    let n = 0;
    try {
      for await (const _ of stream as AsyncIterable<unknown>) if (++n === LEAD_EVENTS[kind] + 3) ac.abort();
    } catch (err) {
      expect((err as Error).name).toMatch(/Abort/);
    }
    const row = await oneRow(user);
    expect(row.metadata).toMatchObject({ status: 'aborted', estimated: true });
    expect(row.output_tokens).toBeGreaterThanOrEqual((3 * PIECE_CHARS) / 4);
    expect(row.input_tokens).toBe(brokenInput(kind, n));
    await received.done;
    expect(received.closedEarly).toBe(true);
  });

  it('an error event mid-stream: status error, estimated', async () => {
    const user = newUser(`${kind}-midstream-error`);
    const stream = await openStream(kind, user, { pieces: PIECES, errorAfterPieces: 4, delayMs: 5 });
    const read = async () => {
      let last: unknown;
      for await (const e of stream as AsyncIterable<unknown>) last = e;
      return last;
    };
    // The SDKs throw the provider's error, except the Responses stream, which yields it as an event.
    if (kind === 'responses') expect(await read()).toMatchObject({ type: 'error', code: 'server_error' });
    else await expect(read()).rejects.toThrow();
    const row = await oneRow(user);
    expect(row.metadata).toMatchObject({ status: 'error', estimated: true });
    expect(row.metadata.error).toEqual(expect.any(String));
    expect(row.output_tokens).toBe((4 * PIECE_CHARS) / 4);
  });

  it('the connection dropped mid-stream: status error, estimated', async () => {
    const user = newUser(`${kind}-drop`);
    const stream = await openStream(kind, user, { pieces: PIECES, dropAfterPieces: 3, delayMs: 20 });
    await expect(async () => {
      for await (const _ of stream as AsyncIterable<unknown>) {
        // read until the connection goes
      }
    }).rejects.toThrow();
    const row = await oneRow(user);
    expect(row.metadata).toMatchObject({ status: 'error', estimated: true });
    expect(row.output_tokens).toBe((3 * PIECE_CHARS) / 4);
  });
});

describe('the SDK helpers work on wrapped clients, each call recorded once', () => {
  it('withResponse() and asResponse()', async () => {
    const user = newUser('with-response');
    const client = openai({ userId: user });
    const { data, response, request_id } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES }).withResponse();
    expect(response.status).toBe(200);
    expect(response.url).toBe(`${srv.openaiBaseURL}/chat/completions`);
    expect(request_id).toMatch(/^req_fake_/);
    expect(data.choices[0]!.message.content).toContain('tok0004');
    const raw = await client.responses.create({ model: 'gpt-4o-mini', input: PROMPT }).asResponse();
    expect(((await raw.json()) as { object: string }).object).toBe('response');
    const rows = await rowsOf(user, 2);
    expect(rows.map((r) => r.metadata.providerRequestId)).toContain(request_id);
    expect(rows.every((r) => !r.estimated)).toBe(true);
  });

  it('Stream.tee(): both branches get every chunk, one row', async () => {
    const user = newUser('tee');
    const stream = await openai({ userId: user }).chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true }, reply({ pieces: 5 }));
    const [left, right] = stream.tee();
    const read = async (s: AsyncIterable<unknown>) => {
      let n = 0;
      for await (const _ of s) n++;
      return n;
    };
    expect(await Promise.all([read(left), read(right)])).toEqual([7, 7]);
    expectExact(await oneRow(user), PROMPT_EXACT, 5);
  });

  it('OpenAI chat.completions.stream() and runTools(); responses.stream()', async () => {
    const user = newUser('openai-helpers');
    const client = openai({ userId: user });
    const final = await client.chat.completions.stream({ model: 'gpt-4o-mini', messages: MESSAGES }, reply({ pieces: 3 })).finalChatCompletion();
    expect(final.choices[0]!.message.content).toBe('tok0000 tok0001 tok0002 ');
    expect(final.usage ?? null).toBeNull(); // the caller did not ask for usage, so the helper saw none
    const runner = client.chat.completions.runTools({
      model: 'gpt-4o-mini',
      messages: MESSAGES,
      tools: [{ type: 'function', function: { name: 'lookup', description: 'Look a figure up', function: (args: unknown) => JSON.stringify(args), parse: JSON.parse, parameters: { type: 'object', properties: {} } } }],
    });
    expect(await runner.finalContent()).toContain('tok0004');
    const text = await client.responses.stream({ model: 'gpt-4o-mini', input: PROMPT }).finalResponse();
    expect(text.output_text).toContain('tok0004');
    const rows = await rowsOf(user, 3);
    expect(rows.every((r) => !r.estimated && r.metadata.status === 'ok')).toBe(true);
  });

  it('Anthropic messages.stream(): iterated AND finalMessage(), one row', async () => {
    const user = newUser('message-stream');
    const stream = anthropic({ userId: user }).messages.stream({ model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages: MESSAGES }, reply({ pieces: 4 }));
    let texts = 0;
    stream.on('text', () => texts++);
    for await (const _ of stream) {
      // every event
    }
    const message = await stream.finalMessage();
    expect(message.usage.output_tokens).toBe(4);
    expect(await stream.finalText()).toBe('tok0000 tok0001 tok0002 tok0003 ');
    expect(texts).toBe(4);
    expectExact(await oneRow(user), PROMPT_EXACT, 4);
  });

  it('Anthropic MessageStream.abort() mid-stream: aborted, input exact from message_start, output estimated', async () => {
    const user = newUser('message-stream-abort');
    const stream = anthropic({ userId: user }).messages.stream({ model: 'claude-3-5-sonnet-latest', max_tokens: 256, messages: MESSAGES }, reply({ pieces: PIECES, delayMs: 20 }));
    let texts = 0;
    stream.on('text', () => {
      if (++texts === 5) stream.abort();
    });
    await expect(stream.finalMessage()).rejects.toThrow();
    const row = await oneRow(user);
    expect(row).toMatchObject({ input_tokens: PROMPT_EXACT, estimated: true });
    expect(row.metadata.status).toBe('aborted');
    expect(row.output_tokens).toBeGreaterThanOrEqual((5 * PIECE_CHARS) / 4);
  });

  it('a plain call aborted before the response: aborted, input estimated', async () => {
    const user = newUser('abort-before-response');
    const ac = new AbortController();
    const before = srv.requests.length;
    const call = openai({ userId: user }).chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES }, { ...reply({ headersDelayMs: 2_000 }), signal: ac.signal });
    await srv.waitForRequests(before + 1); // the provider has it
    ac.abort();
    await expect(call).rejects.toThrow(OpenAI.APIUserAbortError);
    const row = await oneRow(user);
    expect(row).toMatchObject({ input_tokens: PROMPT_ESTIMATE, output_tokens: 0, estimated: true });
    expect(row.metadata.status).toBe('aborted');
  });
});

describe('requests pass through unchanged; errors and retries', () => {
  it('a caller\'s response_format and tools reach the provider as given', async () => {
    const user = newUser('passthrough');
    const params = {
      model: 'gpt-4o-mini',
      messages: MESSAGES,
      response_format: { type: 'json_schema' as const, json_schema: { name: 'summary', strict: true, schema: { type: 'object', properties: { points: { type: 'array', items: { type: 'string' } } }, required: ['points'], additionalProperties: false } } },
      tools: [{ type: 'function' as const, function: { name: 'lookup', description: 'Look a figure up', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } }],
      temperature: 0.2,
    };
    const snapshot = JSON.parse(JSON.stringify(params));
    await openai({ userId: user }).chat.completions.create(params);
    expect(srv.requests.at(-1)!.body).toEqual(snapshot);
    expect(params).toEqual(snapshot); // the caller's object untouched
    const anthropicParams = { model: 'claude-3-5-sonnet-latest', max_tokens: 300, messages: MESSAGES, tools: [{ name: 'lookup', input_schema: { type: 'object' as const, properties: { q: { type: 'string' } } } }] };
    const anthropicSnapshot = JSON.parse(JSON.stringify(anthropicParams));
    await anthropic({ userId: user }).messages.create(anthropicParams);
    expect(srv.requests.at(-1)!.body).toEqual(anthropicSnapshot);
    await rowsOf(user, 2);
  });

  it('an HTTP error (429, no retries): one row, status error, zero tokens; the SDK error unchanged', async () => {
    const user = newUser('http-429');
    const err = await openai({ userId: user })
      .chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES }, reply({ status: 429, retryAfter: '0' }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const row = await oneRow(user);
    expect(row).toMatchObject({ input_tokens: 0, output_tokens: 0, estimated: false, model: 'gpt-4o-mini' });
    expect(row.metadata).toMatchObject({ status: 'error', httpStatus: 429 });
  });

  it('retries: one row for the call, with its attempts', async () => {
    const user = newUser('retries');
    const client = anthropic({ userId: user }, { maxRetries: 2 });
    const res = await client.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 100, messages: MESSAGES }, reply({ failAttempts: 1, status: 529 }));
    expect(res.usage.output_tokens).toBe(5);
    const err = await client.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 100, messages: MESSAGES }, reply({ status: 429, retryAfter: '0' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    const [ok, failed] = await rowsOf(user, 2);
    expect(ok!.metadata).toMatchObject({ status: 'ok', attempts: 2 });
    expect(failed!.metadata).toMatchObject({ status: 'error', attempts: 3, httpStatus: 429 });
  });

  it('streamUsage auto: a server that refuses stream_options gets the call again without it, and no more asks', async () => {
    const user = newUser('refused-stream-options');
    const client = openai({ userId: user });
    const before = srv.requests.length;
    for (let i = 0; i < 2; i++) {
      const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true }, reply({ pieces: 4, rejectStreamOptions: true }));
      let n = 0;
      for await (const _ of stream) n++;
      expect(n).toBe(6);
    }
    expect(srv.requests.slice(before).map((r) => r.body?.stream_options ?? null)).toEqual([{ include_usage: true }, null, null]);
    const rows = await rowsOf(user, 2);
    for (const row of rows) {
      expect(row).toMatchObject({ input_tokens: PROMPT_ESTIMATE, output_tokens: (4 * PIECE_CHARS) / 4, estimated: true });
      expect(row.metadata.status).toBe('ok');
    }
  });

  it('streamUsage never: no stream_options sent, the stream recorded estimated', async () => {
    const user = newUser('never');
    const stream = await openai({ userId: user, streamUsage: 'never' }).chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true }, reply({ pieces: 2 }));
    for await (const _ of stream) {
      // all
    }
    expect(srv.requests.at(-1)!.body!.stream_options).toBeUndefined();
    expect(await oneRow(user)).toMatchObject({ estimated: true, output_tokens: (2 * PIECE_CHARS) / 4 });
  });
});

describe('attribution and the prompt guard', () => {
  it('the request context wins over the wrapper\'s defaults; tags merge; nested attribution counts in the request', async () => {
    const user = newUser('context');
    const client = openai({ userId: 'wrapper-default-user', taskType: 'chat', team: 'infra', tags: { app: 'web', tier: 'free' } });
    const ctxOuter = await runWithCostContext({ userId: user, tags: { tier: 'pro' }, project: 'atlas' }, async () => {
      await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES });
      await withCostAttribution({ taskType: 'summarization', tags: { step: 'summary' } }, () => client.responses.create({ model: 'gpt-4o-mini', input: PROMPT }));
      return currentCostContext()!;
    });
    expect(ctxOuter.calls).toBe(2);
    expect(ctxOuter.snapshot().tokens.outputTokens).toBe(10);
    const [a, b] = await rowsOf(user, 2);
    expect(a).toMatchObject({ task_type: 'chat', team: 'infra', project: 'atlas', tags: { app: 'web', tier: 'pro' } });
    expect(b).toMatchObject({ task_type: 'summarization', team: 'infra', project: 'atlas', tags: { app: 'web', tier: 'pro', step: 'summary' } });
  });

  it('caps max tokens per task type and truncates long prompts, and says so in the row', async () => {
    const user = newUser('guard');
    const guard = { maxTokensByTaskType: ORIGINAL_MAX_TOKENS, maxPromptChars: 100 };
    const longDoc = 'x'.repeat(400);
    const params = { model: 'gpt-4o-mini', max_completion_tokens: 4000, messages: [{ role: 'system' as const, content: 'You summarise.' }, { role: 'user' as const, content: longDoc }] };
    await withCostAttribution({ userId: user, taskType: 'summarization' }, () => openai({ promptGuard: guard }).chat.completions.create(params));
    const sent = srv.requests.at(-1)!.body as { max_completion_tokens: number; messages: Array<{ content: string }> };
    expect(sent.max_completion_tokens).toBe(1000);
    expect(sent.messages[0]!.content).toBe('You summarise.');
    expect(sent.messages[1]!.content).toBe('x'.repeat(100 - 'You summarise.'.length));
    expect(params.messages[1]!.content).toBe(longDoc); // the caller's request untouched
    await withCostAttribution({ userId: user, taskType: 'analysis' }, () =>
      anthropic({ promptGuard: guard }).messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 8000, messages: MESSAGES }),
    );
    expect((srv.requests.at(-1)!.body as { max_tokens: number }).max_tokens).toBe(2000);
    await withCostAttribution({ userId: user, taskType: 'chat' }, () => openai({ promptGuard: guard }).responses.create({ model: 'gpt-4o-mini', input: PROMPT }));
    expect(srv.requests.at(-1)!.body).not.toHaveProperty('max_output_tokens'); // no cap for chat, prompt short enough
    const [chat, messages, untouched] = await rowsOf(user, 3);
    expect(chat!.metadata.promptGuard).toEqual({ maxTokensCappedFrom: 4000, maxTokensCappedTo: 1000, truncatedChars: 400 - (100 - 'You summarise.'.length) });
    expect(messages!.metadata.promptGuard).toEqual({ maxTokensCappedFrom: 8000, maxTokensCappedTo: 2000 });
    expect(untouched!.metadata.promptGuard).toBeUndefined();
  });

  it('a user id the tracker refuses: the call is still recorded, under the fallback user, saying why', async () => {
    const before = (recorded.get('anonymous') ?? []).length;
    const seen: unknown[] = [];
    const client = wrapOpenAI(new OpenAI({ apiKey: 'sk-test', baseURL: srv.openaiBaseURL, maxRetries: 0 }), { ...wrapperOptions({ userId: 'has spaces' }), onError: (e) => seen.push(e) });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES }, reply({ usage: { input: 4242, output: 1 } }));
    await eventually(async () => seen.length, (n) => n >= 1, 5_000, 'the refusal to be reported');
    await tracker.flush();
    const row = await eventually(
      async () => (await stack.pool.query<Row>(`SELECT user_id, input_tokens::int, metadata FROM usage_ledger WHERE user_id = 'anonymous' AND input_tokens = 4242`)).rows,
      (r) => r.length === 1,
      60_000,
      'the fallback row',
    );
    expect(row[0]!.metadata.attributionRefused).toEqual([expect.stringContaining('userId')]);
    expect((recorded.get('anonymous') ?? []).length).toBe(before); // onRecord saw the original event
  });
});

describe('no recording failures', () => {
  it('reported nothing to onError in the tests above (except the refused user id)', () => {
    expect(errors.filter((e) => (e as Error).name !== 'CostTrackerValidationError')).toEqual([]);
  });
});
