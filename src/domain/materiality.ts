/**
 * When an ingest shard tells a user's budget workflow about its spend (pure, unit-tested).
 *
 * The shard's flush statement returns, for every user day and month it added to, the exact new
 * total in the rollups' time zone and what the flush added. From these alone (no memory, so a
 * restarted worker, a second worker or a retried flush decide the same way), a scope is material
 * when this flush:
 *
 *   1. `step`: carried the scope's spend today across a multiple of the step, where the step is
 *      `stepFraction` (default 5%) of the scope's smallest budget in USD. Between two signals the
 *      day's spend moves by less than one step, so the budget workflow is never behind the ledger
 *      by a step or more once a flush completes (for any of its periods: a period's spend grows
 *      only with the day's);
 *   2. `threshold`: carried a budget that lines up with the rollups (`day` or `month` in their time
 *      zone) across one of its thresholds (info, warning, critical, emergency): the alert fires
 *      from this very flush;
 *   3. `forecast`: carried such a budget's projected end-of-period spend (spend / elapsed share of
 *      the period, once `minElapsedFraction` of it has passed) across the budget.
 *
 * Budgets of other periods (`30s`, `1h`, a day in another time zone) are guarded through the step:
 * their thresholds are seen by the budget workflow within one step of spend.
 * A scope with no budget is never material: it has nothing to guard (its usage is in the ledger,
 * the rollups and the live status all the same).
 */
import type { Budget } from './budget.js';
import { Dec, type ExchangeRates, toUsd } from './money.js';
import { type Period, periodAt } from './periods.js';

export interface MaterialitySettings {
  /** Share of the scope's smallest budget that makes a step (default 0.05). */
  stepFraction: number;
  forecast: { enabled: boolean; minElapsedFraction: number };
}

export interface PeriodChange {
  kind: 'day' | 'month';
  startMs: number;
  totalUsd: string;
  deltaUsd: string;
}

export type MaterialReason = 'step' | 'threshold' | 'forecast';

/** The rollups' current day and month: the same for every scope of a flush, so computed once per flush. */
export interface RollupPeriods {
  day: Period;
  month: Period;
}

export function rollupPeriods(rollupTimezone: string, nowMs: number): RollupPeriods {
  return { day: periodAt('day', rollupTimezone, nowMs), month: periodAt('month', rollupTimezone, nowMs) };
}

/** Why the scope's budget workflow must hear of this flush, or null. */
export function materialReason(
  budgets: readonly Budget[],
  changes: readonly PeriodChange[],
  opts: { rollupTimezone: string; nowMs: number; rates: ExchangeRates; settings: MaterialitySettings; periods?: RollupPeriods },
): MaterialReason | null {
  if (budgets.length === 0) return null;
  const amounts = budgets.map((b) => new Dec(toUsd(b.amount, b.currency, opts.rates)));
  const periods = opts.periods ?? rollupPeriods(opts.rollupTimezone, opts.nowMs);
  const current = (kind: 'day' | 'month') => {
    const p = periods[kind];
    const c = changes.find((x) => x.kind === kind && x.startMs === p.startMs);
    return c ? { period: p, after: new Dec(c.totalUsd), before: new Dec(c.totalUsd).minus(c.deltaUsd) } : null;
  };

  const day = current('day');
  const step = Dec.min(...amounts).times(opts.settings.stepFraction);
  if (day && step.greaterThan(0) && day.after.dividedToIntegerBy(step).greaterThan(day.before.dividedToIntegerBy(step))) return 'step';

  let forecast = false;
  for (const [i, b] of budgets.entries()) {
    if ((b.period !== 'day' && b.period !== 'month') || b.timezone !== opts.rollupTimezone) continue;
    const c = current(b.period);
    if (!c) continue;
    const amount = amounts[i]!;
    const ratios = [b.thresholds.info, b.thresholds.warning, b.thresholds.critical, b.thresholds.emergency ?? 1].filter((r): r is number => r !== undefined);
    for (const r of ratios) {
      const line = amount.times(r);
      if (c.before.lessThan(line) && c.after.greaterThanOrEqualTo(line)) return 'threshold';
    }
    if (opts.settings.forecast.enabled) {
      const elapsed = (opts.nowMs - c.period.startMs) / (c.period.endMs - c.period.startMs);
      if (elapsed >= opts.settings.forecast.minElapsedFraction && elapsed > 0) {
        const projected = (x: Dec) => x.dividedBy(elapsed);
        if (projected(c.before).lessThan(amount) && projected(c.after).greaterThanOrEqualTo(amount)) forecast = true;
      }
    }
  }
  return forecast ? 'forecast' : null;
}
