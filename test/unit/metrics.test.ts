/**
 * The metrics registry without a database: what the event counters record, label bounds, the
 * `user_id` opt-in, which budgets the ratio gauge shows, the rolling-hour estimate, and the config keys.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { DEFAULT_EXCHANGE_RATES } from '../../src/domain/money.js';
import { budgetGauges, usageRatio } from '../../src/metrics/budget-gauges.js';
import { BoundedLabel, type CountedEventSample, createMetrics } from '../../src/metrics/index.js';
import { rollingHourUsd } from '../../src/metrics/rolling-hour.js';
import { parsePromText, promtoolCheckMetrics, promtoolPath, seriesOf, sumOf } from '../prom-text.js';

function configWith(yaml: string, env: Record<string, string> = {}) {
  const path = join(mkdtempSync(join(tmpdir(), 'cg-metrics-')), 'c.yaml');
  writeFileSync(path, yaml);
  return loadConfig({ COSTGUARD_CONFIG: path, ...env });
}

const NOW = Date.parse('2026-03-01T12:00:00Z');
function sample(over: Partial<CountedEventSample> = {}): CountedEventSample {
  return {
    provider: 'openai',
    model: 'gpt-4o-mini',
    userId: 'alice',
    taskType: 'default',
    costUsd: '0.1',
    unpriced: false,
    inputTokens: 1000,
    outputTokens: 100,
    occurredAt: new Date(NOW - 1500).toISOString(),
    ...over,
  };
}

describe('config keys', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({}).metrics).toEqual({ host: '127.0.0.1', port: 9464, userLabel: false, topUsers: 10, maxLabelValues: 200, scrapeCacheMs: 5000 });
  });

  it('reads METRICS_PORT (0 disables) and the file section', () => {
    const c = configWith('metrics:\n  userLabel: true\n  topUsers: 0\n', { METRICS_PORT: '0', METRICS_HOST: '0.0.0.0' });
    expect(c.metrics).toMatchObject({ host: '0.0.0.0', port: 0, userLabel: true, topUsers: 0 });
  });

  it('names a bad key and what was expected', () => {
    expect(() => loadConfig({ METRICS_PORT: 'abc' })).toThrow(ConfigError);
    expect(() => loadConfig({ METRICS_PORT: 'abc' })).toThrow(/METRICS_PORT = "abc": expected a port number, or 0 to disable/);
    expect(() => configWith('metrics:\n  userLabel: "yes"\n')).toThrow(/metrics\.userLabel = "yes": expected true or false/);
    expect(() => configWith('metrics:\n  topN: 5\n')).toThrow(/metrics: unknown key\(s\) topN/);
  });
});

describe('event counters', () => {
  it('record a flush: cost and calls per provider/model, tokens, unpriced, lag, batch size, duplicates, rejected', async () => {
    const metrics = createMetrics({ config: loadConfig({}), processMetrics: false });
    metrics.recordFlush({
      batch: { received: 5, rejected: 1, duplicates: 1 },
      persistedAtMs: NOW,
      counted: [sample(), sample({ costUsd: '0.2', inputTokens: 3000 }), sample({ provider: 'acme', model: 'x-1', costUsd: '0', unpriced: true })],
    });
    const s = parsePromText(await metrics.render());
    expect(sumOf(s, 'llm_cost_usd_total', { provider: 'openai', model: 'gpt-4o-mini' })).toBeCloseTo(0.3, 15);
    expect(sumOf(s, 'llm_api_calls_total', { provider: 'openai' })).toBe(2);
    expect(sumOf(s, 'llm_api_calls_total', { provider: 'acme', model: 'x-1' })).toBe(1);
    expect(sumOf(s, 'costguard_unpriced_events_total', { provider: 'acme', model: 'x-1' })).toBe(1);
    expect(sumOf(s, 'llm_token_usage_sum', { provider: 'openai', kind: 'input' })).toBe(4000);
    expect(sumOf(s, 'llm_token_usage_bucket', { provider: 'openai', kind: 'input', le: '1000' })).toBe(1);
    expect(sumOf(s, 'llm_token_usage_bucket', { provider: 'openai', kind: 'input', le: '4000' })).toBe(2);
    // The original specification's buckets, and no other.
    const les = seriesOf(s, 'llm_token_usage_bucket').filter((x) => x.labels.provider === 'openai' && x.labels.kind === 'input').map((x) => x.labels.le);
    expect(les).toEqual(['100', '500', '1000', '2000', '4000', '8000', '16000', '+Inf']);
    expect(sumOf(s, 'costguard_ingestion_lag_seconds_sum')).toBeCloseTo(4.5, 9);
    expect(sumOf(s, 'costguard_ingestion_lag_seconds_bucket', { le: '1' })).toBe(0);
    expect(sumOf(s, 'costguard_ingestion_lag_seconds_bucket', { le: '2.5' })).toBe(3);
    expect(sumOf(s, 'costguard_flush_batch_events_sum')).toBe(5);
    expect(sumOf(s, 'costguard_duplicate_events_total')).toBe(1);
    expect(sumOf(s, 'costguard_rejected_events_total')).toBe(1);
    expect(seriesOf(s, 'llm_cost_usd_total').every((x) => !('user_id' in x.labels))).toBe(true);
  });

  it('carries the original labels: cost by task_type, calls by task_type and status, tokens by model', async () => {
    const metrics = createMetrics({ config: loadConfig({}), processMetrics: false });
    metrics.recordFlush({
      batch: { received: 4, rejected: 0, duplicates: 0 },
      persistedAtMs: NOW,
      counted: [
        sample({ taskType: 'summarization' }), // no status recorded: success
        sample({ taskType: 'summarization', status: 'ok', costUsd: '0.2' }), // the wrappers' ok: success
        sample({ taskType: 'analysis', status: 'error', costUsd: '0' }),
        sample({ model: 'gpt-4o', taskType: 'analysis', status: { not: 'a string' }, inputTokens: 20000 }),
      ],
    });
    const s = parsePromText(await metrics.render());
    expect(sumOf(s, 'llm_cost_usd_total', { task_type: 'summarization' })).toBeCloseTo(0.3, 15);
    expect(sumOf(s, 'llm_cost_usd_total', { task_type: 'analysis', model: 'gpt-4o' })).toBeCloseTo(0.1, 15);
    expect(seriesOf(s, 'llm_cost_usd_total').every((x) => !('status' in x.labels))).toBe(true);
    expect(sumOf(s, 'llm_api_calls_total', { task_type: 'summarization', status: 'success' })).toBe(2);
    expect(sumOf(s, 'llm_api_calls_total', { task_type: 'analysis', status: 'error' })).toBe(1);
    expect(sumOf(s, 'llm_api_calls_total', { status: 'other' })).toBe(1);
    expect(sumOf(s, 'llm_token_usage_count', { model: 'gpt-4o-mini', kind: 'input' })).toBe(3);
    expect(sumOf(s, 'llm_token_usage_bucket', { model: 'gpt-4o', kind: 'input', le: '16000' })).toBe(0);
    expect(sumOf(s, 'llm_token_usage_sum', { provider: 'openai', model: 'gpt-4o', kind: 'input' })).toBe(20000);
  });

  it('adds user_id only when metrics.userLabel is on', async () => {
    const metrics = createMetrics({ config: configWith('metrics:\n  userLabel: true\n'), processMetrics: false });
    metrics.recordFlush({ batch: { received: 2, rejected: 0, duplicates: 0 }, persistedAtMs: NOW, counted: [sample(), sample({ userId: 'bob' })] });
    const s = parsePromText(await metrics.render());
    expect(seriesOf(s, 'llm_api_calls_total').map((x) => x.labels.user_id).sort()).toEqual(['alice', 'bob']);
  });

  it('folds provider and model values beyond metrics.maxLabelValues into "other"', async () => {
    const metrics = createMetrics({ config: configWith('metrics:\n  maxLabelValues: 2\n'), processMetrics: false });
    metrics.recordFlush({
      batch: { received: 4, rejected: 0, duplicates: 0 },
      persistedAtMs: NOW,
      counted: ['m1', 'm2', 'm3', 'm4'].map((model) => sample({ model, unpriced: true, costUsd: '0' })),
    });
    const s = parsePromText(await metrics.render());
    expect(seriesOf(s, 'llm_api_calls_total').map((x) => [x.labels.model, x.value])).toEqual([['m1', 1], ['m2', 1], ['other', 2]]);
    expect(sumOf(s, 'costguard_unpriced_events_total', { model: 'other' })).toBe(2);
  });

  it('folds task_type and status values beyond metrics.maxLabelValues into "other" as well', async () => {
    const metrics = createMetrics({ config: configWith('metrics:\n  maxLabelValues: 2\n'), processMetrics: false });
    metrics.recordFlush({
      batch: { received: 3, rejected: 0, duplicates: 0 },
      persistedAtMs: NOW,
      counted: [
        sample({ taskType: 't1', status: 'ok' }),
        sample({ taskType: 't2', status: 'error' }),
        sample({ taskType: 't3', status: 'aborted' }),
      ],
    });
    const s = parsePromText(await metrics.render());
    expect(seriesOf(s, 'llm_api_calls_total').map((x) => [x.labels.task_type, x.labels.status, x.value])).toEqual([
      ['t1', 'success', 1],
      ['t2', 'error', 1],
      ['other', 'other', 1],
    ]);
    expect(sumOf(s, 'llm_cost_usd_total', { task_type: 'other' })).toBeCloseTo(0.1, 15);
  });

  it('counts notifications by channel, channel type and outcome', async () => {
    const metrics = createMetrics({ config: loadConfig({}), processMetrics: false });
    metrics.recordNotification('ops-email', 'email', 'sent');
    metrics.recordNotification('ops-email', 'email', 'sent');
    metrics.recordNotification('oncall', 'sms', 'config_error');
    const s = parsePromText(await metrics.render());
    expect(sumOf(s, 'costguard_alert_notifications_total', { channel: 'ops-email', channel_type: 'email', outcome: 'sent' })).toBe(2);
    expect(sumOf(s, 'costguard_alert_notifications_total', { outcome: 'config_error' })).toBe(1);
  });

  it('without a database, leaves the state gauges empty (NaN); the whole output passes promtool', async (ctx) => {
    const metrics = createMetrics({ config: loadConfig({}) });
    metrics.recordFlush({ batch: { received: 1, rejected: 0, duplicates: 0 }, persistedAtMs: NOW, counted: [sample()] });
    metrics.observeFlushDuration(0.02, 'stored');
    metrics.recordNotification('ops', 'slack', 'sent');
    const text = await metrics.render();
    const s = parsePromText(text);
    expect(seriesOf(s, 'budget_usage_ratio')).toEqual([]);
    expect(seriesOf(s, 'llm_cost_per_hour_usd').map((x) => x.value)).toEqual([Number.NaN]); // unknown, not $0
    expect(sumOf(s, 'process_cpu_seconds_total')).toBeGreaterThan(0); // default process metrics
    const promtool = promtoolPath();
    if (!promtool) {
      console.warn('promtool not installed (Debian package "prometheus"): skipping promtool check metrics');
      return ctx.skip();
    }
    expect(promtoolCheckMetrics(promtool, text)).toEqual({ status: 0, output: '' });
  });

  it('BoundedLabel keeps the first values it saw', () => {
    const label = new BoundedLabel(1);
    expect([label.value('a'), label.value('b'), label.value('a')]).toEqual(['a', 'other', 'a']);
  });
});

describe('budget_usage_ratio: which budgets can be read exactly from the rollups', () => {
  it('shows calendar day/month budgets in the reporting zone, the per-user maximum, and each named scope (original budget_type values)', () => {
    const gauges = budgetGauges(
      [
        { scope: 'system', period: 'day', amount: '100' },
        { scope: 'system', period: 'month', amount: '2000' },
        { scope: 'user', period: 'day', amount: '10' },
        { scope: 'team:infra', period: 'month', amount: '92', currency: 'EUR' },
        { scope: 'team', period: 'day', amount: '5' }, // every team: one series per team, left out
        { scope: 'project:x', period: '1h', amount: '1' }, // fixed length: no rollup for it
        { scope: 'project:y', period: 'day', amount: '1', timezone: 'Asia/Tokyo' }, // another zone
      ],
      'UTC',
      DEFAULT_EXCHANGE_RATES,
    );
    expect(gauges).toEqual([
      { budgetType: 'daily', scope: 'system', periodKind: 'day', amountUsd: '100' },
      { budgetType: 'monthly', scope: 'system', periodKind: 'month', amountUsd: '2000' },
      { budgetType: 'user_daily_max', scope: 'user', periodKind: 'day', amountUsd: '10' },
      { budgetType: 'monthly', scope: 'team:infra', periodKind: 'month', amountUsd: '100' },
    ]);
  });

  it('divides exactly before making the ratio a float', () => {
    expect(usageRatio('0.00036', '100')).toBe(0.0000036); // 0.00036 / 100 in floats is 0.0000036000000000000003
    expect(usageRatio('1', '0')).toBe(0);
  });
});

describe('llm_cost_per_hour_usd: the rolling hour from two hourly rollups', () => {
  it('adds the share of the previous hour still inside the last 60 minutes', () => {
    expect(rollingHourUsd({ currentHourUsd: 2, previousHourUsd: 8, hourElapsed: 0.25 })).toBe(8);
    expect(rollingHourUsd({ currentHourUsd: 2, previousHourUsd: 8, hourElapsed: 1 })).toBe(2);
    expect(rollingHourUsd({ currentHourUsd: 0, previousHourUsd: 8, hourElapsed: 0 })).toBe(8);
  });
});
