/**
 * The metering core the OpenAI and Anthropic wrappers share: it prepares a call before the SDK sends
 * it (attribution, prompt guard, `stream_options`, the request's abort signal), watches each HTTP
 * attempt's response as the SDK reads it, and records the call exactly once through
 * `CostTracker.record()`.
 *
 * Two hooks per client, both on the SDK's own machinery (see wrappers/index.ts for why):
 *   - `client.request()` (every SDK method and helper goes through it, once per call): `prepareCall`
 *     gives the call a `Call` record that rides along in the request's own `fetchOptions` (a symbol
 *     key, which the SDK copies into the `RequestInit` it hands to fetch) and in its options;
 *   - the transport: OpenAI's `fetch` client option, Anthropic's `middleware` client option.
 *     `observeAttempt` runs there for each attempt, and hands the SDK a `Response` whose body is a
 *     pass-through of the real one: the bytes go on unchanged (one exception: the usage chunk of a
 *     Chat Completions stream whose usage the wrapper asked for, see `streamUsage`), and a side
 *     channel parses them as they pass.
 *
 * When a call is recorded:
 *   - a JSON response: when its body has been read to the end (the SDK reads it before it resolves),
 *     with the provider's usage; or when the read fails or is cancelled;
 *   - a stream: as soon as the provider's final usage or the stream's end marker passes, else when the
 *     stream ends, is cancelled (the consumer `break`s: status `incomplete`), is aborted (an
 *     AbortSignal, `controller.abort()`, `MessageStream.abort()`, the middleware's disconnect: status
 *     `aborted`) or fails (status `error`), the last three with estimated tokens unless the provider's
 *     usage already arrived;
 *   - a call that got no response: on its last attempt (the SDK retries the others), status `aborted`
 *     (the caller's signal) or `error`;
 *   - an HTTP error: on its last attempt, status `error`, zero tokens (`recordErrors: false` skips it).
 * At most once per call (a flag on the call), whatever mix of iteration, `finalMessage()`, `tee()`
 * and aborts the caller uses. Recording never throws into the caller and never changes what the SDK
 * returns: failures go to `onError`, else the logger, else `console.warn`.
 */
import type { Logger } from '../../lib/logger.js';
import type { TokenUsage, UsageEventInput } from '../../domain/usage.js';
import { type CallStatus, type CostAttribution, type CostContext, currentCostContext } from '../context.js';
import { applyPromptGuard, type PromptGuardChange, type PromptGuardOptions, validatePromptGuard } from './prompt-guard.js';
import { type Api, estimateTokens, newObservation, type Observation, observeJson, observeSseEvent, promptChars, requestedModel } from './protocols.js';
import { SseParser } from './sse.js';
import { cacheKeyHash } from '../cache/canonical.js';
import { type CacheEntry, type MissOutcome, type ResponseCache, ResponseCache as ResponseCacheClass, isNormalFinish } from '../cache/response-cache.js';
import type { AuthorizeRequest, AuthorizeResult } from '../preflight.js';
import type { Complexity } from '../../domain/advice.js';

const DENIED = Symbol.for('costguard.budgetDenied');

/**
 * Thrown by a wrapped call made with the `authorize` option when the pre-flight check denies it (or
 * admits only a model the wrapper will not send, see `AuthorizeOptions.onDowngrade`): the call was
 * not sent. `decision` is the check's full answer (reason, scopes and what remains).
 *
 * The wrappers throw it as a subclass of the SDK's own base error (`OpenAIError`, `AnthropicError`),
 * because the SDKs' stream helpers (`chat.completions.stream()`, `responses.stream()`,
 * `messages.stream()`) pass those through as they are and wrap any other error in one of theirs;
 * `instanceof BudgetDeniedError` holds for both forms.
 */
export class BudgetDeniedError extends Error {
  override readonly name = 'BudgetDeniedError';
  readonly [DENIED] = true;
  constructor(readonly decision: AuthorizeResult, why?: string) {
    super(deniedMessage(decision, why));
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== BudgetDeniedError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === 'object' && value !== null && (value as { [DENIED]?: unknown })[DENIED] === true;
  }
}

/**
 * The denial in words, naming the budget that refused: the hard budget with the least left of those
 * that cannot cover the worst case (else the one with the least left), never a roomy one beside it.
 */
function deniedMessage(decision: AuthorizeResult, why: string | undefined): string {
  const worst = Number(decision.worstCaseUsd ?? decision.reservedUsd ?? 0);
  const byRemaining = [...decision.scopes].sort((a, b) => Number(a.remainingUsd) - Number(b.remainingUsd));
  const hard = byRemaining.filter((s) => s.enforcement === 'hard');
  const scope = hard.find((s) => Number(s.remainingUsd) < worst) ?? hard[0] ?? byRemaining[0];
  return (
    `Cost Guard denied the call before it was sent (${decision.reason ?? decision.decision}): ` +
    (why ? `${why}; ` : '') +
    `worst case ${decision.worstCaseUsd ?? 'unknown'} USD` +
    (scope ? `, ${scope.scope} has ${scope.remainingUsd} USD left of its ${scope.period} budget of ${scope.budgetUsd} USD` : '')
  );
}

type ErrorClass = new (message: string) => Error;
const deniedClasses = new WeakMap<ErrorClass, ErrorClass>();

/** A BudgetDeniedError that is also an instance of the SDK's base error class (when known). */
function deniedError(meter: Meter, decision: AuthorizeResult, why?: string): Error {
  const base = meter.sdkError;
  if (!base) return new BudgetDeniedError(decision, why);
  let cls = deniedClasses.get(base);
  if (!cls) {
    cls = class extends base {
      override readonly name = 'BudgetDeniedError';
      readonly [DENIED] = true;
      declare readonly decision: AuthorizeResult;
    };
    deniedClasses.set(base, cls);
  }
  const err = new cls(deniedMessage(decision, why)) as Error & { decision: AuthorizeResult };
  Object.defineProperty(err, 'decision', { value: decision, enumerable: true });
  return err;
}

/** What the wrapper does with a `downgrade` decision, see AuthorizeOptions.onDowngrade. */
export type OnDowngrade = 'apply' | 'keep' | 'deny';
const ON_DOWNGRADE: readonly OnDowngrade[] = ['apply', 'keep', 'deny'];

/** The wrapper's `authorize` option in full. */
export interface AuthorizeOptions {
  /** Task complexity for the check's model advice. */
  complexity?: Complexity;
  /** The hold's lifetime (default: the tracker's configured one); renewed every third of it while the call runs. */
  ttlSeconds?: number;
  /** The output limit assumed for the worst case when the request sets none (and then sent with it). Default 4096. */
  defaultMaxOutputTokens?: number;
  /**
   * When a hard budget cannot cover the model asked for but a cheaper one fits:
   *   - `apply` (default): the check may reserve the cheaper advised model (`cheaper_fits`), and the
   *     wrapper then sends that model with the advised output limit (the event's
   *     `metadata.downgradedFrom` names the model asked for); advice of another provider than the
   *     wrapped SDK's cannot be sent, so the call is denied;
   *   - `keep`: the check reserves the model asked for or denies (`allowDowngrade: false`);
   *   - `deny`: as `keep`, and any `downgrade` decision (advice near or over a budget) is a denial.
   */
  onDowngrade?: OnDowngrade;
}

/** The part of CostTracker the wrappers use. */
export interface UsageRecorder {
  record(event: UsageEventInput): Promise<unknown>;
  /** Pre-flight checks (CostTracker with `preflight` configured): needed by the `authorize` option. */
  authorize?(request: AuthorizeRequest): Promise<AuthorizeResult>;
  renewHold?(holdId: string, ttlSeconds?: number): Promise<{ ok: true; expiresAt: string } | { ok: false; state: string }>;
  releaseHold?(holdId: string): Promise<string>;
}

/** Whether to ask OpenAI Chat Completions streams for their usage (`stream_options.include_usage`). */
export type StreamUsageMode = 'auto' | 'always' | 'never';

export interface WrapperOptions extends CostAttribution {
  /** Where calls are recorded: a CostTracker. */
  tracker: UsageRecorder;
  /**
   * The provider name recorded (it selects the price). Default `openai` / `anthropic`; set it when the
   * SDK talks to another provider's compatible API (e.g. `azure`, `groq`).
   */
  provider?: string;
  /**
   * Used when neither the request context nor `userId` names a user. Default `anonymous`.
   * (`userId`, `taskType`, `tags`, `team`, `project` of these options are defaults: the request
   * context, see src/client/context.ts, wins where it sets a value; tags are merged.)
   */
  fallbackUserId?: string;
  /**
   * OpenAI Chat Completions streams report usage only when asked (`stream_options: { include_usage: true }`).
   *   - `auto` (default): ask when the caller did not set `stream_options`; if the server refuses the
   *     option (a 400 naming it: some compatible servers), the request is sent again without it and
   *     this client stops asking;
   *   - `always`: also add `include_usage: true` to a caller's `stream_options` that leaves it unset;
   *   - `never`: do not ask (such streams are recorded with estimated tokens).
   * When the wrapper asked, the usage-only chunk it brings (empty `choices`) is taken out of the
   * stream the caller reads, so the caller's code sees the chunks it would have seen (other chunks
   * then carry `usage: null`, which the SDK's types allow).
   * Responses and Anthropic streams always report usage.
   */
  streamUsage?: StreamUsageMode;
  /** The opt-in prompt guard (off by default): `true` for the original's rules, or an object, see prompt-guard.ts. */
  promptGuard?: PromptGuardOptions | boolean;
  /** Record calls that failed with nothing billable (HTTP errors, connections refused), with zero tokens. Default true. */
  recordErrors?: boolean;
  /** Called when a call could not be recorded (instead of logging it). Must not throw. */
  onError?: (error: unknown, event: UsageEventInput | undefined) => void;
  /** Where recording failures are logged when there is no `onError`. Default: the tracker's logger, else console. */
  logger?: Pick<Logger, 'warn'>;
  /** Called with each event as it is handed to the tracker (e.g. for local metrics). Must not throw. */
  onRecord?: (event: UsageEventInput) => void;
  /** Clock for durations. Default `performance.now`. */
  now?: () => number;
  /**
   * The response cache (src/client/cache): identical requests within a task type's TTL are answered
   * from Redis, recorded as cost avoided (never spend). Off without it.
   */
  cache?: ResponseCache;
  /** Whose cache entries a call may read and write (default: the call's user id); shared task types ignore it. */
  tenant?: string;
  /**
   * Pre-flight check before each call (`tracker.authorize`): reserves the call's worst case (prompt
   * estimate plus its output limit) on its budgets; a denial throws BudgetDeniedError and nothing is
   * sent. The hold is renewed every third of its lifetime while the call runs, settled by the call's
   * usage event, and released when the call fails with nothing billable.
   */
  authorize?: boolean | AuthorizeOptions;
}

/** One wrapped client's settings and state. */
export interface Meter {
  sdk: 'openai' | 'anthropic';
  provider: string;
  tracker: UsageRecorder;
  defaults: CostAttribution;
  fallbackUserId: string;
  streamUsage: StreamUsageMode;
  /** `auto` mode: the server refused `stream_options`, do not ask again. */
  streamUsageRefused: boolean;
  promptGuard: PromptGuardOptions | undefined;
  recordErrors: boolean;
  requestIdHeader: string;
  onError: ((error: unknown, event: UsageEventInput | undefined) => void) | undefined;
  logger: Pick<Logger, 'warn'> | undefined;
  onRecord: ((event: UsageEventInput) => void) | undefined;
  now: () => number;
  cache: ResponseCache | undefined;
  tenant: string | undefined;
  authorize: AuthorizeOptions | undefined;
  /** The SDK's base error class (denials are thrown as a subclass of it, see BudgetDeniedError). */
  sdkError: ErrorClass | undefined;
}

/** The key under which a call's record travels with the SDK's request. */
export const CALL = Symbol.for('costguard.call');

/** One SDK call (all its HTTP attempts). */
export interface Call {
  meter: Meter;
  api: Api;
  /** The request body as sent (after the guard), or its JSON text when only the wire was seen. */
  body: unknown;
  rawBody: string | undefined;
  context: CostContext | undefined;
  attribution: ResolvedAttribution;
  stream: boolean;
  startedAt: number;
  occurredAtMs: number;
  /** The signal the SDK checks to tell a caller's abort (the caller's, merged with the context's). */
  userSignal: AbortSignal | undefined;
  maxRetries: number;
  attempts: number;
  injectedStreamUsage: boolean;
  /** The caller's own `stream_options` (undefined: none), kept when the wrapper adds `include_usage`. */
  callerStreamOptions?: unknown;
  guard: PromptGuardChange | undefined;
  recorded: boolean;
  /** Unlinks the call's signal from the caller's and the context's (once recorded). */
  releaseSignal?: (() => void) | undefined;
  /** The response cache's key for this call (set when the cache applies). */
  cacheHash?: string | undefined;
  /** This call went upstream for its key: stores the answer and hands it to the waiters when it finishes. */
  cacheLead?: ((entry: CacheEntry | null) => void) | undefined;
  /** The bytes handed to the SDK, kept while leading (to store them). */
  captured?: Uint8Array[] | undefined;
  capturedBytes?: number | undefined;
  capturedType?: string | undefined;
  /** What the leader's recording saw (kept until its body ends, then stored or not). */
  leadResult?: { obs: Observation; usage: TokenUsage; model: string; detail: FinishDetail } | undefined;
  /** Answered by the cache. */
  cacheHit?: boolean | undefined;
  /** The pre-flight hold this call runs under, its renewal timer and how often it was renewed. */
  holdId?: string | undefined;
  holdTtlMs?: number | undefined;
  holdTimer?: ReturnType<typeof setInterval> | undefined;
  holdRenewals?: number | undefined;
  /** The model asked for, when the wrapper sent a cheaper one the check reserved for. */
  downgradedFrom?: string | undefined;
}

interface ResolvedAttribution {
  userId: string;
  taskType: string;
  tags: Record<string, string> | undefined;
  team: string | undefined;
  project: string | undefined;
}

const STREAM_USAGE_MODES: readonly StreamUsageMode[] = ['auto', 'always', 'never'];

export function createMeter(sdk: 'openai' | 'anthropic', options: WrapperOptions, sdkError?: unknown): Meter {
  if (typeof options !== 'object' || options === null) throw new TypeError(`wrap${sdk === 'openai' ? 'OpenAI' : 'Anthropic'}(client, options): options must be an object with a tracker`);
  if (typeof options.tracker?.record !== 'function') throw new TypeError('wrapper option tracker must be a CostTracker (an object with record())');
  const streamUsage = options.streamUsage ?? 'auto';
  if (!STREAM_USAGE_MODES.includes(streamUsage)) throw new TypeError(`wrapper option streamUsage must be one of ${STREAM_USAGE_MODES.join(', ')}, got ${String(streamUsage)}`);
  return {
    sdk,
    provider: options.provider ?? sdk,
    tracker: options.tracker,
    defaults: {
      userId: options.userId,
      taskType: options.taskType,
      tags: options.tags,
      team: options.team,
      project: options.project,
    },
    fallbackUserId: options.fallbackUserId ?? 'anonymous',
    streamUsage,
    streamUsageRefused: false,
    promptGuard: validatePromptGuard(options.promptGuard),
    recordErrors: options.recordErrors ?? true,
    requestIdHeader: sdk === 'openai' ? 'x-request-id' : 'request-id',
    onError: options.onError,
    // The tracker's own logger when it has one (CostTracker keeps it in a private field).
    logger: options.logger ?? (options.tracker as { logger?: Pick<Logger, 'warn'> }).logger,
    onRecord: options.onRecord,
    now: options.now ?? (() => performance.now()),
    cache: checkCache(options.cache),
    tenant: checkTenant(options.tenant),
    authorize: checkAuthorize(options),
    sdkError: typeof sdkError === 'function' && (sdkError as { prototype?: unknown }).prototype instanceof Error ? (sdkError as ErrorClass) : undefined,
  };
}

function checkCache(cache: unknown): ResponseCache | undefined {
  if (cache === undefined) return undefined;
  if (!(cache instanceof ResponseCacheClass)) throw new TypeError('wrapper option cache must be a ResponseCache (createResponseCache({ redis, pricing, ... }))');
  return cache;
}

function checkTenant(tenant: unknown): string | undefined {
  if (tenant === undefined) return undefined;
  if (typeof tenant !== 'string' || tenant.length === 0 || tenant.length > 200) throw new TypeError(`wrapper option tenant must be a string of 1-200 characters, got ${JSON.stringify(tenant)}`);
  return tenant;
}

function checkAuthorize(options: WrapperOptions): AuthorizeOptions | undefined {
  const a = options.authorize;
  if (a === undefined || a === false) return undefined;
  const t = options.tracker;
  if (typeof t.authorize !== 'function' || typeof t.renewHold !== 'function' || typeof t.releaseHold !== 'function') {
    throw new TypeError('wrapper option authorize needs a CostTracker with pre-flight checks (authorize, renewHold, releaseHold)');
  }
  if (a === true) return {};
  if (typeof a !== 'object' || a === null) throw new TypeError(`wrapper option authorize must be true or { complexity?, ttlSeconds?, defaultMaxOutputTokens?, onDowngrade? }, got ${String(a)}`);
  if (a.onDowngrade !== undefined && !ON_DOWNGRADE.includes(a.onDowngrade)) throw new TypeError(`wrapper option authorize.onDowngrade must be one of ${ON_DOWNGRADE.join(', ')}, got ${String(a.onDowngrade)}`);
  if (a.ttlSeconds !== undefined && (!Number.isInteger(a.ttlSeconds) || a.ttlSeconds < 1)) throw new TypeError(`wrapper option authorize.ttlSeconds must be a whole number of seconds >= 1, got ${String(a.ttlSeconds)}`);
  if (a.defaultMaxOutputTokens !== undefined && (!Number.isInteger(a.defaultMaxOutputTokens) || a.defaultMaxOutputTokens < 1)) {
    throw new TypeError(`wrapper option authorize.defaultMaxOutputTokens must be a whole number >= 1, got ${String(a.defaultMaxOutputTokens)}`);
  }
  return { ...a };
}

/** Which metered API an SDK request is, from its method and path; undefined for every other endpoint. */
export function apiOf(sdk: 'openai' | 'anthropic', method: unknown, path: unknown): Api | undefined {
  if (typeof path !== 'string' || String(method).toLowerCase() !== 'post') return undefined;
  const q = path.indexOf('?');
  const p = q === -1 ? path : path.slice(0, q);
  if (sdk === 'anthropic') return p === '/v1/messages' ? 'messages' : undefined;
  if (p === '/chat/completions') return 'chat.completions';
  if (p === '/responses') return 'responses';
  return undefined;
}

/** Which metered API a wire request is, from its URL (when a request reaches the transport without a call record). */
function apiOfUrl(sdk: 'openai' | 'anthropic', url: string): Api | undefined {
  let path: string;
  try {
    path = new URL(url).pathname.replace(/\/+$/, '');
  } catch {
    return undefined;
  }
  if (sdk === 'anthropic') return path.endsWith('/v1/messages') ? 'messages' : undefined;
  if (path.endsWith('/chat/completions')) return 'chat.completions';
  if (path.endsWith('/responses')) return 'responses';
  return undefined;
}

function resolveAttribution(meter: Meter, ctx: CostContext | undefined): ResolvedAttribution {
  const d = meter.defaults;
  const c = ctx?.attribution;
  const tags = d.tags || c?.tags ? { ...d.tags, ...c?.tags } : undefined;
  return {
    userId: c?.userId ?? d.userId ?? meter.fallbackUserId,
    taskType: c?.taskType ?? d.taskType ?? 'default',
    tags,
    team: c?.team ?? d.team,
    project: c?.project ?? d.project,
  };
}

type Obj = Record<string | symbol, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The call's signal: aborted when the caller's or the request context's is. A controller of its own
 * with a listener on each (AbortSignal.any costs about 20 us a call); the listeners go when the call
 * is recorded. The SDK adds a listener of its own to the signal it is given and never removes it, so
 * each call gets a fresh signal even when only the context has one (a context can span many calls).
 */
function linkSignals(caller: AbortSignal | null | undefined, context: AbortSignal | undefined): { signal: AbortSignal | undefined; release: (() => void) | undefined } {
  if (!context) return { signal: caller ?? undefined, release: undefined };
  const controller = new AbortController();
  const sources = caller && caller !== context ? [caller, context] : [context];
  const aborted = sources.find((s) => s.aborted);
  if (aborted) {
    controller.abort(aborted.reason);
    return { signal: controller.signal, release: undefined };
  }
  const onAbort = function (this: AbortSignal) {
    release();
    controller.abort(this.reason);
  };
  const release = () => {
    for (const s of sources) s.removeEventListener('abort', onAbort);
  };
  for (const s of sources) s.addEventListener('abort', onAbort, { once: true });
  return { signal: controller.signal, release };
}

function newCall(meter: Meter, api: Api, ctx: CostContext | undefined, fields: Partial<Call>): Call {
  return {
    meter,
    api,
    body: undefined,
    rawBody: undefined,
    context: ctx,
    attribution: resolveAttribution(meter, ctx),
    stream: false,
    startedAt: meter.now(),
    occurredAtMs: Date.now(),
    userSignal: undefined,
    maxRetries: 0,
    attempts: 0,
    injectedStreamUsage: false,
    guard: undefined,
    recorded: false,
    ...fields,
  };
}

/**
 * Before the SDK builds the request: returns the options to send (a copy when anything changes; the
 * caller's objects are never modified). Any failure here leaves the call exactly as the caller made
 * it (reported, not thrown).
 */
export function prepareCall(meter: Meter, options: unknown, ctx: CostContext | undefined, clientMaxRetries: number): unknown {
  try {
    if (!isObj(options)) return options;
    const api = apiOf(meter.sdk, options.method, options.path);
    if (!api) return options;
    const call = newCall(meter, api, ctx, {});
    let body = options.body;
    if (meter.promptGuard && isObj(body)) {
      const r = applyPromptGuard(api, body, call.attribution.taskType, meter.promptGuard);
      body = r.body;
      call.guard = r.change;
    }
    call.stream = options.stream === true || (isObj(body) && body.stream === true);
    if (api === 'chat.completions' && call.stream && isObj(body) && meter.streamUsage !== 'never') {
      const so = body.stream_options;
      call.callerStreamOptions = so;
      if (so === undefined || so === null) {
        if (meter.streamUsage === 'always' || !meter.streamUsageRefused) {
          body = { ...body, stream_options: { include_usage: true } };
          call.injectedStreamUsage = true;
        }
      } else if (meter.streamUsage === 'always' && isObj(so) && so.include_usage === undefined) {
        body = { ...body, stream_options: { ...so, include_usage: true } };
        call.injectedStreamUsage = true;
      }
    }
    call.body = body;
    call.cacheHash = cacheHashOf(call, body, options.headers);
    const { signal, release } = linkSignals(options.signal as AbortSignal | null | undefined, ctx?.signal);
    call.userSignal = signal;
    call.releaseSignal = release;
    call.maxRetries = typeof options.maxRetries === 'number' ? options.maxRetries : clientMaxRetries;
    const out: Obj = { ...options, fetchOptions: { ...(options.fetchOptions as object | undefined), [CALL]: call }, [CALL]: call };
    if (body !== options.body) out.body = body;
    if (signal) out.signal = signal;
    if (meter.authorize) return authorizeCall(call, out);
    return out;
  } catch (err) {
    report(meter, err, undefined);
    return options;
  }
}

/** The response cache's key of a call sending `body` (undefined when the cache does not apply). */
function cacheHashOf(call: Call, body: unknown, headers: unknown): string | undefined {
  const meter = call.meter;
  const taskType = call.attribution.taskType;
  if (!meter.cache || !isObj(body) || body.background === true || meter.cache.ttlOf(taskType) === 0) return undefined;
  const hash = cacheKeyHash({
    provider: meter.provider,
    api: call.api,
    body: asCallerSent(call, body),
    scope: meter.cache.scopeOf(taskType, meter.tenant ?? call.attribution.userId),
    headers: answerHeaders(headers),
  });
  return meter.cache.keyOf(taskType, hash);
}

/**
 * The body as the caller made it as far as the answer it gets is concerned: without the
 * `stream_options` the wrapper added. A stream's entry is the bytes its first caller read (with the
 * usage chunk only when that caller asked for it), so callers who asked and callers who did not
 * must not share one.
 */
function asCallerSent(call: Call, body: Obj): Obj {
  if (!call.injectedStreamUsage) return body;
  const out = { ...body };
  if (call.callerStreamOptions === undefined) delete out.stream_options;
  else out.stream_options = call.callerStreamOptions;
  return out;
}

/** Request headers that change the answer (beta features), lower-cased, for the cache key. */
function answerHeaders(headers: unknown): Record<string, string> | undefined {
  if (!isObj(headers)) return undefined;
  let out: Record<string, string> | undefined;
  for (const k of Object.keys(headers)) {
    const name = k.toLowerCase();
    const v = headers[k];
    if (name.endsWith('-beta') && (typeof v === 'string' || typeof v === 'number')) (out ??= {})[name] = String(v);
  }
  return out;
}

/** The request's own output limit, if it sets one. */
function maxOutputOf(body: unknown): number | undefined {
  if (!isObj(body)) return undefined;
  for (const k of ['max_completion_tokens', 'max_tokens', 'max_output_tokens']) {
    const v = body[k];
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  }
  return undefined;
}

/**
 * The field a request's output limit goes in: the one the request uses; else Chat Completions'
 * `max_completion_tokens` for OpenAI itself and `max_tokens` for compatible servers (which know it
 * more widely).
 */
function limitField(call: Call, body: Obj): string {
  if (call.api === 'responses') return 'max_output_tokens';
  if (call.api === 'messages') return 'max_tokens';
  if (body.max_completion_tokens != null) return 'max_completion_tokens';
  if (body.max_tokens != null) return 'max_tokens';
  return call.meter.provider === 'openai' ? 'max_completion_tokens' : 'max_tokens';
}

/** Lets the hold go (fire and forget; failures reported). */
function releaseHoldOf(meter: Meter, holdId: string | null): void {
  if (holdId) void meter.tracker.releaseHold!(holdId).catch((err: unknown) => report(meter, err, undefined));
}

/**
 * The pre-flight check of a call (the `authorize` option): the options to send, or a
 * BudgetDeniedError. What is sent never costs more than what was reserved: the output limit the
 * worst case assumed is sent when the request set none, and a downgrade reserved for
 * (`cheaper_fits`) is sent as the advised model with the advised limit.
 */
async function authorizeCall(call: Call, out: Obj): Promise<Obj> {
  const meter = call.meter;
  const a = meter.authorize!;
  const onDowngrade = a.onDowngrade ?? 'apply';
  const attr = call.attribution;
  const own = maxOutputOf(call.body);
  const model = requestedModel(call.body) ?? 'unknown';
  const request: AuthorizeRequest = {
    userId: attr.userId,
    provider: meter.provider,
    model,
    taskType: attr.taskType,
    inputTokens: estimateTokens(promptChars(call.body)),
    maxOutputTokens: own ?? a.defaultMaxOutputTokens ?? 4096,
  };
  if (attr.team !== undefined) request.teamId = attr.team;
  if (attr.project !== undefined) request.projectId = attr.project;
  if (a.complexity !== undefined) request.complexity = a.complexity;
  if (a.ttlSeconds !== undefined) request.ttlSeconds = a.ttlSeconds;
  if (onDowngrade !== 'apply') request.allowDowngrade = false;
  let result: AuthorizeResult;
  try {
    result = await meter.tracker.authorize!(request);
  } catch (err) {
    call.recorded = true; // never sent: nothing to record
    call.releaseSignal?.();
    throw err;
  }
  const refuse = (why?: string): never => {
    releaseHoldOf(meter, result.holdId);
    call.recorded = true;
    call.releaseSignal?.();
    throw deniedError(meter, result, why);
  };
  if (result.decision === 'deny') {
    releaseHoldOf(meter, result.holdId);
    // A call the cache can answer costs nothing: it goes ahead without a hold (and is served as a
    // hit). Looked up only on a denial, so the common path pays nothing for it. Should the entry
    // expire in between, the call goes upstream unreserved (a window of one Redis round trip).
    // An allowed call would have been sent (and stored) with the assumed limit: its key is looked up too.
    const keys = [call.cacheHash, own === undefined && isObj(call.body) ? cacheHashOf(call, { ...call.body, [limitField(call, call.body)]: request.maxOutputTokens }, out.headers) : undefined];
    for (const key of keys) {
      if (!key || !meter.cache || !(await meter.cache.get(key).catch(() => null))) continue;
      if (key !== call.cacheHash) {
        call.body = { ...(call.body as Obj), [limitField(call, call.body as Obj)]: request.maxOutputTokens };
        out.body = call.body;
        call.cacheHash = key;
      }
      return out;
    }
    refuse();
  }
  let body = call.body;
  if (result.decision === 'downgrade' && onDowngrade === 'deny') {
    refuse(`the check admitted only ${result.advice ? `${result.advice.provider}/${result.advice.model}` : 'a cheaper model'} and authorize.onDowngrade is 'deny'`);
  }
  // Reserved for the advised model, not the one asked for: send the advised one, or nothing.
  if (result.decision === 'downgrade' && result.reason === 'cheaper_fits' && result.advice && isObj(body)) {
    const advice = result.advice;
    if (advice.provider.toLowerCase() !== meter.provider.toLowerCase()) {
      refuse(`only ${advice.provider}/${advice.model} fits, which this ${meter.provider} client cannot call`);
    }
    body = { ...body, model: advice.model, [limitField(call, body)]: advice.maxOutputTokens };
    call.downgradedFrom = model;
  } else if (own === undefined && isObj(body)) {
    body = { ...body, [limitField(call, body)]: request.maxOutputTokens };
  }
  if (body !== call.body) {
    call.body = body;
    out.body = body;
    call.cacheHash = cacheHashOf(call, body, out.headers);
  }
  if (result.holdId) {
    call.holdId = result.holdId;
    call.holdTtlMs = result.expiresAt ? Math.max(1000, Date.parse(result.expiresAt) - Date.now()) : (a.ttlSeconds ?? 60) * 1000;
    call.holdRenewals = 0;
    // A call the SDK gives up before sending (the caller aborted): its hold goes back at once.
    call.userSignal?.addEventListener('abort', () => {
      if (call.attempts === 0) {
        call.recorded = true;
        endHold(call, false);
      }
    }, { once: true });
  }
  return out;
}

/** Renews the call's hold every third of its lifetime while the call runs (from its first attempt). */
function startHoldRenewal(call: Call): void {
  if (!call.holdId || call.holdTimer || call.recorded) return;
  const meter = call.meter;
  const ttlMs = call.holdTtlMs ?? 60_000;
  const ttlSeconds = meter.authorize?.ttlSeconds ?? Math.max(1, Math.round(ttlMs / 1000));
  call.holdTimer = setInterval(() => {
    const id = call.holdId;
    if (!id || call.recorded) return;
    meter.tracker.renewHold!(id, ttlSeconds).then(
      (r) => {
        if (r.ok) call.holdRenewals = (call.holdRenewals ?? 0) + 1;
        else if (call.holdTimer) clearInterval(call.holdTimer);
      },
      (err: unknown) => report(meter, err, undefined),
    );
  }, Math.max(250, Math.floor(ttlMs / 3)));
  call.holdTimer.unref?.();
}

/** Stops renewing; `settled`: the usage event carries the hold, else it is released. */
function endHold(call: Call, settled: boolean): void {
  if (call.holdTimer) clearInterval(call.holdTimer);
  call.holdTimer = undefined;
  const id = call.holdId;
  if (!id || settled) return;
  call.holdId = undefined;
  void call.meter.tracker.releaseHold!(id).catch((err: unknown) => report(call.meter, err, undefined));
}

/** A call that reached the transport without going through `prepareCall` (e.g. a future SDK path): recorded from what the wire shows. */
export function callFromWire(meter: Meter, url: string, init: { method?: string; body?: unknown } | undefined): Call | undefined {
  if (String(init?.method ?? 'GET').toUpperCase() !== 'POST') return undefined;
  const api = apiOfUrl(meter.sdk, url);
  if (!api) return undefined;
  const rawBody = typeof init?.body === 'string' ? init.body : undefined;
  let stream = false;
  if (rawBody !== undefined) stream = /"stream"\s*:\s*true/.test(rawBody);
  return newCall(meter, api, currentCostContext(), { rawBody, stream, maxRetries: 0 });
}

/** A call that reached Anthropic's middleware with its SDK options but without a call record. */
export function callFromOptions(meter: Meter, options: unknown, clientMaxRetries: number): Call | undefined {
  if (!isObj(options)) return undefined;
  const api = apiOf(meter.sdk, options.method, options.path);
  if (!api) return undefined;
  const body = options.body;
  return newCall(meter, api, currentCostContext(), {
    body,
    stream: options.stream === true || (isObj(body) && body.stream === true),
    userSignal: (options.signal as AbortSignal | null | undefined) ?? undefined,
    maxRetries: typeof options.maxRetries === 'number' ? options.maxRetries : clientMaxRetries,
  });
}

// ---------------------------------------------------------------------------------------------
// One HTTP attempt

/** Sends an attempt (`send`, with an optional replacement body) and watches it. Never adds an error of its own. */
export async function observeAttempt(call: Call, attemptSignal: AbortSignal | null | undefined, send: (body?: string) => Promise<Response>, sentBody?: unknown): Promise<Response> {
  call.attempts++;
  if (call.attempts === 1) {
    if (call.cacheHash !== undefined && call.meter.cache) {
      const hit = await cacheLookup(call);
      if (hit) return hit;
    }
    startHoldRenewal(call);
  }
  let response: Response;
  try {
    response = await send();
  } catch (err) {
    attemptFailed(call, err);
    throw err;
  }
  if (!response.ok && response.status === 400 && call.injectedStreamUsage && call.meter.streamUsage === 'auto') {
    let retry: string | undefined;
    try {
      retry = await withoutStreamOptions(call, response, sentBody);
    } catch (err) {
      report(call.meter, err, undefined);
    }
    if (retry !== undefined) {
      try {
        response = await send(retry);
      } catch (err) {
        attemptFailed(call, err);
        throw err;
      }
    }
  }
  try {
    if (!response.ok) {
      httpError(call, response);
      return response;
    }
    return observeResponse(call, response, attemptSignal ?? undefined);
  } catch (err) {
    report(call.meter, err, undefined);
    return response;
  }
}

/**
 * The cache's answer for a call, as the Response the SDK reads (recorded as a hit), or undefined:
 * then the call goes upstream, as the leader of its key (its answer is stored) or on its own.
 */
async function cacheLookup(call: Call): Promise<Response | undefined> {
  const cache = call.meter.cache!;
  const hash = call.cacheHash!;
  let entry: CacheEntry | null = null;
  try {
    entry = await cache.get(hash);
  } catch (err) {
    cache.count('error');
    report(call.meter, err, undefined);
    return undefined;
  }
  if (entry) {
    cache.count('hit');
  } else {
    cache.count('miss');
    try {
      const next = await untilAborted(cache.onMiss(hash), call.userSignal);
      if (next.kind === 'hit') entry = next.entry;
      else if (next.kind === 'lead') {
        call.cacheLead = next.complete;
        call.captured = [];
      }
    } catch (err) {
      report(call.meter, err, undefined);
    }
  }
  if (!entry || entry.api !== call.api || entry.stream !== call.stream) return undefined;
  recordHit(call, entry);
  const headers: Record<string, string> = { 'content-type': entry.contentType, 'x-costguard-cache': 'hit' };
  if (entry.providerRequestId) headers[call.meter.requestIdHeader] = entry.providerRequestId;
  return new Response(entry.body, { status: 200, headers });
}

/**
 * A concurrent miss waits for the one upstream call, but not past its caller's abort: then it goes
 * on (the SDK sees the abort at once). A lead won after the abort is handed back at once.
 */
function untilAborted(p: Promise<MissOutcome>, signal: AbortSignal | undefined): Promise<MissOutcome> {
  if (!signal) return p;
  if (signal.aborted) {
    void p.then((o) => o.kind === 'lead' && o.complete(null));
    return Promise.resolve({ kind: 'upstream' });
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      settled = true;
      resolve({ kind: 'upstream' });
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (o) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) {
          if (o.kind === 'lead') o.complete(null);
        } else resolve(o);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!settled) reject(err);
      },
    );
  });
}

/** Keeps the bytes handed to the SDK while leading; an answer too large to store stops being kept. */
function capture(call: Call, bytes: Uint8Array): void {
  const kept = call.captured;
  if (!kept) return;
  call.capturedBytes = (call.capturedBytes ?? 0) + bytes.length;
  if (call.capturedBytes > call.meter.cache!.maxEntryBytes) call.captured = undefined;
  else kept.push(bytes);
}

/**
 * The leader's body is over: `ended` normally (all bytes kept) or not (cancelled, failed). Only now
 * is the answer complete (the call may have been recorded earlier, when its usage passed).
 */
function finalizeLead(call: Call, ended: boolean): void {
  if (!call.cacheLead) return;
  const r = call.leadResult;
  call.leadResult = undefined;
  if (ended && r) completeLead(call, 'ok', r.obs, r.usage, r.model, r.detail);
  else completeLead(call, 'error', undefined, undefined, '', {});
}

/** A leader's answer: stored when it finished normally with the provider's usage and costs enough; handed to the waiters. */
function completeLead(call: Call, status: CallStatus, obs: Observation | undefined, usage: TokenUsage | undefined, model: string, detail: FinishDetail): void {
  const lead = call.cacheLead;
  if (!lead) return;
  call.cacheLead = undefined;
  const captured = call.captured;
  call.captured = undefined;
  const cache = call.meter.cache!;
  if (status !== 'ok' || !obs || obs.usage === undefined || !usage || obs.error !== undefined || !isNormalFinish(obs.finish) || !captured || captured.length === 0) {
    cache.count('not_stored');
    lead(null);
    return;
  }
  try {
    const price = cache.pricing.price({ provider: call.meter.provider, model, occurredAtMs: call.occurredAtMs, usage });
    const entry: CacheEntry = {
      v: 1,
      api: call.api,
      stream: call.stream,
      contentType: call.capturedType ?? (call.stream ? 'text/event-stream' : 'application/json'),
      body: captured.length === 1 ? utf8Decoder.decode(captured[0]) : Buffer.concat(captured).toString('utf8'),
      usage,
      model,
      costUsd: price.costUsd,
      storedAtMs: Date.now(),
    };
    if (detail.providerRequestId !== undefined) entry.providerRequestId = detail.providerRequestId;
    if (!price.priced || cache.minCost.greaterThan(price.costUsd)) {
      cache.count('not_stored');
      lead(null);
      return;
    }
    lead(entry); // waiters in this process get it now, whatever Redis does
    cache.store(call.cacheHash!, call.attribution.taskType, entry).catch((err: unknown) => report(call.meter, err, undefined));
  } catch (err) {
    lead(null);
    report(call.meter, err, undefined);
  }
}

/** A 400 that refuses the `stream_options` the wrapper added: the body to send again without it, or undefined. */
async function withoutStreamOptions(call: Call, response: Response, sentBody: unknown): Promise<string | undefined> {
  const text = await response.clone().text().catch(() => '');
  if (!/stream_options|include_usage/i.test(text)) return undefined;
  call.meter.streamUsageRefused = true;
  call.injectedStreamUsage = false;
  let wire: unknown;
  try {
    wire = typeof sentBody === 'string' ? JSON.parse(sentBody) : call.body;
  } catch {
    return undefined;
  }
  if (!isObj(wire)) return undefined;
  const rest = { ...wire };
  delete rest.stream_options;
  if (isObj(call.body)) {
    const body = { ...call.body };
    delete body.stream_options;
    call.body = body;
  }
  await response.body?.cancel().catch(() => undefined);
  return JSON.stringify(rest);
}

/** Whether the SDK will retry this response (its rule: x-should-retry, then 408, 409, 429, 5xx). */
function sdkWillRetry(call: Call, response: Response): boolean {
  if (call.attempts > call.maxRetries) return false;
  const header = response.headers.get('x-should-retry');
  if (header === 'true') return true;
  if (header === 'false') return false;
  return response.status === 408 || response.status === 409 || response.status === 429 || response.status >= 500;
}

function httpError(call: Call, response: Response): void {
  if (sdkWillRetry(call, response)) return;
  if (!call.meter.recordErrors) {
    skip(call);
    return;
  }
  finish(call, 'error', undefined, {
    zeroUsage: true,
    httpStatus: response.status,
    providerRequestId: response.headers.get(call.meter.requestIdHeader) ?? undefined,
  });
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/** An error code in the cause chain, if any. */
function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 6 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function isAbortError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ((err as { name?: unknown }).name === 'AbortError' || (err as { name?: unknown }).name === 'APIUserAbortError');
}

/** No response: recorded on the last attempt only (the SDK retries the others unless the caller aborted). */
function attemptFailed(call: Call, err: unknown): void {
  const userAborted = call.userSignal?.aborted === true;
  if (!userAborted && call.attempts <= call.maxRetries) return;
  if (userAborted) {
    finish(call, 'aborted', undefined, {});
    return;
  }
  const code = errorCode(err);
  if (code !== undefined && CONNECT_CODES.has(code)) {
    // Never reached the provider: nothing to bill.
    if (call.meter.recordErrors) finish(call, 'error', undefined, { zeroUsage: true, error: code });
    else skip(call);
    return;
  }
  // A timeout or a connection lost after sending: the provider may have processed the prompt.
  finish(call, 'error', undefined, { error: code ?? (isAbortError(err) ? 'timeout' : 'connection') });
}

// ---------------------------------------------------------------------------------------------
// Response bodies

function observeResponse(call: Call, response: Response, attemptSignal: AbortSignal | undefined): Response {
  const source = response.body;
  if (!source) {
    finish(call, 'ok', undefined, { providerRequestId: response.headers.get(call.meter.requestIdHeader) ?? undefined });
    return response;
  }
  const obs = newObservation();
  const providerRequestId = response.headers.get(call.meter.requestIdHeader) ?? undefined;
  const detail: FinishDetail = { providerRequestId };
  const contentType = response.headers.get('content-type') ?? '';
  if (call.captured) call.capturedType = contentType || undefined;
  if (!contentType.includes('text/event-stream')) return observeWholeBody(call, response, obs, detail, attemptSignal);
  const sink = sseSink(call, obs, detail);
  if (attemptSignal) {
    const onAbort = () => finish(call, 'aborted', obs, detail);
    if (attemptSignal.aborted) onAbort();
    else attemptSignal.addEventListener('abort', onAbort, { once: true });
    sink.onDone = () => attemptSignal.removeEventListener('abort', onAbort);
  }
  const body = passThrough(source, sink, call, (err) => {
    const aborted = attemptSignal?.aborted === true || call.userSignal?.aborted === true || isAbortError(err);
    finish(call, aborted ? 'aborted' : 'error', obs, { ...detail, ...(aborted ? {} : { error: errorCode(err) ?? 'stream_error' }) });
  });
  return rebuildResponse(response, body);
}

/** What an observed JSON response needs to record its call when the SDK (or the caller) reads it. */
interface WholeBody {
  call: Call;
  obs: Observation;
  detail: FinishDetail;
  attemptSignal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** The pass-through Response, once a caller asked for the raw body stream. */
  piped: Response | undefined;
}

const WHOLE = Symbol('costguard.wholeBody');
type Observed = Response & { [WHOLE]: WholeBody };
const proto = Response.prototype;
const bodyGetter = Object.getOwnPropertyDescriptor(proto, 'body')?.get;

function wholeDone(w: WholeBody): void {
  if (w.onAbort) w.attemptSignal!.removeEventListener('abort', w.onAbort);
  w.onAbort = undefined;
}

function wholeFailed(w: WholeBody, err: unknown): void {
  wholeDone(w);
  const call = w.call;
  const aborted = w.attemptSignal?.aborted === true || call.userSignal?.aborted === true || isAbortError(err);
  finish(call, aborted ? 'aborted' : 'error', w.obs, { ...w.detail, ...(aborted ? {} : { error: errorCode(err) ?? 'stream_error' }) });
  finalizeLead(call, false);
}

function wholeSettle(w: WholeBody, parsed: unknown, text: string | undefined, unreadable: boolean): void {
  wholeDone(w);
  const call = w.call;
  if (unreadable) finish(call, 'error', w.obs, { ...w.detail, error: 'unreadable_response' });
  else {
    observeJson(call.api, parsed, w.obs);
    finish(call, w.obs.error !== undefined ? 'error' : 'ok', w.obs, w.detail);
  }
  if (call.cacheLead) {
    if (!unreadable) capture(call, encoder.encode(text ?? JSON.stringify(parsed)));
    finalizeLead(call, !unreadable);
  }
}

function wholePipe(r: Observed): Response {
  const w = r[WHOLE];
  if (!w.piped) {
    const sink = jsonSink(w.call, w.obs, w.detail);
    sink.onDone = () => wholeDone(w);
    w.piped = rebuildResponse(r, passThrough(bodyGetter!.call(r) as ReadableStream<Uint8Array>, sink, w.call, (err) => wholeFailed(w, err)));
  }
  return w.piped;
}

/** Reads the whole body as text through the original reader, records the call, and returns `as(text)`. */
function readWhole<T>(r: Observed, as: (text: string) => T): Promise<T> {
  const w = r[WHOLE];
  return proto.text.call(r).then(
    (text) => {
      let parsed: unknown;
      let unreadable = false;
      try {
        parsed = JSON.parse(text);
      } catch {
        unreadable = true;
      }
      wholeSettle(w, parsed, text, unreadable);
      return as(text);
    },
    (err: unknown) => {
      wholeFailed(w, err);
      throw err;
    },
  );
}

/**
 * The prototype of an observed JSON response (swapped in, so the SDK and the caller keep an
 * `instanceof Response` with every other member native). Its body readers record the call as they
 * return; once the call is recorded, or when the raw stream was asked for, they read as usual.
 */
const observedProto: object = Object.create(proto, {
  json: {
    value(this: Observed): Promise<unknown> {
      const w = this[WHOLE];
      if (w.piped) return w.piped.json();
      if (w.call.recorded) return proto.json.call(this);
      // The SDK's path: one read, one parse (the SDK's own), observed.
      return proto.json.call(this).then(
        (v) => {
          wholeSettle(w, v, undefined, false);
          return v;
        },
        (err: unknown) => {
          if (err instanceof SyntaxError) wholeSettle(w, undefined, undefined, true);
          else wholeFailed(w, err);
          throw err;
        },
      );
    },
  },
  text: {
    value(this: Observed): Promise<string> {
      const w = this[WHOLE];
      if (w.piped) return w.piped.text();
      if (w.call.recorded) return proto.text.call(this);
      return readWhole(this, (t) => t);
    },
  },
  arrayBuffer: {
    value(this: Observed): Promise<ArrayBuffer> {
      const w = this[WHOLE];
      if (w.piped) return w.piped.arrayBuffer();
      if (w.call.recorded) return proto.arrayBuffer.call(this);
      return readWhole(this, (t) => {
        const b = encoder.encode(t);
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      });
    },
  },
  blob: {
    value(this: Observed): Promise<Blob> {
      const w = this[WHOLE];
      if (w.piped) return w.piped.blob();
      if (w.call.recorded) return proto.blob.call(this);
      return readWhole(this, (t) => new Blob([t], { type: this.headers.get('content-type') ?? '' }));
    },
  },
  body: {
    get(this: Observed): ReadableStream<Uint8Array> | null {
      const w = this[WHOLE];
      if (!w.piped && w.call.recorded) return bodyGetter!.call(this) as ReadableStream<Uint8Array> | null;
      return wholePipe(this).body;
    },
  },
});

/**
 * A JSON (not streamed) response: the SDK reads it whole (`response.json()`), so instead of a
 * pass-through body and a second Response (two web streams and a Response per call, much of the
 * wrapper's cost), the SDK gets the fetch's own Response with its body readers observed (the value
 * the SDK parses is read for usage as it is returned: no second parse). A caller who reads the raw
 * body (`asResponse().body`) gets the pass-through stream of the streamed path, created on access.
 */
function observeWholeBody(call: Call, response: Response, obs: Observation, detail: FinishDetail, attemptSignal: AbortSignal | undefined): Response {
  if (!bodyGetter || Object.getPrototypeOf(response) !== proto) {
    // Not the platform's Response (a custom fetch's): the pass-through path.
    const sink = jsonSink(call, obs, detail);
    return rebuildResponse(response, passThrough(response.body!, sink, call, (err) => finish(call, 'error', obs, { ...detail, error: errorCode(err) ?? 'stream_error' })));
  }
  const w: WholeBody = { call, obs, detail, attemptSignal, onAbort: undefined, piped: undefined };
  if (attemptSignal) {
    w.onAbort = () => finish(call, 'aborted', obs, detail);
    if (attemptSignal.aborted) w.onAbort();
    else attemptSignal.addEventListener('abort', w.onAbort, { once: true });
  }
  (response as Observed)[WHOLE] = w;
  Object.setPrototypeOf(response, observedProto);
  return response;
}

interface Sink {
  /** Returns the bytes to hand on (undefined: nothing yet). */
  chunk(bytes: Uint8Array): Uint8Array | undefined;
  /** The body ended; returns any bytes still held back. */
  end(): Uint8Array | undefined;
  /** The reader cancelled the body (the consumer stopped reading). */
  cancel(): void;
  onDone?: () => void;
}

/** A body that hands on the source's bytes as they are read (nothing read ahead) and tells the sink. */
function passThrough(source: ReadableStream<Uint8Array>, sink: Sink, call: Call, failed: (err: unknown) => void): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let observing = true;
  const safely = <T>(fn: () => T, fallback: T): T => {
    if (!observing) return fallback;
    try {
      return fn();
    } catch {
      observing = false; // a bug of ours must never break the caller's stream: stop watching, keep passing bytes
      return fallback;
    }
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          let r: Awaited<ReturnType<typeof reader.read>>;
          try {
            r = await reader.read();
          } catch (err) {
            safely(() => failed(err), undefined);
            safely(() => sink.onDone?.(), undefined);
            finalizeLead(call, false);
            controller.error(err);
            return;
          }
          if (r.done) {
            const tail = safely(() => sink.end(), undefined);
            safely(() => sink.onDone?.(), undefined);
            if (tail && tail.length > 0) {
              capture(call, tail);
              controller.enqueue(tail);
            }
            finalizeLead(call, true);
            controller.close();
            return;
          }
          const out = observing ? safely(() => sink.chunk(r.value), r.value) : r.value;
          if (out && out.length > 0) {
            capture(call, out);
            controller.enqueue(out);
            return;
          }
        }
      },
      cancel(reason) {
        safely(() => sink.cancel(), undefined);
        safely(() => sink.onDone?.(), undefined);
        finalizeLead(call, false);
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * The Response the SDK gets: the original's status, headers (copied: a clone of it must have them
 * too), url, redirected and type, with the pass-through body.
 */
function rebuildResponse(original: Response, body: ReadableStream<Uint8Array>): Response {
  const r = new Response(body, { status: original.status, statusText: original.statusText, headers: original.headers });
  Object.defineProperties(r, {
    url: { value: original.url, enumerable: true },
    redirected: { value: original.redirected, enumerable: true },
    type: { value: original.type, enumerable: true },
  });
  return r;
}

const utf8Decoder = new TextDecoder();

function jsonSink(call: Call, obs: Observation, detail: FinishDetail): Sink {
  const chunks: Uint8Array[] = [];
  return {
    chunk(bytes) {
      chunks.push(bytes);
      return bytes;
    },
    end() {
      if (call.recorded) return undefined;
      const text = chunks.length === 1 ? utf8Decoder.decode(chunks[0]) : Buffer.concat(chunks).toString('utf8');
      chunks.length = 0;
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        finish(call, 'error', obs, { ...detail, error: 'unreadable_response' });
        return undefined;
      }
      observeJson(call.api, parsed, obs);
      finish(call, obs.error !== undefined ? 'error' : 'ok', obs, detail);
      return undefined;
    },
    cancel() {
      finish(call, 'incomplete', obs, detail);
    },
  };
}

const encoder = new TextEncoder();

function sseSink(call: Call, obs: Observation, detail: FinishDetail): Sink {
  const decoder = new TextDecoder();
  const parser = new SseParser();
  const api = call.api;
  const settle = () => {
    if (call.recorded) return;
    if (obs.error !== undefined) finish(call, 'error', obs, detail);
    else if (obs.usage !== undefined || obs.terminal) finish(call, 'ok', obs, detail);
  };
  if (!call.injectedStreamUsage) {
    // Bytes go on as they came; the side channel only reads them.
    const onEvent = (ev: Parameters<Parameters<SseParser['push']>[1]>[0]) => void observeSseEvent(api, ev, obs, false);
    return {
      chunk(bytes) {
        parser.push(decoder.decode(bytes, { stream: true }), onEvent);
        settle();
        return bytes;
      },
      end() {
        parser.push(decoder.decode(), onEvent);
        parser.end(onEvent);
        settle();
        if (!call.recorded) finish(call, 'incomplete', obs, { ...detail, error: 'stream_ended_early' });
        return undefined;
      },
      cancel() {
        finish(call, 'incomplete', obs, detail);
      },
    };
  }
  // The wrapper asked for usage: hand on whole events, without the usage-only chunk.
  let out = '';
  const onEvent = (ev: Parameters<Parameters<SseParser['push']>[1]>[0]) => {
    if (observeSseEvent(api, ev, obs, true) === 'keep') out += ev.raw;
  };
  const take = (): Uint8Array | undefined => {
    if (out.length === 0) return undefined;
    const bytes = encoder.encode(out);
    out = '';
    return bytes;
  };
  return {
    chunk(bytes) {
      parser.push(decoder.decode(bytes, { stream: true }), onEvent);
      settle();
      return take();
    },
    end() {
      parser.push(decoder.decode(), onEvent);
      parser.end(onEvent);
      settle();
      if (!call.recorded) finish(call, 'incomplete', obs, { ...detail, error: 'stream_ended_early' });
      return take();
    },
    cancel() {
      finish(call, 'incomplete', obs, detail);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Recording

interface FinishDetail {
  providerRequestId?: string | undefined;
  httpStatus?: number;
  error?: string;
  /** Nothing billable happened (an HTTP error, a connection refused). */
  zeroUsage?: boolean;
}

function fullUsage(u: Partial<TokenUsage>): TokenUsage {
  return {
    inputTokens: u.inputTokens ?? 0,
    cacheReadTokens: u.cacheReadTokens ?? 0,
    cacheWriteTokens: u.cacheWriteTokens ?? 0,
    cacheWrite1hTokens: u.cacheWrite1hTokens ?? 0,
    outputTokens: u.outputTokens ?? 0,
    reasoningTokens: u.reasoningTokens ?? 0,
  };
}

function requestBody(call: Call): unknown {
  if (call.body === undefined && call.rawBody !== undefined) {
    try {
      call.body = JSON.parse(call.rawBody);
    } catch {
      call.body = null;
    }
  }
  return call.body;
}

/** The estimate described in protocols.ts: the provider's input if it arrived, else the prompt's characters / 4; output delivered / 4. */
export function estimateUsage(call: Call, obs: Observation | undefined): TokenUsage {
  const input = obs?.inputUsage ?? { inputTokens: estimateTokens(promptChars(requestBody(call))) };
  const output = Math.max(obs?.outputReported ?? 0, estimateTokens(obs?.deliveredChars ?? 0));
  return fullUsage({ ...input, outputTokens: output });
}

// eslint-disable-next-line no-control-regex
const NOT_TEXT_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * A string from the provider (a header, an id, an error) made fit for event metadata, which refuses
 * control characters and lone surrogates (src/domain/text.ts): those become U+FFFD; at most 300 characters.
 */
function cleanText(s: string): string {
  const short = s.length > 300 ? s.slice(0, 300) : s;
  return short.replace(NOT_TEXT_RE, '\ufffd');
}

/** Settles a call that is not to be recorded (`recordErrors: false`). */
function skip(call: Call): void {
  call.recorded = true;
  call.releaseSignal?.();
  endHold(call, false);
  if (call.cacheLead) completeLead(call, 'error', undefined, undefined, '', {});
}

/** Records a call the cache answered: the stored answer's usage, as cost avoided (`cacheHit`), never spend. */
function recordHit(call: Call, entry: CacheEntry): void {
  if (call.recorded) return;
  call.recorded = true;
  call.cacheHit = true;
  call.releaseSignal?.();
  const meter = call.meter;
  let event: UsageEventInput | undefined;
  try {
    const metadata: Record<string, unknown> = {
      api: call.api,
      stream: call.stream,
      status: 'ok',
      durationMs: Math.max(0, Math.round(meter.now() - call.startedAt)),
      estimated: false,
      cacheHit: true,
      cachedAt: new Date(entry.storedAtMs).toISOString(),
    };
    if (entry.providerRequestId !== undefined) metadata.providerRequestId = cleanText(entry.providerRequestId);
    if (call.downgradedFrom !== undefined) metadata.downgradedFrom = cleanText(call.downgradedFrom);
    const a = call.attribution;
    event = { occurredAt: new Date(call.occurredAtMs), provider: meter.provider, model: entry.model, userId: a.userId, taskType: a.taskType, usage: entry.usage, metadata, estimated: false, cacheHit: true };
    if (a.tags !== undefined) event.tags = a.tags;
    if (a.team !== undefined) event.team = a.team;
    if (a.project !== undefined) event.project = a.project;
    // A hold taken for this call settles at 0 with the hit (cost avoided is not spend).
    endHold(call, true);
    if (call.holdId !== undefined) event.holdId = call.holdId;
    const recorded = event;
    try {
      meter.onRecord?.(recorded);
    } catch (err) {
      report(meter, err, recorded);
    }
    call.context?.addCall({ provider: meter.provider, model: entry.model, usage: fullUsage({}), estimated: false, status: 'ok', occurredAtMs: call.occurredAtMs, cacheHit: true });
    send(meter, recorded);
  } catch (err) {
    report(meter, err, event);
  }
}

/** Records the call (once). Never throws. */
function finish(call: Call, status: CallStatus, obs: Observation | undefined, detail: FinishDetail): void {
  if (call.recorded) return;
  call.recorded = true;
  call.releaseSignal?.();
  const meter = call.meter;
  let event: UsageEventInput | undefined;
  try {
    let usage: TokenUsage;
    let estimated: boolean;
    if (detail.zeroUsage) {
      usage = fullUsage({});
      estimated = false;
    } else if (obs?.usage !== undefined) {
      usage = fullUsage(obs.usage);
      estimated = false;
    } else {
      usage = estimateUsage(call, obs);
      estimated = true;
    }
    const model = obs?.model ?? requestedModel(requestBody(call)) ?? 'unknown';
    const metadata: Record<string, unknown> = {
      api: call.api,
      stream: call.stream,
      status,
      durationMs: Math.max(0, Math.round(meter.now() - call.startedAt)),
      estimated,
    };
    if (detail.providerRequestId !== undefined) metadata.providerRequestId = cleanText(detail.providerRequestId);
    if (obs?.responseId !== undefined) metadata.responseId = cleanText(obs.responseId);
    if (call.attempts > 1) metadata.attempts = call.attempts;
    if (detail.httpStatus !== undefined) metadata.httpStatus = detail.httpStatus;
    const error = detail.error ?? obs?.error;
    if (error !== undefined) metadata.error = cleanText(error);
    if (call.injectedStreamUsage) metadata.streamUsageRequested = true;
    if (call.guard !== undefined) metadata.promptGuard = call.guard;
    if (call.holdRenewals) metadata.holdRenewals = call.holdRenewals;
    if (call.downgradedFrom !== undefined) metadata.downgradedFrom = cleanText(call.downgradedFrom);
    const a = call.attribution;
    event = {
      occurredAt: new Date(call.occurredAtMs),
      provider: meter.provider,
      model,
      userId: a.userId,
      taskType: a.taskType,
      usage,
      metadata,
      // The usage event's own flag (stored in usage_ledger.estimated); metadata.estimated says the same.
      estimated,
    };
    if (a.tags !== undefined) event.tags = a.tags;
    if (a.team !== undefined) event.team = a.team;
    if (a.project !== undefined) event.project = a.project;
    // The hold: settled by this event when something billable happened, else given back.
    const billable = !detail.zeroUsage;
    endHold(call, billable);
    if (billable && call.holdId !== undefined) event.holdId = call.holdId;
    if (call.cacheLead) {
      if (status === 'ok' && obs !== undefined && obs.usage !== undefined) call.leadResult = { obs, usage, model, detail };
      else completeLead(call, status, undefined, undefined, model, detail);
    }
    const recorded = event;
    try {
      meter.onRecord?.(recorded);
    } catch (err) {
      report(meter, err, recorded);
    }
    call.context?.addCall({ provider: meter.provider, model, usage, estimated, status, occurredAtMs: call.occurredAtMs });
    send(meter, recorded);
  } catch (err) {
    report(meter, err, event);
  }
}

/** Hands the event to the tracker; an event refused for its attribution is recorded again without it. */
function send(meter: Meter, event: UsageEventInput): void {
  let p: Promise<unknown>;
  try {
    p = meter.tracker.record(event);
  } catch (err) {
    p = Promise.reject(err);
  }
  p.catch((err: unknown) => {
    const issues = (err as { issues?: Array<{ path: string; message: string }> })?.issues;
    if (!Array.isArray(issues) || (err as { name?: string }).name !== 'CostTrackerValidationError') {
      report(meter, err, event);
      return;
    }
    // A user id, tag, team, project or model the tracker refuses (e.g. a header with spaces): keep the
    // usage, recorded under the fallback user, and say why in the metadata.
    const fallback: UsageEventInput = {
      occurredAt: event.occurredAt,
      provider: event.provider,
      model: issues.some((i) => i.path === 'model') ? 'unknown' : event.model,
      userId: meter.fallbackUserId,
      taskType: issues.some((i) => i.path === 'taskType') ? 'default' : event.taskType,
      usage: event.usage,
      metadata: { ...event.metadata, attributionRefused: issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`.slice(0, 300)) },
      estimated: event.estimated,
    };
    report(meter, err, event);
    let again: Promise<unknown>;
    try {
      again = meter.tracker.record(fallback);
    } catch (err2) {
      again = Promise.reject(err2);
    }
    again.catch((err2: unknown) => report(meter, err2, fallback));
  });
}

function report(meter: Meter, err: unknown, event: UsageEventInput | undefined): void {
  try {
    if (meter.onError) meter.onError(err, event);
    else if (meter.logger) meter.logger.warn({ err, provider: meter.provider, model: event?.model, userId: event?.userId }, 'Cost Guard could not record an LLM call');
    else console.warn('Cost Guard could not record an LLM call:', err);
  } catch {
    // nothing more can be done without throwing into the caller
  }
}
