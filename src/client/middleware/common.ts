/**
 * What the fastify plugin and the express middleware share: the options, the per-request context
 * (src/client/context.ts) made from a request, and the response headers.
 */
import { type CallPricer, type CostAttribution, CostContext } from '../context.js';

/** A value given as is, or computed from the request. */
export type PerRequest<Req, T> = T | ((request: Req) => T | undefined);

export interface CostGuardMiddlewareOptions<Req> {
  /** The header naming the user (e.g. `x-user-id`), read when `userId` gives none. */
  userIdHeader?: string;
  /** The user, or a function of the request giving it (e.g. from the session). Wins over `userIdHeader`. */
  userId?: PerRequest<Req, string>;
  taskType?: PerRequest<Req, string>;
  tags?: PerRequest<Req, Record<string, string>>;
  team?: PerRequest<Req, string>;
  project?: PerRequest<Req, string>;
  /**
   * A pricing engine to estimate each request's cost locally as its calls are recorded
   * (`createPricingEngine(config)` from src/pricing, built once per process: about 100 ms, then about
   * 5 us a call). Without one, the context has calls and tokens but `costUsd` is null.
   */
  pricing?: CallPricer;
  /** Add `x-costguard-calls` (and, with `pricing`, `x-costguard-cost-usd`) to every response. Default false. */
  responseHeaders?: boolean;
  /** Abort the request's wrapped calls when its client disconnects before the response is finished. Default true. */
  abortOnDisconnect?: boolean;
}

function valueOf<Req, T>(v: PerRequest<Req, T> | undefined, request: Req): T | undefined {
  return typeof v === 'function' ? (v as (r: Req) => T | undefined)(request) : v;
}

/** The attribution of one request. Never throws: a failing option function leaves its field unset. */
export function attributionOf<Req>(opts: CostGuardMiddlewareOptions<Req>, request: Req, header: (name: string) => string | undefined): CostAttribution {
  const safe = <T>(f: () => T | undefined): T | undefined => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  let userId = safe(() => valueOf(opts.userId, request));
  if ((userId === undefined || userId === '') && opts.userIdHeader) userId = header(opts.userIdHeader.toLowerCase());
  const out: CostAttribution = {};
  if (userId !== undefined && userId !== '') out.userId = userId;
  const taskType = safe(() => valueOf(opts.taskType, request));
  if (taskType !== undefined) out.taskType = taskType;
  const tags = safe(() => valueOf(opts.tags, request));
  if (tags !== undefined) out.tags = tags;
  const team = safe(() => valueOf(opts.team, request));
  if (team !== undefined) out.team = team;
  const project = safe(() => valueOf(opts.project, request));
  if (project !== undefined) out.project = project;
  return out;
}

export function newRequestContext<Req>(opts: CostGuardMiddlewareOptions<Req>, request: Req, header: (name: string) => string | undefined): CostContext {
  return new CostContext({ attribution: attributionOf(opts, request, header), ...(opts.pricing ? { pricer: opts.pricing } : {}) });
}

/** The response headers for a request's totals so far. */
export function costHeaders(ctx: CostContext): Record<string, string> {
  const headers: Record<string, string> = { 'x-costguard-calls': String(ctx.calls) };
  if (ctx.costUsd !== null) headers['x-costguard-cost-usd'] = ctx.costUsd;
  return headers;
}

/** A header's first value. */
export function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Whether a response's 'close' came before it finished: the client went away. */
export function onClientGone(res: { once(event: 'close', fn: () => void): unknown; writableFinished: boolean }, ctx: CostContext): void {
  res.once('close', () => {
    if (!res.writableFinished) ctx.abort(new Error('Cost Guard: the client disconnected before the response was finished'));
  });
}
