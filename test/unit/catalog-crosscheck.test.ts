/**
 * Our exact engine against the catalog's own reference implementation (`calcPrice` from
 * @pydantic/genai-prices), for EVERY provider and model in the bundled catalog: same model chosen,
 * same price within float error (the reference works in JavaScript numbers, we in exact decimals).
 */
import { type Usage, calcPrice } from '@pydantic/genai-prices';
import { afterAll, describe, expect, it } from 'vitest';
import { type CatalogModel, type MatchLogic, type RawModel } from '../../src/domain/catalog.js';
import { type TokenUsage, parseTokenUsage } from '../../src/domain/usage.js';
import { loadCatalog, loadRawProviders } from '../../src/pricing/genai-catalog.js';
import { at, dec, realEngine, usage } from './helpers.js';

const raw = loadRawProviders();
const catalog = loadCatalog();
const engine = realEngine();

/** Our usage in the catalog's usage keys (inclusive totals on both sides). */
function toGenai(u: TokenUsage): Usage {
  return {
    input_tokens: u.inputTokens,
    cache_read_tokens: u.cacheReadTokens,
    cache_write_tokens: u.cacheWriteTokens,
    cache_write_1h_tokens: u.cacheWrite1hTokens,
    cache_write_5m_tokens: u.cacheWriteTokens - u.cacheWrite1hTokens,
    output_tokens: u.outputTokens,
    output_reasoning_tokens: u.reasoningTokens,
  };
}

const SAMPLES: Record<string, TokenUsage> = {
  plain: usage({ inputTokens: 1234, outputTokens: 567 }),
  cache: usage({ inputTokens: 10_000, cacheReadTokens: 3000, cacheWriteTokens: 2000, cacheWrite1hTokens: 500, outputTokens: 567 }),
  reasoning: usage({ inputTokens: 1234, outputTokens: 800, reasoningTokens: 300 }),
  // above every long-context tier start in the catalog that matters for chat models (200000, 271999, 272000)
  longContext: usage({
    inputTokens: 300_000,
    cacheReadTokens: 50_000,
    cacheWriteTokens: 20_000,
    cacheWrite1hTokens: 5000,
    outputTokens: 1000,
    reasoningTokens: 200,
  }),
};

/**
 * Fixed times: MAIN is after nearly every start date in the catalog and inside deepseek-chat's
 * 00:30-16:30 UTC window; EARLY is before many start dates (o3 2025-06-10, mistral, ...) and inside
 * deepseek-v4's 01:00-04:00 window; LATE is after every start date and outside every window.
 */
const TIMES = {
  MAIN: '2026-10-01T12:00:00Z',
  EARLY: '2025-03-01T02:00:00Z',
  LATE: '2027-02-01T20:00:00Z',
} as const;

// ---------------------------------------------------------------------------------------------
// An example model id for each catalog model, derived from its own match logic.
// ---------------------------------------------------------------------------------------------

/** A literal string a simple anchored regex accepts (digits for \d, escaped characters as is), or null. */
function regexExample(source: string): string | null {
  let s = source;
  if (s.startsWith('^')) s = s.slice(1);
  if (s.endsWith('$') && !s.endsWith('\\$')) s = s.slice(0, -1);
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\') {
      const next = s[i + 1];
      if (next === undefined) return null;
      if (next === 'd') {
        const count = /^\{(\d+)\}/.exec(s.slice(i + 2));
        const n = count ? Number(count[1]) : 1;
        // digits that also read as a real date, so date-suffix rules see a plausible id
        out += n === 8 ? '20250101' : n === 4 ? '2025' : '1'.padStart(n, '0');
        i += 1 + (count ? count[0].length : 0);
        continue;
      }
      out += next;
      i += 1;
      continue;
    }
    if ('()|*+?[]{}^$'.includes(c)) return null; // not a plain literal: no example
    out += c;
  }
  return out;
}

/** Candidate ids for a match logic: its literals, plus a suffixed variant for prefixes. */
function candidates(logic: MatchLogic): string[] {
  if ('or' in logic) return logic.or.flatMap(candidates);
  if ('and' in logic) return logic.and.flatMap(candidates); // each is verified against the whole logic below
  if ('equals' in logic) return [logic.equals];
  if ('starts_with' in logic) return [logic.starts_with, `${logic.starts_with}-x`];
  if ('ends_with' in logic) return [logic.ends_with, `x-${logic.ends_with}`];
  if ('contains' in logic) return [logic.contains];
  const example = regexExample(logic.regex);
  return example === null ? [] : [example];
}

/**
 * An id that THIS model's compiled matcher accepts and that our engine resolves to this very
 * provider and model (an earlier model of the provider may claim an id first; such ids are no use).
 */
function exampleId(providerId: string, rawModel: RawModel, model: CatalogModel): string | null {
  for (const c of candidates(rawModel.match)) {
    const id = c.trim().toLowerCase();
    if (!model.matches(id)) continue;
    const r = engine.resolve(providerId, id);
    if (r.kind === 'catalog' && r.provider.id === providerId && r.model.id === model.id) return id;
  }
  return null;
}

interface Subject {
  providerId: string;
  modelId: string;
  exampleId: string;
}

const subjects: Subject[] = [];
const unmatchable: string[] = [];
raw.forEach((p, pi) => {
  p.models.forEach((m, mi) => {
    const built = catalog.providers[pi]?.models[mi];
    if (!built || built.id !== m.id) return; // reported by the shape test below
    const id = exampleId(p.id, m, built);
    if (id === null) unmatchable.push(`${p.id}/${m.id}`);
    else subjects.push({ providerId: p.id, modelId: m.id, exampleId: id });
  });
});
const totalModels = raw.reduce((n, p) => n + p.models.length, 0);

// ---------------------------------------------------------------------------------------------

describe('catalog shape', () => {
  it('holds the major providers', () => {
    const ids = catalog.providers.map((p) => p.id);
    expect(ids).toEqual(expect.arrayContaining(['openai', 'anthropic', 'google', 'mistral', 'deepseek']));
    expect(totalModels).toBeGreaterThan(100);
  });

  it('is built from the raw data one to one, in catalog order', () => {
    expect(catalog.providers.map((p) => p.id)).toEqual(raw.map((p) => p.id));
    catalog.providers.forEach((p, i) => {
      expect(p.models.map((m) => m.id)).toEqual(raw[i]!.models.map((m) => m.id));
    });
  });

  it('has unique provider ids, and model ids unique within each provider', () => {
    const providerIds = catalog.providers.map((p) => p.id);
    expect(new Set(providerIds).size).toBe(providerIds.length);
    const duplicates = catalog.providers.flatMap((p) => {
      const seen = new Set<string>();
      return p.models.filter((m) => (seen.has(m.id) ? true : (seen.add(m.id), false))).map((m) => `${p.id}/${m.id}`);
    });
    expect(duplicates).toEqual([]);
  });

  it('gives every model at least one price entry', () => {
    expect(catalog.providers.flatMap((p) => p.models.filter((m) => m.prices.length === 0).map((m) => `${p.id}/${m.id}`))).toEqual([]);
  });
});

describe('cross-check against genai-prices calcPrice, every model', () => {
  const figures = { models: totalModels, checked: 0, skipped: 0, comparisons: 0, tiered: 0, earlyPriceDiffers: 0, refused: 0, disagreements: 0, unmetered: 0 };
  afterAll(() => {
    // The figures the engineer reports (models checked, skipped, disagreements).
    console.info(`catalog cross-check (${catalog.version}): ${JSON.stringify(figures)}`);
  });

  it('derives a matching example id for nearly every model (fewer than 5% skipped)', () => {
    figures.checked = subjects.length;
    figures.skipped = unmatchable.length;
    expect(subjects.length + unmatchable.length).toBe(totalModels);
    expect(unmatchable.length / totalModels, `skipped: ${unmatchable.join(', ')}`).toBeLessThan(0.05);
  });

  it.each(Object.entries(TIMES))('agrees with calcPrice on every model and sample usage at %s (%s)', (_name, iso) => {
    const timestamp = new Date(iso);
    const disagreements: string[] = [];
    const refused: string[] = [];
    for (const s of subjects) {
      for (const [sampleName, u] of Object.entries(SAMPLES)) {
        const where = `${s.providerId}/${s.modelId} as "${s.exampleId}", ${sampleName}`;
        const ours = engine.price({ provider: s.providerId, model: s.exampleId, occurredAtMs: at(iso), usage: u });
        let theirs: ReturnType<typeof calcPrice>;
        try {
          theirs = calcPrice(toGenai(u), s.exampleId, { providerId: s.providerId, timestamp });
        } catch (err) {
          // The reference refuses this usage; ours must not have priced it silently.
          refused.push(`${where}: calcPrice threw "${(err as Error).message}", ours ${ours.priced ? `priced ${ours.costUsd}` : 'unpriced'}`);
          continue;
        }
        figures.comparisons++;
        if (!ours.priced && ours.code === 'unmetered_units' && theirs !== null && theirs.total_price === 0) {
          // Priced only in units we do not meter: the reference says $0 for these tokens, we say
          // "unpriced, with the reason" (invariant 3). Counted, and agreeing by design.
          figures.unmetered++;
          continue;
        }
        if (!ours.priced || theirs === null) {
          disagreements.push(`${where}: ours ${ours.priced ? ours.costUsd : `unpriced (${ours.reason})`}, theirs ${theirs === null ? 'null' : theirs.total_price}`);
          continue;
        }
        if (ours.price.tierStart !== null) figures.tiered++;
        if (theirs.model.id !== ours.price.model || theirs.provider.id !== ours.price.provider) {
          disagreements.push(`${where}: ours matched ${ours.price.provider}/${ours.price.model}, theirs ${theirs.provider.id}/${theirs.model.id}`);
          continue;
        }
        const diff = dec(ours.costUsd).minus(dec(theirs.total_price)).abs();
        const tolerance = Math.max(1e-15, 1e-9 * Math.abs(theirs.total_price));
        if (diff.greaterThan(tolerance)) disagreements.push(`${where}: ours ${ours.costUsd}, theirs ${theirs.total_price}`);
      }
    }
    figures.refused += refused.length;
    figures.disagreements += disagreements.length;
    expect(disagreements).toEqual([]);
    expect(refused).toEqual([]);
  });

  it('the long-context sample really reaches tiers, and the dates really select different prices', () => {
    const longContext = SAMPLES.longContext!;
    const tiered = subjects.filter((s) => {
      const r = engine.price({ provider: s.providerId, model: s.exampleId, occurredAtMs: at(TIMES.MAIN), usage: longContext });
      return r.priced && r.price.tierStart !== null;
    });
    expect(tiered.length).toBeGreaterThan(10);
    const plain = SAMPLES.plain!;
    const movedByDate = subjects.filter((s) => {
      const early = engine.price({ provider: s.providerId, model: s.exampleId, occurredAtMs: at(TIMES.EARLY), usage: plain });
      const main = engine.price({ provider: s.providerId, model: s.exampleId, occurredAtMs: at(TIMES.MAIN), usage: plain });
      return early.costUsd !== main.costUsd;
    });
    figures.earlyPriceDiffers = movedByDate.length;
    expect(movedByDate.map((s) => `${s.providerId}/${s.modelId}`)).toContain('openai/o3');
  });

  it('the checker itself can fail: a wrong price is caught by the same tolerance', () => {
    const u = SAMPLES.plain!;
    const theirs = calcPrice(toGenai(u), 'gpt-4o-mini', { providerId: 'openai', timestamp: new Date(TIMES.MAIN) })!;
    // one token of input more is 0.15e-6 USD, far above the tolerance at this size
    const wrong = engine.price({ provider: 'openai', model: 'gpt-4o-mini', occurredAtMs: at(TIMES.MAIN), usage: { ...u, inputTokens: u.inputTokens + 1 } });
    expect(wrong.priced && dec(wrong.costUsd).minus(dec(theirs.total_price)).abs().greaterThan(Math.max(1e-15, 1e-9 * theirs.total_price))).toBe(true);
  });
});

describe('usages that break the convention', () => {
  const bad: [string, string, string, TokenUsage][] = [
    ['cache reads above input', 'anthropic', 'claude-3-5-sonnet', usage({ inputTokens: 100, cacheReadTokens: 200 })],
    ['cache writes above input', 'anthropic', 'claude-3-5-sonnet', usage({ inputTokens: 100, cacheWriteTokens: 200 })],
    ['1h writes above writes', 'anthropic', 'claude-3-5-sonnet', usage({ inputTokens: 300, cacheWriteTokens: 100, cacheWrite1hTokens: 200 })],
    ['reasoning above output', 'perplexity', 'sonar-deep-research', usage({ outputTokens: 100, reasoningTokens: 200 })],
  ];

  it.each(bad)('%s: refused by calcPrice and by our validator alike', (_what, providerId, model, u) => {
    expect(() => calcPrice(toGenai(u), model, { providerId, timestamp: new Date(TIMES.MAIN) })).toThrow(/Invalid usage/);
    expect(parseTokenUsage(u).ok).toBe(false);
  });
});
