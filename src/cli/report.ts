/**
 * `costguard report daily|monthly`: prints a stored report, or generates it now with --generate
 * (backfill). Generation runs the report activity's own code directly against PostgreSQL (no
 * Temporal round trip, no delivery), so a backfill works even with no worker running and gives
 * exactly what the scheduled run would have stored.
 */
import pg from 'pg';
import { generateStoredReport } from '../../activities/reports.js';
import { reportTimezone } from '../config/reports.js';
import type { Config } from '../config/index.js';
import { loadReport } from '../db/reports.js';
import { NotFoundError, ValidationError } from '../domain/errors.js';
import { formatMoney } from '../domain/money.js';
import { type Report, reportSummary, reportTitle } from '../domain/report.js';
import { type ReportKind, type ReportPeriod, parseReportPeriod, previousReportPeriod, reportPeriodAt } from '../domain/report-period.js';
import { createLogger } from '../lib/logger.js';
import { createPricingEngine } from '../pricing/index.js';

export interface ReportCommandOptions {
  /** `--date YYYY-MM-DD` (daily) or `--month YYYY-MM` (monthly); default the last complete period. */
  period?: string;
  tz?: string;
  generate?: boolean;
}

export interface ReportCommandResult {
  report: Report;
  /** True when this command generated (or regenerated) it. */
  generated: boolean;
}

/** The period asked for; by default the last complete day (month) in the report zone. */
export function reportCommandPeriod(config: Config, kind: ReportKind, opts: ReportCommandOptions, now: number): ReportPeriod {
  const timezone = reportTimezone(config, opts.tz);
  if (opts.period !== undefined) return parseReportPeriod(kind, opts.period.trim(), timezone);
  parseReportPeriod(kind, kind === 'daily' ? '1970-01-01' : '1970-01', timezone); // validates the zone
  return previousReportPeriod(reportPeriodAt(kind, timezone, now));
}

export async function runReportCommand(config: Config, kind: ReportKind, opts: ReportCommandOptions, now: number): Promise<ReportCommandResult> {
  const period = reportCommandPeriod(config, kind, opts, now);
  if (opts.generate && period.endMs > now) {
    const flag = kind === 'daily' ? '--date' : '--month';
    throw new ValidationError([{ path: flag, message: `${period.period} (${period.timezone}) has not ended yet; reports are generated for past periods` }], 'invalid report');
  }
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 4 });
  try {
    if (opts.generate) {
      const logger = createLogger(config.logLevel, undefined, config.logFormat);
      const { report } = await generateStoredReport({ pool, pricing: createPricingEngine(config), config, logger, clock: () => now }, period);
      return { report, generated: true };
    }
    const stored = await loadReport(pool, kind, period.period, period.timezone);
    if (!stored) {
      const flag = kind === 'daily' ? `--date ${period.period}` : `--month ${period.period}`;
      throw new NotFoundError(
        `no ${kind} report for ${period.period} (${period.timezone}) has been generated; run \`costguard report ${kind} ${flag} --tz ${period.timezone} --generate\` to generate it now`,
      );
    }
    return { report: stored.report, generated: false };
  } finally {
    await pool.end();
  }
}

const usd = (amount: string) => formatMoney(amount, 'USD');

function rows(title: string, items: { key: string; costUsd: string; calls: number; sharePct: number }[]): string[] {
  if (items.length === 0) return [];
  const width = Math.max(...items.map((i) => i.key.length), 8);
  return ['', `${title}:`, ...items.map((i) => `  ${i.key.padEnd(width)}  ${usd(i.costUsd).padStart(16)}  ${String(i.calls).padStart(7)} calls  ${String(i.sharePct).padStart(5)}%`)];
}

/** A readable summary for people: the headline, the breakdowns and the recommendations. */
export function renderReportText(result: ReportCommandResult): string {
  const r = result.report;
  const lines = [reportTitle(r), `  ${r.periodStart} to ${r.periodEnd} (${r.hours} hours)${result.generated ? ', generated now' : `, generated ${r.generatedAt}`}`, '', reportSummary(r)];
  if (!r.empty) {
    lines.push(...rows('By provider', r.byProvider), ...rows('By model', r.byModel), ...rows('By task type', r.byTaskType), ...rows('Top users', r.topUsers));
    const active = r.series.buckets.filter((b) => b.calls > 0);
    lines.push('', `By ${r.series.unit} (with usage):`, ...active.map((b) => `  ${b.label.padEnd(16)}  ${usd(b.costUsd).padStart(16)}  ${String(b.calls).padStart(7)} calls`));
  }
  for (const b of r.budgets) lines.push('', `Budget ${b.scope} ${b.period}: ${usd(b.spentUsd)} of ${usd(b.amountUsd)} (${b.usagePct}%)`);
  lines.push('', r.incidents.length === 0 ? 'Open incidents: none' : `Open incidents (${r.incidents.length}):`);
  for (const i of r.incidents) lines.push(`  [${i.level.toUpperCase()}] ${i.scope}: ${i.title} (${i.status} since ${i.openedAt})`);
  if (r.recommendations.length > 0) lines.push('', 'Recommendations:', ...r.recommendations.map((x) => `  - ${x.message}`));
  return lines.join('\n');
}
