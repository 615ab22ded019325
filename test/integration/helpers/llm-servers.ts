/**
 * A local HTTP server speaking the OpenAI API (Chat Completions and Responses, JSON and SSE) and the
 * Anthropic Messages API (JSON and SSE), as the providers do, for the official SDKs pointed at it by
 * `baseURL` (OpenAI: `${url}/v1`, Anthropic: `url`). Used by the wrapper and middleware tests and by
 * bench/wrappers.ts: no SDK is mocked, the SDKs make real HTTP calls and parse real bytes.
 *
 * What a request gets is the server's `defaults` merged with the JSON of the request's
 * `x-fake-reply` header (the SDKs send per-call headers: `{ headers: { 'x-fake-reply': ... } }`):
 * errors with the providers' error bodies, 429 with `retry-after`, slow or broken streams, usage
 * numbers. Every request is kept (method, path, headers, parsed body) with whether the client closed
 * the connection before the reply finished (`closedEarly`).
 *
 * Replies are deterministic: the text is `pieces` pieces of 8 characters (`tok0000 `, `tok0001 `...),
 * one per stream chunk; output tokens default to `pieces`; input tokens default to 10 + the
 * characters of the prompt's message text (`defaultInputTokens`), so a test can tell whose call a
 * ledger row is.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeUsage {
  input?: number;
  output?: number;
  cacheRead?: number;
  cacheWrite?: number;
  reasoning?: number;
}

export interface FakeReply {
  /** Answer with this HTTP error status (and the provider's error body). */
  status?: number;
  errorType?: string;
  errorMessage?: string;
  /** `retry-after` header (seconds) on an error reply. */
  retryAfter?: string;
  /** Pieces of text (stream chunks). Default 5. */
  pieces?: number;
  /** Delay before each SSE event after the first, ms. Default 0. */
  delayMs?: number;
  /** Delay between the headers and the first SSE event, ms. */
  firstEventDelayMs?: number;
  /** Delay before the headers (for JSON: before the whole reply), ms. */
  headersDelayMs?: number;
  usage?: FakeUsage;
  /** A JSON reply without `usage`. */
  noUsage?: boolean;
  /** The model the reply names (default: the one asked for). */
  model?: string;
  /** Send the protocol's error event after this many pieces, then end. */
  errorAfterPieces?: number;
  /** Destroy the connection after this many pieces. */
  dropAfterPieces?: number;
  /** Refuse `stream_options` with a 400, as some compatible servers do. */
  rejectStreamOptions?: boolean;
  /** Answer the first attempts of a call (by the SDKs' `x-stainless-retry-count`) with `status` (default 500), then normally. */
  failAttempts?: number;
}

export interface ReceivedRequest {
  id: number;
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown> | undefined;
  reply: FakeReply;
  /** The client closed the connection before the reply was complete. */
  closedEarly: boolean;
  /** The reply was sent completely. */
  finished: boolean;
  /** Settles when the exchange is over, either way. */
  done: Promise<void>;
}

export interface LlmServer {
  url: string;
  /** OpenAI SDK baseURL. */
  openaiBaseURL: string;
  /** Anthropic SDK baseURL. */
  anthropicBaseURL: string;
  defaults: FakeReply;
  requests: ReceivedRequest[];
  /** Waits until `n` requests have been received. */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const PIECE_CHARS = 8;
export function piece(i: number): string {
  return `tok${String(i).padStart(4, '0')} `;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** 10 + the characters of the prompt's message text (string contents and text parts; `input` and `system` strings too). */
export function defaultInputTokens(body: unknown): number {
  if (!isObj(body)) return 10;
  let n = 0;
  const content = (c: unknown) => {
    if (typeof c === 'string') n += c.length;
    else if (Array.isArray(c)) for (const p of c) if (isObj(p) && typeof p.text === 'string') n += p.text.length;
  };
  if (Array.isArray(body.messages)) for (const m of body.messages) if (isObj(m)) content(m.content);
  if (typeof body.input === 'string') n += body.input.length;
  else if (Array.isArray(body.input)) for (const m of body.input) if (isObj(m)) content(m.content);
  content(body.system);
  return 10 + n;
}

function usageOf(reply: FakeReply, body: unknown): Required<FakeUsage> {
  const u = reply.usage ?? {};
  return {
    input: u.input ?? defaultInputTokens(body),
    output: u.output ?? reply.pieces ?? 5,
    cacheRead: u.cacheRead ?? 0,
    cacheWrite: u.cacheWrite ?? 0,
    reasoning: u.reasoning ?? 0,
  };
}

const sleep = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startLlmServer(defaults: FakeReply = {}): Promise<LlmServer> {
  const requests: ReceivedRequest[] = [];
  const waiters: Array<() => void> = [];
  let seq = 0;

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch(() => {
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else {
        res.destroy();
      }
    });
  });
  server.keepAliveTimeout = 60_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    let body: Obj | undefined;
    try {
      body = raw ? (JSON.parse(raw) as Obj) : undefined;
    } catch {
      body = undefined;
    }
    let override: FakeReply = {};
    const header = req.headers['x-fake-reply'];
    if (typeof header === 'string') override = JSON.parse(header) as FakeReply;
    const reply: FakeReply = { ...server_.defaults, ...override };
    const id = ++seq;
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    const record: ReceivedRequest = { id, method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, headers: req.headers, body, reply, closedEarly: false, finished: false, done };
    requests.push(record);
    for (const w of waiters.splice(0)) w();
    res.on('close', () => {
      record.finished = res.writableFinished;
      record.closedEarly = !res.writableFinished;
      settle();
    });
    const anthropic = record.path.endsWith('/v1/messages');
    res.setHeader(anthropic ? 'request-id' : 'x-request-id', `req_fake_${id}`);
    await sleep(reply.headersDelayMs ?? 0);
    if (res.destroyed) return;

    if (reply.rejectStreamOptions && body?.stream_options !== undefined) {
      return sendError(res, anthropic, 400, 'invalid_request_error', 'Unrecognized request argument supplied: stream_options');
    }
    const attempt = Number(req.headers['x-stainless-retry-count'] ?? 0);
    const failing = reply.failAttempts !== undefined ? attempt < reply.failAttempts : reply.status !== undefined && reply.status >= 400;
    if (failing) {
      const status = reply.status ?? 500;
      if (reply.retryAfter !== undefined) res.setHeader('retry-after', reply.retryAfter);
      return sendError(res, anthropic, status, reply.errorType ?? (status === 429 ? 'rate_limit_error' : 'api_error'), reply.errorMessage ?? `fake error ${status}`);
    }
    const model = reply.model ?? (typeof body?.model === 'string' ? body.model : 'unknown-model');
    const usage = usageOf(reply, body);
    const stream = body?.stream === true;
    if (record.path.endsWith('/chat/completions')) {
      if (stream) return chatStream(res, reply, model, usage, id, isObj(body?.stream_options) && body.stream_options.include_usage === true);
      return sendJson(res, chatJson(reply, model, usage, id));
    }
    if (record.path.endsWith('/responses')) {
      if (stream) return responsesStream(res, reply, model, usage, id);
      return sendJson(res, responsesJson(reply, model, usage, id));
    }
    if (anthropic) {
      if (stream) return messagesStream(res, reply, model, usage, id);
      return sendJson(res, messagesJson(reply, model, usage, id));
    }
    return sendError(res, false, 404, 'not_found', `no route ${record.path}`);
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const server_: LlmServer = {
    url,
    openaiBaseURL: `${url}/v1`,
    anthropicBaseURL: url,
    defaults,
    requests,
    async waitForRequests(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < n) {
        if (Date.now() > deadline) throw new Error(`the fake LLM server received ${requests.length} request(s), expected ${n}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return server_;
}

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, anthropic: boolean, status: number, type: string, message: string): void {
  const body = anthropic ? { type: 'error', error: { type, message } } : { error: { message, type, param: null, code: type } };
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Writes SSE events one at a time with the reply's delays; stops (false) if the client went away or the reply breaks off. */
async function sse(res: ServerResponse, reply: FakeReply, events: Array<{ event?: string; data: string; piece?: number }>, errorEvent: { event?: string; data: string }): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.flushHeaders();
  await sleep(reply.firstEventDelayMs ?? 0);
  let first = true;
  for (const e of events) {
    if (res.destroyed) return;
    if (!first) await sleep(reply.delayMs ?? 0);
    first = false;
    if (res.destroyed) return;
    if (e.piece !== undefined) {
      if (reply.dropAfterPieces !== undefined && e.piece >= reply.dropAfterPieces) {
        res.socket?.destroy();
        return;
      }
      if (reply.errorAfterPieces !== undefined && e.piece >= reply.errorAfterPieces) {
        res.write(`${errorEvent.event ? `event: ${errorEvent.event}\n` : ''}data: ${errorEvent.data}\n\n`);
        res.end();
        return;
      }
    }
    res.write(`${e.event ? `event: ${e.event}\n` : ''}data: ${e.data}\n\n`);
  }
  res.end();
}

function text(reply: FakeReply): string {
  let s = '';
  for (let i = 0; i < (reply.pieces ?? 5); i++) s += piece(i);
  return s;
}

// ----------------------------------------------------------------------------------------------
// OpenAI Chat Completions

function openaiUsage(u: Required<FakeUsage>) {
  return {
    prompt_tokens: u.input,
    completion_tokens: u.output,
    total_tokens: u.input + u.output,
    prompt_tokens_details: { cached_tokens: u.cacheRead, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: u.reasoning, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function chatJson(reply: FakeReply, model: string, u: Required<FakeUsage>, id: number) {
  return {
    id: `chatcmpl-fake${id}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: text(reply), refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
    ...(reply.noUsage ? {} : { usage: openaiUsage(u) }),
    service_tier: 'default',
    system_fingerprint: 'fp_fake',
  };
}

async function chatStream(res: ServerResponse, reply: FakeReply, model: string, u: Required<FakeUsage>, id: number, includeUsage: boolean): Promise<void> {
  const base = { id: `chatcmpl-fake${id}`, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model, system_fingerprint: 'fp_fake', ...(includeUsage ? { usage: null } : {}) };
  const chunk = (delta: Obj, finish: string | null) => JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  const events: Array<{ data: string; piece?: number }> = [{ data: chunk({ role: 'assistant', content: '', refusal: null }, null) }];
  const n = reply.pieces ?? 5;
  for (let i = 0; i < n; i++) events.push({ data: chunk({ content: piece(i) }, null), piece: i });
  events.push({ data: chunk({}, 'stop'), piece: n });
  if (includeUsage) events.push({ data: JSON.stringify({ ...base, choices: [], usage: openaiUsage(u) }), piece: n });
  events.push({ data: '[DONE]', piece: n });
  await sse(res, reply, events, { data: JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } }) });
}

// ----------------------------------------------------------------------------------------------
// OpenAI Responses

function responsesUsage(u: Required<FakeUsage>) {
  return {
    input_tokens: u.input,
    input_tokens_details: { cached_tokens: u.cacheRead },
    output_tokens: u.output,
    output_tokens_details: { reasoning_tokens: u.reasoning },
    total_tokens: u.input + u.output,
  };
}

function responseObject(reply: FakeReply, model: string, u: Required<FakeUsage> | null, id: number, status: string, withOutput: boolean) {
  const t = text(reply);
  return {
    id: `resp_fake${id}`,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model,
    output: withOutput ? [{ id: `msg_fake${id}`, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: t, annotations: [], logprobs: [] }] }] : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: true,
    temperature: 1,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: 1,
    truncation: 'disabled',
    usage: u === null ? null : responsesUsage(u),
    user: null,
    metadata: {},
  };
}

function responsesJson(reply: FakeReply, model: string, u: Required<FakeUsage>, id: number) {
  return responseObject(reply, model, reply.noUsage ? null : u, id, 'completed', true);
}

async function responsesStream(res: ServerResponse, reply: FakeReply, model: string, u: Required<FakeUsage>, id: number): Promise<void> {
  let seq = 0;
  const ev = (type: string, fields: Obj, pieceIndex?: number) => ({ event: type, data: JSON.stringify({ type, sequence_number: seq++, ...fields }), ...(pieceIndex !== undefined ? { piece: pieceIndex } : {}) });
  const itemId = `msg_fake${id}`;
  const n = reply.pieces ?? 5;
  const t = text(reply);
  const events = [
    ev('response.created', { response: responseObject(reply, model, null, id, 'in_progress', false) }),
    ev('response.in_progress', { response: responseObject(reply, model, null, id, 'in_progress', false) }),
    ev('response.output_item.added', { output_index: 0, item: { id: itemId, type: 'message', status: 'in_progress', role: 'assistant', content: [] } }),
    ev('response.content_part.added', { item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } }),
  ];
  for (let i = 0; i < n; i++) events.push(ev('response.output_text.delta', { item_id: itemId, output_index: 0, content_index: 0, delta: piece(i), logprobs: [] }, i));
  events.push(
    ev('response.output_text.done', { item_id: itemId, output_index: 0, content_index: 0, text: t, logprobs: [] }, n),
    ev('response.content_part.done', { item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', text: t, annotations: [], logprobs: [] } }, n),
    ev('response.output_item.done', { output_index: 0, item: { id: itemId, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: t, annotations: [], logprobs: [] }] } }, n),
    ev('response.completed', { response: responseObject(reply, model, u, id, 'completed', true) }, n),
  );
  await sse(res, reply, events, { event: 'error', data: JSON.stringify({ type: 'error', code: 'server_error', message: 'The server had an error.', param: null, sequence_number: 999 }) });
}

// ----------------------------------------------------------------------------------------------
// Anthropic Messages

function anthropicUsage(u: Required<FakeUsage>, outputTokens: number) {
  // Anthropic's input_tokens EXCLUDE the cache tokens.
  return {
    input_tokens: u.input - u.cacheRead - u.cacheWrite,
    cache_creation_input_tokens: u.cacheWrite,
    cache_read_input_tokens: u.cacheRead,
    output_tokens: outputTokens,
    service_tier: 'standard',
  };
}

function messagesJson(reply: FakeReply, model: string, u: Required<FakeUsage>, id: number) {
  return {
    id: `msg_fake${id}`,
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text: text(reply) }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    ...(reply.noUsage ? {} : { usage: anthropicUsage(u, u.output) }),
  };
}

async function messagesStream(res: ServerResponse, reply: FakeReply, model: string, u: Required<FakeUsage>, id: number): Promise<void> {
  const ev = (type: string, fields: Obj, pieceIndex?: number) => ({ event: type, data: JSON.stringify({ type, ...fields }), ...(pieceIndex !== undefined ? { piece: pieceIndex } : {}) });
  const n = reply.pieces ?? 5;
  const events = [
    ev('message_start', { message: { id: `msg_fake${id}`, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: anthropicUsage(u, 1) } }),
    ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
    { event: 'ping', data: JSON.stringify({ type: 'ping' }) },
  ];
  for (let i = 0; i < n; i++) events.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece(i) } }, i));
  events.push(
    ev('content_block_stop', { index: 0 }, n),
    ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: u.output } }, n),
    ev('message_stop', {}, n),
  );
  await sse(res, reply, events, { event: 'error', data: JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }) });
}
