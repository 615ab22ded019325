/**
 * A cost report, assembled from the ledger's aggregates for one period (pure: the SQL lives in
 * src/db/reports.ts). Money stays exact: every amount is a decimal string; an average cost per call
 * is a quotient, cut half-even at CONVERSION_DECIMALS places; percentages are display numbers.
 *
 * Recommendations (each with the numbers that triggered it):
 *  1. A provider with at least PROVIDER_SHARE of the period's cost.
 *  2. A task type with at least TASK_TYPE_SHARE of the period's cost.
 *  3. A task type or model whose average cost per call is at least HIGH_AVERAGE_FACTOR times the
 *     period's average (with at least MIN_CALLS_FOR_AVERAGE calls, so one odd call does not count).
 *  4. A model with a cheaper same-provider alternative (src/domain/model-tiers.ts): the period's
 *     calls re-priced at the alternative's price; recommended when that saves money. The estimate
 *     prices the model's average call (token counts of each kind divided by its calls, rounded down)
 *     with the current and the alternative model through the pricing engine, times the calls, so
 *     long-context tiers are judged per call as they are billed.
 * The original specification's absolute rules, beside these on daily reports (its figures are per
 * day; a monthly report would trip them every month):
 *  5. The most expensive provider, when it cost more than ORIGINAL_PROVIDER_USD ($50) in the day.
 *  6. An average cost per call over all the day's calls above ORIGINAL_AVERAGE_CALL_USD ($1).
 *  7. Each task type whose average cost per call is above ORIGINAL_TASK_TYPE_AVERAGE_USD ($2).
 * Each recommendation names the rule that produced it (`rule`), so a reader can tell the original's
 * fixed amounts from the shares and ratios that scale with the spend.
 */
import { CONVERSION_DECIMALS, Dec, normalizeAmount, parseAmount } from './money.js';
import { type ModelTier, modelTier } from './model-tiers.js';
import type { AlertLevel, Notification } from './notification.js';
import type { PriceResult, PricingInput } from './pricing.js';
import { type ReportKind, type ReportPeriod, reportBuckets, reportSourceId } from './report-period.js';
import { TOKEN_KINDS, type TokenUsage } from './usage.js';

export const PROVIDER_SHARE = 0.5;
export const TASK_TYPE_SHARE = 0.4;
export const HIGH_AVERAGE_FACTOR = 2;
export const MIN_CALLS_FOR_AVERAGE = 2;
/** The original specification's fixed amounts (USD, exact decimals; "more than"). */
export const ORIGINAL_PROVIDER_USD = '50';
export const ORIGINAL_AVERAGE_CALL_USD = '1';
export const ORIGINAL_TASK_TYPE_AVERAGE_USD = '2';

/** One group of ledger rows as the aggregation returns it (a provider, a task type, a user...). */
export interface UsageGroup {
  key: string;
  costUsd: string;
  calls: number;
  unpricedCalls: number;
  tokens: TokenUsage;
}

export interface ModelUsageGroup extends UsageGroup {
  provider: string;
  model: string;
}

/** Everything the report needs from the ledger and around it, read by the report activity. */
export interface ReportData {
  period: ReportPeriod;
  previous: { period: string; costUsd: string; calls: number };
  totals: UsageGroup;
  byProvider: UsageGroup[];
  byModel: ModelUsageGroup[];
  byTaskType: UsageGroup[];
  /** The top users by cost (already limited to N). */
  topUsers: UsageGroup[];
  /** By bucket index (see reportBuckets); buckets without usage may be absent. */
  byBucket: { index: number; costUsd: string; calls: number }[];
  /** Monthly reports: by local hour of the day (0-23); hours without usage may be absent. */
  byHourOfDay?: { hour: number; costUsd: string; calls: number }[] | undefined;
  budgets: { scope: string; period: string; amountUsd: string }[];
  incidents: OpenIncident[];
  generatedAt: string;
  /** Requests the response cache answered in the period and what they would have cost (absent: none recorded). */
  cache?: { hits: number; avoidedUsd: string } | undefined;
}

export interface OpenIncident {
  id: string;
  scope: string;
  rule: string;
  level: AlertLevel;
  status: 'open' | 'acknowledged';
  openedAt: string;
  title: string;
}

export interface BreakdownRow {
  key: string;
  costUsd: string;
  calls: number;
  totalTokens: number;
  /** Share of the period's cost, in percent (display). */
  sharePct: number;
  avgCostPerCallUsd: string;
}

export interface ModelBreakdownRow extends BreakdownRow {
  provider: string;
  model: string;
  tier: ModelTier | null;
}

export type RecommendationKind = 'expensive_provider' | 'expensive_task_type' | 'high_average_cost' | 'cheaper_model';

/**
 * The rule behind a recommendation: the relative ones (shares, ratios, tiers) and the original
 * specification's fixed amounts (`original_*`).
 */
export type RecommendationRule =
  | 'provider_share'
  | 'task_type_share'
  | 'high_average'
  | 'cheaper_tier'
  | 'original_provider_cost'
  | 'original_task_type_average'
  | 'original_average_cost';

export interface Recommendation {
  kind: RecommendationKind;
  rule: RecommendationRule;
  /** What it is about: a provider, a task type, or `provider/model`. */
  subject: string;
  message: string;
  /** For cheaper_model: the estimated saving over the period, exact decimal USD. */
  estimatedSavingUsd?: string;
  /** For cheaper_model: the suggested model. */
  alternative?: string;
}

export interface Report {
  schemaVersion: 1;
  kind: ReportKind;
  period: string;
  timezone: string;
  periodStart: string;
  periodEnd: string;
  /** Length of the period in hours (23, 24 or 25 for a day). */
  hours: number;
  generatedAt: string;
  /** No usage in the period: the report says so (not an error). */
  empty: boolean;
  totals: {
    costUsd: string;
    calls: number;
    unpricedCalls: number;
    tokens: TokenUsage;
    totalTokens: number;
    avgCostPerCallUsd: string;
  };
  previous: { period: string; costUsd: string; calls: number; avgCostPerCallUsd: string };
  /** This period minus the previous one; percentages null when the previous period had none. */
  change: { costUsd: string; costPct: number | null; calls: number; callsPct: number | null };
  byProvider: BreakdownRow[];
  byModel: ModelBreakdownRow[];
  byTaskType: BreakdownRow[];
  topUsers: BreakdownRow[];
  /** Cost by local hour (daily) or local day (monthly); every bucket of the period, in order. */
  series: { unit: 'hour' | 'day'; buckets: { label: string; start: string; costUsd: string; calls: number }[] };
  /**
   * Monthly reports: cost by local hour of the day over the month (24 entries, `00:00`..`23:00`;
   * the repeated hour of a fall-back day counts in its wall-clock hour). Null for daily reports,
   * whose series already is by hour.
   */
  byHourOfDay: { hour: number; label: string; costUsd: string; calls: number }[] | null;
  budgets: { scope: string; period: string; amountUsd: string; spentUsd: string; usagePct: number }[];
  incidents: OpenIncident[];
  recommendations: Recommendation[];
  /**
   * Saved by the response cache: requests it answered (not in `totals.calls`) and what they would
   * have cost at the period's prices. Cost avoided, never spend: it is in no other figure.
   */
  savedByCache: { usd: string; hits: number };
}

/** Something that prices a call: the PricingEngine (kept structural so tests can pass a table). */
export interface Pricer {
  price(input: PricingInput): PriceResult;
}

const ZERO = new Dec(0);

/** cost / calls, exact to CONVERSION_DECIMALS places ("0" without calls). */
export function averageCost(costUsd: string, calls: number): string {
  if (calls === 0) return '0';
  return normalizeAmount(parseAmount(costUsd).dividedBy(calls).toDecimalPlaces(CONVERSION_DECIMALS, Dec.ROUND_HALF_EVEN));
}

/** part / whole in percent, one decimal place, for display (null when whole is zero). */
export function percentOf(part: string, whole: string): number | null {
  const w = parseAmount(whole);
  if (w.isZero()) return null;
  return parseAmount(part).dividedBy(w).times(100).toDecimalPlaces(1, Dec.ROUND_HALF_EVEN).toNumber();
}

function totalTokens(t: TokenUsage): number {
  // Inclusive convention: input includes cache tokens, output includes reasoning.
  return t.inputTokens + t.outputTokens;
}

function row(g: UsageGroup, totalCost: string): BreakdownRow {
  return {
    key: g.key,
    costUsd: normalizeAmount(g.costUsd),
    calls: g.calls,
    totalTokens: totalTokens(g.tokens),
    sharePct: percentOf(g.costUsd, totalCost) ?? 0,
    avgCostPerCallUsd: averageCost(g.costUsd, g.calls),
  };
}

/** Most expensive first; ties by key, so the same data always gives the same report. */
function byCost<T extends { costUsd: string; key: string }>(a: T, b: T): number {
  return parseAmount(b.costUsd).comparedTo(parseAmount(a.costUsd)) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

function fmtUsd(amount: string, places = 6): string {
  return `$${parseAmount(amount).toFixed(places, Dec.ROUND_HALF_EVEN)}`;
}

/** The average call of a group: each token count divided by the calls, rounded down (keeps the usage convention). */
export function averageCall(tokens: TokenUsage, calls: number): TokenUsage {
  const avg = { ...tokens };
  for (const k of TOKEN_KINDS) avg[k] = calls > 0 ? Math.floor(tokens[k] / calls) : 0;
  return avg;
}

/** Estimated saving of moving a model's calls to its cheaper alternative, or null when none applies. */
export function estimateModelSwitch(
  g: ModelUsageGroup,
  pricer: Pricer,
  atMs: number,
): { alternative: string; alternativeTier: ModelTier; savingUsd: string } | null {
  const entry = modelTier(g.provider, g.model);
  if (!entry?.cheaper || g.calls === 0) return null;
  const usage = averageCall(g.tokens, g.calls);
  const current = pricer.price({ provider: g.provider, model: g.model, occurredAtMs: atMs, usage });
  const alternative = pricer.price({ provider: g.provider, model: entry.cheaper, occurredAtMs: atMs, usage });
  if (!current.priced || !alternative.priced) return null;
  const perCall = parseAmount(current.costUsd).minus(parseAmount(alternative.costUsd));
  if (perCall.lte(ZERO)) return null;
  // Never claim to save more than was spent on the model.
  const saving = Dec.min(perCall.times(g.calls), parseAmount(g.costUsd));
  if (saving.lte(ZERO)) return null;
  return { alternative: entry.cheaper, alternativeTier: modelTier(g.provider, entry.cheaper)?.tier ?? 'economy', savingUsd: normalizeAmount(saving) };
}

export function recommend(data: ReportData, pricer: Pricer): Recommendation[] {
  const total = data.totals.costUsd;
  if (parseAmount(total).isZero()) return [];
  const recs: Recommendation[] = [];
  const overallAvg = parseAmount(averageCost(total, data.totals.calls));
  for (const p of [...data.byProvider].sort(byCost)) {
    const share = percentOf(p.costUsd, total)!;
    if (share >= PROVIDER_SHARE * 100) {
      recs.push({
        kind: 'expensive_provider',
        rule: 'provider_share',
        subject: p.key,
        message: `${p.key} accounts for ${share}% of the cost (${fmtUsd(p.costUsd)} of ${fmtUsd(total)}): compare its models with other providers' for the same tasks.`,
      });
    }
  }
  for (const t of [...data.byTaskType].sort(byCost)) {
    const share = percentOf(t.costUsd, total)!;
    if (share >= TASK_TYPE_SHARE * 100) {
      recs.push({
        kind: 'expensive_task_type',
        rule: 'task_type_share',
        subject: t.key,
        message: `Task type "${t.key}" accounts for ${share}% of the cost (${fmtUsd(t.costUsd)}): review its prompts, caching and model choice first.`,
      });
    }
  }
  const highAverage = (g: UsageGroup, what: string) => {
    if (g.calls < MIN_CALLS_FOR_AVERAGE || overallAvg.isZero()) return;
    const avg = parseAmount(averageCost(g.costUsd, g.calls));
    if (avg.gte(overallAvg.times(HIGH_AVERAGE_FACTOR))) {
      const factor = avg.dividedBy(overallAvg).toDecimalPlaces(1, Dec.ROUND_HALF_EVEN).toString();
      recs.push({
        kind: 'high_average_cost',
        rule: 'high_average',
        subject: g.key,
        message: `${what} averages ${fmtUsd(avg.toFixed())} per call, ${factor}x the period's average of ${fmtUsd(overallAvg.toFixed())}.`,
      });
    }
  };
  if (data.byTaskType.length > 1) for (const t of [...data.byTaskType].sort(byCost)) highAverage(t, `Task type "${t.key}"`);
  if (data.byModel.length > 1) for (const m of [...data.byModel].sort(byCost)) highAverage(m, `Model ${m.key}`);
  const switches: Recommendation[] = [];
  for (const m of data.byModel) {
    const est = estimateModelSwitch(m, pricer, data.period.endMs - 1);
    if (!est) continue;
    switches.push({
      kind: 'cheaper_model',
      rule: 'cheaper_tier',
      subject: m.key,
      alternative: est.alternative,
      estimatedSavingUsd: est.savingUsd,
      message:
        `${m.key} (${modelTier(m.provider, m.model)!.tier}) cost ${fmtUsd(m.costUsd)} over ${m.calls} calls; ` +
        `the same calls on ${est.alternative} (${est.alternativeTier}) would have cost about ${fmtUsd(est.savingUsd)} less. ` +
        `Route the simpler tasks there.`,
    });
  }
  switches.sort((a, b) => parseAmount(b.estimatedSavingUsd!).comparedTo(parseAmount(a.estimatedSavingUsd!)) || (a.subject < b.subject ? -1 : 1));
  return [...recs, ...switches, ...(data.period.kind === 'daily' ? originalRecommendations(data) : [])];
}

/** The original specification's fixed-amount rules for one day's data (rules 5-7 above). */
export function originalRecommendations(data: ReportData): Recommendation[] {
  const recs: Recommendation[] = [];
  const day = data.period.period;
  const top = [...data.byProvider].sort(byCost)[0];
  if (top && parseAmount(top.costUsd).gt(ORIGINAL_PROVIDER_USD)) {
    recs.push({
      kind: 'expensive_provider',
      rule: 'original_provider_cost',
      subject: top.key,
      message: `${top.key} cost ${fmtUsd(top.costUsd)} on ${day}, more than the original rule's $${ORIGINAL_PROVIDER_USD} a day: move the calls that do not need it to a cheaper model or provider.`,
    });
  }
  const avg = averageCost(data.totals.costUsd, data.totals.calls);
  if (parseAmount(avg).gt(ORIGINAL_AVERAGE_CALL_USD)) {
    recs.push({
      kind: 'high_average_cost',
      rule: 'original_average_cost',
      subject: 'all calls',
      message: `Calls averaged ${fmtUsd(avg)} on ${day}, more than the original rule's $${ORIGINAL_AVERAGE_CALL_USD} a call: use a cheaper model or cache more responses.`,
    });
  }
  for (const t of [...data.byTaskType].sort(byCost)) {
    const taskAvg = averageCost(t.costUsd, t.calls);
    if (parseAmount(taskAvg).gt(ORIGINAL_TASK_TYPE_AVERAGE_USD)) {
      recs.push({
        kind: 'expensive_task_type',
        rule: 'original_task_type_average',
        subject: t.key,
        message: `Task type "${t.key}" averaged ${fmtUsd(taskAvg)} a call on ${day}, more than the original rule's $${ORIGINAL_TASK_TYPE_AVERAGE_USD}: optimise its prompts or give it a cheaper model.`,
      });
    }
  }
  return recs;
}

/** Assembles the report from its data. Deterministic: the same data gives the same report. */
export function buildReport(data: ReportData, pricer: Pricer): Report {
  const p = data.period;
  const total = normalizeAmount(data.totals.costUsd);
  const prevCost = normalizeAmount(data.previous.costUsd);
  const bucketCost = new Map(data.byBucket.map((b) => [b.index, b]));
  const buckets = reportBuckets(p).map((b) => {
    const got = bucketCost.get(b.index);
    return { label: b.label, start: new Date(b.startMs).toISOString(), costUsd: normalizeAmount(got?.costUsd ?? '0'), calls: got?.calls ?? 0 };
  });
  return {
    schemaVersion: 1,
    kind: p.kind,
    period: p.period,
    timezone: p.timezone,
    periodStart: new Date(p.startMs).toISOString(),
    periodEnd: new Date(p.endMs).toISOString(),
    hours: (p.endMs - p.startMs) / 3_600_000,
    generatedAt: data.generatedAt,
    empty: data.totals.calls === 0,
    totals: {
      costUsd: total,
      calls: data.totals.calls,
      unpricedCalls: data.totals.unpricedCalls,
      tokens: { ...data.totals.tokens },
      totalTokens: totalTokens(data.totals.tokens),
      avgCostPerCallUsd: averageCost(total, data.totals.calls),
    },
    previous: { period: data.previous.period, costUsd: prevCost, calls: data.previous.calls, avgCostPerCallUsd: averageCost(prevCost, data.previous.calls) },
    change: {
      costUsd: normalizeAmount(parseAmount(total).minus(parseAmount(prevCost))),
      costPct: percentOf(normalizeAmount(parseAmount(total).minus(parseAmount(prevCost))), prevCost),
      calls: data.totals.calls - data.previous.calls,
      callsPct: data.previous.calls === 0 ? null : percentOf(String(data.totals.calls - data.previous.calls), String(data.previous.calls)),
    },
    byProvider: data.byProvider.map((g) => row(g, total)).sort(byCost),
    byModel: data.byModel
      .map((g) => ({ ...row(g, total), provider: g.provider, model: g.model, tier: modelTier(g.provider, g.model)?.tier ?? null }))
      .sort(byCost),
    byTaskType: data.byTaskType.map((g) => row(g, total)).sort(byCost),
    topUsers: data.topUsers.map((g) => row(g, total)).sort(byCost),
    series: { unit: p.kind === 'daily' ? 'hour' : 'day', buckets },
    byHourOfDay:
      p.kind === 'daily'
        ? null
        : Array.from({ length: 24 }, (_, hour) => {
            const got = data.byHourOfDay?.find((h) => h.hour === hour);
            return { hour, label: `${String(hour).padStart(2, '0')}:00`, costUsd: normalizeAmount(got?.costUsd ?? '0'), calls: got?.calls ?? 0 };
          }),
    budgets: data.budgets.map((b) => ({
      scope: b.scope,
      period: b.period,
      amountUsd: normalizeAmount(b.amountUsd),
      spentUsd: total,
      usagePct: percentOf(total, b.amountUsd) ?? 0,
    })),
    incidents: data.incidents,
    recommendations: recommend(data, pricer),
    savedByCache: { usd: normalizeAmount(data.cache?.avoidedUsd ?? '0'), hits: data.cache?.hits ?? 0 },
  };
}

/** `Daily cost report 2026-03-08 (America/New_York)` */
export function reportTitle(r: Pick<Report, 'kind' | 'period' | 'timezone'>): string {
  return `${r.kind === 'daily' ? 'Daily' : 'Monthly'} cost report ${r.period} (${r.timezone})`;
}

function signed(n: number | null): string {
  return n === null ? 'n/a' : `${n > 0 ? '+' : ''}${n}%`;
}

/** The headline in a few sentences (Slack, the CLI, the email's plain-text part). */
export function reportSummary(r: Report): string {
  const span = r.kind === 'daily' ? 'day' : 'month';
  if (r.empty) {
    return `No LLM usage was recorded in ${r.period} (${r.timezone}). The previous ${span} cost ${fmtUsd(r.previous.costUsd)} over ${r.previous.calls} calls.`;
  }
  const parts = [
    `${fmtUsd(r.totals.costUsd)} over ${r.totals.calls} calls (average ${fmtUsd(r.totals.avgCostPerCallUsd)} per call), ${r.totals.totalTokens} tokens.`,
    `Change against the previous ${span}: ${signed(r.change.costPct)} in cost, ${signed(r.change.callsPct)} in calls.`,
  ];
  if ((r.savedByCache?.hits ?? 0) > 0) parts.push(`Saved by the cache: ${fmtUsd(r.savedByCache.usd)} (${r.savedByCache.hits} requests answered from it, not in the calls or the cost).`);
  const top = r.byProvider[0];
  if (top) parts.push(`Top provider: ${top.key} (${top.sharePct}%).`);
  if (r.incidents.length > 0) parts.push(`${r.incidents.length} open incident(s).`);
  if (r.recommendations.length > 0) parts.push(`${r.recommendations.length} recommendation(s).`);
  return parts.join(' ');
}

export function reportFields(r: Report): { label: string; value: string }[] {
  const fields = [
    { label: 'Period', value: `${r.period} (${r.timezone})` },
    { label: 'Total cost', value: fmtUsd(r.totals.costUsd) },
    { label: 'Calls', value: String(r.totals.calls) },
    { label: 'Average per call', value: fmtUsd(r.totals.avgCostPerCallUsd) },
    { label: 'Tokens', value: String(r.totals.totalTokens) },
    { label: `Change vs ${r.previous.period}`, value: `${signed(r.change.costPct)} cost, ${signed(r.change.callsPct)} calls` },
  ];
  if ((r.savedByCache?.hits ?? 0) > 0) fields.push({ label: 'Saved by the cache', value: `${fmtUsd(r.savedByCache.usd)} (${r.savedByCache.hits} hits)` });
  for (const b of r.budgets) fields.push({ label: `Budget ${b.scope} ${b.period}`, value: `${b.usagePct}% of ${fmtUsd(b.amountUsd, 2)}` });
  if (r.incidents.length > 0) fields.push({ label: 'Open incidents', value: String(r.incidents.length) });
  return fields;
}

/** The notification handed to each channel: Slack shows title/summary/fields, email the HTML page. */
export function reportNotification(r: Report, html: string): Notification {
  return {
    sourceId: reportSourceId(r),
    notificationId: 'report',
    kind: 'report',
    level: 'info',
    title: reportTitle(r),
    summary: reportSummary(r),
    fields: reportFields(r),
    occurredAt: r.generatedAt,
    html,
  };
}
