/**
 * Pre-flight checks: `authorize()` reserves a call's worst-case cost on every budget that applies
 * to it (its user, team and project, and the system), atomically and in one Redis round trip, or
 * on none; the call's usage event (carrying the `holdId`) settles the reservation with the actual
 * cost once it is in the ledger; `release()` gives it back; an unrenewed hold expires.
 *
 * Reservations draw on leases that each scope's budget workflow grants (src/domain/leases.ts has
 * the invariant). A check that finds a lease missing, expired or too small asks the workflows for
 * more (one Temporal update per scope, shared by every check waiting in this process) and tries
 * again; when they cannot answer in time, the budget's fail mode decides.
 */
import { randomBytes } from 'node:crypto';
import { type Client, WithStartWorkflowOperation } from '@temporalio/client';
import type { Redis } from 'ioredis';
import { type Advice, type AdviceSettings, type Complexity, COMPLEXITIES, DEFAULT_ADVICE_SETTINGS, adviseModel, derivedPerCallBudget, expectedRemainingCalls, pricerFor } from '../domain/advice.js';
import { type Scope, isScope } from '../domain/budget.js';
import { ValidationError, type FieldIssue } from '../domain/errors.js';
import { holdId as makeHoldId, isHoldId, microUp, usdOf } from '../domain/leases.js';
import { modelTier, type ModelTier } from '../domain/model-tiers.js';
import { Dec, isDecimalString } from '../domain/money.js';
import type { PricingEngine } from '../domain/pricing.js';
import { textProblem } from '../domain/text.js';
import { MAX_TOKENS } from '../domain/tokens.js';
import { type AdviceTiers, createAdviceTiers } from '../redis/advice-tiers.js';
import { type AuthorizeReply, type BucketView, type LeaseStore, createLeaseStore } from '../redis/leases.js';
import { BUDGET_WORKFLOW_TYPE, type BudgetWorkflowInput, budgetWorkflowId, leaseUpdate } from '../messages.js';

export interface AuthorizeRequest {
  userId: string;
  teamId?: string;
  projectId?: string;
  provider: string;
  model: string;
  taskType?: string;
  /** Task complexity for model advice (default medium). */
  complexity?: Complexity;
  /** The estimate: prompt tokens and the output limit the call will use... */
  inputTokens?: number;
  maxOutputTokens?: number;
  /** ...or the worst-case cost itself (USD decimal string). */
  costUsd?: string;
  /** The hold's lifetime (default: the configured holdTtlMs); a long stream renews it. */
  ttlSeconds?: number;
  /** Keeps model advice stable within a conversation (hysteresis). */
  conversationId?: string;
  /** The caller's own per-call budget for model advice (USD decimal string). */
  perCallBudgetUsd?: string;
  /**
   * Whether a hard budget that cannot cover the model asked for may admit a cheaper model instead
   * (`downgrade` / `cheaper_fits`, reserving the cheaper model's worst case). Default true. Set it
   * to false when the caller will send the model asked for whatever the advice: the check then
   * reserves that model's worst case or denies.
   */
  allowDowngrade?: boolean;
}

export type Decision = 'allow' | 'downgrade' | 'deny';
export type DecisionReason = 'budget_exhausted' | 'price_unknown' | 'unavailable' | 'near_budget' | 'over_budget_soft' | 'cheaper_fits' | 'advice';

export interface ScopeRemaining {
  scope: Scope;
  period: string;
  enforcement: 'hard' | 'soft';
  budgetUsd: string;
  /** What remains after recorded spend and open holds (this hold included when admitted). */
  remainingUsd: string;
  usedRatio: number;
}

export interface AuthorizeResult {
  decision: Decision;
  reason: DecisionReason | null;
  /** Send it with the call's usage event (`holdId`), or release it; null when nothing was reserved. */
  holdId: string | null;
  reservedUsd: string;
  expiresAt: string | null;
  /** The worst case of the call as asked (null when the model has no price). */
  worstCaseUsd: string | null;
  /** Model advice: on every downgrade, and whenever advice was computed. */
  advice: Advice | null;
  scopes: ScopeRemaining[];
  /** False when a fail-open budget admitted the call without a reservation (Redis or Temporal could not answer). */
  enforced: boolean;
}

export interface AuthorizerOptions {
  redis: Redis;
  keyPrefix: string;
  temporal: Client;
  taskQueue: string;
  pricing: Pick<PricingEngine, 'price'>;
  holdTtlMs: number;
  maxHoldTtlMs: number;
  refillTimeoutMs: number;
  unknownPriceUsd: string;
  /** Once usage naming a hold is accepted, the hold lives at least this much longer (default maxHoldTtlMs). */
  acceptedHoldTtlMs?: number;
  advice?: AdviceSettings;
  onDecision?: (decision: Decision, reason: DecisionReason | null) => void;
  clock?: () => number;
}

export class AuthorizeValidationError extends ValidationError {
  constructor(issues: FieldIssue[]) {
    super(issues, 'invalid pre-flight check');
  }
}

/** Thrown when a lease could not be obtained in time (the fail mode then applies). */
class LeaseUnavailable extends Error {}

const SCOPE_ID_RE = /^[A-Za-z0-9._@+=:/-]{1,200}$/;
/** Tries of the reservation: first as asked, then after grants, then the final (soft) one. */
const MAX_ROUNDS = 4;
/** No reservation is smaller than this (µ$): a zero hold would admit a call while reserving nothing. */
const MIN_RESERVATION_MICRO = 1;
/** How long a scope whose lease request granted nothing is not asked again. */
const DRY_MS = 1000;

/** Named problems of a pre-flight request, or an empty list. */
export function authorizeRequestProblems(input: unknown): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const issue = (path: string, message: string) => issues.push({ path, message });
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return [{ path: '', message: 'expected an object like { "userId": "alice", "provider": "openai", "model": "gpt-4o", "inputTokens": 1200, "maxOutputTokens": 500 }' }];
  const r = input as Record<string, unknown>;
  const known = ['userId', 'teamId', 'projectId', 'provider', 'model', 'taskType', 'complexity', 'inputTokens', 'maxOutputTokens', 'costUsd', 'ttlSeconds', 'conversationId', 'perCallBudgetUsd', 'allowDowngrade'];
  const unknown = Object.keys(r).filter((k) => !known.includes(k));
  if (unknown.length > 0) issue('', `unknown field(s) ${unknown.join(', ')}`);
  for (const key of ['userId', 'teamId', 'projectId'] as const) {
    const v = r[key];
    if (v === undefined && key !== 'userId') continue;
    if (typeof v !== 'string' || !SCOPE_ID_RE.test(v)) issue(key, 'must be 1-200 characters of letters, digits and ._@+=:/-');
  }
  for (const key of ['provider', 'model', 'taskType', 'conversationId'] as const) {
    const v = r[key];
    if (v === undefined && key !== 'provider' && key !== 'model') continue;
    const problem = typeof v !== 'string' ? 'must be a string' : (textProblem(v, { max: 200 }) ?? (v.trim() !== v ? 'must not start or end with spaces' : null));
    if (problem) issue(key, problem);
  }
  if (r.complexity !== undefined && !(COMPLEXITIES as readonly unknown[]).includes(r.complexity)) issue('complexity', `must be one of ${COMPLEXITIES.join(', ')}`);
  for (const key of ['inputTokens', 'maxOutputTokens'] as const) {
    const v = r[key];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_TOKENS)) issue(key, `must be a whole number from 0 to ${MAX_TOKENS}`);
  }
  for (const key of ['costUsd', 'perCallBudgetUsd'] as const) {
    const v = r[key];
    if (v !== undefined && (typeof v !== 'string' || !isDecimalString(v) || v.startsWith('-') || v.length > 30)) issue(key, 'must be a non-negative decimal string like "0.05"');
  }
  if (r.costUsd === undefined && (r.inputTokens === undefined || r.maxOutputTokens === undefined)) issue('', 'give the estimate: inputTokens and maxOutputTokens, or costUsd');
  if (r.allowDowngrade !== undefined && typeof r.allowDowngrade !== 'boolean') issue('allowDowngrade', 'must be true or false');
  if (r.ttlSeconds !== undefined && (typeof r.ttlSeconds !== 'number' || !Number.isInteger(r.ttlSeconds) || r.ttlSeconds < 1)) issue('ttlSeconds', 'must be a whole number of seconds, at least 1');
  return issues;
}

/** The scopes a call counts against: the system, its user, and its team and project when given. */
export function scopesOf(req: Pick<AuthorizeRequest, 'userId' | 'teamId' | 'projectId'>): Scope[] {
  const out: Scope[] = ['system', `user:${req.userId}`];
  if (req.teamId) out.push(`team:${req.teamId}`);
  if (req.projectId) out.push(`project:${req.projectId}`);
  return out.filter(isScope);
}

function remainingOf(b: BucketView): ScopeRemaining {
  const used = b.base + b.spent + b.open;
  return {
    scope: b.scope,
    period: b.name.split('|')[1] ?? '',
    enforcement: b.mode,
    budgetUsd: usdOf(b.budget),
    remainingUsd: usdOf(Math.max(0, b.budget - used)),
    usedRatio: b.budget > 0 ? Math.round((used / b.budget) * 10_000) / 10_000 : 0,
  };
}

export class Authorizer {
  readonly store: LeaseStore;
  /** The tier last advised per conversation. */
  private readonly tiers: AdviceTiers;
  private readonly opts: AuthorizerOptions;
  private readonly clock: () => number;
  private readonly node = randomBytes(4).readUInt32BE(0).toString(36);
  /** Hold ids: a random prefix per process and a counter (unique, and not guessable from another process). */
  private readonly idPrefix = randomBytes(9).toString('base64url');
  private idSeq = 0;
  /** Lease requests waiting to be sent, by scope: what the checks waiting on them need. */
  private readonly refills = new Map<Scope, { needMicro: number; promise: Promise<void> }>();
  /** The lease request in flight per scope. */
  private readonly sending = new Map<Scope, Promise<void>>();
  /**
   * Scopes whose last lease request granted nothing (the budget is spent or held), until when: their
   * checks go straight to the final round instead of asking the workflow again (a storm of denied
   * checks must not become a storm of workflow updates). Settlements still free room meanwhile.
   */
  private readonly dry = new Map<Scope, number>();
  /** Fail modes seen per scope (for when Redis itself cannot answer). */
  private readonly failModes = new Map<Scope, 'open' | 'closed'>();

  constructor(opts: AuthorizerOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? Date.now;
    this.store = createLeaseStore(opts.redis, opts.keyPrefix);
    this.tiers = createAdviceTiers(opts.redis, this.store.prefix);
  }

  /** Checks and reserves; throws AuthorizeValidationError for a bad request. */
  async authorize(input: AuthorizeRequest): Promise<AuthorizeResult> {
    const problems = authorizeRequestProblems(input);
    if (problems.length > 0) throw new AuthorizeValidationError(problems);
    const req = { ...input, provider: input.provider.toLowerCase(), taskType: input.taskType ?? 'default' };
    const scopes = scopesOf(req);
    const now = this.clock();
    const ttlMs = Math.min(this.opts.maxHoldTtlMs, req.ttlSeconds !== undefined ? req.ttlSeconds * 1000 : this.opts.holdTtlMs);
    const price = pricerFor(this.opts.pricing, now);
    const worstCase = req.costUsd ?? price(req.provider, req.model, req.inputTokens ?? 0, req.maxOutputTokens ?? 0);
    const unpriced = worstCase === null;
    const amount = Math.max(MIN_RESERVATION_MICRO, microUp(worstCase ?? this.opts.unknownPriceUsd));
    const id = makeHoldId(this.node, now, `${this.idPrefix}${(this.idSeq++).toString(36)}`);

    let reply: AuthorizeReply;
    try {
      reply = await this.reserve(scopes, amount, id, ttlMs, unpriced);
    } catch (err) {
      return this.failed(scopes, worstCase, err);
    }
    const base = { worstCaseUsd: worstCase, scopes: [] as ScopeRemaining[], enforced: true };
    if (reply.kind === 'hard') {
      return this.decided({ ...base, decision: 'deny', reason: 'price_unknown', holdId: null, reservedUsd: '0', expiresAt: null, advice: null, scopes: reply.buckets.map(remainingOf) }, scopes);
    }
    if (reply.kind === 'ok') {
      const views = reply.buckets.map(remainingOf);
      const overSoft = reply.buckets.some((b) => b.available < 0);
      const near = views.some((v) => v.usedRatio >= 0.9);
      const advice = near || overSoft ? await this.advise(req, reply.buckets) : null;
      const downgrade = advice !== null && advice.downgrade;
      return this.decided(
        {
          ...base,
          decision: downgrade ? 'downgrade' : 'allow',
          reason: downgrade ? (overSoft ? 'over_budget_soft' : 'near_budget') : null,
          holdId: id,
          reservedUsd: usdOf(amount),
          expiresAt: new Date(reply.expiresAtMs).toISOString(),
          advice,
          scopes: views,
        },
        scopes,
      );
    }
    // Still short after the grants: a cheaper model may fit (hard budgets).
    const buckets = reply.kind === 'short' ? reply.buckets : [];
    const advice = await this.advise(req, buckets);
    // A cheaper model is admitted only when its worst case can be priced from token counts (a check
    // given only `costUsd` has nothing to price it with) and the caller accepts a downgrade.
    const priceable = req.inputTokens !== undefined && req.maxOutputTokens !== undefined;
    if (req.allowDowngrade !== false && priceable && advice.downgrade && advice.expectedCostUsd !== null) {
      const cheaper = Math.max(MIN_RESERVATION_MICRO, microUp(advice.expectedCostUsd));
      if (cheaper < amount) {
        try {
          // With lease refills like the first try: the lease may hold less than the budget leaves.
          const second = await this.reserve(scopes, cheaper, id, ttlMs, false);
          if (second.kind === 'ok') {
            return this.decided(
              { ...base, decision: 'downgrade', reason: 'cheaper_fits', holdId: id, reservedUsd: usdOf(cheaper), expiresAt: new Date(second.expiresAtMs).toISOString(), advice, scopes: second.buckets.map(remainingOf) },
              scopes,
            );
          }
        } catch (err) {
          return this.failed(scopes, worstCase, err);
        }
      }
    }
    return this.decided({ ...base, decision: 'deny', reason: 'budget_exhausted', holdId: null, reservedUsd: '0', expiresAt: null, advice, scopes: buckets.map(remainingOf) }, scopes);
  }

  /** Settles a hold with the call's actual cost (normally done by the usage event that carries the hold id). */
  async settle(holdId: string, actualCostUsd: string): Promise<string> {
    this.checkHoldId(holdId);
    const [status] = await this.store.finish([{ holdId, action: 's', actualMicro: microUp(actualCostUsd) }]);
    return status ?? 'unknown';
  }

  /**
   * Usage naming these holds is about to be accepted for ingestion: each open hold lives at least
   * `acceptedHoldTtlMs` more, so it is still open when the flush that records the usage settles it
   * (an expiry in between would hand its money to another call). Well-formed ids only; one state each.
   */
  async accept(holdIds: readonly string[]): Promise<string[]> {
    const ids = [...new Set(holdIds.filter(isHoldId))];
    return this.store.accept(ids, this.opts.acceptedHoldTtlMs ?? this.opts.maxHoldTtlMs);
  }

  /** Gives a hold's reservation back (the call was not made). Repeats change nothing. */
  async release(holdId: string): Promise<string> {
    this.checkHoldId(holdId);
    const [status] = await this.store.finish([{ holdId, action: 'r', actualMicro: 0 }]);
    return status ?? 'unknown';
  }

  /** Extends an open hold's life (a long stream renews its hold). */
  async renew(holdId: string, ttlSeconds?: number): Promise<{ ok: true; expiresAt: string } | { ok: false; state: string }> {
    this.checkHoldId(holdId);
    const ttlMs = Math.min(this.opts.maxHoldTtlMs, ttlSeconds !== undefined ? ttlSeconds * 1000 : this.opts.holdTtlMs);
    const r = await this.store.renew(holdId, ttlMs);
    return r.ok ? { ok: true, expiresAt: new Date(r.expiresAtMs).toISOString() } : r;
  }

  /** Model advice for a call, with what remains in the user's (and team's, project's) budgets. */
  async advice(req: AuthorizeRequest): Promise<{ advice: Advice; scopes: ScopeRemaining[] }> {
    const problems = authorizeRequestProblems({ costUsd: '0', ...req });
    if (problems.length > 0) throw new AuthorizeValidationError(problems);
    const buckets: BucketView[] = [];
    for (const scope of scopesOf(req)) buckets.push(...((await this.store.scopeLease(scope))?.buckets ?? []));
    return { advice: await this.advise({ ...req, taskType: req.taskType ?? 'default' }, buckets), scopes: buckets.map(remainingOf) };
  }

  private checkHoldId(holdId: string): void {
    if (typeof holdId !== 'string' || !isHoldId(holdId)) throw new AuthorizeValidationError([{ path: 'holdId', message: 'must be a hold id as authorize returns it (h<node>.<time>.<random>)' }]);
  }

  /** Reserve, asking for leases as needed; the last round admits soft overshoot. */
  private async reserve(scopes: readonly Scope[], amount: number, id: string, ttlMs: number, unpriced: boolean): Promise<AuthorizeReply> {
    let reply: AuthorizeReply = { kind: 'noepoch' };
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const final = round === MAX_ROUNDS - 1;
      reply = await this.store.authorize({ scopes, amountMicro: amount, holdId: id, ttlMs, final, unpriced });
      if (reply.kind === 'ok' || reply.kind === 'hard') {
        this.learnFailModes(reply.buckets, scopes);
        return reply;
      }
      if (reply.kind === 'short') {
        this.learnFailModes(reply.buckets, scopes);
        if (final) return reply;
        const short = [...new Set(reply.buckets.filter((b) => b.available < amount).map((b) => b.scope))];
        const now = this.clock();
        if (short.every((s) => (this.dry.get(s) ?? 0) > now)) {
          round = MAX_ROUNDS - 2;
          continue;
        }
        // A grant that added nothing (headroom exhausted) leaves only the final soft round.
        const before = new Map(reply.buckets.map((b) => [b.name, b.available]));
        await Promise.all(short.map((s) => this.refill(s, amount)));
        const views = await Promise.all(short.map((s) => this.store.scopeLease(s)));
        const grew = views.some((v) => v?.buckets.some((b) => b.available > (before.get(b.name) ?? 0)));
        if (!grew) {
          for (const s of short) this.dry.set(s, this.clock() + DRY_MS);
          if (this.dry.size > 10_000) this.dry.clear();
          round = MAX_ROUNDS - 2;
        }
        continue;
      }
      const missing = reply.kind === 'noepoch' ? scopes : reply.scopes;
      await Promise.all(missing.map((s) => this.refill(s, amount)));
    }
    return reply;
  }

  /** Asks a scope's budget workflow for lease (starting it if needed); checks waiting together share one request. */
  private refill(scope: Scope, needMicro: number): Promise<void> {
    const waiting = this.refills.get(scope);
    if (waiting) {
      waiting.needMicro += needMicro;
      return waiting.promise;
    }
    const entry = { needMicro, promise: Promise.resolve() };
    const previous = this.sending.get(scope);
    entry.promise = (async () => {
      // One request in flight per scope (a workflow takes at most 10 updates at once): the next
      // waits for it, gathering the needs of every check that arrives meanwhile.
      if (previous) await previous.catch(() => undefined);
      // Let the checks arriving in the same turn add their need to this request.
      await new Promise((r) => setImmediate(r));
      this.refills.delete(scope);
      this.sending.set(scope, entry.promise);
      const input: BudgetWorkflowInput = { scope };
      const op = new WithStartWorkflowOperation(BUDGET_WORKFLOW_TYPE, {
        workflowId: budgetWorkflowId(scope),
        taskQueue: this.opts.taskQueue,
        args: [input],
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `Cost Guard budget for ${scope}`,
      });
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new LeaseUnavailable(`the budget workflow for ${scope} did not grant a lease within ${this.opts.refillTimeoutMs} ms`)), this.opts.refillTimeoutMs);
      });
      try {
        await Promise.race([this.opts.temporal.workflow.executeUpdateWithStart(leaseUpdate, { args: [{ needMicro: Math.min(entry.needMicro, Number.MAX_SAFE_INTEGER) }], startWorkflowOperation: op }), deadline]);
      } catch (err) {
        throw err instanceof LeaseUnavailable ? err : new LeaseUnavailable(`the budget workflow for ${scope} could not grant a lease: ${(err as Error).message}`);
      } finally {
        clearTimeout(timer);
        if (this.sending.get(scope) === entry.promise) this.sending.delete(scope);
      }
    })();
    this.refills.set(scope, entry);
    return entry.promise;
  }

  /** A scope fails open only when every one of its budgets does (a scope without budgets has nothing to enforce). */
  private learnFailModes(buckets: readonly BucketView[], scopes: readonly Scope[]): void {
    const modes = new Map<Scope, 'open' | 'closed'>(scopes.map((s) => [s, 'open']));
    for (const b of buckets) modes.set(b.scope, modes.get(b.scope) === 'closed' || b.failMode === 'closed' ? 'closed' : 'open');
    for (const [scope, mode] of modes) if (this.failModes.get(scope) !== mode) this.failModes.set(scope, mode);
    if (this.failModes.size > 100_000) this.failModes.clear();
  }

  /** Redis or Temporal could not answer: a scope known to fail open admits unreserved, anything else denies. */
  private failed(scopes: readonly Scope[], worstCase: string | null, err: unknown): AuthorizeResult {
    const open = scopes.every((s) => this.failModes.get(s) === 'open');
    const result: AuthorizeResult = {
      decision: open ? 'allow' : 'deny',
      reason: 'unavailable',
      holdId: null,
      reservedUsd: '0',
      expiresAt: null,
      worstCaseUsd: worstCase,
      advice: null,
      scopes: [],
      enforced: false,
    };
    void err;
    return this.decided(result, scopes);
  }

  private decided(r: AuthorizeResult, scopes: readonly Scope[]): AuthorizeResult {
    // Always in this order: the decision first, as a reader of the JSON expects it.
    const result: AuthorizeResult = { decision: r.decision, reason: r.reason, holdId: r.holdId, reservedUsd: r.reservedUsd, expiresAt: r.expiresAt, worstCaseUsd: r.worstCaseUsd, advice: r.advice, scopes: r.scopes, enforced: r.enforced };
    this.opts.onDecision?.(result.decision, result.reason);
    // Admissions are counted by the reservation script itself (no extra round trip on the common
    // path); downgrades and denials here.
    if (result.decision !== 'allow' || result.holdId === null) this.store.countDecision(scopes, result.holdId === null ? result.decision : 'downgrade').catch(() => undefined);
    return result;
  }

  /** Model advice from the tightest budget's remaining per-call share, with the conversation's last tier. */
  private async advise(req: AuthorizeRequest & { taskType: string }, buckets: readonly BucketView[]): Promise<Advice> {
    const now = this.clock();
    let remaining: { usd: string; expectedCalls: number } | undefined;
    let tightest: Dec | undefined;
    for (const b of buckets) {
      const left = new Dec(Math.max(0, b.budget - b.base - b.spent - b.open)).div(1_000_000);
      const calls = expectedRemainingCalls(b.calls, b.startMs, b.endMs, now);
      const perCall = new Dec(derivedPerCallBudget(left.toFixed(), calls));
      if (tightest === undefined || perCall.lt(tightest)) {
        tightest = perCall;
        remaining = { usd: left.toFixed(), expectedCalls: calls };
      }
    }
    const conversation = req.conversationId;
    let previousTier: ModelTier | undefined;
    if (conversation) previousTier = (await this.tiers.last(req.userId, conversation).catch(() => null)) ?? undefined;
    const advice = adviseModel(
      {
        provider: req.provider,
        model: req.model,
        taskType: req.taskType,
        ...(req.complexity ? { complexity: req.complexity } : {}),
        inputTokens: req.inputTokens ?? 0,
        maxOutputTokens: req.maxOutputTokens ?? 0,
        ...(req.perCallBudgetUsd !== undefined ? { perCallBudgetUsd: req.perCallBudgetUsd } : {}),
        ...(remaining ? { remaining } : {}),
        ...(previousTier ? { previousTier } : {}),
      },
      this.opts.advice ?? DEFAULT_ADVICE_SETTINGS,
      pricerFor(this.opts.pricing, now),
    );
    if (conversation && advice.tier !== previousTier) await this.tiers.remember(req.userId, conversation, advice.tier).catch(() => undefined);
    return advice;
  }
}

/** The tier of a model as the advice table knows it (null when unknown). */
export function tierOf(provider: string, model: string): ModelTier | null {
  return modelTier(provider, model)?.tier ?? null;
}
