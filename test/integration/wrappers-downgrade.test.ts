/**
 * The wrappers' `authorize` option against real hard budgets: what the wrapper sends never costs
 * more than what the pre-flight check reserved. The official SDKs call the local LLM server
 * (helpers/llm-servers.ts), the stack is real (Temporal, PostgreSQL, Redis); nothing is mocked.
 *
 * The advice tiers are configured so that an Anthropic call advised the economy tier is advised an
 * OpenAI model (which the Anthropic SDK cannot call).
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setScopeBudgets } from '../../src/client/budgets.js';
import type { CostTracker } from '../../src/client/index.js';
import type { AuthorizeResult } from '../../src/client/preflight.js';
import { BudgetDeniedError, type WrapperOptions, wrapAnthropic, wrapOpenAI } from '../../src/client/wrappers/index.js';
import { Dec } from '../../src/domain/money.js';
import { type FakeReply, type LlmServer, startLlmServer } from './helpers/llm-servers.js';
import { eventually, type Stack, type StackApi, startApi, startStack } from './helpers/stack.js';

const KEY = 'cg_downgrade_test_key_0123456789ab';
let stack: Stack;
let api: StackApi;
let tracker: CostTracker;
let srv: LlmServer;
const errors: unknown[] = [];

beforeAll(async () => {
  [stack, srv] = await Promise.all([
    startStack({
      configYaml: `ingest: { shards: 2, lingerMs: 30 }
preflight: { holdTtlMs: 20000, maxHoldTtlMs: 60000, refillTimeoutMs: 10000 }
advice:
  tiers:
    premium: [{ provider: openai, model: gpt-4 }, { provider: anthropic, model: claude-3-opus-20240229 }]
    standard: [{ provider: openai, model: gpt-4o }, { provider: anthropic, model: claude-3-5-sonnet-20241022 }]
    economy: [{ provider: openai, model: gpt-4o-mini }]
  # Only complexity "simple" advises the economy tier here, not a small derived per-call budget.
  perCall: { economyBelowUsd: "0.000001", standardBelowUsd: "0.000002" }
`,
    }),
    startLlmServer(),
  ]);
  api = await startApi(stack, KEY, { lingerMs: 20 });
  tracker = api.tracker;
}, 120_000);

afterAll(async () => {
  await api?.close();
  await srv?.close();
  await stack?.stop();
});

let seq = 0;
const newUser = (label: string) => `dg-${label}-${++seq}-${Date.now()}`;
const reply = (r: FakeReply) => ({ headers: { 'x-fake-reply': JSON.stringify(r) } });

async function setBudget(userId: string, amount: string): Promise<void> {
  await setScopeBudgets(stack.client, {
    scope: `user:${userId}`,
    taskQueue: stack.taskQueue,
    change: { budgets: [{ period: 'day', amount, thresholds: { warning: 0.8, critical: 0.95 }, enforcement: 'hard' }] },
    defaultTimezone: 'UTC',
    pool: stack.pool,
    config: stack.config,
  });
}

/** The real tracker, noting each pre-flight answer. */
function noting(answers: AuthorizeResult[]) {
  return {
    record: (e: Parameters<CostTracker['record']>[0]) => tracker.record(e),
    authorize: async (r: Parameters<CostTracker['authorize']>[0]) => {
      const res = await tracker.authorize(r);
      answers.push(res);
      return res;
    },
    renewHold: (id: string, ttl?: number) => tracker.renewHold(id, ttl),
    releaseHold: (id: string) => tracker.releaseHold(id),
  };
}

function options(userId: string, extra: Partial<WrapperOptions> = {}): WrapperOptions {
  return { tracker, userId, onError: (err) => errors.push(err), ...extra };
}
const openai = (userId: string, extra: Partial<WrapperOptions> = {}) => wrapOpenAI(new OpenAI({ apiKey: 'sk-test', baseURL: srv.openaiBaseURL, maxRetries: 0 }), options(userId, extra));
const anthropic = (userId: string, extra: Partial<WrapperOptions> = {}) => wrapAnthropic(new Anthropic({ apiKey: 'sk-ant-test', baseURL: srv.anthropicBaseURL, maxRetries: 0 }), options(userId, extra));

/** The request bodies the provider received with this marker in the prompt. */
const received = (marker: string) => srv.requests.filter((r) => JSON.stringify(r.body ?? {}).includes(marker)).map((r) => r.body!);

interface Row {
  model: string;
  cost_usd: string;
  metadata: Record<string, unknown>;
}

async function ledger(userId: string, n: number): Promise<Row[]> {
  await tracker.flush();
  return eventually(
    async () => (await stack.pool.query<Row>('SELECT model, cost_usd::text, metadata FROM usage_ledger WHERE user_id = $1 ORDER BY occurred_at', [userId])).rows,
    (r) => r.length >= n,
    60_000,
    `${n} ledger rows of ${userId}`,
  );
}
const spent = (rows: Row[]) => rows.reduce((a, r) => a.plus(r.cost_usd), new Dec(0));

describe('a downgrade the check reserved for is what the wrapper sends', () => {
  it('OpenAI: gpt-4o on a $0.02 hard budget, 8 concurrent callers: gpt-4o-mini sent with the reserved limit; spend within the budget', async () => {
    const user = newUser('openai');
    const marker = `m-${user}`;
    await setBudget(user, '0.02');
    const answers: AuthorizeResult[] = [];
    const client = openai(user, { tracker: noting(answers), authorize: { complexity: 'simple' } });
    // 1,500 output tokens: $0.015 at gpt-4o, $0.0009 at gpt-4o-mini.
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `Say something. ${marker} #${i}` }] }, reply({ usage: { input: 5, output: 1500 } })),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok.length).toBeGreaterThan(0);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(BudgetDeniedError);
    expect(answers.some((a) => a.decision === 'downgrade' && a.reason === 'cheaper_fits')).toBe(true);
    const bodies = received(marker);
    expect(bodies).toHaveLength(ok.length);
    for (const b of bodies) {
      expect(b.model).toBe('gpt-4o-mini');
      // The request set no limit: the one the reservation assumed is sent (the advice's, at most 4096).
      expect(b.max_completion_tokens).toBe(4096);
    }
    const rows = await ledger(user, ok.length);
    expect(rows.every((r) => r.model === 'gpt-4o-mini' && r.metadata.downgradedFrom === 'gpt-4o')).toBe(true);
    expect(spent(rows).lessThanOrEqualTo('0.02')).toBe(true);
  });

  it('OpenAI Responses: max_output_tokens carries the advised limit', async () => {
    const user = newUser('responses');
    const marker = `m-${user}`;
    await setBudget(user, '0.02');
    const client = openai(user, { authorize: { complexity: 'simple' } });
    await client.responses.create({ model: 'gpt-4o', input: `Say something. ${marker}`, max_output_tokens: 3000 }, reply({ usage: { input: 5, output: 100 } }));
    const [body] = received(marker);
    expect(body).toMatchObject({ model: 'gpt-4o-mini', max_output_tokens: 3000 });
    const [row] = await ledger(user, 1);
    expect(row!.metadata.downgradedFrom).toBe('gpt-4o');
  });

  it('Anthropic: claude-3-opus on $0.25, 8 concurrent callers, then one at a time until denied: the downgraded calls send claude-3-5-sonnet with the summarization cap; spend within the budget', async () => {
    const user = newUser('anthropic');
    const marker = `m-${user}`;
    await setBudget(user, '0.25');
    const answers: AuthorizeResult[] = [];
    const client = anthropic(user, { tracker: noting(answers), authorize: true, taskType: 'summarization' });
    // 900 output tokens: $0.0675 at claude-3-opus, $0.0135 at claude-3-5-sonnet.
    const ask = (i: number) =>
      client.messages.create(
        { model: 'claude-3-opus-20240229', max_tokens: 1500, messages: [{ role: 'user', content: `Summarise this. ${marker} #${i}` }] },
        reply({ usage: { input: 5, output: 900 } }),
      );
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => ask(i)));
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(BudgetDeniedError);
    // Then one at a time, each after the last settled: what remains falls through the range where
    // only the cheaper model fits ($0.015 to $0.1125, wider than one opus call), whatever the burst left.
    const settled = async () => {
      await tracker.flush();
      for (const a of answers) if (a.holdId) await eventually(() => tracker.holdState(a.holdId!), (h) => h?.state !== 'open', 30_000, 'holds settled');
    };
    for (let i = 8; i < 20; i++) {
      await settled();
      const denied = await ask(i).then(() => false, (err: unknown) => {
        expect(err).toBeInstanceOf(BudgetDeniedError);
        return true;
      });
      if (denied) break;
    }
    const downgraded = answers.filter((a) => a.decision === 'downgrade' && a.reason === 'cheaper_fits');
    expect(downgraded.length).toBeGreaterThan(0);
    const bodies = received(marker);
    const sonnet = bodies.filter((b) => b.model === 'claude-3-5-sonnet-20241022');
    expect(sonnet).toHaveLength(downgraded.length);
    for (const b of sonnet) expect(b.max_tokens).toBe(1000); // the summarization cap the reservation priced
    for (const b of bodies.filter((x) => x.model !== 'claude-3-5-sonnet-20241022')) expect(b).toMatchObject({ model: 'claude-3-opus-20240229', max_tokens: 1500 });
    const rows = await ledger(user, bodies.length);
    expect(rows.filter((r) => r.metadata.downgradedFrom === 'claude-3-opus-20240229')).toHaveLength(downgraded.length);
    expect(spent(rows).lessThanOrEqualTo('0.25')).toBe(true);
  }, 120_000);

  it('advice of another provider than the SDK calls: the hold released, a denial that says why, nothing sent', async () => {
    const user = newUser('mismatch');
    const marker = `m-${user}`;
    await setBudget(user, '0.02');
    const answers: AuthorizeResult[] = [];
    const client = anthropic(user, { tracker: noting(answers), authorize: { complexity: 'simple' } });
    const err = await client.messages
      .create({ model: 'claude-3-opus-20240229', max_tokens: 1000, messages: [{ role: 'user', content: `Hello. ${marker}` }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetDeniedError);
    expect((err as Error).message).toContain('only openai/gpt-4o-mini fits, which this anthropic client cannot call');
    expect(received(marker)).toHaveLength(0);
    expect(answers[0]).toMatchObject({ decision: 'downgrade', reason: 'cheaper_fits' });
    await eventually(() => tracker.holdState(answers[0]!.holdId!), (h) => h?.state === 'released', 10_000, 'hold released');
  });
});

describe('authorize.onDowngrade keep and deny', () => {
  it('keep: the check reserves the model asked for or denies; what is sent is the model asked for', async () => {
    const user = newUser('keep');
    const marker = `m-${user}`;
    await setBudget(user, '0.02');
    const client = openai(user, { authorize: { complexity: 'simple', onDowngrade: 'keep' } });
    // gpt-4o with the assumed 4,096 output tokens is $0.041: denied rather than downgraded.
    const err = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `Big. ${marker}` }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetDeniedError);
    expect((err as BudgetDeniedError).decision).toMatchObject({ decision: 'deny', reason: 'budget_exhausted' });
    // With 1,000 output tokens ($0.01) it fits, and gpt-4o is sent.
    await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages: [{ role: 'user', content: `Small. ${marker}` }] }, reply({ usage: { input: 5, output: 900 } }));
    expect(received(marker)).toEqual([expect.objectContaining({ model: 'gpt-4o', max_tokens: 1000 })]);
    const rows = await ledger(user, 1);
    expect(rows[0]!.metadata.downgradedFrom).toBeUndefined();
  });

  it('deny: a downgrade decision (advice near the budget) releases its hold and throws, nothing sent', async () => {
    const user = newUser('deny');
    const marker = `m-${user}`;
    await setBudget(user, '0.02');
    const answers: AuthorizeResult[] = [];
    const client = openai(user, { tracker: noting(answers), authorize: { complexity: 'simple', onDowngrade: 'deny' } });
    // $0.01 worst case: half the budget, allowed.
    await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages: [{ role: 'user', content: `One. ${marker}` }] }, reply({ usage: { input: 5, output: 1000 } }));
    await tracker.flush();
    await eventually(() => tracker.holdState(answers[0]!.holdId!), (h) => h?.state === 'settled', 30_000, 'first hold settled');
    // The second holds the rest: past 90%, the check advises gpt-4o-mini (downgrade, near_budget).
    const err = await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 900, messages: [{ role: 'user', content: `Two. ${marker}` }] }).catch((e: unknown) => e);
    expect(answers[1]).toMatchObject({ decision: 'downgrade' });
    expect(err).toBeInstanceOf(BudgetDeniedError);
    expect((err as Error).message).toContain("authorize.onDowngrade is 'deny'");
    expect(received(marker)).toHaveLength(1);
    await eventually(() => tracker.holdState(answers[1]!.holdId!), (h) => h?.state === 'released', 10_000, 'hold released');
  });
});

describe('denials', () => {
  it('the message names the budget that refused, not a roomy one beside it', async () => {
    const user = newUser('names');
    await setBudget(user, '0.01');
    const client = openai(user, { authorize: { onDowngrade: 'keep' } });
    const err = await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 2000, messages: [{ role: 'user', content: 'Hi' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetDeniedError);
    expect((err as Error).message).toMatch(new RegExp(`user:${user} has 0\\.01 USD left of its day budget of 0\\.01 USD`));
  });

  it('through the SDKs\' stream helpers the denial is a BudgetDeniedError (also an instance of the SDK\'s error class)', async () => {
    const user = newUser('helpers');
    const marker = `m-${user}`;
    await setBudget(user, '0.001');
    const o = openai(user, { authorize: { onDowngrade: 'keep' } });
    const a = anthropic(user, { authorize: { onDowngrade: 'keep' } });
    const chat = await o.chat.completions.stream({ model: 'gpt-4o', max_tokens: 2000, messages: [{ role: 'user', content: marker }] }).finalChatCompletion().catch((e: unknown) => e);
    const responses = await o.responses.stream({ model: 'gpt-4o', max_output_tokens: 2000, input: marker }).finalResponse().catch((e: unknown) => e);
    const messages = await a.messages.stream({ model: 'claude-3-opus-20240229', max_tokens: 2000, messages: [{ role: 'user', content: marker }] }).finalMessage().catch((e: unknown) => e);
    for (const err of [chat, responses, messages]) {
      expect(err).toBeInstanceOf(BudgetDeniedError);
      expect((err as BudgetDeniedError).decision.decision).toBe('deny');
      expect((err as Error).name).toBe('BudgetDeniedError');
    }
    expect(chat).toBeInstanceOf(OpenAI.OpenAIError);
    expect(messages).toBeInstanceOf(Anthropic.AnthropicError);
    expect(received(marker)).toHaveLength(0);
  });

  it('reported nothing to onError', () => {
    expect(errors).toEqual([]);
  });
});
