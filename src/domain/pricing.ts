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
 *  4. No match, or a catalog price only in units Cost Guard does not meter (audio seconds, document
 *     pages): an explicit UNPRICED result with the reason. Never an exception, never a silent 0.
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
  /** What the ledger records as the price's catalog version (default `config`; `original-spec` for the original table). */
  catalogVersion?: string | undefined;
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
  code: 'unknown_provider' | 'unknown_model' | 'unmetered_units';
}

export type PriceResult = PricedResult | UnpricedResult;

interface CompiledOverride {
  provider: string;
  model: string;
  effectiveFromMs: number;
  effectiveFrom: string | null;
  table: PriceTable;
  catalogVersion: string;
}

type Resolution =
  | { kind: 'catalog'; provider: CatalogProvider; model: CatalogModel }
  | { kind: 'none'; code: UnpricedResult['code']; reason: string };

const DATE_SUFFIX_RE = /(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)/g;
const VERSION_SUFFIX_RE = /-(?:\d{4}-?\d{2}-?\d{2}|latest)$/;
const RESOLUTION_CACHE_LIMIT = 10_000;

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
  const digits = (negative ? -value : value).toString().padStart(PRICE_SCALE + 1, '0');
  const whole = digits.slice(0, digits.length - PRICE_SCALE);
  let end = digits.length;
  while (end > whole.length && digits.charCodeAt(end - 1) === 48) end--;
  const frac = digits.slice(whole.length, end);
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
    catalogVersion: o.catalogVersion ?? 'config',
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
        catalogVersion: override.catalogVersion,
        constraint: null,
        tierStart: null,
      });
    }
    const resolution = this.resolve(providerKey, modelKey);
    if (resolution.kind === 'none') return { priced: false, costUsd: '0', code: resolution.code, reason: resolution.reason };
    const chosen = selectCatalogPrice(resolution.model, input.occurredAtMs);
    if (chosen.unmetered.length > 0 && Object.keys(chosen.table).length === 0) {
      // Priced only in units Cost Guard does not meter (audio seconds, pages...): a $0 here would be a lie.
      return {
        priced: false,
        costUsd: '0',
        code: 'unmetered_units',
        reason:
          `model "${resolution.model.id}" of provider "${resolution.provider.id}" is priced only per ` +
          `${chosen.unmetered.join(', ')} in ${this.catalog.version}, which Cost Guard does not meter; add an override`,
      };
    }
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

/** The price of one unit for this call: its tier is chosen by the call's total input tokens. */
function priceFor(price: UnitPrice, inputTokens: number): bigint {
  let value = price.base;
  for (const tier of price.tiers) if (inputTokens > tier.start) value = tier.price;
  return value;
}

const tieredTables = new WeakMap<PriceTable, boolean>();

/** The threshold of the highest tier this call reached in any unit's price, or null. */
function tierStartFor(table: PriceTable, inputTokens: number): number | null {
  let tiered = tieredTables.get(table);
  if (tiered === undefined) {
    tiered = Object.values(table).some((p) => p.tiers.length > 0);
    tieredTables.set(table, tiered);
  }
  if (!tiered) return null;
  let start: number | null = null;
  for (const price of Object.values(table)) {
    for (const tier of price.tiers) if (inputTokens > tier.start && (start === null || tier.start > start)) start = tier.start;
  }
  return start;
}

/** Cost of one call under one price table (see the module comment for the leaf rule). */
export function computeCost(table: PriceTable, usage: TokenUsage, source: PriceSource): PricedResult {
  const input = usage.inputTokens;
  const pInput = table.input;
  const pCacheRead = table.cacheRead;
  const pCacheWrite = table.cacheWrite;
  const pCacheWrite5m = table.cacheWrite5m;
  const pCacheWrite1h = table.cacheWrite1h;
  const pOutput = table.output;
  const pReasoning = table.reasoning;
  const pRequest = table.request;

  // Leaf counts: a unit with its own price is charged at that price and taken out of its parent.
  const cacheWrite1h = pCacheWrite1h ? usage.cacheWrite1hTokens : 0;
  const cacheWrite5m = pCacheWrite5m ? usage.cacheWriteTokens - usage.cacheWrite1hTokens : 0;
  const cacheWrite = pCacheWrite ? usage.cacheWriteTokens - cacheWrite1h - cacheWrite5m : 0;
  const cacheRead = pCacheRead ? usage.cacheReadTokens : 0;
  const plainInput = pInput ? input - cacheRead - cacheWrite - cacheWrite5m - cacheWrite1h : 0;
  const reasoning = pReasoning ? usage.reasoningTokens : 0;
  const output = pOutput ? usage.outputTokens - reasoning : 0;

  const components: PricedResult['components'] = {};
  let total = 0n;
  if (pInput) {
    const cost = priceFor(pInput, input) * BigInt(plainInput);
    components.input = { units: plainInput, costUsd: scaledToDecimal(cost) };
    total += cost;
  }
  if (pCacheRead) {
    const cost = priceFor(pCacheRead, input) * BigInt(cacheRead);
    components.cacheRead = { units: cacheRead, costUsd: scaledToDecimal(cost) };
    total += cost;
  }
  if (pCacheWrite || pCacheWrite5m) {
    const cost =
      (pCacheWrite ? priceFor(pCacheWrite, input) * BigInt(cacheWrite) : 0n) +
      (pCacheWrite5m ? priceFor(pCacheWrite5m, input) * BigInt(cacheWrite5m) : 0n);
    components.cacheWrite = { units: cacheWrite + cacheWrite5m, costUsd: scaledToDecimal(cost) };
    total += cost;
  }
  if (pCacheWrite1h) {
    const cost = priceFor(pCacheWrite1h, input) * BigInt(cacheWrite1h);
    components.cacheWrite1h = { units: cacheWrite1h, costUsd: scaledToDecimal(cost) };
    total += cost;
  }
  if (pOutput) {
    const cost = priceFor(pOutput, input) * BigInt(output);
    components.output = { units: output, costUsd: scaledToDecimal(cost) };
    total += cost;
  }
  if (pReasoning) {
    const cost = priceFor(pReasoning, input) * BigInt(reasoning);
    components.reasoning = { units: reasoning, costUsd: scaledToDecimal(cost) };
    total += cost;
  }
  if (pRequest) {
    const cost = priceFor(pRequest, input);
    components.request = { units: 1, costUsd: scaledToDecimal(cost) };
    total += cost;
  }
  return {
    priced: true,
    costUsd: scaledToDecimal(total),
    components,
    // Field by field: spreading `source` and adding a field costs about 1 us an event in V8.
    price: {
      source: source.source,
      provider: source.provider,
      model: source.model,
      effectiveFrom: source.effectiveFrom,
      catalogVersion: source.catalogVersion,
      constraint: source.constraint,
      tierStart: input > 0 ? tierStartFor(table, input) : null,
    },
  };
}
