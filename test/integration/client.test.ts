/**
 * CostTracker against the real stack: a Temporal dev server, the real budget workflow and
 * activities, PostgreSQL and Redis. What a service relies on: every event recorded arrives exactly
 * once, in the ledger and in the budget workflow's totals.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CostTracker, type RecordReceipt } from '../../src/client/index.js';
import { addAmounts, normalizeAmount } from '../../src/domain/money.js';
import type { UsageEventInput } from '../../src/domain/usage.js';
import { readBudgetStatus } from '../../src/client/budgets.js';
import { shardOf } from '../../src/domain/ingest.js';
import { ingestStatusQuery, ingestWorkflowId } from '../../src/messages.js';
import { createPricingEngine } from '../../src/pricing/index.js';
import { eventually, type Stack, startStack } from './helpers/stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.stop();
});

const MODELS = [
  { provider: 'openai', model: 'gpt-4o-mini' },
  { provider: 'anthropic', model: 'claude-3-5-sonnet-20241022' },
  { provider: 'google', model: 'gemini-2.0-flash' },
];

function syntheticEvent(i: number, userId: string, occurredAt: string): UsageEventInput {
  const m = MODELS[i % MODELS.length]!;
  return { ...m, userId, occurredAt, taskType: i % 2 ? 'chat' : 'summarise', usage: { inputTokens: 100 + (i % 37) * 13, outputTokens: 20 + (i % 11) * 7 } };
}

function newTracker(): CostTracker {
  return new CostTracker({ client: stack.client, taskQueue: stack.taskQueue, lingerMs: 50 });
}

/** A scope's status as the API shows it: the live totals from the rollups (a workflow exists only on material change). */
async function dayStatus(scope: string) {
  const status = await readBudgetStatus(stack.client, stack.pool, stack.config, scope);
  const day = status.live.budgets.find((b) => b.period === 'day');
  if (!day) throw new Error(`no day budget in ${JSON.stringify(status)}`);
  return { status, day };
}

async function ledgerSum(userId: string, from: string, to: string): Promise<{ calls: number; costUsd: string }> {
  const { rows } = await stack.pool.query<{ calls: string; cost: string }>(
    `SELECT count(*)::text AS calls, coalesce(sum(cost_usd), 0)::text AS cost
       FROM usage_ledger WHERE user_id = $1 AND occurred_at >= $2 AND occurred_at < $3`,
    [userId, from, to],
  );
  return { calls: Number(rows[0]!.calls), costUsd: normalizeAmount(rows[0]!.cost) };
}

describe('CostTracker on the real stack', () => {
  it('delivers 1,000 events for 20 users exactly once: ledger count and sum, and each budget workflow\'s total', async () => {
    const tracker = newTracker();
    const occurredAt = new Date().toISOString();
    const users = Array.from({ length: 20 }, (_, u) => `client-it-${u}`);
    const events = Array.from({ length: 1000 }, (_, i) => syntheticEvent(i, users[i % users.length]!, occurredAt));

    const receipts: RecordReceipt[] = await Promise.all(events.map((e) => tracker.record(e)));
    expect(new Set(receipts.map((r) => r.requestId)).size).toBe(1000);
    expect(new Set(receipts.map((r) => r.scope))).toEqual(new Set(users.map((u) => `user:${u}`)));
    await tracker.close();
    expect(tracker.stats()).toMatchObject({ pending: 0, inFlightBatches: 0, sentEvents: 1000, failedBatches: 0 });

    // The ledger: each event once, under the requestId the tracker gave it, at the exact expected cost.
    const pricing = createPricingEngine(stack.config);
    const expectedTotal = addAmounts(
      ...events.map((e) => {
        const r = pricing.price({ provider: e.provider, model: e.model, occurredAtMs: Date.parse(occurredAt), usage: { inputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0, reasoningTokens: 0, ...e.usage } });
        if (!r.priced) throw new Error(`test bug: ${e.model} unpriced`);
        return r.costUsd;
      }),
    );
    const ids = receipts.map((r) => r.requestId);
    const ledger = await eventually(
      async () => (await stack.pool.query<{ n: string; distinct_ids: string; cost: string | null }>(
        `SELECT count(*)::text AS n, count(DISTINCT request_id)::text AS distinct_ids, sum(cost_usd)::text AS cost
           FROM usage_ledger WHERE request_id = ANY($1)`,
        [ids],
      )).rows[0]!,
      (r) => r.n === '1000',
      60_000,
      '1,000 ledger rows',
    );
    expect(ledger.distinct_ids).toBe('1000');
    expect(normalizeAmount(ledger.cost!)).toBe(expectedTotal);

    // Each user's live status counts exactly what the ledger holds for its current day.
    for (const userId of users) {
      const { day } = await eventually(
        () => dayStatus(`user:${userId}`),
        (s) => s.day.totals.calls === 50,
        60_000,
        `the status of user:${userId} to count 50 calls`,
      );
      const sum = await ledgerSum(userId, day.periodStart, day.periodEnd);
      expect(sum.calls).toBe(50);
      expect(normalizeAmount(day.spentUsd)).toBe(sum.costUsd);
    }
  });

  it('counts once an event recorded twice with the same requestId from two trackers', async () => {
    const [a, b] = [newTracker(), newTracker()];
    const event: UsageEventInput = { ...syntheticEvent(1, 'client-it-dup', new Date().toISOString()), requestId: 'client-it-dup-1' };
    const [ra, rb] = await Promise.all([a.record(event), b.record(event)]);
    expect(ra.requestId).toBe('client-it-dup-1');
    expect(rb.requestId).toBe('client-it-dup-1');
    expect(ra.batchId).not.toBe(rb.batchId);
    await Promise.all([a.close(), b.close()]);

    // Both batches processed by the user's shard (one counted, one a duplicate), and the event counted once.
    const shard = stack.client.workflow.getHandle(ingestWorkflowId(shardOf('client-it-dup', stack.config.ingest.shards)));
    await eventually(() => shard.query(ingestStatusQuery), (s) => s.pendingEvents === 0 && s.counters.duplicateEvents >= 1, 60_000, 'both deliveries to be processed');
    const { day } = await dayStatus('user:client-it-dup');
    expect(day.totals.calls).toBe(1);
    const { rows } = await stack.pool.query(`SELECT cost_usd::text AS cost FROM usage_ledger WHERE request_id = $1`, ['client-it-dup-1']);
    expect(rows).toHaveLength(1);
    expect(normalizeAmount(day.spentUsd)).toBe(normalizeAmount(rows[0].cost));
  });

  it('close() sends whatever is still queued and leaves nothing pending', async () => {
    const tracker = new CostTracker({ client: stack.client, taskQueue: stack.taskQueue, lingerMs: 60_000 });
    const occurredAt = new Date().toISOString();
    const pending = Array.from({ length: 30 }, (_, i) => tracker.record(syntheticEvent(i, `client-it-close-${i % 3}`, occurredAt)));
    expect(tracker.stats().pending).toBe(30); // a long linger: nothing would go out on its own for a minute
    await tracker.close();
    expect(tracker.stats()).toMatchObject({ pending: 0, inFlightBatches: 0, sentEvents: 30 });
    const receipts = await Promise.all(pending);
    await expect(tracker.record(syntheticEvent(0, 'client-it-close-0', occurredAt))).rejects.toMatchObject({ name: 'CostTrackerClosedError' });
    await eventually(
      async () => (await stack.pool.query(`SELECT count(*)::int AS n FROM usage_ledger WHERE request_id = ANY($1)`, [receipts.map((r) => r.requestId)])).rows[0].n as number,
      (n) => n === 30,
      60_000,
      '30 ledger rows',
    );
  });
});
