import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/domain/errors.js';
import { MODEL_TIERS, MODEL_TIER_TABLE, modelTier } from '../../src/domain/model-tiers.js';
import { type ModelUsageGroup, type ReportData, type UsageGroup, buildReport, originalRecommendations, reportNotification } from '../../src/domain/report.js';
import { escapeHtml, renderReportHtml } from '../../src/domain/report-html.js';
import {
  type ReportPeriod,
  parseReportPeriod,
  previousReportPeriod,
  reportBuckets,
  scheduledReportPeriod,
} from '../../src/domain/report-period.js';
import { at, realEngine, usage } from './helpers.js';

const engine = realEngine();

function bounds(p: ReportPeriod) {
  return { period: p.period, start: new Date(p.startMs).toISOString(), end: new Date(p.endMs).toISOString(), hours: (p.endMs - p.startMs) / 3_600_000 };
}

describe('report periods', () => {
  it('a spring-forward day in New York has 23 local hours, and no 02:00', () => {
    const p = parseReportPeriod('daily', '2026-03-08', 'America/New_York');
    expect(bounds(p)).toEqual({ period: '2026-03-08', start: '2026-03-08T05:00:00.000Z', end: '2026-03-09T04:00:00.000Z', hours: 23 });
    const labels = reportBuckets(p).map((b) => b.label);
    expect(labels).toHaveLength(23);
    expect(labels.slice(0, 4)).toEqual(['00:00', '01:00', '03:00', '04:00']);
    expect(labels.at(-1)).toBe('23:00');
  });

  it('a fall-back day has 25 local hours, the repeated 01:00 told apart by its offset', () => {
    const p = parseReportPeriod('daily', '2026-11-01', 'America/New_York');
    expect(bounds(p)).toEqual({ period: '2026-11-01', start: '2026-11-01T04:00:00.000Z', end: '2026-11-02T05:00:00.000Z', hours: 25 });
    const buckets = reportBuckets(p);
    expect(buckets.map((b) => b.label).slice(0, 4)).toEqual(['00:00', '01:00 UTC-04:00', '01:00 UTC-05:00', '02:00']);
    expect(buckets[2]!.startMs).toBe(at('2026-11-01T06:00:00Z'));
    expect(buckets).toHaveLength(25);
  });

  it('the same day is a different span of instants in two time zones', () => {
    expect(bounds(parseReportPeriod('daily', '2026-03-29', 'UTC'))).toMatchObject({ start: '2026-03-29T00:00:00.000Z', hours: 24 });
    expect(bounds(parseReportPeriod('daily', '2026-03-29', 'Europe/Paris'))).toMatchObject({ start: '2026-03-28T23:00:00.000Z', hours: 23 });
    expect(bounds(parseReportPeriod('daily', '2026-03-29', 'Asia/Kolkata'))).toMatchObject({ start: '2026-03-28T18:30:00.000Z', hours: 24 });
  });

  it('a month runs from the 1st to the 1st in its zone, with one bucket per local day', () => {
    const p = parseReportPeriod('monthly', '2026-03', 'America/New_York');
    expect(bounds(p)).toEqual({ period: '2026-03', start: '2026-03-01T05:00:00.000Z', end: '2026-04-01T04:00:00.000Z', hours: 31 * 24 - 1 });
    const buckets = reportBuckets(p);
    expect(buckets.map((b) => b.label)).toEqual(Array.from({ length: 31 }, (_, i) => `2026-03-${String(i + 1).padStart(2, '0')}`));
    expect((buckets[7]!.endMs - buckets[7]!.startMs) / 3_600_000).toBe(23);
  });

  it('the previous period is the day (month) before, across year ends', () => {
    expect(previousReportPeriod(parseReportPeriod('daily', '2026-01-01', 'Asia/Tokyo')).period).toBe('2025-12-31');
    expect(previousReportPeriod(parseReportPeriod('monthly', '2026-03', 'UTC')).period).toBe('2026-02');
    expect(previousReportPeriod(parseReportPeriod('monthly', '2026-01', 'UTC')).period).toBe('2025-12');
  });

  it('a scheduled run reports on the period before its nominal time, in the schedule zone', () => {
    // 00:05 on 9 March in New York (EDT) is 04:05Z.
    expect(scheduledReportPeriod('daily', 'America/New_York', at('2026-03-09T04:05:00Z')).period).toBe('2026-03-08');
    // At that instant it is still 8 March in Los Angeles.
    expect(scheduledReportPeriod('daily', 'America/Los_Angeles', at('2026-03-09T04:05:00Z')).period).toBe('2026-03-07');
    expect(scheduledReportPeriod('monthly', 'America/New_York', at('2026-04-01T04:05:00Z')).period).toBe('2026-03');
    expect(scheduledReportPeriod('monthly', 'UTC', at('2026-01-01T00:05:00Z')).period).toBe('2025-12');
  });

  it('rejects a bad kind, period or zone naming the bad part', () => {
    const issue = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(ValidationError);
        return (err as ValidationError).issues[0];
      }
      throw new Error('expected a ValidationError');
    };
    expect(issue(() => parseReportPeriod('weekly', '2026-03-08', 'UTC'))).toEqual({ path: 'kind', message: 'expected "daily" or "monthly", got "weekly"' });
    expect(issue(() => parseReportPeriod('daily', '2026-02-30', 'UTC'))).toEqual({ path: 'period', message: 'expected a real calendar date YYYY-MM-DD, got "2026-02-30"' });
    expect(issue(() => parseReportPeriod('daily', '2026-03', 'UTC'))).toMatchObject({ path: 'period' });
    expect(issue(() => parseReportPeriod('monthly', '2026-13', 'UTC'))).toMatchObject({ path: 'period' });
    expect(issue(() => parseReportPeriod('daily', '2026-03-08', 'Mars/Olympus'))).toMatchObject({ path: 'tz' });
  });
});

describe('model tiers', () => {
  it('every model and every cheaper alternative is priced by the bundled catalog, one tier down, same provider', () => {
    for (const e of MODEL_TIER_TABLE) {
      const priced = engine.price({ provider: e.provider, model: e.model, occurredAtMs: at('2026-03-01T00:00:00Z'), usage: usage({ inputTokens: 1000, outputTokens: 100 }) });
      expect(priced.priced, `${e.provider}/${e.model}`).toBe(true);
      if (!e.cheaper) {
        expect(e.tier).toBe('economy');
        continue;
      }
      const alt = modelTier(e.provider, e.cheaper);
      expect(alt, `${e.provider}/${e.cheaper} in the table`).toBeDefined();
      expect(MODEL_TIERS.indexOf(alt!.tier)).toBeGreaterThan(MODEL_TIERS.indexOf(e.tier));
    }
  });

  it('matches dated versions of a model', () => {
    expect(modelTier('OpenAI', 'gpt-4o-2024-08-06')?.tier).toBe('standard');
    expect(modelTier('anthropic', 'claude-3-5-sonnet-20241022')?.cheaper).toBe('claude-3-5-haiku-20241022');
    expect(modelTier('openai', 'gpt-4o-mini')?.tier).toBe('economy');
    expect(modelTier('openai', 'my-fine-tune')).toBeUndefined();
  });
});

function g(key: string, costUsd: string, calls: number, tokens = usage({ inputTokens: 1000 * calls, outputTokens: 100 * calls })): UsageGroup {
  return { key, costUsd, calls, unpricedCalls: 0, tokens };
}
function m(provider: string, model: string, costUsd: string, calls: number): ModelUsageGroup {
  return { ...g(`${provider}/${model}`, costUsd, calls), provider, model };
}

/** A New York DST day: gpt-4 calls at 01:00 and 03:00 local, gpt-4o-mini at 23:00. */
function sample(over: Partial<ReportData> = {}): ReportData {
  const period = parseReportPeriod('daily', '2026-03-08', 'America/New_York');
  return {
    period,
    previous: { period: '2026-03-07', costUsd: '0.2', calls: 8 },
    totals: g('total', '0.361', 20),
    byProvider: [g('openai', '0.3', 11), g('anthropic', '0.061', 9)],
    byModel: [m('openai', 'gpt-4', '0.36', 10), m('openai', 'gpt-4o-mini', '0.001', 10)],
    byTaskType: [g('chat', '0.36', 10), g('summarize', '0.001', 10)],
    topUsers: [g('<b>mallory</b>', '0.001', 10), g('alice', '0.36', 10)],
    byBucket: [
      { index: 1, costUsd: '0.18', calls: 5 },
      { index: 2, costUsd: '0.18', calls: 5 },
      { index: 22, costUsd: '0.001', calls: 10 },
    ],
    budgets: [{ scope: 'system', period: 'day', amountUsd: '100' }],
    incidents: [],
    generatedAt: '2026-03-09T04:05:01.000Z',
    ...over,
  };
}

describe('buildReport', () => {
  it('computes exact totals, averages, shares, change and every bucket of the day', () => {
    const r = buildReport(sample(), engine);
    expect(r.totals).toMatchObject({ costUsd: '0.361', calls: 20, avgCostPerCallUsd: '0.01805', totalTokens: 22_000 });
    expect(r.change).toEqual({ costUsd: '0.161', costPct: 80.5, calls: 12, callsPct: 150 });
    expect(r.byModel.map((x) => [x.key, x.tier, x.sharePct, x.avgCostPerCallUsd])).toEqual([
      ['openai/gpt-4', 'premium', 99.7, '0.036'],
      ['openai/gpt-4o-mini', 'economy', 0.3, '0.0001'],
    ]);
    expect(r.topUsers.map((u) => u.key)).toEqual(['alice', '<b>mallory</b>']);
    expect(r.series.unit).toBe('hour');
    expect(r.series.buckets).toHaveLength(23);
    expect(r.series.buckets.filter((b) => b.calls > 0).map((b) => [b.label, b.costUsd])).toEqual([
      ['01:00', '0.18'],
      ['03:00', '0.18'],
      ['23:00', '0.001'],
    ]);
    expect(r.budgets).toEqual([{ scope: 'system', period: 'day', amountUsd: '100', spentUsd: '0.361', usagePct: 0.4 }]);
    expect(r.empty).toBe(false);
    expect(r.hours).toBe(23);
    expect(r.byHourOfDay).toBeNull();
  });

  it('a monthly report has a bar per local day and the cost by hour of day', () => {
    const period = parseReportPeriod('monthly', '2026-03', 'America/New_York');
    const r = buildReport(sample({ period, byBucket: [{ index: 7, costUsd: '0.361', calls: 20 }], byHourOfDay: [{ hour: 1, costUsd: '0.36', calls: 10 }, { hour: 23, costUsd: '0.001', calls: 10 }] }), engine);
    expect(r.series.unit).toBe('day');
    expect(r.series.buckets.filter((b) => b.calls > 0).map((b) => b.label)).toEqual(['2026-03-08']);
    expect(r.byHourOfDay).toHaveLength(24);
    expect(r.byHourOfDay!.filter((h) => h.calls > 0)).toEqual([
      { hour: 1, label: '01:00', costUsd: '0.36', calls: 10 },
      { hour: 23, label: '23:00', costUsd: '0.001', calls: 10 },
    ]);
    const html = renderReportHtml(r);
    expect(html).toContain('>By hour of day</h2>');
    expect([...html.matchAll(/<rect class="bar" data-bucket="([^"]+)"/g)].map((x) => x[1])).toEqual(['2026-03-08']);
  });

  it('recommends on expensive providers and task types, high averages, and a cheaper model with its saving', () => {
    const r = buildReport(sample(), engine);
    expect(r.recommendations.map((x) => [x.kind, x.subject])).toEqual([
      ['expensive_provider', 'openai'],
      ['expensive_task_type', 'chat'],
      ['cheaper_model', 'openai/gpt-4'],
    ]);
    // gpt-4 ($30/$60 per M) -> gpt-4o ($2.5/$10 per M): 10 calls of 1000 in + 100 out save 10 x (0.036 - 0.0035).
    const cheaper = r.recommendations.find((x) => x.kind === 'cheaper_model')!;
    expect(cheaper).toMatchObject({ alternative: 'gpt-4o', estimatedSavingUsd: '0.325' });
  });

  it('flags a task type whose average call costs at least twice the period average (not one just under)', () => {
    const data = sample({
      totals: g('total', '0.4', 40),
      byProvider: [g('openai', '0.4', 40)],
      byModel: [m('openai', 'gpt-4o-mini', '0.4', 40)],
      byTaskType: [g('chat', '0.3', 10), g('summarize', '0.1', 30)],
    });
    const r = buildReport(data, engine);
    expect(r.recommendations.filter((x) => x.kind === 'high_average_cost')).toEqual([
      { kind: 'high_average_cost', rule: 'high_average', subject: 'chat', message: 'Task type "chat" averages $0.030000 per call, 3x the period\'s average of $0.010000.' },
    ]);
    // chat at 1.99x the average (0.0199 per call) is not flagged.
    const under = buildReport({ ...data, byTaskType: [g('chat', '0.199', 10), g('summarize', '0.201', 30)] }, engine);
    expect(under.recommendations.filter((x) => x.kind === 'high_average_cost')).toEqual([]);
  });

  it('names the rule behind each recommendation, in the JSON and on the page', () => {
    const r = buildReport(sample(), engine);
    expect(r.recommendations.map((x) => x.rule)).toEqual(['provider_share', 'task_type_share', 'cheaper_tier']);
    expect([...renderReportHtml(r).matchAll(/<li data-kind="[^"]+" data-rule="([^"]+)">[^<]*<span[^>]*>\(rule: ([^)]+)\)/g)].map((x) => [x[1], x[2]])).toEqual([
      ['provider_share', 'provider_share'],
      ['task_type_share', 'task_type_share'],
      ['cheaper_tier', 'cheaper_tier'],
    ]);
  });

  it('a period without usage is a report that says so', () => {
    const r = buildReport(
      sample({ totals: g('total', '0', 0, usage()), byProvider: [], byModel: [], byTaskType: [], topUsers: [], byBucket: [], previous: { period: '2026-03-07', costUsd: '0', calls: 0 } }),
      engine,
    );
    expect(r).toMatchObject({ empty: true, totals: { costUsd: '0', calls: 0, avgCostPerCallUsd: '0' }, recommendations: [] });
    expect(r.change).toEqual({ costUsd: '0', costPct: null, calls: 0, callsPct: null });
    const html = renderReportHtml(r);
    expect(html).toContain('No LLM usage was recorded in this period.');
    expect(html).not.toContain('<svg');
    expect(reportNotification(r, html).summary).toBe('No LLM usage was recorded in 2026-03-08 (America/New_York). The previous day cost $0.000000 over 0 calls.');
  });
});

describe('report HTML', () => {
  const r = buildReport(sample(), engine);
  const html = renderReportHtml(r);

  it('is one page with the title, the headline, both charts and the breakdown tables', () => {
    expect(html.startsWith('<!DOCTYPE html>\n<html lang="en">')).toBe(true);
    expect(html).toContain('<title>Daily cost report 2026-03-08 (America/New_York)</title>');
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html.match(/<\/svg>/g)).toHaveLength(2);
    for (const caption of ['Cost by hour', 'Cost by provider', 'By provider', 'By model', 'By task type', 'Top 2 users', 'Budgets', 'Open incidents', 'Recommendations']) {
      expect(html).toContain(`>${caption}</h2>`);
    }
    expect(html).toContain('<td style="padding:4px 8px;border-bottom:1px solid #e5e7eb;text-align:right;font-variant-numeric:tabular-nums">$0.361000</td>');
    expect(html).not.toMatch(/<script|<style|<link|src=/i);
  });

  it('draws one bar per hour with usage, labelled with its local hour, and one bar per provider', () => {
    const bars = [...html.matchAll(/<rect class="bar" data-bucket="([^"]+)"/g)].map((x) => x[1]);
    expect(bars).toEqual(['01:00', '03:00', '23:00']);
    expect([...html.matchAll(/<rect class="provider-bar" data-provider="([^"]+)"/g)].map((x) => x[1])).toEqual(['openai', 'anthropic']);
  });

  it('escapes every string from the data', () => {
    expect(html).not.toContain('<b>mallory</b>');
    expect(html).toContain('&lt;b&gt;mallory&lt;/b&gt;');
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('becomes a report notification for the channels: Slack gets the headline, email the page', () => {
    const n = reportNotification(r, html);
    expect(n).toMatchObject({ sourceId: 'report/daily/2026-03-08/America/New_York', notificationId: 'report', kind: 'report', level: 'info', html });
    expect(n.title).toBe('Daily cost report 2026-03-08 (America/New_York)');
    expect(n.summary).toBe(
      '$0.361000 over 20 calls (average $0.018050 per call), 22000 tokens. Change against the previous day: +80.5% in cost, +150% in calls. ' +
        'Top provider: openai (83.1%). 3 recommendation(s).',
    );
    expect(n.fields.slice(0, 3)).toEqual([
      { label: 'Period', value: '2026-03-08 (America/New_York)' },
      { label: 'Total cost', value: '$0.361000' },
      { label: 'Calls', value: '20' },
    ]);
  });
});

describe("the original specification's recommendation rules ($50 a day, $1 and $2 a call)", () => {
  /** One day on one provider, model (gpt-4) and task type: `cost` over `calls` calls. */
  function day(cost: string, calls: number, over: Partial<ReportData> = {}): ReportData {
    return sample({
      totals: g('total', cost, calls),
      byProvider: [g('openai', cost, calls)],
      byModel: [m('openai', 'gpt-4', cost, calls)],
      byTaskType: [g('chat', cost, calls)],
      ...over,
    });
  }
  const original = (data: ReportData) => originalRecommendations(data).map((r) => [r.rule, r.subject]);

  it('the most expensive provider over $50 in the day (not at $50), and only that one', () => {
    expect(original(day('50', 1000))).toEqual([]);
    expect(original(day('50.000001', 1000))).toEqual([['original_provider_cost', 'openai']]);
    expect(originalRecommendations(day('50.5', 1000))[0]!.message).toBe(
      'openai cost $50.500000 on 2026-03-08, more than the original rule\'s $50 a day: move the calls that do not need it to a cheaper model or provider.',
    );
    const two = day('130', 1000, { byProvider: [g('openai', '60', 500), g('anthropic', '70', 500)] });
    expect(original(two)).toEqual([['original_provider_cost', 'anthropic']]);
  });

  it('an average cost per call over all calls above $1 (not at $1)', () => {
    expect(original(day('10', 10, { byTaskType: [] }))).toEqual([]);
    expect(original(day('10.00001', 10, { byTaskType: [] }))).toEqual([['original_average_cost', 'all calls']]);
    // A day's total over $1 with a small average is no finding.
    expect(original(day('45', 1000))).toEqual([]);
  });

  it("each task type whose average cost per call is above $2 (not at $2), whatever its total", () => {
    const tasks = (...t: UsageGroup[]) => day('30', 100, { byTaskType: t });
    expect(original(tasks(g('chat', '20', 10), g('summarize', '10', 90)))).toEqual([]);
    expect(original(tasks(g('chat', '20.00001', 10), g('summarize', '2.1', 1), g('tiny', '0.5', 89)))).toEqual([
      ['original_task_type_average', 'chat'],
      ['original_task_type_average', 'summarize'],
    ]);
  });

  it('sit beside the relative rules in a daily report, and stay out of monthly reports', () => {
    const r = buildReport(day('60', 20), engine);
    expect(r.recommendations.map((x) => x.rule)).toEqual([
      'provider_share', 'task_type_share', 'cheaper_tier', 'original_provider_cost', 'original_average_cost', 'original_task_type_average',
    ]);
    const monthly = buildReport(day('60', 20, { period: parseReportPeriod('monthly', '2026-03', 'America/New_York'), byBucket: [] }), engine);
    expect(monthly.recommendations.map((x) => x.rule).filter((rule) => rule.startsWith('original_'))).toEqual([]);
    expect(monthly.recommendations.length).toBeGreaterThan(0);
  });
});
