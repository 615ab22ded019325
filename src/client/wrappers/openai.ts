/**
 * `wrapOpenAI(client, options)`: the official `openai` SDK (tested with 6.49.0) with every Chat
 * Completions and Responses call recorded in Cost Guard. See wrappers/index.ts for how and why.
 */
import type OpenAI from 'openai';
import { currentCostContext } from '../context.js';
import { CALL, type Call, callFromWire, createMeter, type Meter, observeAttempt, prepareCall, type WrapperOptions } from './meter.js';

type Fetch = (url: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Marks our fetch, and holds the one it wraps (so wrapping again replaces it rather than stacking). */
const BASE_FETCH = Symbol.for('costguard.openai.baseFetch');
const WRAPPED = Symbol.for('costguard.wrapped');

type MeteredFetch = Fetch & { [BASE_FETCH]?: Fetch };

interface ClientInternals {
  fetch: MeteredFetch;
  maxRetries: number;
  request(options: unknown, remainingRetries?: number | null): unknown;
  withOptions(options: Record<string, unknown>): ClientInternals;
  [WRAPPED]?: Meter;
}

function urlOf(url: string | URL | Request): string {
  return typeof url === 'string' ? url : url instanceof URL ? url.href : url.url;
}

function meteredFetch(base: Fetch, meter: Meter): MeteredFetch {
  const f: MeteredFetch = async (url, init) => {
    const call = (init as { [CALL]?: Call } | undefined)?.[CALL] ?? callFromWire(meter, urlOf(url), init as { method?: string; body?: unknown });
    if (!call) return base.call(undefined, url, init);
    return observeAttempt(
      call,
      init?.signal,
      (body) => base.call(undefined, url, body === undefined ? init : { ...init, body }),
      init?.body,
    );
  };
  f[BASE_FETCH] = base;
  return f;
}

function install(client: ClientInternals, meter: Meter): void {
  const request = client.request;
  const withOptions = client.withOptions;
  client[WRAPPED] = meter;
  client.request = function (this: ClientInternals, options: unknown, remainingRetries?: number | null) {
    const ctx = currentCostContext();
    const maxRetries = this.maxRetries;
    const prepared =
      options !== null && typeof (options as PromiseLike<unknown>)?.then === 'function'
        ? Promise.resolve(options as PromiseLike<unknown>).then((o) => prepareCall(meter, o, ctx, maxRetries))
        : prepareCall(meter, options, ctx, maxRetries);
    return request.call(this, prepared, remainingRetries);
  };
  // A copy made with withOptions() is metered too (with the same options), also when it is given a fetch of its own.
  client.withOptions = function (this: ClientInternals, options: Record<string, unknown>) {
    const given = options?.fetch as MeteredFetch | undefined;
    const copy = withOptions.call(this, given ? { ...options, fetch: meteredFetch(given[BASE_FETCH] ?? given, meter) } : options);
    install(copy, meter);
    return copy;
  };
}

/**
 * Returns a copy of `client` (made with the SDK's own `withOptions`, so it keeps its API key, base
 * URL, retries, timeout, headers and fetch) whose Chat Completions and Responses calls, plain and
 * streamed, are recorded through `options.tracker`. The copy is an instance of the same class with
 * the same types and helpers; `client` itself is left as it was. Wrapping a wrapped client replaces
 * the first wrapping's options.
 */
export function wrapOpenAI<C extends OpenAI>(client: C, options: WrapperOptions): C {
  // The SDK's base error: a denial must pass its stream helpers unwrapped (see BudgetDeniedError).
  const meter = createMeter('openai', options, (client?.constructor as { OpenAIError?: unknown } | undefined)?.OpenAIError);
  const internals = client as unknown as ClientInternals;
  if (typeof internals?.withOptions !== 'function' || typeof internals.request !== 'function') {
    throw new TypeError('wrapOpenAI(client, options): client must be an OpenAI client from the openai package');
  }
  const current = internals.fetch;
  const base = current?.[BASE_FETCH] ?? current ?? globalThis.fetch;
  // The original's own methods, not a previous wrapping's overrides.
  const proto = Object.getPrototypeOf(client) as ClientInternals;
  const copy = proto.withOptions.call(internals, { fetch: meteredFetch(base, meter) });
  install(copy, meter);
  return copy as unknown as C;
}

/** True for a client returned by `wrapOpenAI` (or a copy of one). */
export function isWrappedOpenAI(client: unknown): boolean {
  return typeof client === 'object' && client !== null && (client as ClientInternals)[WRAPPED]?.sdk === 'openai';
}
