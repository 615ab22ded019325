/**
 * The price catalog in our own exact form. Raw data comes from `@pydantic/genai-prices` (its
 * bundled provider list; see src/pricing/genai-catalog.ts), whose prices are JavaScript numbers
 * per million tokens (or per thousand requests). We read each number through its shortest decimal
 * representation (`String(2.5)` -> "2.5", the value the catalog's authors wrote) and hold it as an
 * integer count of 10^-24 USD per unit, so all later arithmetic is integer arithmetic.
 */
import { Dec } from './money.js';

/** Prices are integers of 10^-PRICE_SCALE USD per unit (token or request). */
export const PRICE_SCALE = 24;

/**
 * The units Cost Guard meters, with the catalog's usage key, price key and price denominator.
 * Ancestry follows the catalog's dimension lattice: input_tokens contains cache reads and writes,
 * cache_write_tokens contains the 5-minute and 1-hour writes, output_tokens contains reasoning.
 */
export const UNITS = {
  input: { usageKey: 'input_tokens', priceKey: 'input_mtok', per: 1_000_000 },
  cacheRead: { usageKey: 'cache_read_tokens', priceKey: 'cache_read_mtok', per: 1_000_000 },
  cacheWrite: { usageKey: 'cache_write_tokens', priceKey: 'cache_write_mtok', per: 1_000_000 },
  cacheWrite5m: { usageKey: 'cache_write_5m_tokens', priceKey: 'cache_write_5m_mtok', per: 1_000_000 },
  cacheWrite1h: { usageKey: 'cache_write_1h_tokens', priceKey: 'cache_write_1h_mtok', per: 1_000_000 },
  output: { usageKey: 'output_tokens', priceKey: 'output_mtok', per: 1_000_000 },
  reasoning: { usageKey: 'output_reasoning_tokens', priceKey: 'output_reasoning_mtok', per: 1_000_000 },
  request: { usageKey: 'requests', priceKey: 'requests_kcount', per: 1_000 },
} as const;
export type UnitName = keyof typeof UNITS;
export const UNIT_NAMES = Object.keys(UNITS) as UnitName[];
const UNIT_BY_PRICE_KEY = new Map<string, UnitName>(UNIT_NAMES.map((u) => [UNITS[u].priceKey, u]));

/** A price for one unit: `base`, or the price of the highest tier whose `start` the call's input exceeds. */
export interface UnitPrice {
  base: bigint;
  tiers: readonly { start: number; price: bigint }[]; // ascending by start
}
export type PriceTable = Partial<Record<UnitName, UnitPrice>>;

export type PriceConstraint =
  | { type: 'always' }
  | { type: 'start_date'; startDate: string; startMs: number }
  | { type: 'time_of_day'; startSec: number; endSec: number; label: string };

export interface CatalogPrice {
  constraint: PriceConstraint;
  table: PriceTable;
  /** Price keys the catalog has for this model that Cost Guard does not meter (audio, images, searches...). */
  unmetered: readonly string[];
}

export type MatchLogic =
  | { and: MatchLogic[] }
  | { or: MatchLogic[] }
  | { equals: string }
  | { starts_with: string }
  | { ends_with: string }
  | { contains: string }
  | { regex: string };

export type Matcher = (lowercasedId: string) => boolean;

export interface CatalogModel {
  id: string;
  name: string;
  matches: Matcher;
  /** In catalog order; selection walks from the last to the first (newest constraint first). */
  prices: readonly CatalogPrice[];
}

export interface CatalogProvider {
  id: string;
  name: string;
  matchesProvider: Matcher | null;
  fallbackProviders: readonly string[];
  models: readonly CatalogModel[];
}

export interface Catalog {
  /** e.g. "genai-prices@0.1.8": stored on every ledger row priced from it. */
  version: string;
  providers: readonly CatalogProvider[];
}

/** Raw shapes as the genai-prices package exposes them (structural, so we need none of its types). */
export interface RawModel {
  id: string;
  name?: string;
  match: MatchLogic;
  prices: Record<string, unknown> | { constraint?: Record<string, unknown>; prices: Record<string, unknown> }[];
}
export interface RawProvider {
  id: string;
  name: string;
  provider_match?: MatchLogic;
  fallback_model_providers?: string[];
  models: RawModel[];
}

/** Compiles the catalog's match logic. Text tests are case-insensitive; `regex` runs on the lowercased id, as in genai-prices. */
export function compileMatch(logic: MatchLogic): Matcher {
  if ('or' in logic) {
    const parts = logic.or.map(compileMatch);
    return (id) => parts.some((p) => p(id));
  }
  if ('and' in logic) {
    const parts = logic.and.map(compileMatch);
    return (id) => parts.every((p) => p(id));
  }
  if ('equals' in logic) {
    const s = logic.equals.toLowerCase();
    return (id) => id === s;
  }
  if ('starts_with' in logic) {
    const s = logic.starts_with.toLowerCase();
    return (id) => id.startsWith(s);
  }
  if ('ends_with' in logic) {
    const s = logic.ends_with.toLowerCase();
    return (id) => id.endsWith(s);
  }
  if ('contains' in logic) {
    const s = logic.contains.toLowerCase();
    return (id) => id.includes(s);
  }
  if ('regex' in logic) {
    const re = new RegExp(logic.regex);
    return (id) => re.test(id);
  }
  throw new Error(`unknown match logic ${JSON.stringify(logic)}`);
}

/** Converts a decimal price per `per` units into integer 10^-24 USD per unit; throws if it would not be exact. */
export function scalePrice(value: string | number, per: number, what: string): bigint {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof value === 'number' && (!Number.isFinite(value) || value < 0)) {
    throw new RangeError(`${what}: price must be a finite non-negative number, got ${text}`);
  }
  const d = new Dec(text);
  if (d.isNegative()) throw new RangeError(`${what}: price must not be negative, got ${text}`);
  const scaled = d.times(new Dec(10).pow(PRICE_SCALE)).dividedBy(per);
  if (!scaled.isInteger()) throw new RangeError(`${what}: price ${text} per ${per} has more precision than 1e-${PRICE_SCALE} USD per unit`);
  return BigInt(scaled.toFixed(0));
}

function toUnitPrice(raw: unknown, per: number, what: string): UnitPrice {
  if (typeof raw === 'number') return { base: scalePrice(raw, per, what), tiers: [] };
  if (typeof raw === 'object' && raw !== null && 'base' in raw && 'tiers' in raw && Array.isArray(raw.tiers)) {
    const tiers = (raw.tiers as { start: number; price: number }[])
      .map((t) => ({ start: t.start, price: scalePrice(t.price, per, `${what} tier ${t.start}`) }))
      .sort((a, b) => a.start - b.start);
    return { base: scalePrice(raw.base as number, per, what), tiers };
  }
  throw new RangeError(`${what}: unrecognised price ${JSON.stringify(raw)}`);
}

function buildTable(raw: Record<string, unknown>, what: string): { table: PriceTable; unmetered: string[] } {
  const table: PriceTable = {};
  const unmetered: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    const unit = UNIT_BY_PRICE_KEY.get(key);
    if (unit) table[unit] = toUnitPrice(value, UNITS[unit].per, `${what} ${key}`);
    else unmetered.push(key);
  }
  return { table, unmetered };
}

const TIME_RE = /^(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|([+-])(\d{2}):(\d{2}))$/;
function utcSecondOfDay(value: string): number {
  const m = TIME_RE.exec(value);
  if (!m) throw new RangeError(`invalid time-of-day constraint ${value}`);
  const local = Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  const offset = m[4] === 'Z' ? 0 : (m[5] === '+' ? 1 : -1) * (Number(m[6]) * 3600 + Number(m[7]) * 60);
  return (((local - offset) % 86400) + 86400) % 86400;
}

function buildConstraint(raw: Record<string, unknown> | undefined): PriceConstraint {
  if (raw === undefined) return { type: 'always' };
  if (typeof raw.start_date === 'string') {
    return { type: 'start_date', startDate: raw.start_date, startMs: Date.parse(`${raw.start_date}T00:00:00Z`) };
  }
  if (typeof raw.start_time === 'string' && typeof raw.end_time === 'string') {
    return {
      type: 'time_of_day',
      startSec: utcSecondOfDay(raw.start_time),
      endSec: utcSecondOfDay(raw.end_time),
      label: `${raw.start_time}-${raw.end_time}`,
    };
  }
  throw new RangeError(`unknown price constraint ${JSON.stringify(raw)}`);
}

/** Builds the exact catalog from raw provider data. Throws on any price it cannot read exactly. */
export function buildCatalog(raw: readonly RawProvider[], version: string): Catalog {
  const providers = raw.map((p): CatalogProvider => ({
    id: p.id,
    name: p.name,
    matchesProvider: p.provider_match ? compileMatch(p.provider_match) : null,
    fallbackProviders: p.fallback_model_providers ?? [],
    models: p.models.map((m): CatalogModel => {
      const what = `${p.id}/${m.id}`;
      const list = Array.isArray(m.prices) ? m.prices : [{ prices: m.prices }];
      return {
        id: m.id,
        name: m.name ?? m.id,
        matches: compileMatch(m.match),
        prices: list.map((entry) => ({ constraint: buildConstraint(entry.constraint), ...buildTable(entry.prices, what) })),
      };
    }),
  }));
  return { version, providers };
}
