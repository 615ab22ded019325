/**
 * Rolling cost summaries (`GET /v1/summary/:scope`, `costguard summary`): exact totals and
 * breakdowns from the ledger, and the last hour from the Redis real-time view, which the ledger
 * activity writes after each commit. Redis is a bonus here: when it does not answer in time, or the
 * view does not cover the scope (team and project), `recent` is null and the rest stands.
 */
import type { Pool } from 'pg';
import { readSummaryAggregates } from '../db/summary.js';
import { type Scope, scopeId, scopeKind } from '../domain/budget.js';
import { addAmounts } from '../domain/money.js';
import { type CostSummary, type RecentSpend, buildSummary, summaryWindow } from '../domain/summary.js';
import type { RealtimeView } from '../redis/realtime.js';

/** How long a summary waits for Redis before answering without `recent`. */
export const RECENT_TIMEOUT_MS = 1000;
/** A user's latest calls shown in `recent.calls`. */
export const RECENT_CALLS = 10;

async function readRecent(realtime: RealtimeView, scope: Scope, nowMs: number): Promise<RecentSpend | null> {
  const kind = scopeKind(scope);
  if (kind !== 'system' && kind !== 'user') return null;
  const read = async (): Promise<RecentSpend> => {
    const [perMinute, calls] = await Promise.all([
      realtime.costPerMinute(scope, nowMs - 59 * 60_000, nowMs),
      kind === 'user' ? realtime.recentCalls(scopeId(scope), RECENT_CALLS) : Promise.resolve(undefined),
    ]);
    return { source: 'redis', lastHourUsd: addAmounts('0', ...perMinute.map((m) => m.costUsd)), perMinute, ...(calls ? { calls } : {}) };
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), RECENT_TIMEOUT_MS);
  });
  try {
    return await Promise.race([read().catch(() => null), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The summary of `scope` over the last `hours` hours before `nowMs`. */
export async function readCostSummary(deps: { pool: Pool; realtime?: RealtimeView | null }, scope: Scope, hours: number, nowMs: number): Promise<CostSummary> {
  const window = summaryWindow(nowMs, hours);
  const [agg, recent] = await Promise.all([
    readSummaryAggregates(deps.pool, scope, window.startMs, window.endMs),
    deps.realtime ? readRecent(deps.realtime, scope, nowMs) : Promise.resolve(null),
  ]);
  return buildSummary(scope, hours, window, agg, recent);
}
