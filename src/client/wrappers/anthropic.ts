/**
 * `wrapAnthropic(client, options)`: the official `@anthropic-ai/sdk` (tested with 1.14.0) with every
 * Messages call (`messages.create`, `messages.stream`, `beta.messages.*`, tool runners) recorded in
 * Cost Guard. See wrappers/index.ts for how and why.
 */
import type Anthropic from '@anthropic-ai/sdk';
import { currentCostContext } from '../context.js';
import { CALL, type Call, callFromOptions, createMeter, type Meter, observeAttempt, prepareCall, type WrapperOptions } from './meter.js';

/** The SDK's middleware signature (`Middleware` in @anthropic-ai/sdk), structurally. */
type Request = RequestInit & { url: string };
type Middleware = (request: Request, next: (request: Request) => Promise<Response>, ctx: { readonly options?: unknown }) => Promise<Response>;

const METERING = Symbol.for('costguard.anthropic.middleware');
const WRAPPED = Symbol.for('costguard.wrapped');
/** The SDK's default, for the rare call that reaches the middleware without a call record (its own maxRetries option wins). */
const DEFAULT_MAX_RETRIES = 2;

interface ClientInternals {
  middleware: ReadonlyArray<Middleware & { [METERING]?: true }>;
  maxRetries: number;
  request(options: unknown, remainingRetries?: number | null): unknown;
  withOptions(options: Record<string, unknown>): ClientInternals;
  [WRAPPED]?: Meter;
}

function meteringMiddleware(meter: Meter): Middleware & { [METERING]: true } {
  const mw = (async (request, next, ctx) => {
    const options = ctx?.options as { [CALL]?: Call } | undefined;
    const call = options?.[CALL] ?? callFromOptions(meter, options, DEFAULT_MAX_RETRIES);
    if (!call) return next(request);
    return observeAttempt(call, request.signal, (body) => next(body === undefined ? request : { ...request, body }), request.body);
  }) as Middleware & { [METERING]: true };
  mw[METERING] = true;
  return mw;
}

const notOurs = (list: ReadonlyArray<Middleware & { [METERING]?: true }> | undefined) => (list ?? []).filter((m) => m[METERING] !== true);

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
  // A copy made with withOptions() is metered too, also when it is given middleware of its own.
  client.withOptions = function (this: ClientInternals, options: Record<string, unknown>) {
    let copy: ClientInternals;
    if (options && 'middleware' in options) {
      copy = withOptions.call(this, { ...options, middleware: [meteringMiddleware(meter), ...notOurs(options.middleware as ClientInternals['middleware'])] });
    } else {
      copy = withOptions.call(this, options);
    }
    install(copy, meter);
    return copy;
  };
}

/**
 * Returns a copy of `client` (made with the SDK's own `withOptions`: same credentials, base URL,
 * retries, timeout, headers, fetch and middleware) whose Messages calls, plain and streamed, are
 * recorded through `options.tracker`. Recording runs as the outermost of the client's `middleware`
 * (the SDK's documented extension point), so it sees the canonical Messages traffic (also on
 * Bedrock or Vertex clients, whose wire formats the SDK converts inside the chain) and the response
 * the SDK itself reads. `client` itself is left as it was; wrapping a wrapped client replaces the
 * first wrapping's options.
 */
export function wrapAnthropic<C extends Anthropic>(client: C, options: WrapperOptions): C {
  // The SDK's base error: a denial must pass its stream helpers unwrapped (see BudgetDeniedError).
  const meter = createMeter('anthropic', options, (client?.constructor as { AnthropicError?: unknown } | undefined)?.AnthropicError);
  const internals = client as unknown as ClientInternals;
  if (typeof internals?.withOptions !== 'function' || typeof internals.request !== 'function') {
    throw new TypeError('wrapAnthropic(client, options): client must be an Anthropic client from the @anthropic-ai/sdk package');
  }
  const proto = Object.getPrototypeOf(client) as ClientInternals;
  const copy = proto.withOptions.call(internals, { middleware: [meteringMiddleware(meter), ...notOurs(internals.middleware)] });
  install(copy, meter);
  return copy as unknown as C;
}

/** True for a client returned by `wrapAnthropic` (or a copy of one). */
export function isWrappedAnthropic(client: unknown): boolean {
  return typeof client === 'object' && client !== null && (client as ClientInternals)[WRAPPED]?.sdk === 'anthropic';
}
