/**
 * What the wrappers read from the three metered APIs, request and response: the model the API
 * answered with, its response id, its usage, the text it delivered, whether it reported an error
 * and whether the stream reached its end. Pure functions over parsed JSON and SSE events, unit-tested
 * (test/unit/wrappers.test.ts) and shared by the JSON and streaming paths.
 *
 * Estimates (used only when the provider's usage did not arrive: a stream broken off or aborted
 * before its end, an aborted call, a Chat Completions stream without `include_usage`):
 *   - input: the characters of the request's prompt (every string under `messages`, `input`,
 *     `instructions`, `system`, except ids, roles, types, URLs and base64 data; plus the JSON of
 *     `tools`, `functions`, `response_format` and `text`) divided by 4, rounded up;
 *   - output: the characters of the text the response delivered to this process (content, refusals,
 *     tool-call arguments, reasoning/thinking text) divided by 4, rounded up, or the output tokens the
 *     provider already reported (Anthropic's running count), whichever is larger.
 * Four characters per token is the usual rule of thumb for English text with these tokenizers; it is
 * deliberately simple, and an estimated row says so (`estimated`).
 */
import { fromAnthropicUsage, fromOpenAIUsage, type TokenUsage } from '../../domain/usage.js';
import type { SseEvent } from './sse.js';

/** The metered endpoints: OpenAI Chat Completions and Responses, Anthropic Messages. */
export type Api = 'chat.completions' | 'responses' | 'messages';

/** What a response told us so far. */
export interface Observation {
  model: string | undefined;
  responseId: string | undefined;
  /** The provider's final usage, once reported. */
  usage: Partial<TokenUsage> | undefined;
  /** The input side the provider reported before its final usage (Anthropic's `message_start`). */
  inputUsage: Partial<TokenUsage> | undefined;
  /** Output tokens the provider reported so far (Anthropic's running count). */
  outputReported: number;
  /** Characters of text delivered so far. */
  deliveredChars: number;
  /** The error the response reported (an error event, an `error` field, a failed response). */
  error: string | undefined;
  /** The protocol's end marker arrived (`[DONE]`, `message_stop`, `response.completed`...). */
  terminal: boolean;
  /** Anthropic: the usage of `message_start`, updated by each `message_delta` (its counts are cumulative). */
  anthropicUsage: Record<string, unknown> | undefined;
  /**
   * How the answer finished: the finish/stop reason (`stop`, `length`, `end_turn`, `max_tokens`...,
   * a Responses status `completed`/`incomplete`); with several choices, the first abnormal one wins.
   * The response cache stores only normal finishes.
   */
  finish: string | undefined;
}

const NORMAL_FINISHES = new Set(['stop', 'end_turn', 'tool_calls', 'tool_use', 'function_call', 'stop_sequence', 'completed']);

function noteFinish(obs: Observation, reason: unknown): void {
  if (typeof reason !== 'string' || reason.length === 0) return;
  if (obs.finish === undefined || (NORMAL_FINISHES.has(obs.finish) && !NORMAL_FINISHES.has(reason))) obs.finish = reason;
}

export function newObservation(): Observation {
  return {
    model: undefined,
    responseId: undefined,
    usage: undefined,
    inputUsage: undefined,
    outputReported: 0,
    deliveredChars: 0,
    error: undefined,
    terminal: false,
    anthropicUsage: undefined,
    finish: undefined,
  };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);
const len = (v: unknown): number => (typeof v === 'string' ? v.length : 0);

/** Tokens estimated from characters: 4 characters a token, rounded up. */
export function estimateTokens(chars: number): number {
  return chars <= 0 ? 0 : Math.ceil(chars / 4);
}

function errorName(e: unknown, fallback: string): string {
  if (isObj(e)) return str(e.type) ?? str(e.code) ?? str(e.message)?.slice(0, 200) ?? fallback;
  return str(e)?.slice(0, 200) ?? fallback;
}

// ---------------------------------------------------------------------------------------------
// Complete (non-streamed) responses

/** Reads a complete JSON response body (already parsed). */
export function observeJson(api: Api, body: unknown, obs: Observation): void {
  if (!isObj(body)) return;
  obs.model = str(body.model) ?? obs.model;
  obs.responseId = str(body.id) ?? obs.responseId;
  obs.terminal = true;
  if (body.error != null && api !== 'responses') obs.error = errorName(body.error, 'error');
  switch (api) {
    case 'chat.completions': {
      if (isObj(body.usage)) obs.usage = fromOpenAIUsage(body.usage);
      if (Array.isArray(body.choices)) {
        for (const c of body.choices) {
          if (!isObj(c)) continue;
          noteFinish(obs, c.finish_reason);
          if (!isObj(c.message)) continue;
          obs.deliveredChars += messageTextChars(c.message);
        }
      }
      break;
    }
    case 'responses': {
      if (isObj(body.usage)) obs.usage = fromOpenAIUsage(body.usage);
      if (body.status === 'failed') obs.error = errorName(body.error, 'response.failed');
      noteFinish(obs, body.status);
      if (Array.isArray(body.output)) for (const item of body.output) obs.deliveredChars += outputItemChars(item);
      break;
    }
    case 'messages': {
      if (isObj(body.usage)) obs.usage = fromAnthropicUsage(body.usage);
      noteFinish(obs, body.stop_reason);
      if (Array.isArray(body.content)) for (const block of body.content) obs.deliveredChars += anthropicBlockChars(block);
      break;
    }
  }
}

function messageTextChars(m: Obj): number {
  let n = len(m.content) + len(m.refusal) + len(m.reasoning_content);
  if (Array.isArray(m.tool_calls)) {
    for (const tc of m.tool_calls) if (isObj(tc) && isObj(tc.function)) n += len(tc.function.name) + len(tc.function.arguments);
  }
  return n;
}

function outputItemChars(item: unknown): number {
  if (!isObj(item)) return 0;
  let n = len(item.arguments) + len(item.input);
  for (const list of [item.content, item.summary]) {
    if (!Array.isArray(list)) continue;
    for (const part of list) if (isObj(part)) n += len(part.text) + len(part.refusal);
  }
  return n;
}

function anthropicBlockChars(block: unknown): number {
  if (!isObj(block)) return 0;
  let n = len(block.text) + len(block.thinking);
  if (block.type === 'tool_use' && block.input !== undefined) n += JSON.stringify(block.input).length;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Streamed responses

/** What to do with an event in the bytes handed on to the SDK. */
export type EventVerdict = 'keep' | 'drop';

/**
 * Reads one SSE event. Returns 'drop' only for the usage-only chunk of a Chat Completions stream
 * whose `include_usage` the wrapper added itself (the caller did not ask for it, so its code must
 * not see a chunk with empty `choices`).
 */
export function observeSseEvent(api: Api, ev: SseEvent, obs: Observation, injectedUsage: boolean): EventVerdict {
  if (api === 'chat.completions') return observeChatChunk(ev, obs, injectedUsage);
  if (ev.data.length === 0) return 'keep';
  let o: unknown;
  try {
    o = JSON.parse(ev.data);
  } catch {
    return 'keep'; // the SDK reports it
  }
  if (!isObj(o)) return 'keep';
  const type = str(o.type) ?? ev.event ?? '';
  if (api === 'responses') observeResponsesEvent(type, o, obs);
  else observeAnthropicEvent(type, o, obs);
  return 'keep';
}

function observeChatChunk(ev: SseEvent, obs: Observation, injectedUsage: boolean): EventVerdict {
  const data = ev.data;
  if (data.length === 0) return 'keep';
  if (data.startsWith('[DONE]')) {
    obs.terminal = true;
    return 'keep';
  }
  let o: unknown;
  try {
    o = JSON.parse(data);
  } catch {
    return 'keep';
  }
  if (!isObj(o)) return 'keep';
  if (o.error != null) obs.error = errorName(o.error, 'error');
  obs.model = str(o.model) ?? obs.model; // Azure's first chunk has model ""
  obs.responseId ??= str(o.id);
  const choices = o.choices;
  if (Array.isArray(choices)) {
    for (const c of choices) {
      if (!isObj(c)) continue;
      noteFinish(obs, c.finish_reason);
      if (!isObj(c.delta)) continue;
      obs.deliveredChars += messageTextChars(c.delta);
    }
  }
  if (isObj(o.usage)) {
    obs.usage = fromOpenAIUsage(o.usage);
    if (injectedUsage && Array.isArray(choices) && choices.length === 0) return 'drop';
  }
  return 'keep';
}

function observeResponsesEvent(type: string, o: Obj, obs: Observation): void {
  switch (type) {
    case 'response.created':
    case 'response.queued':
    case 'response.in_progress': {
      if (isObj(o.response)) {
        obs.model = str(o.response.model) ?? obs.model;
        obs.responseId ??= str(o.response.id);
      }
      return;
    }
    case 'response.completed':
    case 'response.incomplete':
    case 'response.failed': {
      obs.terminal = true;
      const r = o.response;
      if (isObj(r)) {
        obs.model = str(r.model) ?? obs.model;
        obs.responseId ??= str(r.id);
        if (isObj(r.usage)) obs.usage = fromOpenAIUsage(r.usage);
        noteFinish(obs, type === 'response.completed' ? 'completed' : type === 'response.incomplete' ? 'incomplete' : 'failed');
        if (type === 'response.failed') obs.error = errorName(r.error, 'response.failed');
      } else if (type === 'response.failed') {
        obs.error = 'response.failed';
      }
      return;
    }
    case 'error': {
      obs.terminal = true;
      obs.error = str(o.code) ?? str(o.message)?.slice(0, 200) ?? 'error';
      return;
    }
    default:
      // Every text-like delta: output text, refusals, function-call arguments, reasoning text and summaries.
      if (type.endsWith('.delta') && typeof o.delta === 'string' && !type.startsWith('response.audio.')) obs.deliveredChars += o.delta.length;
  }
}

function observeAnthropicEvent(type: string, o: Obj, obs: Observation): void {
  switch (type) {
    case 'message_start': {
      const m = o.message;
      if (!isObj(m)) return;
      obs.model = str(m.model) ?? obs.model;
      obs.responseId ??= str(m.id);
      if (isObj(m.usage)) {
        obs.anthropicUsage = { ...m.usage };
        const u = fromAnthropicUsage(m.usage);
        obs.inputUsage = { inputTokens: u.inputTokens, cacheReadTokens: u.cacheReadTokens, cacheWriteTokens: u.cacheWriteTokens, cacheWrite1hTokens: u.cacheWrite1hTokens };
        obs.outputReported = u.outputTokens ?? 0;
      }
      return;
    }
    case 'content_block_start': {
      if (isObj(o.content_block)) obs.deliveredChars += len(o.content_block.text) + len(o.content_block.thinking);
      return;
    }
    case 'content_block_delta': {
      const d = o.delta;
      if (isObj(d)) obs.deliveredChars += len(d.text) + len(d.partial_json) + len(d.thinking);
      return;
    }
    case 'message_delta': {
      if (isObj(o.delta)) noteFinish(obs, o.delta.stop_reason);
      if (!isObj(o.usage)) return;
      // The counts in message_delta are cumulative and final; fields it leaves out (or null) keep message_start's.
      const merged: Obj = { ...obs.anthropicUsage };
      for (const [k, v] of Object.entries(o.usage)) if (v !== null && v !== undefined) merged[k] = v;
      obs.anthropicUsage = merged;
      obs.usage = fromAnthropicUsage(merged);
      obs.outputReported = obs.usage.outputTokens ?? obs.outputReported;
      return;
    }
    case 'message_stop':
      obs.terminal = true;
      return;
    case 'error':
      obs.terminal = true;
      obs.error = errorName(o.error, 'error');
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Requests

/** Keys whose strings are not prompt text (ids, roles, enum values, URLs, base64 payloads). */
const NOT_TEXT = new Set([
  'type', 'role', 'id', 'tool_call_id', 'call_id', 'tool_use_id', 'image_url', 'url', 'data', 'file_data', 'file_id',
  'media_type', 'mime_type', 'detail', 'format', 'status', 'signature', 'cache_control', 'encrypted_content',
]);

/** Characters of a request's prompt, as described at the top of this file. */
export function promptChars(body: unknown): number {
  if (!isObj(body)) return 0;
  let n = 0;
  for (const key of ['messages', 'input', 'instructions', 'system', 'prompt']) n += stringChars(body[key]);
  for (const key of ['tools', 'functions', 'response_format', 'text', 'tool_choice']) {
    const v = body[key];
    if (v !== undefined && v !== null) {
      try {
        n += JSON.stringify(v).length;
      } catch {
        // not JSON: the SDK sends what it can; count nothing
      }
    }
  }
  return n;
}

/** Sum of the lengths of the text strings in a JSON value (iterative: no recursion). */
function stringChars(root: unknown): number {
  let n = 0;
  const stack: unknown[] = [root];
  let visited = 0;
  while (stack.length > 0 && visited++ < 100_000) {
    const v = stack.pop();
    if (typeof v === 'string') n += v.length;
    else if (Array.isArray(v)) for (const x of v) stack.push(x);
    else if (isObj(v)) for (const [k, x] of Object.entries(v)) if (!NOT_TEXT.has(k)) stack.push(x);
  }
  return n;
}

/** The model a request asked for (the fallback when the response never named one). */
export function requestedModel(body: unknown): string | undefined {
  return isObj(body) ? str(body.model) : undefined;
}
