/**
 * Model tiers (premium / standard / economy) and, for each model above economy, a cheaper model of
 * the SAME provider that handles most tasks of the kind: the report recommends moving traffic
 * there and estimates the saving by re-pricing the period's tokens at the alternative's price.
 *
 * The table is deliberately small and hand-kept: a tier is a judgement about capability, which no
 * price catalog records. A unit test checks that every model here (and every alternative) is priced
 * by the bundled catalog, so a rename there cannot silently disable a recommendation.
 */

export const MODEL_TIERS = ['premium', 'standard', 'economy'] as const;
export type ModelTier = (typeof MODEL_TIERS)[number];

export interface ModelTierEntry {
  provider: string;
  /** Model id without a version suffix (`-20241022`, `-2024-08-06`, `-latest`), lowercase. */
  model: string;
  tier: ModelTier;
  /** A cheaper model of the same provider, one tier down; absent for economy models. */
  cheaper?: string;
}

export const MODEL_TIER_TABLE: readonly ModelTierEntry[] = [
  { provider: 'openai', model: 'gpt-4', tier: 'premium', cheaper: 'gpt-4o' },
  { provider: 'openai', model: 'o1', tier: 'premium', cheaper: 'o4-mini' },
  { provider: 'openai', model: 'o3', tier: 'premium', cheaper: 'o4-mini' },
  // The original specification's tiers: gpt-4 and claude-3-opus premium; gpt-4-turbo and claude-3-5-sonnet
  // standard; gpt-3.5-turbo and gemini-pro economy.
  { provider: 'openai', model: 'gpt-4-turbo', tier: 'standard', cheaper: 'gpt-4o-mini' },
  { provider: 'openai', model: 'gpt-4o', tier: 'standard', cheaper: 'gpt-4o-mini' },
  { provider: 'openai', model: 'gpt-4.1', tier: 'standard', cheaper: 'gpt-4.1-mini' },
  { provider: 'openai', model: 'gpt-5', tier: 'standard', cheaper: 'gpt-5-mini' },
  { provider: 'openai', model: 'o4-mini', tier: 'standard', cheaper: 'gpt-4.1-mini' },
  { provider: 'openai', model: 'o3-mini', tier: 'standard', cheaper: 'gpt-4.1-mini' },
  { provider: 'openai', model: 'gpt-4o-mini', tier: 'economy' },
  { provider: 'openai', model: 'gpt-4.1-mini', tier: 'economy' },
  { provider: 'openai', model: 'gpt-4.1-nano', tier: 'economy' },
  { provider: 'openai', model: 'gpt-5-mini', tier: 'economy' },
  { provider: 'openai', model: 'gpt-5-nano', tier: 'economy' },
  { provider: 'openai', model: 'gpt-3.5-turbo', tier: 'economy' },
  { provider: 'anthropic', model: 'claude-3-opus', tier: 'premium', cheaper: 'claude-3-5-sonnet-20241022' },
  { provider: 'anthropic', model: 'claude-opus-4', tier: 'premium', cheaper: 'claude-sonnet-4-20250514' },
  { provider: 'anthropic', model: 'claude-opus-4-1', tier: 'premium', cheaper: 'claude-sonnet-4-20250514' },
  { provider: 'anthropic', model: 'claude-3-5-sonnet', tier: 'standard', cheaper: 'claude-3-5-haiku-20241022' },
  { provider: 'anthropic', model: 'claude-3-7-sonnet', tier: 'standard', cheaper: 'claude-3-5-haiku-20241022' },
  { provider: 'anthropic', model: 'claude-sonnet-4', tier: 'standard', cheaper: 'claude-3-5-haiku-20241022' },
  { provider: 'anthropic', model: 'claude-sonnet-4-5', tier: 'standard', cheaper: 'claude-haiku-4-5' },
  { provider: 'anthropic', model: 'claude-3-5-haiku', tier: 'economy' },
  { provider: 'anthropic', model: 'claude-3-haiku', tier: 'economy' },
  { provider: 'anthropic', model: 'claude-haiku-4-5', tier: 'economy' },
  { provider: 'google', model: 'gemini-2.5-pro', tier: 'premium', cheaper: 'gemini-2.5-flash' },
  { provider: 'google', model: 'gemini-1.5-pro', tier: 'standard', cheaper: 'gemini-1.5-flash' },
  { provider: 'google', model: 'gemini-2.5-flash', tier: 'standard', cheaper: 'gemini-2.5-flash-lite' },
  { provider: 'google', model: 'gemini-1.5-flash', tier: 'economy' },
  { provider: 'google', model: 'gemini-2.0-flash', tier: 'economy' },
  { provider: 'google', model: 'gemini-2.0-flash-lite', tier: 'economy' },
  { provider: 'google', model: 'gemini-2.5-flash-lite', tier: 'economy' },
  { provider: 'google', model: 'gemini-pro', tier: 'economy' },
];

const VERSION_SUFFIX_RE = /-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$/;
const byKey = new Map(MODEL_TIER_TABLE.map((e) => [`${e.provider}/${e.model}`, e]));

/** The tier entry of a model as callers report it (`claude-3-5-sonnet-20241022`), if known. */
export function modelTier(provider: string, model: string): ModelTierEntry | undefined {
  const p = provider.trim().toLowerCase();
  const m = model.trim().toLowerCase();
  return byKey.get(`${p}/${m}`) ?? byKey.get(`${p}/${m.replace(VERSION_SUFFIX_RE, '')}`);
}
