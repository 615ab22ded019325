/**
 * What an operator sees of a budget workflow in the Temporal UI: search attributes (upserted only
 * on material change: each one is a history event) and the Markdown "Current Details".
 */
import type { BudgetPeriodStatus, BudgetStatus } from './budget-status.js';
import { Dec, formatMoney } from './money.js';
import { fixedLengthMs } from './periods.js';

export type VisibilityKey = 'dailySpendUsd' | 'dailyUsagePct' | 'monthlySpendUsd' | 'alertLevel' | 'openIncidents';

const LEVEL_ORDER = ['ok', 'info', 'warning', 'critical', 'emergency'] as const;

function lengthMs(period: string): number {
  if (period === 'day') return 86_400_000;
  if (period === 'month') return 31 * 86_400_000;
  return fixedLengthMs(period);
}

/** The daily budget (else the shortest one), and the monthly one. */
function pick(status: BudgetStatus): { daily?: BudgetPeriodStatus; monthly?: BudgetPeriodStatus } {
  const others = status.budgets.filter((b) => b.period !== 'month').sort((a, b) => lengthMs(a.period) - lengthMs(b.period));
  const daily = status.budgets.find((b) => b.period === 'day') ?? others[0];
  const monthly = status.budgets.find((b) => b.period === 'month');
  return { daily, monthly };
}

export function highestLevel(status: BudgetStatus): BudgetPeriodStatus['level'] {
  let level: BudgetPeriodStatus['level'] = 'ok';
  for (const b of status.budgets) if (LEVEL_ORDER.indexOf(b.level) > LEVEL_ORDER.indexOf(level)) level = b.level;
  return level;
}

/** Whole percent of the budget spent, from the exact amounts (0.29 * 100 is 28.999999999999996 in floats). */
const wholePercent = (b: BudgetPeriodStatus) => new Dec(b.spentUsd).times(100).dividedBy(b.amountUsd).floor().toNumber();

/**
 * Search-attribute values that changed materially since `last`: usage by the whole percent, the
 * level on any change, and the spend amounts either by the cent (`spendBy: 'cent'`, workflows
 * started before `visibility-by-percent-v1`) or whenever their budget's whole percent changes
 * (`'percent'`: at most about a hundred upserts a period, each a history event). Values are for
 * search and display only (a Double is a float).
 */
export function visibilityUpdates(
  status: BudgetStatus,
  last: Record<string, string>,
  spendBy: 'cent' | 'percent' = 'percent',
): { changed: { key: VisibilityKey; value: number | string }[]; material: Record<string, string> } {
  const { daily, monthly } = pick(status);
  const cents = (usd: string) => new Dec(usd).toDecimalPlaces(2, Dec.ROUND_HALF_EVEN).toFixed(2);
  const spent = (b: BudgetPeriodStatus) => ({ material: spendBy === 'cent' ? cents(b.spentUsd) : `${wholePercent(b)}%`, value: Number(cents(b.spentUsd)) });
  const candidates: { key: VisibilityKey; material: string; value: number | string }[] = [];
  if (daily) {
    candidates.push({ key: 'dailySpendUsd', ...spent(daily) });
    const pct = wholePercent(daily);
    candidates.push({ key: 'dailyUsagePct', material: String(pct), value: pct });
  }
  if (monthly) candidates.push({ key: 'monthlySpendUsd', ...spent(monthly) });
  const level = highestLevel(status);
  candidates.push({ key: 'alertLevel', material: level, value: level });
  // Only once a first incident appears: workflows that never had one upsert nothing new (and their
  // recorded histories replay unchanged).
  const open = status.incidents?.length ?? 0;
  if (open > 0 || last.openIncidents !== undefined) candidates.push({ key: 'openIncidents', material: String(open), value: open });
  const material: Record<string, string> = { ...last };
  const changed: { key: VisibilityKey; value: number | string }[] = [];
  for (const c of candidates) {
    if (last[c.key] !== c.material) {
      changed.push({ key: c.key, value: c.value });
      material[c.key] = c.material;
    }
  }
  return { changed, material };
}

/** The Markdown table shown as "Current Details" on the workflow's page in the Temporal UI. */
export function renderBudgetMarkdown(status: BudgetStatus): string {
  const rows = status.budgets.map((b) => {
    const pct = (b.usageRatio * 100).toFixed(1);
    return `| ${b.period} (${b.timezone}) | ${formatMoney(b.spentUsd, 'USD', 4)} | ${formatMoney(b.amountUsd, 'USD', 2)} | ${pct}% | ${formatMoney(b.remainingUsd, 'USD', 4)} | **${b.level}** | ${b.periodEnd} |`;
  });
  const top = status.budgets[0]?.totals;
  const lines = [
    `### Budget: \`${status.scope}\``,
    '',
    '| period | spent | budget | used | remaining | level | resets at |',
    '|---|---:|---:|---:|---:|---|---|',
    ...rows,
    '',
    `Totals from ${status.source === 'events' ? 'this workflow\'s own flushes' : 'the ledger rollups'}; updated ${status.updatedAt}.`,
  ];
  if (top && top.calls > 0) {
    lines.push('', `**Top models (${status.budgets[0]!.period})**: ${top.byModel.slice(0, 5).map((m) => `${m.key} ${formatMoney(m.costUsd, 'USD', 4)}`).join(', ')}`);
  }
  if (status.incidents && status.incidents.length > 0) {
    lines.push('', '**Open incidents** (workflow `alert/<id>`; acknowledge there with the `ack` signal):');
    for (const i of status.incidents) lines.push(`- \`${i.incidentId}\` ${i.rule} **${i.level}**${i.status === 'acknowledged' ? ' (acknowledged)' : ''}`);
  }
  if (status.leases && status.leases.buckets.length > 0) {
    const l = status.leases;
    lines.push('', `**Pre-flight leases** (${l.grants} grants, ${formatMoney(l.grantedUsd, 'USD', 4)} granted; last ${l.lastGrantAt ?? 'never'}):`);
    lines.push('', '| budget | enforcement | spent (ledger) | held | lease available |', '|---|---|---:|---:|---:|');
    for (const b of l.buckets) lines.push(`| ${b.period} of ${formatMoney(b.budgetUsd, 'USD', 2)} | ${b.enforcement} | ${formatMoney(b.spentUsd, 'USD', 4)} | ${formatMoney(b.openUsd, 'USD', 4)} | ${formatMoney(b.availableUsd, 'USD', 4)} |`);
    const d = l.decisions ?? {};
    if (Object.keys(d).length > 0) lines.push('', `Decisions (as of the last grant): allow ${d.allow ?? 0}, downgrade ${d.downgrade ?? 0}, deny ${d.deny ?? 0}.`);
    if (l.lostUntil) lines.push('', `Redis lost its state: ${formatMoney(l.lostReserveUsd, 'USD', 4)} held in reserve for lost holds until ${l.lostUntil}.`);
  }
  const c = status.counters;
  lines.push('', `Batches applied ${c.batchesApplied}, duplicate batches ${c.duplicateBatches}, dropped ${c.droppedBatches}; events counted ${c.eventsCounted}, duplicate events ${c.duplicateEvents}, late ${c.lateEvents}.`);
  return lines.join('\n');
}
