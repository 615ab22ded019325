/**
 * The canonical form of a metered request, for the response cache's exact-match key: every
 * parameter of the body is in (tools, response format, sampling, metadata, user...), the defaults
 * each API documents are made explicit (so `{ temperature: 1 }` and no temperature are the same
 * request, while `temperature: 0.9` is another), keys are sorted at every depth, and the result is
 * hashed with SHA-256. Two requests share a key only when the provider would see the same request.
 *
 * Normalisations (each one a form the API documents as equivalent):
 *   - a parameter given as `null` is the same as absent where the API documents a default;
 *   - Chat Completions: temperature 1, top_p 1, n 1, presence/frequency penalty 0, stream false,
 *     logprobs false, response_format text, parallel_tool_calls true and tool_choice auto when tools
 *     are given (none without tools);
 *   - Responses: a string `input` is one user message; temperature 1, top_p 1, truncation disabled,
 *     text format text, tool_choice auto and parallel_tool_calls true when tools are given, stream false;
 *   - Messages: a string `content` (of a message or of `system`) is one text block; temperature 1,
 *     tool_choice auto when tools are given, stop_sequences empty, stream false.
 * Everything else is kept as given: an unknown parameter makes its own key (never a false hit).
 */
import { createHash } from 'node:crypto';
import type { Api } from '../wrappers/protocols.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Per API: parameter -> its default (applied when absent or null). */
const DEFAULTS: Record<Api, Obj> = {
  'chat.completions': {
    temperature: 1,
    top_p: 1,
    n: 1,
    presence_penalty: 0,
    frequency_penalty: 0,
    stream: false,
    logprobs: false,
    response_format: { type: 'text' },
  },
  responses: {
    temperature: 1,
    top_p: 1,
    truncation: 'disabled',
    text: { format: { type: 'text' } },
    stream: false,
  },
  messages: {
    temperature: 1,
    stop_sequences: [],
    stream: false,
  },
};

function hasTools(body: Obj): boolean {
  return Array.isArray(body.tools) && body.tools.length > 0;
}

/** The request body with the API's defaults made explicit (a shallow copy; nested values are shared). */
export function canonicalBody(api: Api, body: Obj): Obj {
  const out: Obj = {};
  for (const k in body) {
    const v = body[k];
    if (v !== undefined) out[k] = v;
  }
  for (const [k, d] of Object.entries(DEFAULTS[api])) if (out[k] === undefined || out[k] === null) out[k] = d;
  const tools = hasTools(out);
  if (api === 'chat.completions') {
    if (out.tool_choice === undefined || out.tool_choice === null) out.tool_choice = tools ? 'auto' : 'none';
    if (tools && (out.parallel_tool_calls === undefined || out.parallel_tool_calls === null)) out.parallel_tool_calls = true;
    // The legacy and the current name of the output limit are the same parameter.
    if (out.max_completion_tokens === undefined && out.max_tokens !== undefined && out.max_tokens !== null) {
      out.max_completion_tokens = out.max_tokens;
      delete out.max_tokens;
    }
  } else if (api === 'responses') {
    if (typeof out.input === 'string') out.input = [{ role: 'user', content: out.input }];
    if (tools) {
      if (out.tool_choice === undefined || out.tool_choice === null) out.tool_choice = 'auto';
      if (out.parallel_tool_calls === undefined || out.parallel_tool_calls === null) out.parallel_tool_calls = true;
    }
  } else {
    if (typeof out.system === 'string') out.system = [{ type: 'text', text: out.system }];
    if (Array.isArray(out.messages)) {
      out.messages = out.messages.map((m) => (isObj(m) && typeof m.content === 'string' ? { ...m, content: [{ type: 'text', text: m.content }] } : m));
    }
    if (tools && (out.tool_choice === undefined || out.tool_choice === null)) out.tool_choice = { type: 'auto' };
  }
  return out;
}

/** JSON with object keys sorted at every depth (undefined members left out, as JSON.stringify does). */
export function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    return s === undefined ? 'null' : s;
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v = value[i];
      out += v === undefined || typeof v === 'function' ? 'null' : stableJson(v);
    }
    return out + ']';
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return stableJson((value as { toJSON(): unknown }).toJSON());
  const keys = Object.keys(value).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = (value as Obj)[k];
    if (v === undefined || typeof v === 'function') continue;
    if (!first) out += ',';
    first = false;
    out += JSON.stringify(k) + ':' + stableJson(v);
  }
  return out + '}';
}

export interface CacheKeyInput {
  /** The provider recorded (a compatible API on another provider is another cache). */
  provider: string;
  api: Api;
  body: Obj;
  /** Who may share the entry: `tenant:<id>` or `shared`. */
  scope: string;
  /** Headers that change the answer (beta features), lower-cased name -> value. */
  headers?: Record<string, string> | undefined;
}

/** SHA-256 (hex) of the scope, provider, API, answer-changing headers and canonical body. */
export function cacheKeyHash(input: CacheKeyInput): string {
  const h = createHash('sha256');
  h.update('costguard-cache-v1\n').update(input.scope).update('\n').update(input.provider).update('\n').update(input.api).update('\n');
  if (input.headers) h.update(stableJson(input.headers));
  h.update('\n').update(stableJson(canonicalBody(input.api, input.body)));
  return h.digest('hex');
}
