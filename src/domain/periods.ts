/**
 * Budget periods. Calendar periods (`day`, `month`) start at midnight in the budget's IANA time
 * zone, so a day is 23 or 25 hours long when the clocks change; fixed-length periods (`30s`, `10m`,
 * `1h`, `7d`) are aligned to the Unix epoch. Usage belongs to the period containing its occurredAt.
 *
 * Pure and deterministic (Intl only reads the bundled time-zone data), so workflows use it too.
 */

export type PeriodSpec = string; // 'day' | 'month' | `${number}${'s'|'m'|'h'|'d'}`

export interface Period {
  /** Stable identifier, e.g. "day:2026-03-29@Europe/Paris", "month:2026-03@UTC", "30s:59866340". */
  key: string;
  startMs: number;
  endMs: number;
}

/** Lower-case words that IANA names keep lower-case (`America/Port-au-Prince`, `Etc/GMT+5` aside). */
const LOWER_WORDS = new Set(['au', 'de', 'es', 'del', 'la', 'of', 'sur']);

/** True when every word of the name is capitalised as IANA spells its names. */
function casedLikeIana(tz: string): boolean {
  return tz.split(/[/_-]/).every((w) => w === '' || LOWER_WORDS.has(w) || /^[A-Z0-9+]/.test(w));
}

/**
 * Why `tz` is not a canonical IANA time-zone name, or null. Intl accepts names in any letter case
 * (`europe/paris`), which would make one zone two distinct budgets or rollup keys, so only the
 * spelling of the time-zone database is accepted: the name Intl itself reports (`Europe/Paris`,
 * `UTC`) or a correctly capitalised link of the database (`Asia/Kolkata`, `US/Eastern`). The
 * message names the spelling to use. Nothing is ever rewritten.
 */
export function timeZoneProblem(tz: string): string | null {
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return 'expected an IANA time zone such as "UTC" or "Europe/Paris"';
  }
  if (resolved === tz) return null;
  if (resolved.toLowerCase() !== tz.toLowerCase() && casedLikeIana(tz)) return null;
  return `expected the time zone's canonical spelling ${JSON.stringify(resolved)}, got ${JSON.stringify(tz)}`;
}

/** True for a time zone Intl knows, spelled as the IANA database spells it ("UTC", "Europe/Paris"). */
export function isTimeZone(tz: string): boolean {
  return timeZoneProblem(tz) === null;
}

const FIXED_RE = /^(\d+)([smhd])$/;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Fixed periods run from one second to a (leap) year. */
export const MAX_FIXED_PERIOD_MS = 366 * 86_400_000;

export function isPeriodSpec(spec: string): boolean {
  if (spec === 'day' || spec === 'month') return true;
  const ms = FIXED_RE.test(spec) ? fixedLengthMs(spec) : 0;
  return ms >= 1000 && ms <= MAX_FIXED_PERIOD_MS;
}

/** Length of a fixed period in ms, or 0 for a calendar period. */
export function fixedLengthMs(spec: PeriodSpec): number {
  const m = FIXED_RE.exec(spec);
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : 0;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

interface LocalTime {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** Wall-clock time in `timeZone` at instant `ms`. */
export function localTime(ms: number, timeZone: string): LocalTime {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour!, minute: parts.minute!, second: parts.second! };
}

/** Offset of `timeZone` from UTC at instant `ms`, in ms (Paris in summer: +7,200,000). */
function offsetAt(ms: number, timeZone: string): number {
  const t = localTime(ms, timeZone);
  const asUtc = Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute, t.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

/**
 * The instant of local midnight starting the given calendar date in `timeZone`. If midnight does not
 * exist that day (a zone that springs forward at 00:00), the first instant of the day.
 */
export function startOfLocalDay(year: number, month: number, day: number, timeZone: string): number {
  const guess = Date.UTC(year, month - 1, day);
  // Two passes settle the offset even when midnight is near a transition.
  let ms = guess - offsetAt(guess, timeZone);
  ms = guess - offsetAt(ms, timeZone);
  const target = year * 10_000 + month * 100 + day;
  const dateAt = (instant: number) => {
    const lt = localTime(instant, timeZone);
    return lt.year * 10_000 + lt.month * 100 + lt.day;
  };
  const t = localTime(ms, timeZone);
  // A midnight, and the first one: where clocks go back across midnight (Amman, 2021), 00:00 happens
  // twice and the day starts at the earlier one.
  if (t.year === year && t.month === month && t.day === day && t.hour === 0 && t.minute === 0 && dateAt(ms - 3_600_000) < target) return ms;
  // Otherwise (midnight skipped, or repeated): binary-search the first instant whose local date is
  // this date, within a day around the guess.
  let lo = guess - 86_400_000;
  let hi = guess + 86_400_000;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (dateAt(mid) >= target) hi = mid;
    else lo = mid;
  }
  return hi;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** The period of `spec` (in `timeZone`) that contains instant `ms`. */
export function periodAt(spec: PeriodSpec, timeZone: string, ms: number): Period {
  const fixed = fixedLengthMs(spec);
  if (fixed > 0) {
    const index = Math.floor(ms / fixed);
    return { key: `${spec}:${index}`, startMs: index * fixed, endMs: (index + 1) * fixed };
  }
  const t = localTime(ms, timeZone);
  if (spec === 'day') {
    const startMs = startOfLocalDay(t.year, t.month, t.day, timeZone);
    const next = new Date(Date.UTC(t.year, t.month - 1, t.day + 1));
    const endMs = startOfLocalDay(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), timeZone);
    return { key: `day:${t.year}-${pad(t.month)}-${pad(t.day)}@${timeZone}`, startMs, endMs };
  }
  if (spec === 'month') {
    const startMs = startOfLocalDay(t.year, t.month, 1, timeZone);
    const next = new Date(Date.UTC(t.year, t.month, 1));
    const endMs = startOfLocalDay(next.getUTCFullYear(), next.getUTCMonth() + 1, 1, timeZone);
    return { key: `month:${t.year}-${pad(t.month)}@${timeZone}`, startMs, endMs };
  }
  throw new RangeError(`unknown period ${JSON.stringify(spec)}`);
}

/** Fraction of the period elapsed at `ms` (0..1). */
export function elapsedFraction(period: Period, ms: number): number {
  if (ms <= period.startMs) return 0;
  if (ms >= period.endMs) return 1;
  return (ms - period.startMs) / (period.endMs - period.startMs);
}
