/**
 * The report activity: reads the ledger for one period, assembles the report, renders its HTML and
 * stores both (one row per kind, period and time zone; a retry or a regeneration replaces it).
 * Returns the notification the workflow hands to each delivery channel.
 *
 * Also called directly (not as an activity) by `costguard report ... --generate`, so a backfill runs
 * the very same code as a scheduled report.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Pool } from 'pg';
import type { Config } from '../src/config/index.js';
import { readSavedBudgets } from '../src/db/budgets.js';
import { readLedgerAggregates, readOpenIncidents, saveReport } from '../src/db/reports.js';
import { ValidationError } from '../src/domain/errors.js';
import { toUsd } from '../src/domain/money.js';
import type { Notification } from '../src/domain/notification.js';
import { type Pricer, type Report, buildReport, reportNotification } from '../src/domain/report.js';
import { renderReportHtml } from '../src/domain/report-html.js';
import {
  type ReportKind,
  type ReportPeriod,
  parseReportPeriod,
  previousReportPeriod,
  scheduledReportPeriod,
} from '../src/domain/report-period.js';
import { reportChannels, reportTimezone } from '../src/config/reports.js';
import type { Logger } from '../src/lib/logger.js';

export interface ReportActivityDeps {
  pool: Pool;
  pricing: Pricer;
  config: Config;
  logger: Logger;
  clock: () => number;
}

export interface GenerateReportInput {
  kind: ReportKind;
  /** `YYYY-MM-DD` / `YYYY-MM`; absent: the period before the one containing `nominalMs`. */
  period?: string | undefined;
  /** Absent: `reports.timezone`, else the configured `timezone`. */
  timezone?: string | undefined;
  /** The schedule's nominal start time (or the workflow's start), used when `period` is absent. */
  nominalMs?: number | undefined;
}

export interface GeneratedReport {
  kind: ReportKind;
  period: string;
  timezone: string;
  empty: boolean;
  /** 1 the first time this period's report was stored, then 2, 3... (regenerations replace it). */
  generations: number;
  /** Channel names to deliver to (`reports.channels`, default every email and slack channel). */
  channels: string[];
  notification: Notification;
}

/** The period to report on (throws ValidationError for a bad kind, period or time zone). */
export function resolveReportPeriod(config: Pick<Config, 'timezone' | 'reports'>, input: GenerateReportInput, now: number): ReportPeriod {
  const timezone = reportTimezone(config, input.timezone);
  if (input.period !== undefined) return parseReportPeriod(input.kind, input.period, timezone);
  // Validates kind and zone; the period itself comes from the nominal time.
  parseReportPeriod(input.kind, input.kind === 'daily' ? '1970-01-01' : '1970-01', timezone);
  return scheduledReportPeriod(input.kind, timezone, input.nominalMs ?? now);
}

/** The system budgets of the report's period kind: runtime ones if set, else the config's. */
async function systemBudgets(deps: ReportActivityDeps, kind: ReportKind) {
  const period = kind === 'daily' ? 'day' : 'month';
  const runtime = (await readSavedBudgets(deps.pool, ['system'])).get('system');
  const budgets = runtime ?? deps.config.budgets.filter((b) => b.scope === 'system');
  return budgets
    .filter((b) => b.period === period)
    .map((b) => ({ scope: 'system', period, amountUsd: toUsd(b.amount, b.currency, deps.config.exchangeRates) }));
}

/**
 * Reads, assembles, renders and stores the report of `period` (replacing an earlier one). The
 * activity below and `costguard report --generate` both run this.
 */
export async function generateStoredReport(deps: ReportActivityDeps, period: ReportPeriod): Promise<{ report: Report; html: string; generations: number }> {
  const previous = previousReportPeriod(period);
  const [aggregates, incidents, budgets] = await Promise.all([
    readLedgerAggregates(deps.pool, period, previous, { topUsers: deps.config.reports.topUsers }),
    readOpenIncidents(deps.pool, period.endMs),
    systemBudgets(deps, period.kind),
  ]);
  const report = buildReport(
    {
      period,
      previous: { period: previous.period, ...aggregates.previous },
      totals: aggregates.totals,
      byProvider: aggregates.byProvider,
      byModel: aggregates.byModel,
      byTaskType: aggregates.byTaskType,
      topUsers: aggregates.topUsers,
      byBucket: aggregates.byBucket,
      byHourOfDay: aggregates.byHourOfDay,
      cache: aggregates.cache,
      budgets,
      incidents,
      generatedAt: new Date(deps.clock()).toISOString(),
    },
    deps.pricing,
  );
  const html = renderReportHtml(report);
  const { generations } = await saveReport(deps.pool, report, html);
  return { report, html, generations };
}

export const createReportActivities = (deps: ReportActivityDeps) => {
  const logger = deps.logger.child({ component: 'reports' });

  return {
    /**
     * Generates and stores the report of one period; safe to retry (the row is replaced, never
     * duplicated). A period without usage gives a report that says so.
     */
    async generateReport(input: GenerateReportInput): Promise<GeneratedReport> {
      let period: ReportPeriod;
      try {
        period = resolveReportPeriod(deps.config, input, deps.clock());
      } catch (err) {
        if (err instanceof ValidationError) throw ApplicationFailure.nonRetryable(err.message, 'ValidationError');
        throw err;
      }
      const { report, html, generations } = await generateStoredReport(deps, period);
      logger.info(
        { kind: report.kind, period: report.period, timezone: report.timezone, costUsd: report.totals.costUsd, calls: report.totals.calls, generations },
        'report stored',
      );
      return {
        kind: report.kind,
        period: report.period,
        timezone: report.timezone,
        empty: report.empty,
        generations,
        channels: reportChannels(deps.config),
        notification: reportNotification(report, html),
      };
    },
  };
};

export type ReportActivities = ReturnType<typeof createReportActivities>;
