/**
 * `costguard summary`: a scope's cost over the last N hours (default 24), the original's user and
 * system summaries: exact totals from the ledger, the last hour from the Redis real-time view.
 */
import { Redis } from 'ioredis';
import { readCostSummary } from '../client/summary.js';
import type { Config } from '../config/index.js';
import { formatMoney } from '../domain/money.js';
import { type CostSummary, parseSummaryHours } from '../domain/summary.js';
import { createRealtimeView } from '../redis/realtime.js';
import { withPool } from './pool.js';
import { type StatusCommandOptions, statusScope } from './status.js';

export interface SummaryCommandOptions extends StatusCommandOptions {
  hours?: string;
}

export async function runSummaryCommand(config: Config, opts: SummaryCommandOptions, nowMs: number): Promise<CostSummary> {
  const scope = statusScope(opts);
  const hours = parseSummaryHours(opts.hours, '--hours');
  // One attempt, no offline queue: a Redis that is down costs the summary its `recent` part, not a wait.
  const redis = new Redis(config.redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => undefined);
  const realtime = await redis.connect().then(
    () => createRealtimeView(redis, config.redis.keyPrefix),
    () => null,
  );
  try {
    return await withPool(config, (pool) => readCostSummary({ pool, realtime }, scope, hours, nowMs));
  } finally {
    redis.disconnect();
  }
}

const money = (usd: string) => formatMoney(usd, 'USD');

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((cells) => `  ${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`);
}

/** The summary as tables; amounts rounded half-even to 6 places for display (the JSON is exact). */
export function renderSummaryText(s: CostSummary): string {
  const t = s.totals;
  const lines = [
    `Cost of ${s.scope}, last ${s.hours} h (${s.startTime} to ${s.endTime})`,
    `  ${money(t.costUsd)} over ${t.calls} call(s)${t.unpricedCalls ? ` (${t.unpricedCalls} UNPRICED)` : ''}, ${money(t.avgCostPerCallUsd)} per call; tokens in ${t.inputTokens}, out ${t.outputTokens}`,
  ];
  if (t.calls > 0) {
    lines.push('By provider and model:', ...table(['PROVIDER', 'MODEL', 'CALLS', 'INPUT', 'OUTPUT', 'COST'], s.byProviderModel.map((g) => [g.provider, g.model, String(g.calls), String(g.inputTokens), String(g.outputTokens), money(g.costUsd)])));
    lines.push('By task type:', ...table(['TASK TYPE', 'CALLS', 'AVG/CALL', 'COST'], s.byTaskType.map((g) => [g.taskType, String(g.calls), money(g.avgCostPerCallUsd), money(g.costUsd)])));
    lines.push('By hour (UTC, newest first):', ...table(['HOUR', 'CALLS', 'COST'], s.byHour.map((g) => [g.hour.slice(0, 13) + ':00Z', String(g.calls), money(g.costUsd)])));
  }
  lines.push(s.recent ? `Last 60 minutes (Redis real-time view): ${money(s.recent.lastHourUsd)}` : 'Last 60 minutes: no real-time view (team/project scope, or Redis did not answer)');
  return lines.join('\n');
}
