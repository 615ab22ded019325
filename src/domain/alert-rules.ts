/**
 * Alert rules, pure: thresholds, forecast, spike and unpriced usage are evaluated here from a
 * budget's status (and, for spikes, from spend windows the ledger supplies). The budget workflow
 * runs them after every persisted batch and on a timer; what fires becomes an incident, run by an
 * alert workflow (workflows/alert.ts). Nothing here does I/O, so every rule is unit-tested on
 * synthetic series.
 */
import type { BudgetPeriodStatus, BudgetStatus } from './budget-status.js';
import { Dec, formatMoney, parseAmount } from './money.js';
import { type AlertLevel, levelRank } from './notification.js';

export type AlertRule = 'threshold' | 'forecast' | 'spike' | 'unpriced' | 'deadletter';

/** Settings of the rules (config `alerts:`; defaults in src/config/defaults.ts). */
export interface AlertRuleSettings {
  forecast: { enabled: boolean; minElapsedFraction: number; minCalls: number };
  spike: { enabled: boolean; windowMinutes: number; factor: number; floorUsd: string; baselineDays: number; minBaselineDays: number; users: boolean };
}

/** A condition that holds now: one incident per `key` while it holds. */
export interface AlertCondition {
  /**
   * What the incident is about, stable while the condition holds:
   * `<scope>|<budget period>|<period key>|<rule>` (or `...|unpriced|<provider>/<model>` ...).
   * Notifications are deduplicated per (key, level) for the repeat interval.
   */
  key: string;
  rule: AlertRule;
  scope: string;
  level: AlertLevel;
  title: string;
  summary: string;
  fields: { label: string; value: string }[];
  /** When the period the condition belongs to ends: the incident resolves itself then. */
  periodEndMs: number | null;
  /** Budget period spec (`day`, `month`, `30s`...) when the rule is about a budget. */
  budgetPeriod: string | null;
  periodKey: string | null;
}

const pct = (ratio: number) => `${(Math.floor(ratio * 1000) / 10).toFixed(1)}%`;
const usd = (amount: string) => formatMoney(amount, 'USD', 4);

function budgetName(scope: string, b: BudgetPeriodStatus): string {
  const what = b.period === 'day' ? 'Daily' : b.period === 'month' ? 'Monthly' : `${b.period}`;
  return `${what} budget of ${scope}`;
}

function budgetFields(scope: string, b: BudgetPeriodStatus): AlertCondition['fields'] {
  return [
    { label: 'Scope', value: scope },
    { label: 'Period', value: `${b.periodStart} to ${b.periodEnd} (${b.timezone})` },
    { label: 'Spent', value: usd(b.spentUsd) },
    { label: 'Budget', value: `${formatMoney(b.amountUsd, 'USD', 2)}${b.currency === 'USD' ? '' : ` (${b.amount} ${b.currency})`}` },
    { label: 'Used', value: pct(b.usageRatio) },
  ];
}

/**
 * Where `nowMs` is in the budget's period, in its natural unit: `day 12 of 30` for periods of two
 * days or more, `hour 15 of 24` for two hours or more, else `minute 3 of 10`; for periods under two
 * minutes, the share elapsed (`40% of the period`).
 */
export function periodProgress(b: Pick<BudgetPeriodStatus, 'periodStart' | 'periodEnd'>, nowMs: number): string {
  const start = Date.parse(b.periodStart);
  const length = Date.parse(b.periodEnd) - start;
  const elapsed = Math.min(Math.max(nowMs - start, 0), Math.max(length - 1, 0));
  for (const [unit, ms] of [['day', 86_400_000], ['hour', 3_600_000], ['minute', 60_000]] as const) {
    if (length >= 2 * ms) return `${unit} ${Math.floor(elapsed / ms) + 1} of ${Math.round(length / ms)}`;
  }
  return `${Math.floor((elapsed / Math.max(length, 1)) * 100)}% of the period`;
}

/**
 * Threshold rule: the budget's level from its actual spend. `ok` is no condition; the level
 * (info, warning, critical, emergency at >= 100%) follows the budget's thresholds. Given the time
 * (`nowMs`), the summary and fields also say where the period is (`day 12 of 30`) and, when the forecast
 * settings allow a projection (enough of the period elapsed, enough calls), the projected spend at
 * the end of the period.
 */
export function thresholdCondition(scope: string, b: BudgetPeriodStatus, nowMs?: number, forecast?: AlertRuleSettings['forecast']): AlertCondition | null {
  if (b.level === 'ok') return null;
  const level = b.level;
  const progress = nowMs === undefined ? null : periodProgress(b, nowMs);
  const projected = nowMs !== undefined && forecast ? forecastSpend(b, nowMs, forecast).projectedUsd : null;
  const when = progress ? ` (${progress})` : '';
  const outlook = projected === null ? '' : ` At this period's rate so far it will reach about ${usd(projected)} by the end of the period.`;
  return {
    key: `${scope}|${b.period}|${b.periodKey}|threshold`,
    rule: 'threshold',
    scope,
    level,
    title: `${budgetName(scope, b)} at ${pct(b.usageRatio)}`,
    summary:
      (level === 'emergency'
        ? `${scope} has spent ${usd(b.spentUsd)}, over its ${b.period} budget of ${formatMoney(b.amountUsd, 'USD', 2)}${when}.`
        : `${scope} has spent ${usd(b.spentUsd)} of its ${b.period} budget of ${formatMoney(b.amountUsd, 'USD', 2)} (${pct(b.usageRatio)}); ${usd(b.remainingUsd)} remains until ${b.periodEnd}${when}.`) + outlook,
    fields: [
      ...budgetFields(scope, b),
      ...(progress ? [{ label: 'Progress', value: progress }] : []),
      ...(projected !== null ? [{ label: 'Projected', value: `${usd(projected)} by ${b.periodEnd}` }] : []),
    ],
    periodEndMs: Date.parse(b.periodEnd),
    budgetPeriod: b.period,
    periodKey: b.periodKey,
  };
}

export interface ForecastResult {
  /** Projected spend at the end of the period (USD), or null when there is too little data. */
  projectedUsd: string | null;
  reason: 'ok' | 'too_early' | 'too_few_calls' | 'period_over';
}

/**
 * Projects end-of-period spend by extending the period-to-date average rate:
 *
 *   projected = spent + spent / elapsed * remaining
 *
 * Only the current period's own spend counts (the rate restarts at every reset, so last period's
 * burn never leaks into this one). No projection until at least `minElapsedFraction` of the period
 * has passed AND `minCalls` calls were made in it: a few expensive calls in the first minutes of a
 * day must not predict a 50x overrun.
 */
export function forecastSpend(
  b: Pick<BudgetPeriodStatus, 'spentUsd' | 'periodStart' | 'periodEnd' | 'totals'>,
  nowMs: number,
  opts: AlertRuleSettings['forecast'],
): ForecastResult {
  const start = Date.parse(b.periodStart);
  const end = Date.parse(b.periodEnd);
  const length = end - start;
  const elapsed = Math.min(nowMs, end) - start;
  if (nowMs >= end) return { projectedUsd: null, reason: 'period_over' };
  if (elapsed < length * opts.minElapsedFraction || elapsed <= 0) return { projectedUsd: null, reason: 'too_early' };
  if (b.totals.calls < opts.minCalls) return { projectedUsd: null, reason: 'too_few_calls' };
  const spent = parseAmount(b.spentUsd);
  const projected = spent.plus(spent.times(end - nowMs).dividedBy(elapsed));
  return { projectedUsd: projected.toDecimalPlaces(6, Dec.ROUND_HALF_EVEN).toFixed(), reason: 'ok' };
}

/**
 * Forecast rule: a warning, marked as a forecast, when the projection reaches the budget before the
 * actual spend does (once actual spend crosses, the threshold rule speaks instead).
 */
export function forecastCondition(scope: string, b: BudgetPeriodStatus, nowMs: number, opts: AlertRuleSettings['forecast']): AlertCondition | null {
  if (!opts.enabled || b.usageRatio >= 1) return null;
  const f = forecastSpend(b, nowMs, opts);
  if (f.projectedUsd === null || parseAmount(f.projectedUsd).lessThan(parseAmount(b.amountUsd))) return null;
  return {
    key: `${scope}|${b.period}|${b.periodKey}|forecast`,
    rule: 'forecast',
    scope,
    level: 'warning',
    title: `Forecast: ${budgetName(scope, b)} on course for ${usd(f.projectedUsd)}`,
    summary: `At the rate so far this period, ${scope} will spend about ${usd(f.projectedUsd)} by ${b.periodEnd}, over its budget of ${formatMoney(b.amountUsd, 'USD', 2)}. This is a forecast; actual spend is ${usd(b.spentUsd)} (${pct(b.usageRatio)}).`,
    fields: [...budgetFields(scope, b), { label: 'Projected', value: usd(f.projectedUsd) }],
    periodEndMs: Date.parse(b.periodEnd),
    budgetPeriod: b.period,
    periodKey: b.periodKey,
  };
}

/** Spend of the last window and of the same window on each of the previous days (from the ledger). */
export interface SpendWindows {
  /** Spend in [now - window, now). */
  windowUsd: string;
  /** Spend in the same window 1, 2, ... baselineDays days earlier; only days the scope had history. */
  baselineUsd: string[];
  /**
   * The largest contributors to the window's spend, by cost (absent in results recorded before
   * they were read, and for a window with no spend).
   */
  top?: { model?: SpendContributor; user?: SpendContributor; taskType?: SpendContributor };
}

/** One contributor to a window's spend: its name and what it spent in the window. */
export interface SpendContributor {
  key: string;
  costUsd: string;
}

export interface SpikeResult {
  spiking: boolean;
  /** Usual spend for the window: the mean of the baseline windows, or null without enough history. */
  usualUsd: string | null;
  /** The spend the window must exceed: max(factor x usual, floor). */
  limitUsd: string | null;
}

/**
 * Spike: the last window's spend above `factor` times the usual spend for that window (the mean of
 * the same clock window over the previous days), and above an absolute floor so that a jump from
 * $0.01 to $0.05 never pages anyone. Without `minBaselineDays` days of history there is no "usual",
 * and no spike.
 */
export function detectSpike(w: SpendWindows, opts: AlertRuleSettings['spike']): SpikeResult {
  if (w.baselineUsd.length < Math.max(1, opts.minBaselineDays)) return { spiking: false, usualUsd: null, limitUsd: null };
  const usual = w.baselineUsd.reduce((sum, v) => sum.plus(parseAmount(v)), new Dec(0)).dividedBy(w.baselineUsd.length);
  const floor = parseAmount(opts.floorUsd);
  const byFactor = usual.times(opts.factor);
  const limit = byFactor.greaterThan(floor) ? byFactor : floor;
  return {
    spiking: parseAmount(w.windowUsd).greaterThan(limit),
    usualUsd: usual.toDecimalPlaces(6, Dec.ROUND_HALF_EVEN).toFixed(),
    limitUsd: limit.toDecimalPlaces(6, Dec.ROUND_HALF_EVEN).toFixed(),
  };
}

/** A day key for conditions that belong to no budget period (spikes, unpriced usage), in UTC. */
function dayKey(nowMs: number): { key: string; endMs: number } {
  const d = new Date(nowMs);
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  return { key: new Date(start).toISOString().slice(0, 10), endMs: start + 86_400_000 };
}

/** `3.4x`: the window's spend over the usual, cut (not rounded) to one decimal; null when usual is 0. */
export function spikeMultiplier(windowUsd: string, usualUsd: string): string | null {
  const usual = parseAmount(usualUsd);
  if (usual.isZero()) return null;
  return `${parseAmount(windowUsd).dividedBy(usual).toDecimalPlaces(1, Dec.ROUND_DOWN).toFixed(1)}x`;
}

export function spikeCondition(scope: string, w: SpendWindows, nowMs: number, opts: AlertRuleSettings['spike']): AlertCondition | null {
  if (!opts.enabled) return null;
  const s = detectSpike(w, opts);
  if (!s.spiking) return null;
  const day = dayKey(nowMs);
  const multiplier = spikeMultiplier(w.windowUsd, s.usualUsd!);
  const share = (c: SpendContributor) => {
    const total = parseAmount(w.windowUsd);
    return total.isZero() ? '' : `, ${parseAmount(c.costUsd).dividedBy(total).times(100).toDecimalPlaces(0, Dec.ROUND_DOWN).toFixed(0)}%`;
  };
  const contributors: { label: string; c: SpendContributor }[] = [];
  if (w.top?.model) contributors.push({ label: 'Top model', c: w.top.model });
  // A user scope's top user is the user itself: not worth a line.
  if (w.top?.user && !scope.startsWith('user:')) contributors.push({ label: 'Top user', c: w.top.user });
  if (w.top?.taskType) contributors.push({ label: 'Top task type', c: w.top.taskType });
  const named = contributors.map(({ label, c }) => `${label.slice(4)} ${c.key} (${usd(c.costUsd)}${share(c)})`);
  return {
    key: `${scope}|spike|${day.key}|spike`,
    rule: 'spike',
    scope,
    level: 'warning',
    title: `Spending spike on ${scope}: ${usd(w.windowUsd)} in the last ${opts.windowMinutes} minutes${multiplier ? `, ${multiplier} the baseline` : ''}`,
    summary:
      `${scope} spent ${usd(w.windowUsd)} in the last ${opts.windowMinutes} minutes, ` +
      (multiplier
        ? `${multiplier} the baseline (more than ${opts.factor}x the usual ${usd(s.usualUsd!)} for this time of day, mean of the previous ${w.baselineUsd.length} days).`
        : `with no spend at this time of day on the previous ${w.baselineUsd.length} days (above the ${usd(opts.floorUsd)} floor).`) +
      (named.length > 0 ? ` Top contributors: ${named.join('; ')}.` : ''),
    fields: [
      { label: 'Scope', value: scope },
      { label: `Last ${opts.windowMinutes} min`, value: usd(w.windowUsd) },
      { label: 'Usual', value: usd(s.usualUsd!) },
      { label: 'Multiplier', value: multiplier ? `${multiplier} the baseline` : 'no baseline spend' },
      { label: 'Limit', value: usd(s.limitUsd!) },
      ...contributors.map(({ label, c }) => ({ label, value: `${c.key} (${usd(c.costUsd)}${share(c)})` })),
    ],
    periodEndMs: day.endMs,
    budgetPeriod: null,
    periodKey: day.key,
  };
}

/**
 * Unpriced usage: one system-wide incident per (provider, model) per UTC day, whichever user's
 * traffic showed it, so a thousand users calling the same unknown model open one incident.
 */
export function unpricedCondition(provider: string, model: string, reason: string | undefined, calls: number, nowMs: number): AlertCondition {
  const day = dayKey(nowMs);
  return {
    key: `system|unpriced|${day.key}|${provider}/${model}`,
    rule: 'unpriced',
    scope: 'system',
    level: 'warning',
    title: `Unpriced usage: ${provider}/${model}`,
    summary: `Calls to ${provider}/${model} could not be priced (${reason ?? 'no price'}). They are recorded in the ledger at $0 and flagged; add a price override in the config (pricing.overrides) so budgets count them.`,
    fields: [
      { label: 'Provider', value: provider },
      { label: 'Model', value: model },
      { label: 'Reason', value: reason ?? 'no price' },
      { label: 'Calls seen', value: String(calls) },
    ],
    periodEndMs: day.endMs,
    budgetPeriod: null,
    periodKey: day.key,
  };
}

/** Models one unpriced-usage incident lists (the rest are counted: a flood of made-up names opens one incident). */
export const UNPRICED_MODELS_LISTED = 20;

/**
 * Unpriced usage, bounded: one system-wide incident per provider per UTC day, listing the models
 * seen (at most UNPRICED_MODELS_LISTED by name), so a request naming 10,000 made-up models opens
 * one incident, not 10,000.
 */
export function unpricedProviderCondition(provider: string, models: readonly { model: string; reason?: string; calls: number }[], moreModels: number, nowMs: number): AlertCondition {
  const day = dayKey(nowMs);
  const listed = models.slice(0, UNPRICED_MODELS_LISTED);
  const more = moreModels + Math.max(0, models.length - listed.length);
  const names = listed.map((m) => m.model).join(', ') + (more > 0 ? ` and ${more} more` : '');
  const calls = models.reduce((n, m) => n + m.calls, 0);
  return {
    key: `system|unpriced|${day.key}|${provider}`,
    rule: 'unpriced',
    scope: 'system',
    level: 'warning',
    title: `Unpriced usage: ${provider} (${listed.length + more} model${listed.length + more === 1 ? '' : 's'})`.slice(0, 190),
    summary: `Calls to ${provider} models could not be priced: ${names}. They are recorded in the ledger at $0 and flagged; add a price override in the config (pricing.overrides) so budgets count them.`,
    fields: [
      { label: 'Provider', value: provider },
      { label: 'Models', value: names },
      { label: 'Reason', value: [...new Set(listed.map((m) => m.reason ?? 'no price'))].join(', ') },
      { label: 'Calls seen', value: String(calls) },
    ],
    periodEndMs: day.endMs,
    budgetPeriod: null,
    periodKey: day.key,
  };
}

/** Usage events set aside as dead letters: one system-wide incident per UTC day. */
export function deadLetterCondition(count: number, nowMs: number): AlertCondition {
  const day = dayKey(nowMs);
  return {
    key: `system|deadletter|${day.key}|deadletter`,
    rule: 'deadletter',
    scope: 'system',
    level: 'warning',
    title: 'Usage events could not be recorded (dead letters)',
    summary:
      'Some usage events failed for a reason tied to the event itself (invalid after acceptance, a price that could not be computed, or a row the database refused). ' +
      'The rest of their batches were recorded. List them with `costguard deadletter list` and, after a fix, replay them with `costguard deadletter replay --all`.',
    fields: [{ label: 'Events (first flush seen)', value: String(count) }],
    periodEndMs: day.endMs,
    budgetPeriod: null,
    periodKey: day.key,
  };
}

/** Every budget-based condition that holds for a status now (thresholds, then forecasts). */
export function budgetConditions(status: BudgetStatus, nowMs: number, settings: AlertRuleSettings): AlertCondition[] {
  const out: AlertCondition[] = [];
  for (const b of status.budgets) {
    const t = thresholdCondition(status.scope, b, nowMs, settings.forecast);
    if (t) out.push(t);
    const f = forecastCondition(status.scope, b, nowMs, settings.forecast);
    if (f) out.push(f);
  }
  return out;
}

/** What the budget workflow knows of an incident it raised. */
export interface TrackedIncident {
  level: AlertLevel;
  rule: AlertRule;
  incidentId: string;
  periodEndMs: number | null;
  acknowledged: boolean;
}

export type AlertChange =
  | { kind: 'raise'; condition: AlertCondition }
  | { kind: 'clear'; key: string; incidentId: string };

/**
 * Compares what holds now with what is open, for the rules just evaluated (`rules`): a new key or a
 * higher level raises (the alert workflow notifies at once); a lower level is passed on too (no
 * notification); an open key of an evaluated rule that no longer holds clears.
 * Unchanged conditions produce nothing, so 1,000 further events over a threshold send no message.
 */
export function diffConditions(
  open: ReadonlyMap<string, TrackedIncident>,
  now: readonly AlertCondition[],
  rules: readonly AlertRule[],
): AlertChange[] {
  const changes: AlertChange[] = [];
  const seen = new Set<string>();
  for (const c of now) {
    seen.add(c.key);
    const o = open.get(c.key);
    if (!o || o.level !== c.level) changes.push({ kind: 'raise', condition: c });
  }
  for (const [key, o] of open) {
    if (seen.has(key) || !rules.includes(o.rule)) continue;
    changes.push({ kind: 'clear', key, incidentId: o.incidentId });
  }
  return changes;
}

export function isHigher(a: AlertLevel, b: AlertLevel): boolean {
  return levelRank(a) > levelRank(b);
}
