/**
 * Model advice for pre-flight checks (the original specification's CostOptimizer): given the call a
 * caller is about to make (provider, model, task type, complexity, a token estimate) and what its
 * budget allows per call, which tier and model to use and how many output tokens to allow.
 *
 * Rules, in order:
 *  1. Complexity gives a tier: simple -> economy, medium (the default) -> standard, complex -> premium.
 *  2. The per-call budget caps it (the original rule): under `perCall.economyBelowUsd` ($0.01) ->
 *     economy; under `perCall.standardBelowUsd` ($0.05) -> at most standard. The per-call budget is
 *     the smaller of the caller's explicit one and the one derived from what remains in the scope's
 *     tightest budget (remaining / max(1, expected calls)); with neither there is no cap.
 *     Hysteresis (against the tier advised last time in the conversation): to go DOWN across a
 *     threshold the budget must be below threshold x (1 - h); to come back UP it must be at or above
 *     threshold x (1 + h). So a budget wobbling around a threshold does not flip the advice.
 *  3. The advised tier is the lower of 1 and 2, and never above the requested model's tier when that
 *     model is in MODEL_TIER_TABLE: advice is for saving, never for spending more.
 *  4. The model: the requested one when the advised tier is its own tier; otherwise the first model of
 *     the advised tier's list with the requested provider, else that list's first.
 *  5. Output tokens: the requested estimate, lowered to the task type's cap when there is one.
 *
 * Pure and deterministic: no I/O, no clock, no environment; money as exact decimal strings (Dec).
 * Prices come from the `price` function the caller passes (see `pricerFor`).
 */
import { Dec, isDecimalString, normalizeAmount, parseAmount } from './money.js';
import { MODEL_TIERS, type ModelTier, modelTier } from './model-tiers.js';
import type { PricingEngine } from './pricing.js';
import { ZERO_USAGE } from './tokens.js';

export type Complexity = 'simple' | 'medium' | 'complex';
export const COMPLEXITIES: readonly Complexity[] = ['simple', 'medium', 'complex'];

export interface AdviceModel {
  provider: string;
  model: string;
}

export interface AdviceSettings {
  /** Ordered candidate models per tier (first match by provider wins). Default: DEFAULT_ADVICE_TIERS. */
  tiers: Record<ModelTier, ReadonlyArray<AdviceModel>>;
  /** Per-call budget under economyBelowUsd -> economy, under standardBelowUsd -> at most standard. Decimal strings. */
  perCall: { economyBelowUsd: string; standardBelowUsd: string };
  /** Output-token caps per task type. Default: ORIGINAL_MAX_TOKENS. */
  maxTokensByTaskType: Readonly<Record<string, number>>;
  /** Hysteresis fraction in [0, 1): down below threshold*(1-h), back up at or above threshold*(1+h). */
  hysteresis: number;
}

/** The original specification's output caps (the prompt guard re-exports this). */
export const ORIGINAL_MAX_TOKENS: Readonly<Record<string, number>> = Object.freeze({ summarization: 1000, analysis: 2000 });

/**
 * The original specification's models first (so a caller of that provider is advised the model the
 * specification named), then current ones. Every entry is in MODEL_TIER_TABLE at its tier and priced
 * by the bundled catalog (gemini-pro included); a unit test checks both.
 */
export const DEFAULT_ADVICE_TIERS: Readonly<Record<ModelTier, ReadonlyArray<AdviceModel>>> = Object.freeze({
  premium: Object.freeze([
    { provider: 'openai', model: 'gpt-4' },
    { provider: 'anthropic', model: 'claude-3-opus-20240229' },
    { provider: 'google', model: 'gemini-2.5-pro' },
    { provider: 'anthropic', model: 'claude-opus-4-20250514' },
  ]),
  standard: Object.freeze([
    { provider: 'openai', model: 'gpt-4-turbo' },
    { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022' },
    { provider: 'google', model: 'gemini-2.5-flash' },
    { provider: 'openai', model: 'gpt-4o' },
    { provider: 'anthropic', model: 'claude-sonnet-4-20250514' },
  ]),
  economy: Object.freeze([
    { provider: 'openai', model: 'gpt-3.5-turbo' },
    { provider: 'google', model: 'gemini-pro' },
    { provider: 'anthropic', model: 'claude-3-5-haiku-20241022' },
    { provider: 'openai', model: 'gpt-4o-mini' },
    { provider: 'google', model: 'gemini-2.0-flash' },
  ]),
});

export const DEFAULT_ADVICE_SETTINGS: AdviceSettings = Object.freeze({
  tiers: DEFAULT_ADVICE_TIERS,
  perCall: Object.freeze({ economyBelowUsd: '0.01', standardBelowUsd: '0.05' }),
  maxTokensByTaskType: ORIGINAL_MAX_TOKENS,
  hysteresis: 0.2,
});

export interface AdviceInput {
  provider: string;
  model: string;
  taskType: string;
  /** Default 'medium' (-> standard). */
  complexity?: Complexity;
  /** The estimate. */
  inputTokens: number;
  maxOutputTokens: number;
  /** An explicit per-call budget from the caller (decimal string, USD). */
  perCallBudgetUsd?: string;
  /** What remains in the scope's tightest budget and the calls expected in the rest of its period. */
  remaining?: { usd: string; expectedCalls: number };
  /** The tier advised last time in this conversation (hysteresis). */
  previousTier?: ModelTier;
}

export interface Advice {
  tier: ModelTier;
  provider: string;
  model: string;
  /** min(requested, the task type's cap if any). */
  maxOutputTokens: number;
  /** The estimate (inputTokens, the advised maxOutputTokens) at the advised model; null when unpriced. */
  expectedCostUsd: string | null;
  /** The requested model's tier; null when it is not in MODEL_TIER_TABLE. */
  requestedTier: ModelTier | null;
  /** The estimate as requested (inputTokens, the requested maxOutputTokens) at the requested model. */
  requestedCostUsd: string | null;
  /** The per-call budget used (min of the explicit and the derived one); null when there was none. */
  perCallBudgetUsd: string | null;
  /** True when the advised tier is below the requested model's tier. */
  downgrade: boolean;
  reasons: string[];
}

/** Prices an estimate: a decimal string in USD, or null when the model is not priced. */
export type AdvicePricer = (provider: string, model: string, inputTokens: number, outputTokens: number) => string | null;

/** An AdvicePricer over a pricing engine, pricing as of `occurredAtMs` (given, so this stays pure). */
export function pricerFor(engine: Pick<PricingEngine, 'price'>, occurredAtMs: number): AdvicePricer {
  return (provider, model, inputTokens, outputTokens) => {
    const r = engine.price({ provider, model, occurredAtMs, usage: { ...ZERO_USAGE, inputTokens, outputTokens } });
    return r.priced ? r.costUsd : null;
  };
}

/** Places a derived per-call budget is cut to (toward zero: a budget is never rounded up). */
const DERIVED_DECIMALS = 24;

/** The per-call budget derived from what remains: remaining / max(1, expectedCalls), as a decimal string. */
export function derivedPerCallBudget(remainingUsd: string, expectedCalls: number): string {
  if (typeof expectedCalls !== 'number' || !Number.isFinite(expectedCalls)) {
    throw new RangeError(`expectedCalls must be a finite number, got ${String(expectedCalls)}`);
  }
  const calls = new Dec(Math.max(1, expectedCalls));
  return normalizeAmount(parseAmount(remainingUsd).dividedBy(calls).toDecimalPlaces(DERIVED_DECIMALS, Dec.ROUND_DOWN));
}

/**
 * Expected calls in the rest of a period from the calls so far: callsSoFar * (msLeft / msElapsed),
 * rounded up to a whole call, at least 1. With no time elapsed yet (or none left) it is 1.
 */
export function expectedRemainingCalls(callsSoFar: number, periodStartMs: number, periodEndMs: number, nowMs: number): number {
  for (const [name, v] of [['callsSoFar', callsSoFar], ['periodStartMs', periodStartMs], ['periodEndMs', periodEndMs], ['nowMs', nowMs]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${name} must be a finite number, got ${String(v)}`);
  }
  if (callsSoFar < 0) throw new RangeError(`callsSoFar must be >= 0, got ${callsSoFar}`);
  const elapsed = nowMs - periodStartMs;
  const left = periodEndMs - nowMs;
  if (elapsed <= 0 || left <= 0 || callsSoFar === 0) return 1;
  const expected = new Dec(callsSoFar).times(left).dividedBy(elapsed).ceil().toNumber();
  return Math.max(1, expected);
}

const rank = (t: ModelTier): number => MODEL_TIERS.indexOf(t); // premium 0 ... economy 2
/** The lower (cheaper) of two tiers. */
const lower = (a: ModelTier, b: ModelTier): ModelTier => (rank(a) >= rank(b) ? a : b);
const TIER_BY_COMPLEXITY: Readonly<Record<Complexity, ModelTier>> = { simple: 'economy', medium: 'standard', complex: 'premium' };

/** A USD amount for a reason: at most 6 places, or in full when that would show 0. */
function usd(d: Dec): string {
  const short = d.toDecimalPlaces(6, Dec.ROUND_HALF_EVEN);
  return `$${normalizeAmount(short.isZero() && !d.isZero() ? d : short)}`;
}

function wholeTokens(name: string, v: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be a whole number >= 0, got ${String(v)}`);
}

/**
 * The per-call budget's cap on the tier (null: no cap), with hysteresis against `previousTier`.
 * Each threshold separates a lower tier (below it) from the one above: if the previous advice was
 * above the lower tier the threshold moves down by h (harder to go down); if it was at or below the
 * lower tier it moves up by h (harder to come back up).
 */
function budgetCap(
  budget: Dec,
  settings: AdviceSettings,
  previousTier: ModelTier | undefined,
  reasons: string[],
): ModelTier | null {
  const h = new Dec(settings.hysteresis);
  const thresholds: ReadonlyArray<{ below: ModelTier; at: Dec }> = [
    { below: 'economy', at: parseAmount(settings.perCall.economyBelowUsd) },
    { below: 'standard', at: parseAmount(settings.perCall.standardBelowUsd) },
  ];
  const capWith = (shift: boolean): { tier: ModelTier | null; at: Dec | null } => {
    for (const t of thresholds) {
      let at = t.at;
      if (shift && previousTier !== undefined) at = rank(previousTier) < rank(t.below) ? at.times(new Dec(1).minus(h)) : at.times(new Dec(1).plus(h));
      if (budget.lessThan(at)) return { tier: t.below, at: t.at };
    }
    return { tier: null, at: null };
  };
  const plain = capWith(false);
  const held = capWith(true);
  if (held.tier === plain.tier) {
    if (plain.tier) reasons.push(`per-call budget ${usd(budget)} under ${usd(plain.at!)} -> ${plain.tier === 'economy' ? 'economy' : 'at most standard'}`);
    return plain.tier;
  }
  // Hysteresis changed the outcome: the previous tier's side of the threshold is kept.
  reasons.push(`per-call budget ${usd(budget)} would give ${plain.tier === null ? 'no cap' : `at most ${plain.tier}`}; kept ${previousTier!} (hysteresis)`);
  return held.tier;
}

/** Advises the tier, model and output limit for one call (see the module comment for the rules). */
export function adviseModel(input: AdviceInput, settings: AdviceSettings, price: AdvicePricer): Advice {
  wholeTokens('inputTokens', input.inputTokens);
  wholeTokens('maxOutputTokens', input.maxOutputTokens);
  const complexity = input.complexity ?? 'medium';
  const complexityTier = TIER_BY_COMPLEXITY[complexity];
  if (!complexityTier) throw new RangeError(`complexity must be one of ${COMPLEXITIES.join(', ')}, got ${String(complexity)}`);
  if (input.previousTier !== undefined && !MODEL_TIERS.includes(input.previousTier)) {
    throw new RangeError(`previousTier must be one of ${MODEL_TIERS.join(', ')}, got ${String(input.previousTier)}`);
  }
  const reasons: string[] = [`task complexity ${complexity} -> ${complexityTier}`];

  // The per-call budget: the smaller of the explicit and the derived one.
  const budgets: Dec[] = [];
  if (input.perCallBudgetUsd !== undefined) budgets.push(parseAmount(input.perCallBudgetUsd));
  if (input.remaining !== undefined) budgets.push(parseAmount(derivedPerCallBudget(input.remaining.usd, input.remaining.expectedCalls)));
  const budget = budgets.length === 0 ? null : budgets.reduce((a, b) => (b.lessThan(a) ? b : a));
  let tier = complexityTier;
  if (budget !== null) {
    const cap = budgetCap(budget, settings, input.previousTier, reasons);
    if (cap) tier = lower(tier, cap);
  }

  // Never above the requested model's tier.
  const requested = modelTier(input.provider, input.model);
  const requestedTier = requested?.tier ?? null;
  if (requestedTier === null) reasons.push(`requested model ${input.provider}/${input.model} is not in the tier table`);
  else if (rank(tier) < rank(requestedTier)) {
    reasons.push(`requested model ${input.provider}/${input.model} is ${requestedTier}: not advising above it`);
    tier = requestedTier;
  }

  // The model: the requested one at its own tier, else the tier's same-provider candidate, else its first.
  let provider = input.provider;
  let model = input.model;
  if (tier !== requestedTier) {
    const candidates = settings.tiers[tier];
    const wanted = input.provider.trim().toLowerCase();
    const pick = candidates.find((c) => c.provider.trim().toLowerCase() === wanted) ?? candidates[0];
    if (!pick) throw new RangeError(`advice settings: tier ${tier} has no models`);
    provider = pick.provider;
    model = pick.model;
    reasons.push(`${tier} model for ${input.provider}: ${provider}/${model}`);
  }

  // Output tokens: capped per task type.
  let maxOutputTokens = input.maxOutputTokens;
  if (Object.hasOwn(settings.maxTokensByTaskType, input.taskType)) {
    const cap = settings.maxTokensByTaskType[input.taskType]!;
    if (cap < maxOutputTokens) {
      reasons.push(`max output tokens ${maxOutputTokens} -> ${cap} for task type ${input.taskType}`);
      maxOutputTokens = cap;
    }
  }

  const downgrade = requestedTier !== null && rank(tier) > rank(requestedTier);
  return {
    tier,
    provider,
    model,
    maxOutputTokens,
    expectedCostUsd: price(provider, model, input.inputTokens, maxOutputTokens),
    requestedTier,
    requestedCostUsd: price(input.provider, input.model, input.inputTokens, input.maxOutputTokens),
    perCallBudgetUsd: budget === null ? null : normalizeAmount(budget),
    downgrade,
    reasons,
  };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const SETTINGS_KEYS = ['tiers', 'perCall', 'maxTokensByTaskType', 'hysteresis'];

/**
 * What is wrong with advice settings from config, or null. Every field is optional (a missing one
 * takes its DEFAULT_ADVICE_SETTINGS value, see resolveAdviceSettings); unknown keys are refused.
 */
export function adviceSettingsProblem(raw: unknown): string | null {
  if (raw === undefined) return null;
  if (!isObj(raw)) return 'advice settings must be an object';
  for (const k of Object.keys(raw)) if (!SETTINGS_KEYS.includes(k)) return `advice settings: unknown key "${k}" (expected ${SETTINGS_KEYS.join(', ')})`;
  if (raw.tiers !== undefined) {
    if (!isObj(raw.tiers)) return 'advice.tiers must be an object of premium, standard and economy model lists';
    for (const k of Object.keys(raw.tiers)) if (!(MODEL_TIERS as readonly string[]).includes(k)) return `advice.tiers: unknown tier "${k}" (expected ${MODEL_TIERS.join(', ')})`;
    for (const t of MODEL_TIERS) {
      const list = raw.tiers[t];
      if (!Array.isArray(list) || list.length === 0) return `advice.tiers.${t} must be a non-empty list of { provider, model }`;
      for (const [i, e] of list.entries()) {
        if (!isObj(e) || typeof e.provider !== 'string' || e.provider.trim() === '' || typeof e.model !== 'string' || e.model.trim() === '') {
          return `advice.tiers.${t}[${i}] must be { provider, model } with non-empty strings`;
        }
      }
    }
  }
  if (raw.perCall !== undefined) {
    if (!isObj(raw.perCall)) return 'advice.perCall must be an object { economyBelowUsd, standardBelowUsd }';
    for (const k of Object.keys(raw.perCall)) if (k !== 'economyBelowUsd' && k !== 'standardBelowUsd') return `advice.perCall: unknown key "${k}"`;
    const e = raw.perCall.economyBelowUsd ?? DEFAULT_ADVICE_SETTINGS.perCall.economyBelowUsd;
    const s = raw.perCall.standardBelowUsd ?? DEFAULT_ADVICE_SETTINGS.perCall.standardBelowUsd;
    for (const [k, v] of [['economyBelowUsd', e], ['standardBelowUsd', s]] as const) {
      if (typeof v !== 'string' || !isDecimalString(v) || v.startsWith('-')) return `advice.perCall.${k} must be a decimal string >= 0 such as "0.01", got ${JSON.stringify(v)}`;
    }
    if (new Dec(e as string).greaterThan(new Dec(s as string))) return `advice.perCall.economyBelowUsd (${String(e)}) must not exceed standardBelowUsd (${String(s)})`;
  }
  if (raw.maxTokensByTaskType !== undefined) {
    if (!isObj(raw.maxTokensByTaskType)) return 'advice.maxTokensByTaskType must be an object of task type -> cap';
    for (const [k, v] of Object.entries(raw.maxTokensByTaskType)) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) return `advice.maxTokensByTaskType.${k} must be a whole number >= 1, got ${JSON.stringify(v)}`;
    }
  }
  if (raw.hysteresis !== undefined) {
    const h = raw.hysteresis;
    if (typeof h !== 'number' || !Number.isFinite(h) || h < 0 || h >= 1) return `advice.hysteresis must be a number in [0, 1), got ${JSON.stringify(h)}`;
  }
  return null;
}

/** Settings from config: validated (RangeError with adviceSettingsProblem's message), missing fields defaulted. */
export function resolveAdviceSettings(raw: unknown): AdviceSettings {
  const problem = adviceSettingsProblem(raw);
  if (problem) throw new RangeError(problem);
  const r = (raw ?? {}) as Partial<AdviceSettings>;
  return {
    tiers: r.tiers ?? DEFAULT_ADVICE_SETTINGS.tiers,
    perCall: { ...DEFAULT_ADVICE_SETTINGS.perCall, ...r.perCall },
    maxTokensByTaskType: r.maxTokensByTaskType ?? DEFAULT_ADVICE_SETTINGS.maxTokensByTaskType,
    hysteresis: r.hysteresis ?? DEFAULT_ADVICE_SETTINGS.hysteresis,
  };
}
