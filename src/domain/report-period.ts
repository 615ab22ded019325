/**
 * Report periods: a calendar day or month in an IANA time zone, its predecessor, and its chart
 * buckets (the local hours of a day, the local days of a month).
 *
 * A day is 23, 24 or 25 hours long: on the day the clocks go back, 01:00-02:00 happens twice and
 * both are separate buckets (labelled with their UTC offsets), so no hour is merged or lost. Pure
 * (Intl reads the bundled time-zone data), so the report workflow uses it too.
 */
import { ValidationError } from './errors.js';
import { localTime, timeZoneProblem, periodAt, startOfLocalDay } from './periods.js';

export const REPORT_KINDS = ['daily', 'monthly'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];

export interface ReportPeriod {
  kind: ReportKind;
  /** `2026-03-08` for a daily report, `2026-03` for a monthly one. */
  period: string;
  timezone: string;
  startMs: number;
  endMs: number;
}

/** One bar of the report's chart: a local hour (daily) or a local day (monthly). */
export interface ReportBucket {
  index: number;
  startMs: number;
  endMs: number;
  /** `01:00`, or `01:00 UTC-04:00` when the hour happens twice that day; `2026-03-08` for days. */
  label: string;
}

const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const MONTH_RE = /^(\d{4})-(\d{2})$/;
const HOUR_MS = 3_600_000;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

export function isReportKind(value: string): value is ReportKind {
  return (REPORT_KINDS as readonly string[]).includes(value);
}

/**
 * Parses a report period as given by a person (CLI, API): `YYYY-MM-DD` for daily, `YYYY-MM` for
 * monthly, a real calendar date, in a known time zone. Throws a ValidationError naming the bad part.
 */
export function parseReportPeriod(kind: string, period: string, timezone: string): ReportPeriod {
  if (!isReportKind(kind)) throw new ValidationError([{ path: 'kind', message: `expected "daily" or "monthly", got ${JSON.stringify(kind)}` }], 'invalid report');
  const tzProblem = timeZoneProblem(timezone);
  if (tzProblem) throw new ValidationError([{ path: 'tz', message: tzProblem.includes(', got ') ? tzProblem : `${tzProblem}, got ${JSON.stringify(timezone)}` }], 'invalid report');
  const bad = (expected: string) => new ValidationError([{ path: 'period', message: `expected ${expected}, got ${JSON.stringify(period)}` }], 'invalid report');
  if (kind === 'daily') {
    const m = DAY_RE.exec(period);
    if (!m) throw bad('a date YYYY-MM-DD');
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const check = new Date(Date.UTC(y, mo - 1, d));
    if (y < 1970 || check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) throw bad('a real calendar date YYYY-MM-DD');
    return dayPeriod(y, mo, d, timezone);
  }
  const m = MONTH_RE.exec(period);
  if (!m) throw bad('a month YYYY-MM');
  const [y, mo] = [Number(m[1]), Number(m[2])];
  if (y < 1970 || mo < 1 || mo > 12) throw bad('a real month YYYY-MM');
  return monthPeriod(y, mo, timezone);
}

function dayPeriod(year: number, month: number, day: number, timezone: string): ReportPeriod {
  const next = new Date(Date.UTC(year, month - 1, day + 1));
  return {
    kind: 'daily',
    period: `${year}-${pad(month)}-${pad(day)}`,
    timezone,
    startMs: startOfLocalDay(year, month, day, timezone),
    endMs: startOfLocalDay(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), timezone),
  };
}

function monthPeriod(year: number, month: number, timezone: string): ReportPeriod {
  const next = new Date(Date.UTC(year, month, 1));
  return {
    kind: 'monthly',
    period: `${year}-${pad(month)}`,
    timezone,
    startMs: startOfLocalDay(year, month, 1, timezone),
    endMs: startOfLocalDay(next.getUTCFullYear(), next.getUTCMonth() + 1, 1, timezone),
  };
}

/** The report period (day or month, in `timezone`) containing instant `ms`. */
export function reportPeriodAt(kind: ReportKind, timezone: string, ms: number): ReportPeriod {
  const p = periodAt(kind === 'daily' ? 'day' : 'month', timezone, ms);
  const t = localTime(p.startMs, timezone);
  return kind === 'daily' ? dayPeriod(t.year, t.month, t.day, timezone) : monthPeriod(t.year, t.month, timezone);
}

/** The period just before `p` (the previous day or month), for the change against it. */
export function previousReportPeriod(p: ReportPeriod): ReportPeriod {
  return reportPeriodAt(p.kind, p.timezone, p.startMs - 1);
}

/**
 * The period a scheduled run reports on: the day (month) BEFORE the one containing the schedule's
 * nominal time. Derived from the nominal time, not the actual start, so a run that starts late
 * (catch-up after an outage) still reports on the period it was scheduled for.
 */
export function scheduledReportPeriod(kind: ReportKind, timezone: string, nominalMs: number): ReportPeriod {
  return previousReportPeriod(reportPeriodAt(kind, timezone, nominalMs));
}

/** The UTC offset at `ms` in `timezone`, e.g. `UTC-04:00`, `UTC+05:30`, `UTC`. */
export function utcOffsetLabel(ms: number, timezone: string): string {
  const t = localTime(ms, timezone);
  const offsetMin = Math.round((Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second) - Math.floor(ms / 1000) * 1000) / 60_000);
  if (offsetMin === 0) return 'UTC';
  const abs = Math.abs(offsetMin);
  return `UTC${offsetMin < 0 ? '-' : '+'}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/**
 * The chart buckets of a period. Daily: consecutive hours from local midnight (23, 24 or 25; the
 * SQL aggregation numbers rows the same way, `floor((occurred_at - start) / 1 hour)`). Monthly:
 * the local calendar days.
 */
export function reportBuckets(p: ReportPeriod): ReportBucket[] {
  const buckets: ReportBucket[] = [];
  if (p.kind === 'daily') {
    for (let start = p.startMs, index = 0; start < p.endMs; start += HOUR_MS, index++) {
      const t = localTime(start, p.timezone);
      buckets.push({ index, startMs: start, endMs: Math.min(start + HOUR_MS, p.endMs), label: `${pad(t.hour)}:${pad(t.minute)}` });
    }
    // A wall-clock hour that happens twice (clocks going back) is told apart by its offset.
    const counts = new Map<string, number>();
    for (const b of buckets) counts.set(b.label, (counts.get(b.label) ?? 0) + 1);
    for (const b of buckets) if (counts.get(b.label)! > 1) b.label = `${b.label} ${utcOffsetLabel(b.startMs, p.timezone)}`;
    return buckets;
  }
  let start = p.startMs;
  for (let index = 0; start < p.endMs; index++) {
    const day = reportPeriodAt('daily', p.timezone, start);
    buckets.push({ index, startMs: day.startMs, endMs: day.endMs, label: day.period });
    start = day.endMs;
  }
  return buckets;
}

/** Stable id of a report: `report/daily/2026-03-08/America/New_York` (the delivery log's source id). */
export function reportSourceId(p: Pick<ReportPeriod, 'kind' | 'period' | 'timezone'>): string {
  return `report/${p.kind}/${p.period}/${p.timezone}`;
}
