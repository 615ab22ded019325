/**
 * The per-request cost context: who the LLM calls made while serving one request are for (user,
 * task type, tags, team, project), what they have used so far, and the signal that aborts them when
 * the request's client goes away.
 *
 * It travels in an AsyncLocalStorage, so every call a wrapped SDK client (src/client/wrappers) makes
 * anywhere inside the request (in the handler, in a service it calls, in a promise it started) is
 * attributed to it without passing anything down. The fastify plugin and the express middleware
 * (src/client/middleware) open one per HTTP request; `withCostAttribution()` opens a nested one
 * (another task type, more tags) whose calls also count in the enclosing request's totals.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { addAmounts } from '../domain/money.js';
import type { TokenUsage } from '../domain/usage.js';

/** Who a call is for. Every field optional: what is missing comes from the enclosing context or the wrapper's options. */
export interface CostAttribution {
  userId?: string | undefined;
  taskType?: string | undefined;
  tags?: Record<string, string> | undefined;
  team?: string | undefined;
  project?: string | undefined;
}

/** The part of a pricing engine the context needs (`PricingEngine` from src/domain/pricing.ts fits). */
export interface CallPricer {
  price(input: { provider: string; model: string; occurredAtMs: number; usage: TokenUsage }): { priced: boolean; costUsd: string };
}

/** One recorded call, as the wrappers report it to the context. */
export interface RecordedCall {
  provider: string;
  model: string;
  usage: TokenUsage;
  estimated: boolean;
  status: CallStatus;
  occurredAtMs: number;
  /** Answered by the response cache: a call of the request, but no tokens and no spend. */
  cacheHit?: boolean;
}

/** How a call ended: read to its end, failed, aborted by a signal, or not read to its end. */
export type CallStatus = 'ok' | 'error' | 'aborted' | 'incomplete';

/** What a request's calls used so far (a copy: it does not change afterwards). */
export interface CostTotals {
  /** Calls recorded (one per SDK call, whatever its outcome). */
  calls: number;
  /** Calls whose token counts are an estimate (broken off, aborted, no usage reported). */
  estimatedCalls: number;
  /** Calls that ended in an error or an abort. */
  failedCalls: number;
  /** Token totals, in Cost Guard's usage convention (input includes cache tokens, output includes reasoning). */
  tokens: TokenUsage;
  /**
   * Cost in USD of the priced calls, estimated locally with the pricing engine given to the
   * middleware (a decimal string); null without one. The ledger prices every call again and is the record.
   */
  costUsd: string | null;
  /** Calls the local pricing engine could not price (counted in `calls`, not in `costUsd`). */
  unpricedCalls: number;
  /** Calls the response cache answered (counted in `calls`; they add no tokens and no cost). */
  cacheHits: number;
}

function zeroTokens(): TokenUsage {
  return { inputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0, reasoningTokens: 0 };
}

/**
 * One request's (or one nested scope's) context. Created by the middleware, or by
 * `runWithCostContext()` for work outside an HTTP request (a queue consumer, a script).
 */
export class CostContext {
  readonly attribution: Readonly<CostAttribution>;
  /** Aborted when the request's client disconnects (or `abort()` is called): wrapped calls inside use it. */
  readonly signal: AbortSignal;
  readonly parent: CostContext | undefined;
  private readonly controller: AbortController | undefined;
  private readonly pricer: CallPricer | undefined;
  private readonly totals: CostTotals;
  private readonly listeners: Array<(call: RecordedCall) => void> = [];

  constructor(opts: { attribution?: CostAttribution; signal?: AbortSignal; pricer?: CallPricer; parent?: CostContext } = {}) {
    this.parent = opts.parent;
    this.attribution = mergeAttribution(opts.parent?.attribution, opts.attribution);
    this.pricer = opts.pricer ?? opts.parent?.pricer;
    if (opts.signal) {
      this.signal = opts.signal;
    } else if (opts.parent) {
      this.signal = opts.parent.signal;
    } else {
      this.controller = new AbortController();
      this.signal = this.controller.signal;
    }
    this.totals = { calls: 0, estimatedCalls: 0, failedCalls: 0, tokens: zeroTokens(), costUsd: this.pricer ? '0' : null, unpricedCalls: 0, cacheHits: 0 };
  }

  /** Aborts the calls in flight inside this context (the middleware does it when the client disconnects). */
  abort(reason?: unknown): void {
    if (this.controller) this.controller.abort(reason);
    else this.parent?.abort(reason);
  }

  get aborted(): boolean {
    return this.signal.aborted;
  }

  get calls(): number {
    return this.totals.calls;
  }

  get costUsd(): string | null {
    return this.totals.costUsd;
  }

  /** What the calls of this context (nested ones included) used so far. */
  snapshot(): CostTotals {
    return { ...this.totals, tokens: { ...this.totals.tokens } };
  }

  /** Called for each call recorded inside this context (nested ones included), after the totals are updated. */
  onCall(listener: (call: RecordedCall) => void): void {
    this.listeners.push(listener);
  }

  /** The wrappers report each recorded call here; it counts in this context and every enclosing one. Never throws. */
  addCall(call: RecordedCall): void {
    let costUsd: string | undefined;
    let unpriced = false;
    if (this.pricer && !call.cacheHit) {
      try {
        const r = this.pricer.price({ provider: call.provider, model: call.model, occurredAtMs: call.occurredAtMs, usage: call.usage });
        if (r.priced) costUsd = r.costUsd;
        else unpriced = true;
      } catch {
        unpriced = true;
      }
    }
    this.count(call, costUsd, unpriced);
    for (let ctx = this.parent; ctx; ctx = ctx.parent) ctx.count(call, costUsd, unpriced);
  }

  private count(call: RecordedCall, costUsd: string | undefined, unpriced: boolean): void {
    const t = this.totals;
    t.calls++;
    if (call.cacheHit) t.cacheHits++;
    if (call.estimated) t.estimatedCalls++;
    if (call.status === 'error' || call.status === 'aborted') t.failedCalls++;
    t.tokens.inputTokens += call.usage.inputTokens;
    t.tokens.cacheReadTokens += call.usage.cacheReadTokens;
    t.tokens.cacheWriteTokens += call.usage.cacheWriteTokens;
    t.tokens.cacheWrite1hTokens += call.usage.cacheWrite1hTokens;
    t.tokens.outputTokens += call.usage.outputTokens;
    t.tokens.reasoningTokens += call.usage.reasoningTokens;
    if (t.costUsd !== null) {
      if (costUsd !== undefined) t.costUsd = addAmounts(t.costUsd, costUsd);
      else if (unpriced) t.unpricedCalls++;
    }
    for (const listener of this.listeners) {
      try {
        listener(call);
      } catch {
        // a listener's failure is its own; recording goes on
      }
    }
  }
}

/** Inner values win; tags are merged key by key. */
export function mergeAttribution(outer: CostAttribution | undefined, inner: CostAttribution | undefined): CostAttribution {
  if (!outer) return { ...inner, ...(inner?.tags ? { tags: { ...inner.tags } } : {}) };
  if (!inner) return { ...outer };
  const out: CostAttribution = { ...outer };
  if (inner.userId !== undefined) out.userId = inner.userId;
  if (inner.taskType !== undefined) out.taskType = inner.taskType;
  if (inner.team !== undefined) out.team = inner.team;
  if (inner.project !== undefined) out.project = inner.project;
  if (inner.tags !== undefined) out.tags = { ...outer.tags, ...inner.tags };
  return out;
}

const storage = new AsyncLocalStorage<CostContext>();

/** The context of the code running now (the innermost one), or undefined outside any. */
export function currentCostContext(): CostContext | undefined {
  return storage.getStore();
}

/** Runs `fn` inside `context` (a CostContext, or the attribution of a new top-level one). */
export function runWithCostContext<T>(context: CostContext | CostAttribution, fn: () => T): T {
  const ctx = context instanceof CostContext ? context : new CostContext({ attribution: context });
  return storage.run(ctx, fn);
}

/**
 * Runs `fn` with more attribution (e.g. another task type, or more tags) on top of the current
 * context: calls inside are attributed to the merged values, count in the enclosing request's
 * totals, and are aborted with it.
 */
export function withCostAttribution<T>(attribution: CostAttribution, fn: () => T): T {
  const parent = storage.getStore();
  return storage.run(new CostContext({ attribution, ...(parent ? { parent } : {}) }), fn);
}
