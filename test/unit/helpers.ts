/** Small helpers shared by the unit tests: build usages, price calls, read exact results. */
import { expect } from 'vitest';
import { Dec } from '../../src/domain/money.js';
import { type PriceOverride, type PriceResult, type PricedResult, PricingEngine } from '../../src/domain/pricing.js';
import { type TokenUsage, ZERO_USAGE } from '../../src/domain/usage.js';
import { loadCatalog } from '../../src/pricing/genai-catalog.js';

/** A full TokenUsage from the kinds given (the rest zero). */
export function usage(partial: Partial<TokenUsage> = {}): TokenUsage {
  return { ...ZERO_USAGE, ...partial };
}

/** Milliseconds since the epoch of an ISO time that must parse. */
export function at(iso: string): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`test bug: bad time ${iso}`);
  return ms;
}

/** A time well after every start date we rely on and in the catalog's off-peak hours. */
export const DEFAULT_AT = at('2025-09-01T20:00:00Z');

/** An engine over the real bundled catalog. */
export function realEngine(overrides: readonly PriceOverride[] = []): PricingEngine {
  return new PricingEngine(loadCatalog(), overrides);
}

/** Narrows a result to a priced one, failing the test with the reason otherwise. */
export function expectPriced(result: PriceResult): PricedResult {
  if (!result.priced) expect.fail(`expected a price, got unpriced (${result.code}): ${result.reason}`);
  return result;
}

/** The cost of one call, which must be priced. */
export function costOf(
  engine: PricingEngine,
  provider: string,
  model: string,
  u: Partial<TokenUsage>,
  occurredAtMs = DEFAULT_AT,
): string {
  return expectPriced(engine.price({ provider, model, occurredAtMs, usage: usage(u) })).costUsd;
}

/** Exact decimal arithmetic for expected values (never floats). */
export const dec = (value: string | number): Dec => new Dec(value);

/** `a` minus `b` as a normalised decimal string. */
export function subtract(a: string, b: string): string {
  const d = dec(a).minus(dec(b));
  return d.isZero() ? '0' : d.toFixed();
}
