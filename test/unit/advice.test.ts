import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ORIGINAL_MAX_TOKENS as GUARD_MAX_TOKENS } from '../../src/client/wrappers/prompt-guard.js';
import {
  type AdviceInput,
  type AdvicePricer,
  type AdviceSettings,
  adviceSettingsProblem,
  adviseModel,
  COMPLEXITIES,
  DEFAULT_ADVICE_SETTINGS,
  DEFAULT_ADVICE_TIERS,
  derivedPerCallBudget,
  expectedRemainingCalls,
  ORIGINAL_MAX_TOKENS,
  pricerFor,
  resolveAdviceSettings,
} from '../../src/domain/advice.js';
import { MODEL_TIER_TABLE, MODEL_TIERS, type ModelTier, modelTier } from '../../src/domain/model-tiers.js';
import { projectRoot } from '../../src/lib/paths.js';
import { createPricingEngine } from '../../src/pricing/index.js';
import { DEFAULT_AT, costOf } from './helpers.js';

/** The real bundled catalog, built as the services build it (config shape, no overrides). */
const engine = createPricingEngine({ pricing: { overrides: [] } });
const price = pricerFor(engine, DEFAULT_AT);
const S = DEFAULT_ADVICE_SETTINGS;

function advise(over: Partial<AdviceInput>, settings: AdviceSettings = S, pricer: AdvicePricer = price) {
  return adviseModel({ provider: 'openai', model: 'gpt-4', taskType: 'chat', inputTokens: 1000, maxOutputTokens: 500, ...over }, settings, pricer);
}

describe('default settings', () => {
  it('are the original specification: $0.01 / $0.05, summarization 1000, analysis 2000, hysteresis 0.2', () => {
    expect(S.perCall).toEqual({ economyBelowUsd: '0.01', standardBelowUsd: '0.05' });
    expect(S.maxTokensByTaskType).toEqual({ summarization: 1000, analysis: 2000 });
    expect(S.hysteresis).toBe(0.2);
    expect(GUARD_MAX_TOKENS).toBe(ORIGINAL_MAX_TOKENS); // the prompt guard re-exports the same constant
    expect(adviceSettingsProblem(S)).toBeNull();
  });

  it('every default candidate is in the tier table at its tier and priced by the bundled catalog', () => {
    for (const tier of MODEL_TIERS) {
      for (const c of DEFAULT_ADVICE_TIERS[tier]) {
        expect(modelTier(c.provider, c.model)?.tier, `${c.provider}/${c.model}`).toBe(tier);
        expect(price(c.provider, c.model, 1000, 100), `${c.provider}/${c.model}`).not.toBeNull();
      }
    }
    // The original specification's models lead their provider in each tier.
    expect(DEFAULT_ADVICE_TIERS.premium.slice(0, 2).map((c) => c.model)).toEqual(['gpt-4', 'claude-3-opus-20240229']);
    expect(DEFAULT_ADVICE_TIERS.standard.slice(0, 2).map((c) => c.model)).toEqual(['gpt-4-turbo', 'claude-3-5-sonnet-20241022']);
    expect(DEFAULT_ADVICE_TIERS.economy.slice(0, 2).map((c) => c.model)).toEqual(['gpt-3.5-turbo', 'gemini-pro']);
  });

  it('the tier table has the original specification tiers', () => {
    expect(modelTier('openai', 'gpt-4')?.tier).toBe('premium');
    expect(modelTier('anthropic', 'claude-3-opus-20240229')?.tier).toBe('premium');
    expect(modelTier('openai', 'gpt-4-turbo')?.tier).toBe('standard');
    expect(modelTier('openai', 'gpt-4-turbo-2024-04-09')?.cheaper).toBe('gpt-4o-mini');
    expect(modelTier('anthropic', 'claude-3-5-sonnet-20241022')?.tier).toBe('standard');
    expect(modelTier('openai', 'gpt-3.5-turbo')?.tier).toBe('economy');
    expect(modelTier('google', 'gemini-pro')?.tier).toBe('economy');
  });
});

describe('adviseModel: the original rules', () => {
  it('maps complexity to a tier (default medium -> standard)', () => {
    expect(advise({ complexity: 'simple' }).tier).toBe('economy');
    expect(advise({ complexity: 'medium' }).tier).toBe('standard');
    expect(advise({}).tier).toBe('standard');
    expect(advise({ complexity: 'complex' }).tier).toBe('premium');
    expect(advise({ complexity: 'simple' }).reasons).toContain('task complexity simple -> economy');
  });

  it('a per-call budget under $0.01 advises economy, under $0.05 at most standard, otherwise no cap', () => {
    const a = advise({ complexity: 'complex', perCallBudgetUsd: '0.0042' });
    expect(a).toMatchObject({ tier: 'economy', model: 'gpt-3.5-turbo', perCallBudgetUsd: '0.0042', downgrade: true });
    expect(a.reasons).toContain('per-call budget $0.0042 under $0.01 -> economy');
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.01' }).tier).toBe('standard');
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.049999' }).tier).toBe('standard');
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.05' }).tier).toBe('premium');
    // The cap only lowers: a simple task stays economy with a large budget.
    expect(advise({ complexity: 'simple', perCallBudgetUsd: '5' }).tier).toBe('economy');
    // No budget: no cap, and no budget reported.
    expect(advise({ complexity: 'complex' })).toMatchObject({ tier: 'premium', perCallBudgetUsd: null, downgrade: false });
  });

  it('derives the per-call budget from what remains and uses the smaller of explicit and derived', () => {
    // $1 left over 200 expected calls: $0.005 a call -> economy.
    expect(advise({ complexity: 'complex', remaining: { usd: '1', expectedCalls: 200 } })).toMatchObject({ tier: 'economy', perCallBudgetUsd: '0.005' });
    // $1 left over 50 calls = $0.02 -> standard; an explicit $0.009 is smaller -> economy.
    expect(advise({ complexity: 'complex', remaining: { usd: '1', expectedCalls: 50 } })).toMatchObject({ tier: 'standard', perCallBudgetUsd: '0.02' });
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.009', remaining: { usd: '1', expectedCalls: 50 } })).toMatchObject({ tier: 'economy', perCallBudgetUsd: '0.009' });
    // Over budget (negative remaining): economy.
    expect(advise({ complexity: 'complex', remaining: { usd: '-2', expectedCalls: 10 } })).toMatchObject({ tier: 'economy', perCallBudgetUsd: '-0.2' });
  });

  it('advises a model of the requested provider', () => {
    expect(advise({ provider: 'openai', model: 'gpt-4', complexity: 'simple' })).toMatchObject({ provider: 'openai', model: 'gpt-3.5-turbo' });
    expect(advise({ provider: 'openai', model: 'gpt-4', complexity: 'medium' })).toMatchObject({ provider: 'openai', model: 'gpt-4-turbo' });
    expect(advise({ provider: 'anthropic', model: 'claude-3-opus-20240229', complexity: 'medium' })).toMatchObject({ provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', tier: 'standard' });
    expect(advise({ provider: 'Anthropic', model: 'claude-3-opus-20240229', complexity: 'simple' })).toMatchObject({ provider: 'anthropic', model: 'claude-3-5-haiku-20241022' });
    expect(advise({ provider: 'google', model: 'gemini-2.5-pro', complexity: 'simple' })).toMatchObject({ provider: 'google', model: 'gemini-pro' });
    // A provider no tier lists: the tier's first.
    expect(advise({ provider: 'mistral', model: 'mistral-large', complexity: 'simple' })).toMatchObject({ provider: 'openai', model: 'gpt-3.5-turbo' });
  });

  it('keeps the requested model when the advised tier is its own', () => {
    const a = advise({ provider: 'anthropic', model: 'claude-sonnet-4-20250514', complexity: 'medium' });
    expect(a).toMatchObject({ tier: 'standard', provider: 'anthropic', model: 'claude-sonnet-4-20250514', requestedTier: 'standard', downgrade: false });
    expect(a.expectedCostUsd).toBe(a.requestedCostUsd);
  });

  it('never advises above the requested model tier', () => {
    const a = advise({ provider: 'openai', model: 'gpt-3.5-turbo', complexity: 'complex', perCallBudgetUsd: '10' });
    expect(a).toMatchObject({ tier: 'economy', model: 'gpt-3.5-turbo', requestedTier: 'economy', downgrade: false });
    expect(a.reasons).toContain('requested model openai/gpt-3.5-turbo is economy: not advising above it');
    expect(advise({ provider: 'openai', model: 'gpt-4-turbo', complexity: 'complex' })).toMatchObject({ tier: 'standard', model: 'gpt-4-turbo' });
  });

  it('an unknown model: requestedTier null, advised by complexity', () => {
    const a = advise({ provider: 'openai', model: 'my-fine-tune', complexity: 'complex' });
    expect(a).toMatchObject({ tier: 'premium', provider: 'openai', model: 'gpt-4', requestedTier: null, requestedCostUsd: null, downgrade: false });
    expect(a.expectedCostUsd).toBe(costOf(engine, 'openai', 'gpt-4', { inputTokens: 1000, outputTokens: 500 }));
    expect(advise({ provider: 'openai', model: 'my-fine-tune', complexity: 'simple' }).tier).toBe('economy');
  });
});

describe('adviseModel: hysteresis around $0.01', () => {
  /** Advice for each budget in turn, each call given the tier advised by the one before. */
  function run(budgets: string[], start: ModelTier): ModelTier[] {
    const tiers: ModelTier[] = [];
    let previousTier: ModelTier | undefined = start;
    for (const b of budgets) {
      previousTier = advise({ complexity: 'complex', perCallBudgetUsd: b, previousTier }).tier;
      tiers.push(previousTier);
    }
    return tiers;
  }

  it('a budget oscillating by ±5% does not flip the tier', () => {
    const wobble = ['0.0105', '0.0095', '0.0105', '0.0095', '0.0105'];
    expect(run(wobble, 'standard')).toEqual(['standard', 'standard', 'standard', 'standard', 'standard']);
    expect(run(wobble, 'economy')).toEqual(['economy', 'economy', 'economy', 'economy', 'economy']);
    const kept = advise({ complexity: 'complex', perCallBudgetUsd: '0.0095', previousTier: 'standard' });
    expect(kept.reasons).toContain('per-call budget $0.0095 would give at most economy; kept standard (hysteresis)');
  });

  it('a budget oscillating by ±30% does flip', () => {
    expect(run(['0.013', '0.007', '0.013', '0.007'], 'standard')).toEqual(['standard', 'economy', 'standard', 'economy']);
  });

  it('the band edges: down below threshold*(1-h), up at threshold*(1+h)', () => {
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.008', previousTier: 'standard' }).tier).toBe('standard');
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.007999', previousTier: 'standard' }).tier).toBe('economy');
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.011999', previousTier: 'economy' }).tier).toBe('economy');
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.012', previousTier: 'economy' }).tier).toBe('standard');
    // Without a previous tier the plain thresholds apply.
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.0095' }).tier).toBe('economy');
    // Around $0.05 too: premium is kept down to $0.04, and comes back at $0.06.
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.045', previousTier: 'premium' }).tier).toBe('premium');
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.055', previousTier: 'standard' }).tier).toBe('standard');
    expect(advise({ complexity: 'complex', perCallBudgetUsd: '0.06', previousTier: 'standard' }).tier).toBe('premium');
  });
});

describe('adviseModel: output caps and prices', () => {
  it('caps max output tokens per task type (summarization 1000, analysis 2000, others unchanged)', () => {
    expect(advise({ taskType: 'summarization', maxOutputTokens: 4000 }).maxOutputTokens).toBe(1000);
    expect(advise({ taskType: 'summarization', maxOutputTokens: 300 }).maxOutputTokens).toBe(300);
    expect(advise({ taskType: 'analysis', maxOutputTokens: 4000 }).maxOutputTokens).toBe(2000);
    expect(advise({ taskType: 'chat', maxOutputTokens: 4000 }).maxOutputTokens).toBe(4000);
    expect(advise({ taskType: 'toString', maxOutputTokens: 4000 }).maxOutputTokens).toBe(4000); // own keys only
    expect(advise({ taskType: 'summarization', maxOutputTokens: 4000 }).reasons).toContain('max output tokens 4000 -> 1000 for task type summarization');
  });

  it('the expected cost is the pricing engine price of the estimate at the advised model; the requested cost at the requested one', () => {
    const a = advise({ provider: 'openai', model: 'gpt-4', complexity: 'simple', taskType: 'summarization', inputTokens: 1200, maxOutputTokens: 3000 });
    expect(a.model).toBe('gpt-3.5-turbo');
    expect(a.expectedCostUsd).toBe(costOf(engine, 'openai', 'gpt-3.5-turbo', { inputTokens: 1200, outputTokens: 1000 }));
    expect(a.requestedCostUsd).toBe(costOf(engine, 'openai', 'gpt-4', { inputTokens: 1200, outputTokens: 3000 }));
    // gpt-3.5-turbo $0.5/$1.5 per M: 1200 x 0.5e-6 + 1000 x 1.5e-6; gpt-4 $30/$60 per M.
    expect(a.expectedCostUsd).toBe('0.0021');
    expect(a.requestedCostUsd).toBe('0.216');
    const b = advise({ provider: 'anthropic', model: 'claude-3-opus-20240229', complexity: 'medium' });
    expect(b.expectedCostUsd).toBe(costOf(engine, 'anthropic', 'claude-3-5-sonnet-20241022', { inputTokens: 1000, outputTokens: 500 }));
  });

  it('an unpriced advised model gives a null expected cost', () => {
    const settings: AdviceSettings = { ...S, tiers: { ...S.tiers, economy: [{ provider: 'openai', model: 'gpt-3.5-turbo' }] } };
    const a = advise({ complexity: 'simple' }, settings, () => null);
    expect(a).toMatchObject({ expectedCostUsd: null, requestedCostUsd: null, model: 'gpt-3.5-turbo' });
  });

  it('rejects bad inputs with clear errors', () => {
    expect(() => advise({ inputTokens: -1 })).toThrow('inputTokens must be a whole number >= 0');
    expect(() => advise({ maxOutputTokens: 1.5 })).toThrow('maxOutputTokens must be a whole number >= 0');
    expect(() => advise({ perCallBudgetUsd: '1e-3' })).toThrow('not a decimal amount');
    expect(() => advise({ complexity: 'huge' as never })).toThrow('complexity must be one of simple, medium, complex');
  });
});

describe('per-call budget math', () => {
  it('derivedPerCallBudget = remaining / max(1, expectedCalls), exact, cut toward zero', () => {
    expect(derivedPerCallBudget('1', 200)).toBe('0.005');
    expect(derivedPerCallBudget('0.3', 0)).toBe('0.3');
    expect(derivedPerCallBudget('0.3', 0.5)).toBe('0.3');
    expect(derivedPerCallBudget('1', 3)).toBe('0.333333333333333333333333');
    expect(derivedPerCallBudget('2', 3)).toBe('0.666666666666666666666666');
    expect(derivedPerCallBudget('0.1', 4)).toBe('0.025'); // no float error
    expect(() => derivedPerCallBudget('1', Number.NaN)).toThrow('expectedCalls must be a finite number');
  });

  it('expectedRemainingCalls extrapolates the calls so far over the rest of the period, at least 1', () => {
    const day = 86_400_000;
    expect(expectedRemainingCalls(100, 0, 30 * day, 10 * day)).toBe(200);
    expect(expectedRemainingCalls(10, 0, 3 * day, 2 * day)).toBe(5);
    expect(expectedRemainingCalls(1, 0, 3, 1)).toBe(2);
    expect(expectedRemainingCalls(1, 0, 10, 3)).toBe(3); // 7/3 rounded up
    expect(expectedRemainingCalls(0, 0, 30 * day, 10 * day)).toBe(1);
    expect(expectedRemainingCalls(50, 0, 30 * day, 30 * day)).toBe(1); // period over
    expect(expectedRemainingCalls(50, 10, 30, 10)).toBe(1); // nothing elapsed yet
    expect(() => expectedRemainingCalls(-1, 0, 10, 5)).toThrow('callsSoFar must be >= 0');
  });
});

describe('adviceSettingsProblem / resolveAdviceSettings', () => {
  it('accepts the defaults, partial settings and nothing', () => {
    expect(adviceSettingsProblem(undefined)).toBeNull();
    expect(adviceSettingsProblem({ hysteresis: 0 })).toBeNull();
    expect(resolveAdviceSettings({ perCall: { economyBelowUsd: '0.02' } })).toMatchObject({ perCall: { economyBelowUsd: '0.02', standardBelowUsd: '0.05' }, hysteresis: 0.2 });
    expect(resolveAdviceSettings(undefined)).toEqual(S);
  });

  it('explains what is wrong', () => {
    expect(adviceSettingsProblem(3)).toBe('advice settings must be an object');
    expect(adviceSettingsProblem({ hysterisis: 0.1 })).toMatch(/unknown key "hysterisis"/);
    expect(adviceSettingsProblem({ hysteresis: 1 })).toBe('advice.hysteresis must be a number in [0, 1), got 1');
    expect(adviceSettingsProblem({ perCall: { economyBelowUsd: 0.01 } })).toMatch(/advice.perCall.economyBelowUsd must be a decimal string/);
    expect(adviceSettingsProblem({ perCall: { economyBelowUsd: '0.1', standardBelowUsd: '0.05' } })).toMatch(/must not exceed standardBelowUsd/);
    expect(adviceSettingsProblem({ maxTokensByTaskType: { summarization: 0 } })).toMatch(/advice.maxTokensByTaskType.summarization must be a whole number >= 1/);
    expect(adviceSettingsProblem({ tiers: { premium: [], standard: [], economy: [] } })).toMatch(/advice.tiers.premium must be a non-empty list/);
    expect(adviceSettingsProblem({ tiers: { ...S.tiers, economy: [{ provider: 'openai' }] } })).toMatch(/advice.tiers.economy\[0\]/);
    expect(adviceSettingsProblem({ tiers: { ...S.tiers, cheap: [] } })).toMatch(/unknown tier "cheap"/);
    expect(() => resolveAdviceSettings({ hysteresis: -1 })).toThrow(RangeError);
  });
});

describe('adviseModel: properties', () => {
  const models = MODEL_TIER_TABLE.map((e) => ({ provider: e.provider, model: e.model })).concat([{ provider: 'openai', model: 'unknown-model' }]);
  const amount = fc.integer({ min: -1000, max: 100_000 }).map((n) => (n / 100_000).toFixed(5)); // -$0.01 .. $1
  const input = fc.record({
    m: fc.constantFrom(...models),
    taskType: fc.constantFrom('summarization', 'analysis', 'chat'),
    complexity: fc.option(fc.constantFrom('simple', 'medium', 'complex') as fc.Arbitrary<'simple' | 'medium' | 'complex'>, { nil: undefined }),
    inputTokens: fc.integer({ min: 0, max: 200_000 }),
    maxOutputTokens: fc.integer({ min: 0, max: 20_000 }),
    perCallBudgetUsd: fc.option(amount, { nil: undefined }),
    remaining: fc.option(fc.record({ usd: amount, expectedCalls: fc.integer({ min: 0, max: 10_000 }) }), { nil: undefined }),
    previousTier: fc.option(fc.constantFrom(...MODEL_TIERS), { nil: undefined }),
  });

  it('is deterministic, never advises above the requested tier, and prices the advised model', () => {
    fc.assert(
      fc.property(input, ({ m, ...rest }) => {
        const i: AdviceInput = { ...m, ...rest };
        const a = adviseModel(i, S, price);
        expect(adviseModel(i, S, price)).toEqual(a);
        const requested = modelTier(m.provider, m.model)?.tier ?? null;
        expect(a.requestedTier).toBe(requested);
        if (requested !== null) {
          expect(MODEL_TIERS.indexOf(a.tier)).toBeGreaterThanOrEqual(MODEL_TIERS.indexOf(requested));
          expect(a.downgrade).toBe(a.tier !== requested);
        }
        expect(modelTier(a.provider, a.model)?.tier ?? a.tier).toBe(a.tier);
        expect(a.maxOutputTokens).toBeLessThanOrEqual(i.maxOutputTokens);
        expect(a.expectedCostUsd).toBe(price(a.provider, a.model, i.inputTokens, a.maxOutputTokens));
      }),
      { numRuns: 300 },
    );
  });
});

describe("differences from the original select_optimal_model, each stated in the README's contract table", () => {
  /** The original specification's select_optimal_model, line for line. */
  function originalSelect(complexity: string, budgetConstraint: number): string {
    const modelTiers: Record<string, string[]> = {
      premium: ['gpt-4', 'claude-3-opus'],
      standard: ['gpt-4-turbo', 'claude-3-5-sonnet'],
      economy: ['gpt-3.5-turbo', 'gemini-pro'],
    };
    const complexityMapping: Record<string, string> = { simple: 'economy', medium: 'standard', complex: 'premium' };
    let targetTier = complexityMapping[complexity] ?? 'standard';
    if (budgetConstraint < 0.01) targetTier = 'economy';
    else if (budgetConstraint < 0.05) targetTier = 'standard';
    return modelTiers[targetTier]![0]!;
  }
  const tierOfOriginal = (model: string) => modelTier('openai', model)!.tier;
  const contract = (() => {
    const readme = readFileSync(join(projectRoot(), 'README.md'), 'utf8');
    return readme.slice(readme.indexOf('## The original contract'), readme.indexOf('\n## ', readme.indexOf('## The original contract') + 5));
  })();
  const row = (start: string) => contract.split('\n').find((l) => l.startsWith(`| \`${start}`));

  it('tiers: equal for every complexity and budget, except a simple task under $0.05, which the original raises to standard', () => {
    const differ: string[] = [];
    for (const complexity of COMPLEXITIES) {
      for (const budget of ['0.001', '0.0099', '0.01', '0.03', '0.0499', '0.05', '0.2', '5']) {
        const original = tierOfOriginal(originalSelect(complexity, Number(budget)));
        const here = advise({ complexity, perCallBudgetUsd: budget }).tier; // gpt-4 asked: premium, no ceiling below
        if (original !== here) differ.push(`${complexity} ${budget}: ${original} -> ${here}`);
      }
    }
    expect(differ).toEqual(['simple 0.01: standard -> economy', 'simple 0.03: standard -> economy', 'simple 0.0499: standard -> economy']);
    expect(row('select_optimal_model`: a per-call budget under $0.05 sets the tier to standard')).toBeDefined();
  });

  it('an unknown complexity: standard in the original, refused here', () => {
    expect(tierOfOriginal(originalSelect('hard', 1))).toBe('standard');
    expect(() => advise({ complexity: 'hard' as never })).toThrow(/complexity must be one of simple, medium, complex/);
    expect(row('select_optimal_model`: an unknown complexity means standard')).toBeDefined();
  });

  it("the model: the original's tier head whatever the provider; here the caller's provider, never above the model asked for", () => {
    expect(originalSelect('medium', 1)).toBe('gpt-4-turbo');
    expect(advise({ provider: 'anthropic', model: 'claude-3-opus-20240229', complexity: 'medium' })).toMatchObject({ provider: 'anthropic', model: 'claude-3-5-sonnet-20241022' });
    expect(originalSelect('complex', 1)).toBe('gpt-4');
    expect(advise({ model: 'gpt-3.5-turbo', complexity: 'complex' })).toMatchObject({ tier: 'economy', model: 'gpt-3.5-turbo' });
    expect(advise({ complexity: 'complex' })).toMatchObject({ perCallBudgetUsd: null, tier: 'premium' }); // no budget: complexity alone
    expect(row('select_optimal_model`: returns the first model of the tier')).toBeDefined();
    expect(row('select_optimal_model`: knows nothing of the model asked for')).toBeDefined();
    expect(row('select_optimal_model`: the budget per call is an argument')).toBeDefined();
  });

  it('max_tokens caps: by a word in the prompt in the original, by task type here', () => {
    expect(advise({ taskType: 'translation', maxOutputTokens: 4000 }).maxOutputTokens).toBe(4000);
    expect(advise({ taskType: 'analysis', maxOutputTokens: 4000 }).maxOutputTokens).toBe(2000);
    expect(row('optimize_token_usage`: caps `max_tokens`')).toBeDefined();
  });
});
