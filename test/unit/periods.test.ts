import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { elapsedFraction, fixedLengthMs, isPeriodSpec, periodAt } from '../../src/domain/periods.js';
import { at } from './helpers.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** A period as a user reads it: its key and its bounds as ISO instants. */
function period(spec: string, timeZone: string, iso: string | number): { key: string; start: string; end: string } {
  const p = periodAt(spec, timeZone, typeof iso === 'number' ? iso : at(iso));
  return { key: p.key, start: new Date(p.startMs).toISOString(), end: new Date(p.endMs).toISOString() };
}

function hoursLong(spec: string, timeZone: string, iso: string): number {
  const p = periodAt(spec, timeZone, at(iso));
  return (p.endMs - p.startMs) / HOUR_MS;
}

describe('periodAt: calendar days in UTC', () => {
  it('a day runs from midnight to midnight UTC', () => {
    expect(period('day', 'UTC', '2026-03-29T12:34:56.789Z')).toEqual({
      key: 'day:2026-03-29@UTC',
      start: '2026-03-29T00:00:00.000Z',
      end: '2026-03-30T00:00:00.000Z',
    });
  });

  it('the last day of a year ends at the first instant of the next year', () => {
    expect(period('day', 'UTC', '2026-12-31T23:59:59.999Z')).toEqual({
      key: 'day:2026-12-31@UTC',
      start: '2026-12-31T00:00:00.000Z',
      end: '2027-01-01T00:00:00.000Z',
    });
  });
});

describe('periodAt: days in zones with daylight saving time', () => {
  it('Europe/Paris 2026-03-29 (spring forward) is 23 hours', () => {
    expect(period('day', 'Europe/Paris', '2026-03-29T12:00:00Z')).toEqual({
      key: 'day:2026-03-29@Europe/Paris',
      start: '2026-03-28T23:00:00.000Z',
      end: '2026-03-29T22:00:00.000Z',
    });
    expect(hoursLong('day', 'Europe/Paris', '2026-03-29T12:00:00Z')).toBe(23);
  });

  it('Europe/Paris 2026-10-25 (fall back) is 25 hours', () => {
    expect(period('day', 'Europe/Paris', '2026-10-25T12:00:00Z')).toEqual({
      key: 'day:2026-10-25@Europe/Paris',
      start: '2026-10-24T22:00:00.000Z',
      end: '2026-10-25T23:00:00.000Z',
    });
    expect(hoursLong('day', 'Europe/Paris', '2026-10-25T12:00:00Z')).toBe(25);
  });

  it('the repeated hour of Paris on 2026-10-25 belongs to that day both times', () => {
    // 02:30 local happens at 00:30Z (summer time) and again at 01:30Z (winter time).
    expect(period('day', 'Europe/Paris', '2026-10-25T00:30:00Z').key).toBe('day:2026-10-25@Europe/Paris');
    expect(period('day', 'Europe/Paris', '2026-10-25T01:30:00Z').key).toBe('day:2026-10-25@Europe/Paris');
  });

  it('America/New_York 2026-03-08 (spring forward) is 23 hours', () => {
    expect(period('day', 'America/New_York', '2026-03-08T12:00:00Z')).toEqual({
      key: 'day:2026-03-08@America/New_York',
      start: '2026-03-08T05:00:00.000Z',
      end: '2026-03-09T04:00:00.000Z',
    });
  });

  it('America/New_York 2026-11-01 (fall back) is 25 hours', () => {
    expect(period('day', 'America/New_York', '2026-11-01T12:00:00Z')).toEqual({
      key: 'day:2026-11-01@America/New_York',
      start: '2026-11-01T04:00:00.000Z',
      end: '2026-11-02T05:00:00.000Z',
    });
  });

  it('an ordinary New York day next to a transition is 24 hours', () => {
    expect(period('day', 'America/New_York', '2026-03-07T12:00:00Z')).toEqual({
      key: 'day:2026-03-07@America/New_York',
      start: '2026-03-07T05:00:00.000Z',
      end: '2026-03-08T05:00:00.000Z',
    });
  });
});

describe('periodAt: zones whose clocks change at midnight', () => {
  it('America/Santiago 2026-09-06 has no midnight: it starts at 01:00 local (04:00Z)', () => {
    expect(period('day', 'America/Santiago', '2026-09-06T12:00:00Z')).toEqual({
      key: 'day:2026-09-06@America/Santiago',
      start: '2026-09-06T04:00:00.000Z',
      end: '2026-09-07T03:00:00.000Z',
    });
    // The day before runs up to that instant: 24 hours, no gap.
    expect(period('day', 'America/Santiago', '2026-09-06T03:59:59.999Z')).toEqual({
      key: 'day:2026-09-05@America/Santiago',
      start: '2026-09-05T04:00:00.000Z',
      end: '2026-09-06T04:00:00.000Z',
    });
  });

  it('America/Santiago 2026-04-04 repeats its last hour (24:00 -> 23:00) and is 25 hours', () => {
    expect(period('day', 'America/Santiago', '2026-04-04T12:00:00Z')).toEqual({
      key: 'day:2026-04-04@America/Santiago',
      start: '2026-04-04T03:00:00.000Z',
      end: '2026-04-05T04:00:00.000Z',
    });
    // 23:30 local the second time (UTC-4) is still April 4th.
    expect(period('day', 'America/Santiago', '2026-04-05T03:30:00Z').key).toBe('day:2026-04-04@America/Santiago');
  });

  it('America/Havana 2026-03-08 has no midnight: it starts at 05:00Z', () => {
    expect(period('day', 'America/Havana', '2026-03-08T12:00:00Z')).toEqual({
      key: 'day:2026-03-08@America/Havana',
      start: '2026-03-08T05:00:00.000Z',
      end: '2026-03-09T04:00:00.000Z',
    });
  });

  it('America/Havana 2026-11-01 has midnight twice: the day starts at the first one', () => {
    expect(period('day', 'America/Havana', '2026-11-01T12:00:00Z')).toEqual({
      key: 'day:2026-11-01@America/Havana',
      start: '2026-11-01T04:00:00.000Z',
      end: '2026-11-02T05:00:00.000Z',
    });
    expect(period('day', 'America/Havana', '2026-11-01T04:30:00Z').key).toBe('day:2026-11-01@America/Havana');
  });

  it('Atlantic/Azores 2026-03-29 starts at 01:00Z (no midnight) and 2026-10-25 at the first of two midnights', () => {
    expect(period('day', 'Atlantic/Azores', '2026-03-29T12:00:00Z')).toEqual({
      key: 'day:2026-03-29@Atlantic/Azores',
      start: '2026-03-29T01:00:00.000Z',
      end: '2026-03-30T00:00:00.000Z',
    });
    expect(period('day', 'Atlantic/Azores', '2026-10-25T12:00:00Z')).toEqual({
      key: 'day:2026-10-25@Atlantic/Azores',
      start: '2026-10-25T00:00:00.000Z',
      end: '2026-10-26T01:00:00.000Z',
    });
  });

  it('Asia/Amman 2021-10-29 (east of UTC, midnight twice): the day starts at the first midnight', () => {
    // Clocks went from 00:59:59 (UTC+3) back to 00:00 (UTC+2): 21:00Z and 22:00Z both read
    // "Friday 00:00". An event at 21:30Z reads Friday 00:30, so Friday must already have begun.
    expect(period('day', 'Asia/Amman', '2021-10-29T12:00:00Z')).toEqual({
      key: 'day:2021-10-29@Asia/Amman',
      start: '2021-10-28T21:00:00.000Z',
      end: '2021-10-29T22:00:00.000Z',
    });
    const p = periodAt('day', 'Asia/Amman', at('2021-10-28T21:30:00Z'));
    expect(p.startMs).toBeLessThanOrEqual(at('2021-10-28T21:30:00Z'));
    expect(period('day', 'Asia/Amman', '2021-10-28T12:00:00Z').end).toBe('2021-10-28T21:00:00.000Z');
  });
});

describe('periodAt: zones offset by a fraction of an hour', () => {
  it('Asia/Kolkata (UTC+5:30): March 2026 starts 2026-02-28T18:30Z', () => {
    expect(period('month', 'Asia/Kolkata', '2026-03-15T00:00:00Z')).toEqual({
      key: 'month:2026-03@Asia/Kolkata',
      start: '2026-02-28T18:30:00.000Z',
      end: '2026-03-31T18:30:00.000Z',
    });
  });

  it('Asia/Kolkata: 2026-02-28T18:30Z is already March 1st, 18:29:59.999Z is still February', () => {
    expect(period('day', 'Asia/Kolkata', '2026-02-28T18:30:00.000Z').key).toBe('day:2026-03-01@Asia/Kolkata');
    expect(period('day', 'Asia/Kolkata', '2026-02-28T18:29:59.999Z').key).toBe('day:2026-02-28@Asia/Kolkata');
    expect(period('month', 'Asia/Kolkata', '2026-02-28T18:29:59.999Z').key).toBe('month:2026-02@Asia/Kolkata');
  });

  it('Asia/Kathmandu (UTC+5:45): days and months start at 18:15Z', () => {
    expect(period('day', 'Asia/Kathmandu', '2026-03-10T06:00:00Z')).toEqual({
      key: 'day:2026-03-10@Asia/Kathmandu',
      start: '2026-03-09T18:15:00.000Z',
      end: '2026-03-10T18:15:00.000Z',
    });
    expect(period('month', 'Asia/Kathmandu', '2026-03-15T00:00:00Z')).toEqual({
      key: 'month:2026-03@Asia/Kathmandu',
      start: '2026-02-28T18:15:00.000Z',
      end: '2026-03-31T18:15:00.000Z',
    });
  });

  it('Australia/Lord_Howe changes its clocks by half an hour: 24.5 and 23.5 hour days', () => {
    expect(period('day', 'Australia/Lord_Howe', '2026-04-05T12:00:00Z')).toEqual({
      key: 'day:2026-04-05@Australia/Lord_Howe',
      start: '2026-04-04T13:00:00.000Z',
      end: '2026-04-05T13:30:00.000Z',
    });
    expect(hoursLong('day', 'Australia/Lord_Howe', '2026-10-04T12:00:00Z')).toBe(23.5);
  });
});

describe('periodAt: Pacific/Apia skipped 2011-12-30', () => {
  it('December 29th (UTC-10) ends where December 31st (UTC+14) begins', () => {
    expect(period('day', 'Pacific/Apia', '2011-12-29T12:00:00Z')).toEqual({
      key: 'day:2011-12-29@Pacific/Apia',
      start: '2011-12-29T10:00:00.000Z',
      end: '2011-12-30T10:00:00.000Z',
    });
    expect(period('day', 'Pacific/Apia', '2011-12-30T10:00:00Z')).toEqual({
      key: 'day:2011-12-31@Pacific/Apia',
      start: '2011-12-30T10:00:00.000Z',
      end: '2011-12-31T10:00:00.000Z',
    });
    expect(period('day', 'Pacific/Apia', '2011-12-30T09:59:59.999Z').key).toBe('day:2011-12-29@Pacific/Apia');
  });

  it('December 2011 in Apia is 30 days long', () => {
    expect(period('month', 'Pacific/Apia', '2011-12-15T00:00:00Z')).toEqual({
      key: 'month:2011-12@Pacific/Apia',
      start: '2011-12-01T10:00:00.000Z',
      end: '2011-12-31T10:00:00.000Z',
    });
  });
});

describe('periodAt: boundaries (start inclusive, end exclusive)', () => {
  it.each([
    ['day', 'Europe/Paris', '2026-03-28T23:00:00.000Z', 'day:2026-03-28@Europe/Paris', 'day:2026-03-29@Europe/Paris'],
    ['day', 'Europe/Paris', '2026-10-25T23:00:00.000Z', 'day:2026-10-25@Europe/Paris', 'day:2026-10-26@Europe/Paris'],
    ['day', 'America/New_York', '2026-03-08T05:00:00.000Z', 'day:2026-03-07@America/New_York', 'day:2026-03-08@America/New_York'],
    ['day', 'America/Santiago', '2026-09-06T04:00:00.000Z', 'day:2026-09-05@America/Santiago', 'day:2026-09-06@America/Santiago'],
    ['day', 'America/Havana', '2026-03-08T05:00:00.000Z', 'day:2026-03-07@America/Havana', 'day:2026-03-08@America/Havana'],
    ['month', 'UTC', '2026-04-01T00:00:00.000Z', 'month:2026-03@UTC', 'month:2026-04@UTC'],
    ['month', 'Europe/Paris', '2026-03-31T22:00:00.000Z', 'month:2026-03@Europe/Paris', 'month:2026-04@Europe/Paris'],
    ['month', 'Asia/Kolkata', '2026-02-28T18:30:00.000Z', 'month:2026-02@Asia/Kolkata', 'month:2026-03@Asia/Kolkata'],
    ['30s', 'UTC', '2026-03-29T02:00:00.000Z', '30s:59158319', '30s:59158320'],
    ['1h', 'Europe/Paris', '2026-03-29T02:00:00.000Z', '1h:492985', '1h:492986'],
  ])('%s in %s: %s starts the new period, the millisecond before is the old one', (spec, tz, iso, before, after) => {
    const boundary = at(iso);
    const old = periodAt(spec, tz, boundary - 1);
    const fresh = periodAt(spec, tz, boundary);
    expect([old.key, old.endMs]).toEqual([before, boundary]);
    expect([fresh.key, fresh.startMs]).toEqual([after, boundary]);
  });
});

describe('periodAt: months', () => {
  it.each([
    ['2026-01-15T00:00:00Z', 'month:2026-01@UTC', '2026-01-01T00:00:00.000Z', '2026-02-01T00:00:00.000Z', 31],
    ['2026-02-15T00:00:00Z', 'month:2026-02@UTC', '2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z', 28],
    ['2028-02-29T23:59:59.999Z', 'month:2028-02@UTC', '2028-02-01T00:00:00.000Z', '2028-03-01T00:00:00.000Z', 29],
    ['2026-04-30T12:00:00Z', 'month:2026-04@UTC', '2026-04-01T00:00:00.000Z', '2026-05-01T00:00:00.000Z', 30],
    ['2026-12-31T23:59:59.999Z', 'month:2026-12@UTC', '2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z', 31],
  ])('%s is in %s, [%s, %s), %i days', (iso, key, start, end, days) => {
    const p = period('month', 'UTC', iso);
    expect(p).toEqual({ key, start, end });
    expect((at(end) - at(start)) / DAY_MS).toBe(days);
  });

  it('March 2026 in Paris is 31 days minus the hour lost on the 29th', () => {
    expect(period('month', 'Europe/Paris', '2026-03-15T00:00:00Z')).toEqual({
      key: 'month:2026-03@Europe/Paris',
      start: '2026-02-28T23:00:00.000Z',
      end: '2026-03-31T22:00:00.000Z',
    });
    expect(hoursLong('month', 'Europe/Paris', '2026-03-15T00:00:00Z')).toBe(31 * 24 - 1);
  });

  it('the month is that of the local date: 2026-01-31T23:30Z is February in Paris', () => {
    expect(period('month', 'Europe/Paris', '2026-01-31T23:30:00Z').key).toBe('month:2026-02@Europe/Paris');
    expect(period('month', 'America/New_York', '2026-02-01T03:00:00Z').key).toBe('month:2026-01@America/New_York');
  });
});

describe('periodAt: fixed-length periods are aligned to the epoch, whatever the zone', () => {
  it('30s', () => {
    expect(period('30s', 'UTC', '2026-03-29T01:59:45Z')).toEqual({
      key: '30s:59158319',
      start: '2026-03-29T01:59:30.000Z',
      end: '2026-03-29T02:00:00.000Z',
    });
  });

  it('10m', () => {
    expect(period('10m', 'Asia/Kolkata', '2026-03-29T01:59:45Z')).toEqual({
      key: '10m:2957915',
      start: '2026-03-29T01:50:00.000Z',
      end: '2026-03-29T02:00:00.000Z',
    });
  });

  it('1h in a half-hour zone still starts on the UTC hour', () => {
    expect(period('1h', 'Asia/Kolkata', '2026-03-29T01:59:45Z')).toEqual({
      key: '1h:492985',
      start: '2026-03-29T01:00:00.000Z',
      end: '2026-03-29T02:00:00.000Z',
    });
  });

  it('7d starts on a Thursday at 00:00Z (1970-01-01 was a Thursday), not on a local Monday', () => {
    expect(period('7d', 'Europe/Paris', '2026-03-29T12:00:00Z')).toEqual({
      key: '7d:2934',
      start: '2026-03-26T00:00:00.000Z',
      end: '2026-04-02T00:00:00.000Z',
    });
  });

  it('the epoch itself starts period 0, and the instant before it is period -1', () => {
    expect(period('30s', 'UTC', 0)).toEqual({ key: '30s:0', start: '1970-01-01T00:00:00.000Z', end: '1970-01-01T00:00:30.000Z' });
    expect(period('30s', 'UTC', -1)).toEqual({ key: '30s:-1', start: '1969-12-31T23:59:30.000Z', end: '1970-01-01T00:00:00.000Z' });
  });

  it('a time zone does not change a fixed period', () => {
    const ms = at('2026-10-25T01:30:00Z');
    expect(periodAt('10m', 'Pacific/Apia', ms)).toEqual(periodAt('10m', 'UTC', ms));
  });
});

describe('isPeriodSpec / fixedLengthMs', () => {
  it.each(['day', 'month', '30s', '10m', '1h', '7d', '1s', '90m'])('accepts %j', (spec) => {
    expect(isPeriodSpec(spec)).toBe(true);
  });

  it.each(['0s', '0d', '5x', 'week', 'year', '', 'Day', ' day', '1.5h', '-1h', '1 h', 'h', '10', 's10'])('rejects %j', (spec) => {
    expect(isPeriodSpec(spec)).toBe(false);
  });

  it('rejects a length whose periods end beyond the range of dates (1,000,000,000 days)', () => {
    // 1e9 days = 8.64e16 ms, past the last representable Date (8.64e15 ms): every period would end at
    // an invalid date, and the budget status could not be shown.
    expect(isPeriodSpec('1000000000d')).toBe(false);
  });

  it.each([
    ['30s', 30_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
    ['day', 0],
    ['month', 0],
  ])('fixedLengthMs(%j) = %i', (spec, ms) => {
    expect(fixedLengthMs(spec)).toBe(ms);
  });

  it('periodAt refuses an unknown spec with a message naming it', () => {
    expect(() => periodAt('week', 'UTC', 0)).toThrow('unknown period "week"');
  });
});

describe('elapsedFraction', () => {
  it('is 0 at the start, 1 at the end, and proportional in between (a 23-hour day)', () => {
    const p = periodAt('day', 'Europe/Paris', at('2026-03-29T12:00:00Z'));
    expect(elapsedFraction(p, p.startMs - 1)).toBe(0);
    expect(elapsedFraction(p, p.startMs)).toBe(0);
    expect(elapsedFraction(p, p.startMs + 23 * HOUR_MS / 2)).toBe(0.5);
    expect(elapsedFraction(p, p.endMs)).toBe(1);
  });
});

describe('periodAt: properties', () => {
  // Asia/Amman (midnight repeated every autumn until 2021) is left out and instants start in 2011
  // (America/St_Johns repeated midnight until 2010): the Amman example above covers that case, which
  // a random instant would only rarely hit.
  const ZONES = [
    'UTC',
    'Europe/Paris',
    'America/New_York',
    'America/Santiago',
    'America/Havana',
    'Atlantic/Azores',
    'Asia/Kolkata',
    'Asia/Kathmandu',
    'Australia/Lord_Howe',
    'Pacific/Chatham',
    'Pacific/Apia',
    'Pacific/Kiritimati',
    'America/St_Johns',
    'Africa/Casablanca',
    'Asia/Tehran',
  ];
  const SPECS = ['day', 'month', '30s', '10m', '1h', '7d'];
  const instant = fc.integer({ min: at('2011-01-01T00:00:00Z'), max: at('2040-01-01T00:00:00Z') });

  it('every instant lies in its period, and the next period starts exactly where it ends', () => {
    fc.assert(
      fc.property(instant, fc.constantFrom(...ZONES), fc.constantFrom(...SPECS), (ms, tz, spec) => {
        const p = periodAt(spec, tz, ms);
        expect(p.startMs).toBeLessThanOrEqual(ms);
        expect(p.endMs).toBeGreaterThan(ms);
        const next = periodAt(spec, tz, p.endMs);
        expect(next.startMs).toBe(p.endMs);
        expect(next.key).not.toBe(p.key);
        const previous = periodAt(spec, tz, p.startMs - 1);
        expect(previous.endMs).toBe(p.startMs);
        expect(periodAt(spec, tz, p.endMs - 1).key).toBe(p.key);
      }),
      { numRuns: 2000 },
    );
  });

  it('a day lasts 22.5 to 25.5 hours, and a month 28 days minus an hour to 31 days plus an hour', () => {
    fc.assert(
      fc.property(instant, fc.constantFrom(...ZONES), (ms, tz) => {
        const day = periodAt('day', tz, ms);
        const dayHours = (day.endMs - day.startMs) / HOUR_MS;
        expect(dayHours).toBeGreaterThanOrEqual(22.5);
        expect(dayHours).toBeLessThanOrEqual(25.5);
        const month = periodAt('month', tz, ms);
        expect(month.endMs - month.startMs).toBeGreaterThanOrEqual(28 * DAY_MS - HOUR_MS);
        expect(month.endMs - month.startMs).toBeLessThanOrEqual(31 * DAY_MS + HOUR_MS);
      }),
      { numRuns: 1000 },
    );
  });

  it('around every midnight of 2026 in zones that change clocks at midnight, periods tile', () => {
    for (const tz of ['America/Santiago', 'America/Havana', 'Atlantic/Azores', 'America/Asuncion']) {
      let ms = at('2026-01-01T12:00:00Z');
      let p = periodAt('day', tz, ms);
      while (ms < at('2027-01-01T00:00:00Z')) {
        const next = periodAt('day', tz, p.endMs);
        expect(next.startMs, `${tz} after ${p.key}`).toBe(p.endMs);
        const hours = (next.endMs - next.startMs) / HOUR_MS;
        expect([23, 24, 25], `${tz} ${next.key} is ${hours} h`).toContain(hours);
        p = next;
        ms = p.startMs;
      }
    }
  });
});
