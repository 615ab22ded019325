/**
 * Rolling cost summaries over the last N hours (the original specification's user and system
 * summaries, `get_user_cost_summary` and `get_system_cost_metrics`), beside the calendar periods of
 * budgets and reports. Pure: the SQL is in src/db/summary.ts, the Redis reads in src/redis/realtime.ts.
 *
 * A summary holds the window's totals, its cost by provider and model (the original user summary),
 * by hour, by provider and by task type (the original system metrics), each with the average cost
 * per call; every amount is an exact decimal string, an average the exact quotient cut half-even at
 * CONVERSION_DECIMALS places (as in reports).
 */
import { ValidationError } from './errors.js';
import { CONVERSION_DECIMALS, Dec, normalizeAmount, parseAmount } from './money.js';

/** The original's default window. */
export const SUMMARY_DEFAULT_HOURS = 24;
/** The longest window: the Redis real-time view keeps 7 days, and a summary reads its window's ledger rows. */
export const SUMMARY_MAX_HOURS = 168;

/** `hours` as given (query string or CLI flag): a whole number from 1 to SUMMARY_MAX_HOURS; default 24. */
export function parseSummaryHours(raw: unknown, path = 'hours'): number {
  if (raw === undefined || raw === '') return SUMMARY_DEFAULT_HOURS;
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : '';
  const n = /^\d{1,4}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > SUMMARY_MAX_HOURS) {
    throw new ValidationError(
      [{ path, message: `expected a whole number of hours from 1 to ${SUMMARY_MAX_HOURS}, got ${JSON.stringify(typeof raw === 'string' ? raw.slice(0, 40) : raw)}` }],
      'invalid summary window',
    );
  }
  return n;
}

/** One group of the window's ledger rows, as src/db/summary.ts reads it. */
export interface SummaryGroupRow {
  costUsd: string;
  calls: number;
  unpricedCalls: number;
  inputTokens: number;
  outputTokens: number;
}

export interface SummaryAggregates {
  totals: SummaryGroupRow;
  byProviderModel: (SummaryGroupRow & { provider: string; model: string })[];
  byProvider: (SummaryGroupRow & { provider: string })[];
  byTaskType: (SummaryGroupRow & { taskType: string })[];
  /** `hour`: the UTC hour's start, ISO 8601. */
  byHour: (SummaryGroupRow & { hour: string })[];
}

/** The last hour, read from the Redis real-time view (null when the view does not cover the scope or Redis did not answer). */
export interface RecentSpend {
  source: 'redis';
  /** Sum of the 60 minutes below, exact. */
  lastHourUsd: string;
  perMinute: { minute: string; costUsd: string }[];
  /** A user's latest calls, newest first (user scopes only). */
  calls?: Record<string, unknown>[];
}

type WithAverage<T> = T & { avgCostPerCallUsd: string };

export interface CostSummary {
  scope: string;
  hours: number;
  startTime: string;
  endTime: string;
  totals: WithAverage<SummaryGroupRow>;
  byProviderModel: WithAverage<SummaryGroupRow & { provider: string; model: string }>[];
  byProvider: WithAverage<SummaryGroupRow & { provider: string }>[];
  byTaskType: WithAverage<SummaryGroupRow & { taskType: string }>[];
  byHour: WithAverage<SummaryGroupRow & { hour: string }>[];
  recent: RecentSpend | null;
}

/** The window [now - hours, now], as the original computes it. */
export function summaryWindow(nowMs: number, hours: number): { startMs: number; endMs: number } {
  return { startMs: nowMs - hours * 3_600_000, endMs: nowMs };
}

function average(costUsd: string, calls: number): string {
  if (calls === 0) return '0';
  return normalizeAmount(parseAmount(costUsd).dividedBy(calls).toDecimalPlaces(CONVERSION_DECIMALS, Dec.ROUND_HALF_EVEN));
}

const withAverage = <T extends SummaryGroupRow>(g: T): WithAverage<T> => ({ ...g, avgCostPerCallUsd: average(g.costUsd, g.calls) });
/** Most expensive first (the original's ORDER BY total_cost DESC), then by name for a stable order. */
const byCostDesc = (key: (g: never) => string) => (a: SummaryGroupRow, b: SummaryGroupRow) =>
  parseAmount(b.costUsd).comparedTo(parseAmount(a.costUsd)) || (key(a as never) < key(b as never) ? -1 : 1);

/** Assembles a summary: breakdowns most expensive first, hours newest first (as the original orders them). */
export function buildSummary(scope: string, hours: number, window: { startMs: number; endMs: number }, agg: SummaryAggregates, recent: RecentSpend | null): CostSummary {
  return {
    scope,
    hours,
    startTime: new Date(window.startMs).toISOString(),
    endTime: new Date(window.endMs).toISOString(),
    totals: withAverage(agg.totals),
    byProviderModel: [...agg.byProviderModel].sort(byCostDesc((g: { provider: string; model: string }) => `${g.provider}/${g.model}`)).map(withAverage),
    byProvider: [...agg.byProvider].sort(byCostDesc((g: { provider: string }) => g.provider)).map(withAverage),
    byTaskType: [...agg.byTaskType].sort(byCostDesc((g: { taskType: string }) => g.taskType)).map(withAverage),
    byHour: [...agg.byHour].sort((a, b) => (a.hour < b.hour ? 1 : -1)).map(withAverage),
    recent,
  };
}
