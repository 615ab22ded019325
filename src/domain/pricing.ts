/**
 * The pricing engine: turns one call's token usage into an exact cost. Pure; the catalog and the
 * overrides are given to it.
 *
 * Matching a call to a price (in this order; the first step that yields a price wins):
 *  1. Overrides from config whose provider equals the call's provider (case-insensitive), and whose
 *     model equals the call's model exactly (case-insensitive).
 *  2. Overrides whose model equals the call's model without its version suffix: a date
 *     (`-20240229`, `-2024-02-29`) or `-latest`. So an override for `claude-3-opus` also prices
 *     `claude-3-opus-20240229`.
 *     In 1 and 2, among overrides for the same model, the newest `effectiveFrom` not after the
 *     call's `occurredAt` wins; overrides that take effect later are skipped.
 *  3. The catalog, exactly as genai-prices matches: the provider by id, else by its
 *     `provider_match`; the model by the first whose `match` logic accepts the lowercased id; if none,
 *     again with a compact date suffix rewritten (`-20240806` -> `-2024-08-06`); then the provider's
 *     fallback providers. Of the model's prices, the last whose constraint holds at `occurredAt`
 *     (a start date not after it, or a UTC time-of-day window containing it), else the first.
 *  4. No match: an explicit UNPRICED result with the reason. Never an exception, never a silent 0.
 *
 * Arithmetic: each metered unit's "leaf" count (input minus the cached input that has its own price,
 * output minus separately priced reasoning, and so on; see UNITS) times its integer price in
 * 10^-24 USD; a tiered price uses the tier chosen by the call's total input tokens.
 * Results are decimal strings.
 */
import {
  type Catalog,
  type CatalogModel,
  type CatalogPrice,
  type CatalogProvider,
  PRICE_SCALE,
  type PriceTable,
  type UnitName,
  type UnitPrice,
  scalePrice,
} from './catalog.js';
import type { TokenUsage } from './usage.js';

/** A price override in the original per-1K-tokens format, from config. */
export interface PriceOverride {
  provider: string;
  model: string;
  /** ISO date or date-time from which this price applies; absent means "always". */
  effectiveFrom?: string | undefined;
  inputPer1k: string;
  outputPer1k: string;
  cacheReadPer1k?: string | undefined;
  cacheWritePer1k?: string | undefined;
  cacheWrite1hPer1k?: string | undefined;
  reasoningPer1k?: string | undefined;
}

export type CostComponent = 'input' | 'cacheRead' | 'cacheWrite' | 'cacheWrite1h' | 'output' | 'reasoning' | 'request';

export interface PriceSource {
  source: 'override' | 'catalog';
  provider: string; // matched provider id
  model: string; // matched model id
  effectiveFrom: string | null; // date the chosen price took effect, if the price has one
  catalogVersion: string; // e.g. "genai-prices@0.1.8", or "config" for overrides
  constraint: string | null; // e.g. "time_of_day 16:30:00Z-00:30:00Z"
  tierStart: number | null; // input-token threshold of the tier used, when a tier applied
}

export interface PricedResult {
  priced: true;
  costUsd: string;
  /** Units charged per component (leaf counts) and their cost, for components with a price. */
  components: Partial<Record<CostComponent, { units: number; costUsd: string }>>;
  price: PriceSource;
}

export interface UnpricedResult {
  priced: false;
  costUsd: '0';
  reason: string;
  code: 'unknown_provider' | 'unknown_model';
}

export type PriceResult = PricedResult | UnpricedResult;

interface CompiledOverride {
  provider: string;
  model: string;
  effectiveFromMs: number;
  effectiveFrom: string | null;
  table: PriceTable;
}

type Resolution =
  | { kind: 'catalog'; provider: CatalogProvider; model: CatalogModel }
  | { kind: 'none'; code: UnpricedResult['code']; reason: string };

const DATE_SUFFIX_RE = /(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)/g;
const VERSION_SUFFIX_RE = /-(?:\d{4}-?\d{2}-?\d{2}|latest)$/;
const RESOLUTION_CACHE_LIMIT = 10_000;
const SCALE_DIVISOR = 10n ** BigInt(PRICE_SCALE);

/** `-20240806` -> `-2024-08-06` when it is a real calendar date (the catalog's own rule). */
export function expandDateSuffix(id: string): string {
  return id.replace(DATE_SUFFIX_RE, (whole, dash: string, y: string, m: string, d: string) => {
    const date = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
    return date.getUTCFullYear() === Number(y) && date.getUTCMonth() === Number(m) - 1 && date.getUTCDate() === Number(d)
      ? `${dash}${y}-${m}-${d}`
      : whole;
  });
}

/** Formats an integer count of 10^-24 USD as a plain decimal string ("0.00021"). */
export function scaledToDecimal(value: bigint): string {
  if (value === 0n) return '0';
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = abs / SCALE_DIVISOR;
  let frac = (abs % SCALE_DIVISOR).toString().padStart(PRICE_SCALE, '0');
  let end = frac.length;
  while (end > 0 && frac.charCodeAt(end - 1) === 48) end--;
  frac = frac.slice(0, end);
  return `${negative ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

function compileOverride(o: PriceOverride): CompiledOverride {
  const what = `override ${o.provider}/${o.model}`;
  const per1k = (v: string | undefined, unit: string): UnitPrice | undefined =>
    v === undefined ? undefined : { base: scalePrice(v, 1000, `${what} ${unit}`), tiers: [] };
  const table: PriceTable = {};
  const put = (unit: UnitName, price: UnitPrice | undefined) => {
    if (price) table[unit] = price;
  };
  put('input', per1k(o.inputPer1k, 'inputPer1k'));
  put('output', per1k(o.outputPer1k, 'outputPer1k'));
  put('cacheRead', per1k(o.cacheReadPer1k, 'cacheReadPer1k'));
  put('cacheWrite', per1k(o.cacheWritePer1k, 'cacheWritePer1k'));
  put('cacheWrite1h', per1k(o.cacheWrite1hPer1k, 'cacheWrite1hPer1k'));
  put('reasoning', per1k(o.reasoningPer1k, 'reasoningPer1k'));
  const effectiveFromMs = o.effectiveFrom ? Date.parse(o.effectiveFrom.length === 10 ? `${o.effectiveFrom}T00:00:00Z` : o.effectiveFrom) : -Infinity;
  if (Number.isNaN(effectiveFromMs)) throw new RangeError(`${what}: effectiveFrom ${o.effectiveFrom} is not a date`);
  return {
    provider: o.provider.trim().toLowerCase(),
    model: o.model.trim().toLowerCase(),
    effectiveFromMs,
    effectiveFrom: o.effectiveFrom ?? null,
    table,
  };
}

function selectCatalogPrice(model: CatalogModel, atMs: number): CatalogPrice {
  const prices = model.prices;
  const secondOfDay = (((atMs % 86_400_000) + 86_400_000) % 86_400_000) / 1000;
  for (let i = prices.length - 1; i >= 0; i--) {
    const p = prices[i]!;
    const c = p.constraint;
    if (c.type === 'always') return p;
    if (c.type === 'start_date') {
      if (atMs >= c.startMs) return p;
    } else if (c.endSec < c.startSec) {
      if (secondOfDay >= c.startSec || secondOfDay < c.endSec) return p;
    } else if (secondOfDay >= c.startSec && secondOfDay < c.endSec) {
      return p;
    }
  }
  return prices[0]!;
}

function unitPrice(price: UnitPrice, inputTokens: number): { value: bigint; tierStart: number | null } {
  let value = price.base;
  let tierStart: number | null = null;
  for (const tier of price.tiers) {
    if (inputTokens > tier.start) {
      value = tier.price;
      tierStart = tier.start;
    }
  }
  return { value, tierStart };
}

export interface PricingInput {
  provider: string;
  model: string;
  occurredAtMs: number;
  usage: TokenUsage;
}

export class PricingEngine {
  readonly catalog: Catalog;
  private readonly overrides = new Map<string, CompiledOverride[]>(); // by provider, newest first
  private readonly resolutions = new Map<string, Resolution>();
  private readonly providersById = new Map<string, CatalogProvider>();

  constructor(catalog: Catalog, overrides: readonly PriceOverride[] = []) {
    this.catalog = catalog;
    for (const p of catalog.providers) this.providersById.set(p.id, p);
    for (const o of overrides.map(compileOverride)) {
      const list = this.overrides.get(o.provider) ?? [];
      list.push(o);
      this.overrides.set(o.provider, list);
    }
    for (const list of this.overrides.values()) list.sort((a, b) => b.effectiveFromMs - a.effectiveFromMs);
  }

  /** Prices one call. Never throws for an unknown provider or model: returns an unpriced result. */
  price(input: PricingInput): PriceResult {
    const providerKey = input.provider.trim().toLowerCase();
    const modelKey = input.model.trim().toLowerCase();
    const override = this.findOverride(providerKey, modelKey, input.occurredAtMs);
    if (override) {
      return computeCost(override.table, input.usage, {
        source: 'override',
        provider: override.provider,
        model: override.model,
        effectiveFrom: override.effectiveFrom,
        catalogVersion: 'config',
        constraint: null,
        tierStart: null,
      });
    }
    const resolution = this.resolve(providerKey, modelKey);
    if (resolution.kind === 'none') return { priced: false, costUsd: '0', code: resolution.code, reason: resolution.reason };
    const chosen = selectCatalogPrice(resolution.model, input.occurredAtMs);
    const c = chosen.constraint;
    return computeCost(chosen.table, input.usage, {
      source: 'catalog',
      provider: resolution.provider.id,
      model: resolution.model.id,
      effectiveFrom: c.type === 'start_date' ? c.startDate : null,
      catalogVersion: this.catalog.version,
      constraint: c.type === 'time_of_day' ? `time_of_day ${c.label}` : null,
      tierStart: null,
    });
  }

  private findOverride(provider: string, model: string, atMs: number): CompiledOverride | undefined {
    const list = this.overrides.get(provider);
    if (!list) return undefined;
    const base = model.replace(VERSION_SUFFIX_RE, '');
    for (const candidate of base === model ? [model] : [model, base]) {
      const hit = list.find((o) => o.model === candidate && o.effectiveFromMs <= atMs);
      if (hit) return hit;
    }
    return undefined;
  }

  /** Which catalog model a (provider, model) pair resolves to; cached, misses included. */
  resolve(provider: string, model: string): Resolution {
    const key = `${provider}\u0000${model}`;
    const cached = this.resolutions.get(key);
    if (cached) return cached;
    const resolution = this.resolveUncached(provider, model);
    if (this.resolutions.size >= RESOLUTION_CACHE_LIMIT) this.resolutions.clear();
    this.resolutions.set(key, resolution);
    return resolution;
  }

  private findProvider(id: string): CatalogProvider | undefined {
    return this.providersById.get(id) ?? this.catalog.providers.find((p) => p.matchesProvider?.(id));
  }

  private resolveUncached(providerId: string, modelId: string): Resolution {
    let provider = this.findProvider(providerId);
    let model = modelId;
    // LiteLLM-style ids ("anthropic/claude-3-5-sonnet") name the real provider in the model id.
    if (providerId === 'litellm' && model.includes('/')) {
      const [prefix, ...rest] = model.split('/');
      const real = prefix ? this.findProvider(prefix) : undefined;
      if (real && rest.length > 0) {
        provider = real;
        model = rest.join('/');
      }
    }
    if (!provider) {
      return {
        kind: 'none',
        code: 'unknown_provider',
        reason: `unknown provider "${providerId}": not in ${this.catalog.version} and no override in config`,
      };
    }
    const found = this.findModel(provider, model, true) ?? this.findModelExpanded(provider, model);
    if (!found) {
      return {
        kind: 'none',
        code: 'unknown_model',
        reason: `unknown model "${modelId}" for provider "${provider.id}": not in ${this.catalog.version} and no override in config`,
      };
    }
    return { kind: 'catalog', provider: found.provider, model: found.model };
  }

  private findModelExpanded(provider: CatalogProvider, model: string) {
    const expanded = expandDateSuffix(model);
    return expanded === model ? undefined : this.findModel(provider, expanded, true);
  }

  private findModel(
    provider: CatalogProvider,
    model: string,
    withFallbacks: boolean,
  ): { provider: CatalogProvider; model: CatalogModel } | undefined {
    const hit = provider.models.find((m) => m.matches(model));
    if (hit) return { provider, model: hit };
    if (!withFallbacks) return undefined;
    for (const id of provider.fallbackProviders) {
      const fallback = this.providersById.get(id);
      const found = fallback ? this.findModel(fallback, model, false) : undefined;
      if (found) return found;
    }
    return undefined;
  }
}

/** Cost of one call under one price table (see the module comment for the leaf rule). */
export function computeCost(table: PriceTable, usage: TokenUsage, source: PriceSource): PricedResult {
  const has = (u: UnitName) => table[u] !== undefined;
  const cacheWrite1h = has('cacheWrite1h') ? usage.cacheWrite1hTokens : 0;
  const cacheWrite5m = has('cacheWrite5m') ? usage.cacheWriteTokens - usage.cacheWrite1hTokens : 0;
  const cacheWrite = has('cacheWrite') ? usage.cacheWriteTokens - cacheWrite1h - cacheWrite5m : 0;
  const cacheRead = has('cacheRead') ? usage.cacheReadTokens : 0;
  const input = has('input') ? usage.inputTokens - cacheRead - cacheWrite - cacheWrite5m - cacheWrite1h : 0;
  const reasoning = has('reasoning') ? usage.reasoningTokens : 0;
  const output = has('output') ? usage.outputTokens - reasoning : 0;

  const components: PricedResult['components'] = {};
  let total = 0n;
  let tierStart: number | null = null;
  const charge = (name: CostComponent, unit: UnitName, units: number, existing = 0n): bigint => {
    const price = table[unit];
    if (!price) return existing;
    const chosen = unitPrice(price, usage.inputTokens);
    if (chosen.tierStart !== null) tierStart = Math.max(tierStart ?? 0, chosen.tierStart);
    const cost = chosen.value * BigInt(units);
    const sum = existing + cost;
    components[name] = { units: (components[name]?.units ?? 0) + units, costUsd: scaledToDecimal(sum) };
    total += cost;
    return sum;
  };
  charge('input', 'input', input);
  charge('cacheRead', 'cacheRead', cacheRead);
  const cw = charge('cacheWrite', 'cacheWrite', cacheWrite);
  charge('cacheWrite', 'cacheWrite5m', cacheWrite5m, cw);
  charge('cacheWrite1h', 'cacheWrite1h', cacheWrite1h);
  charge('output', 'output', output);
  charge('reasoning', 'reasoning', reasoning);
  charge('request', 'request', 1);
  return { priced: true, costUsd: scaledToDecimal(total), components, price: { ...source, tierStart } };
}
