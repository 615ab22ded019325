/**
 * Alerts end to end on the real stack (Temporal dev server, budget and alert workflows, PostgreSQL,
 * Redis) with real local receivers for every channel: thresholds notify once per level per
 * channel, forecasts, spikes and unpriced usage open incidents, rollover resolves and re-arms,
 * and acknowledgement works from the API.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { incidentIdFor } from '../../activities/alerts.js';
import { createLedgerActivities } from '../../activities/ledger.js';
import { setScopeBudgets } from '../../src/client/budgets.js';
import { createLogger } from '../../src/lib/logger.js';
import { createPricingEngine } from '../../src/pricing/index.js';
import { alertWorkflowId, budgetWorkflowId, incidentQuery, searchAttributes, statusQuery } from '../../src/messages.js';
import type { BudgetStatus } from '../../src/domain/budget-status.js';
import { FLAT_PRICED_YAML, type Receivers, countsOf, flatEvents, sendFlat, hookMessagesOf, incidentEvents, sleep, startReceivers } from './helpers/alerting.js';
import { recordHistory } from './helpers/histories.js';
import { type Stack, eventually, startStack, type StackApi, startApi } from './helpers/stack.js';

const KEY = 'cg_alerts_test_key_0123456789';
let stack: Stack;
let rx: Receivers;
let api: StackApi;
let app: FastifyInstance;
const TODAY = () => new Date().toISOString().slice(0, 10);

beforeAll(async () => {
  rx = await startReceivers();
  stack = await startStack({
    configYaml: `${rx.channelsYaml}${FLAT_PRICED_YAML}alerts:
  evaluateEvery: 1s
  escalation: { delay: 1h }
  routing:
    info: [hook]
    warning: [mail, slack, hook]
    critical: [mail, slack, push, hook]
    emergency: [mail, slack, sms, push, hook]
  forecast: { minElapsedFraction: 0.1, minCalls: 5 }
  spike: { floorUsd: "0.5", factor: 3 }
`,
  });
  api = await startApi(stack, KEY, { lingerMs: 20 });
  ({ app } = api);
});

afterAll(async () => {
  if (stack) {
    await recordHistory(stack.env.address, stack.client.workflow.getHandle(budgetWorkflowId('user:t1')), 'budget-user-t1-alerts').catch(() => undefined);
    await recordHistory(stack.env.address, stack.client.workflow.getHandle(alertWorkflowId(incidentIdFor(thresholdKey('user:t1')))), 'alert-threshold-t1').catch(() => undefined);
  }
  await api?.close();
  await stack?.stop();
  await rx?.close();
});

const send = (userId: string, n: number, over: Record<string, unknown> = {}) => sendFlat(stack, userId, n, over);

const status = (scope: string): Promise<BudgetStatus> => stack.client.workflow.getHandle(budgetWorkflowId(scope)).query(statusQuery);

function thresholdKey(scope: string, period = 'day', periodKey = `day:${TODAY()}@UTC`) {
  return `${scope}|${period}|${periodKey}|threshold`;
}

describe('threshold alerts', () => {
  const key = () => thresholdKey('user:t1');

  it('crossing 80%, 95% and 100% notifies exactly once per level per channel; 1,000 more events notify nobody', async () => {
    await send('t1', 16); // $0.80
    await eventually(async () => hookMessagesOf(rx, key()), (m) => m.length === 1, 30_000, 'warning on the webhook');
    await send('t1', 3); // $0.95
    await eventually(async () => hookMessagesOf(rx, key()), (m) => m.length === 2, 30_000, 'critical on the webhook');
    await send('t1', 1); // $1.00
    await eventually(async () => countsOf(rx, key()), (c) => c.hook === 3 && c.sms === 1 && c.mail === 3 && c.slack === 3 && c.push === 2, 30_000, 'emergency everywhere');

    for (let i = 0; i < 10; i++) await send('t1', 100);
    await eventually(() => status('user:t1'), (s) => s.counters.eventsCounted === 1020, 60_000, '1,020 events counted');
    await sleep(1500); // anything the last batches would (wrongly) send has time to arrive

    expect(hookMessagesOf(rx, key()).map((m) => `${m.kind}:${m.level}`)).toEqual(['opened:warning', 'raised:critical', 'raised:emergency']);
    // warning -> mail, slack, hook; critical adds push; emergency adds sms.
    expect(countsOf(rx, key())).toEqual({ mail: 3, slack: 3, sms: 1, push: 2, hook: 3 });
    // (The forecast rule opens an incident of its own on this scope; only the threshold's mails here.)
    expect(rx.mail.received.map((m) => m.parsed.subject).filter((s) => s?.includes('Daily budget of user:t1 at'))).toEqual([
      '[WARNING] Daily budget of user:t1 at 80.0%',
      '[CRITICAL] Daily budget of user:t1 at 95.0%',
      '[EMERGENCY] Daily budget of user:t1 at 100.0%',
    ]);
    for (const r of [rx.mail, rx.slack, rx.sms, rx.push, rx.hook]) expect(r.rejected).toEqual([]);
  });

  it('shows the open incident in the status query, the alert history and GET /v1/alerts', async () => {
    const id = incidentIdFor(key());
    const s = await status('user:t1');
    expect(s.incidents).toEqual([{ incidentId: id, key: key(), rule: 'threshold', level: 'emergency', status: 'open' }]);
    const kinds = (await incidentEvents(stack.pool, key())).map((e) => `${e.kind}:${e.level}`);
    expect(kinds).toEqual(['opened:warning', 'notified:warning', 'level_changed:critical', 'notified:critical', 'level_changed:emergency', 'notified:emergency']);
    // Searchable in the Temporal UI: the budget's open incidents, the incident's level and scope.
    const budget = await eventually(
      () => stack.client.workflow.getHandle(budgetWorkflowId('user:t1')).describe(),
      (d) => d.typedSearchAttributes.get(searchAttributes.openIncidents) !== undefined,
      10_000,
      'CostOpenIncidents',
    );
    expect(budget.typedSearchAttributes.get(searchAttributes.openIncidents)).toBeGreaterThanOrEqual(1);
    const alert = await stack.client.workflow.getHandle(alertWorkflowId(id)).describe();
    expect(alert.typedSearchAttributes.get(searchAttributes.alertLevel)).toBe('emergency');
    expect(alert.typedSearchAttributes.get(searchAttributes.scopeId)).toBe('t1');
    const res = await app.inject({ method: 'GET', url: '/v1/alerts', headers: { 'x-api-key': KEY } });
    expect(res.statusCode).toBe(200);
    const listed = (res.json() as { incidents: { id: string; level: string; status: string; rule: string }[] }).incidents.find((i) => i.id === id);
    expect(listed).toMatchObject({ level: 'emergency', status: 'open', rule: 'threshold' });
  });

  it('acknowledges from the API: who, when and the note reach the workflow, the history and the budget status', async () => {
    const id = incidentIdFor(key());
    const bad = await app.inject({ method: 'POST', url: `/v1/alerts/${id}/ack`, headers: { 'x-api-key': KEY }, payload: { note: 'no name' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'validation', issues: [{ path: 'by' }] });
    const unknown = await app.inject({ method: 'POST', url: '/v1/alerts/0123456789ab/ack', headers: { 'x-api-key': KEY }, payload: { by: 'dana' } });
    expect(unknown.statusCode).toBe(404);

    const res = await app.inject({ method: 'POST', url: `/v1/alerts/${id}/ack`, headers: { 'x-api-key': KEY }, payload: { by: 'dana@example.com', note: 'raising the budget' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'acknowledged', acknowledged: { by: 'dana@example.com', note: 'raising the budget' } });
    const state = await stack.client.workflow.getHandle(alertWorkflowId(id)).query(incidentQuery);
    expect(state.acknowledged?.by).toBe('dana@example.com');
    const row = await stack.pool.query('SELECT status, acknowledged_by, ack_note FROM alert_incidents WHERE id = $1', [id]);
    expect(row.rows[0]).toEqual({ status: 'acknowledged', acknowledged_by: 'dana@example.com', ack_note: 'raising the budget' });
    await eventually(() => status('user:t1'), (s) => s.incidents?.[0]?.status === 'acknowledged', 10_000, 'budget status learns the ack');
  });

  it('resolves when the condition clears (budget raised), sending a resolved notice to the channels notified', async () => {
    const before = countsOf(rx, key());
    await setScopeBudgets(stack.client, {
      scope: 'user:t1',
      taskQueue: stack.taskQueue,
      change: { budgets: [{ period: 'day', amount: '1000', thresholds: { warning: 0.8, critical: 0.95 } }] },
      defaultTimezone: 'UTC', pool: stack.pool, config: stack.config,
    });
    await eventually(async () => hookMessagesOf(rx, key()), (m) => m.at(-1)?.kind === 'resolved', 30_000, 'resolved notice');
    await eventually(async () => rx.mail.received.length, () => rx.mail.received.some((m) => m.parsed.subject?.startsWith('[EMERGENCY] Resolved: Daily budget of user:t1')), 10_000, 'resolved e-mail');
    // One resolved notice to each channel notified (mail, slack, sms, push, hook).
    const after = await eventually(async () => countsOf(rx, key()), (c) => c.slack - before.slack === 1 && c.push - before.push === 1, 10_000, 'resolved on slack and push');
    expect(after.hook - before.hook).toBe(1);
    expect(after.mail - before.mail).toBe(1);
    const row = await stack.pool.query('SELECT status, resolved_reason FROM alert_incidents WHERE id = $1', [incidentIdFor(key())]);
    expect(row.rows[0]).toEqual({ status: 'resolved', resolved_reason: 'the condition no longer holds' });
    await eventually(() => status('user:t1'), (s) => (s.incidents ?? []).length === 0, 10_000, 'no open incident');
    // Acknowledging a resolved incident is a conflict, not a silent success.
    const late = await app.inject({ method: 'POST', url: `/v1/alerts/${incidentIdFor(key())}/ack`, headers: { 'x-api-key': KEY }, payload: { by: 'dana' } });
    expect(late.statusCode).toBe(409);
  });
});

describe('period rollover', () => {
  it('resolves the open incident when its period ends and re-arms the thresholds for the next period', async () => {
    const scope = 'user:roll';
    // A 20-second budget of $0.50 ($0.05 per event): 8 events are 80%.
    await setScopeBudgets(stack.client, { scope, taskQueue: stack.taskQueue, change: { budgets: [{ period: '20s', amount: '0.50', thresholds: { warning: 0.8, critical: 0.95 } }] }, defaultTimezone: 'UTC', pool: stack.pool, config: stack.config });
    // Start right after a period begins, so the whole test fits in one period.
    await sleep(20_000 - (Date.now() % 20_000) + 200);
    const first = Math.floor(Date.now() / 20_000);
    await send('roll', 8); // 80%
    const key1 = thresholdKey(scope, '20s', `20s:${first}`);
    await eventually(async () => hookMessagesOf(rx, key1), (m) => m.length === 1, 15_000, 'warning in the first period');
    await eventually(async () => hookMessagesOf(rx, key1), (m) => m.at(-1)?.kind === 'resolved', 30_000, 'resolved at period end');
    const row = await stack.pool.query('SELECT status, resolved_reason FROM alert_incidents WHERE id = $1', [incidentIdFor(key1)]);
    expect(row.rows[0]).toEqual({ status: 'resolved', resolved_reason: 'the period ended' });

    const second = Math.floor(Date.now() / 20_000);
    await send('roll', 8);
    const key2 = thresholdKey(scope, '20s', `20s:${second}`);
    await eventually(async () => hookMessagesOf(rx, key2), (m) => m.length >= 1, 15_000, 'warning again in the next period');
    expect(hookMessagesOf(rx, key2)[0]).toMatchObject({ kind: 'opened', level: 'warning' });
  });
});

describe('forecast, spike and unpriced usage', () => {
  it('forecast: a warning marked as a forecast when the period-to-date rate projects over the budget', async () => {
    const scope = 'user:fc';
    await setScopeBudgets(stack.client, { scope, taskQueue: stack.taskQueue, change: { budgets: [{ period: '1m', amount: '1', thresholds: { warning: 0.8, critical: 0.95 } }] }, defaultTimezone: 'UTC', pool: stack.pool, config: stack.config });
    // 30% into a 1-minute period, spend 50% of the budget: the projection is about 160%.
    const into = Date.now() % 60_000;
    await sleep(into < 18_000 ? 18_000 - into : 60_000 - into + 18_000);
    const period = Math.floor(Date.now() / 60_000);
    await send('fc', 10); // $0.50, 10 calls
    const key = `${scope}|1m|1m:${period}|forecast`;
    const [m] = await eventually(async () => hookMessagesOf(rx, key), (x) => x.length >= 1, 20_000, 'forecast on the webhook');
    expect(m).toMatchObject({ kind: 'opened', level: 'warning' });
    expect(m!.title).toMatch(/^Forecast: 1m budget of user:fc on course for /);
  });

  it('spike: the last hour above 3x the same hour of previous days and above the floor', async () => {
    // History: yesterday, in the same hour, $0.10 (written through the real ledger activity).
    const ledger = createLedgerActivities({ pool: stack.pool, pricing: createPricingEngine(stack.config), timezone: 'UTC', clock: Date.now, logger: createLogger('silent') });
    await ledger.recordUsageBatch({ batchId: 'spiky-history', events: flatEvents('spiky', 2, { occurredAt: new Date(Date.now() - 86_400_000 - 30 * 60_000).toISOString() }) });
    await setScopeBudgets(stack.client, { scope: 'user:spiky', taskQueue: stack.taskQueue, change: { budgets: [{ period: 'day', amount: '1000', thresholds: { warning: 0.8, critical: 0.95 } }] }, defaultTimezone: 'UTC', pool: stack.pool, config: stack.config });
    await send('spiky', 4); // $0.20: above 3 x $0.10 but below the $0.50 floor
    await eventually(() => status('user:spiky'), (s) => s.counters.eventsCounted === 4, 20_000, 'counted');
    await sleep(1500);
    const key = `user:spiky|spike|${TODAY()}|spike`;
    expect(hookMessagesOf(rx, key)).toEqual([]);
    await send('spiky', 12); // $0.80 in the last hour
    const [m] = await eventually(async () => hookMessagesOf(rx, key), (x) => x.length >= 1, 20_000, 'spike on the webhook');
    expect(m).toMatchObject({ kind: 'opened', level: 'warning' });
    expect(m!.title).toBe('Spending spike on user:spiky: 0.8000 USD in the last 60 minutes, 8.0x the baseline');
    // The multiplier and the window's top model and task type (a user scope names no top user).
    const body = m as unknown as { summary: string; fields: { label: string; value: string }[] };
    expect(body.summary).toMatch(/8\.0x the baseline \(more than 3x the usual 0\.1000 USD .*Top contributors: model flat-1 \(0\.8000 USD, 100%\); task type \S+ \(0\.8000 USD, 100%\)\.$/);
    expect(body.fields).toContainEqual({ label: 'Top model', value: 'flat-1 (0.8000 USD, 100%)' });
    expect(body.fields.map((f) => f.label)).not.toContain('Top user');
  });

  it('unpriced usage raises one alert naming the provider and model, whoever sends it', async () => {
    const key = `system|unpriced|${TODAY()}|mysteryai`;
    await send('u1', 2, { provider: 'mysteryai', model: 'oracle-9' });
    await send('u2', 3, { provider: 'mysteryai', model: 'oracle-9' });
    const [m] = await eventually(async () => hookMessagesOf(rx, key), (x) => x.length >= 1, 20_000, 'unpriced alert');
    expect(m).toMatchObject({ kind: 'opened', level: 'warning', title: 'Unpriced usage: mysteryai (1 model)' });
    expect(JSON.stringify(m)).toContain('oracle-9');
    await eventually(() => status('user:u2'), (s) => s.counters.eventsCounted === 3, 20_000, 'u2 counted');
    await sleep(1000);
    expect(hookMessagesOf(rx, key)).toHaveLength(1);
    const ledgerRows = await stack.pool.query(`SELECT count(*)::int AS n FROM usage_ledger WHERE provider = 'mysteryai' AND unpriced`);
    expect(ledgerRows.rows[0].n).toBe(5);
  });

  it('one request naming 1,000 made-up models opens one incident for the provider, listing 20 models and counting the rest', async () => {
    const events = Array.from({ length: 1000 }, (_, i) => ({ provider: 'fabricated', model: `made-up-${i}`, userId: 'flood', usage: { inputTokens: 10 } }));
    const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: { 'x-api-key': KEY }, payload: events });
    expect(res.statusCode).toBe(202);
    await eventually(async () => (await stack.pool.query(`SELECT count(*)::int AS n FROM usage_ledger WHERE provider = 'fabricated'`)).rows[0].n, (n) => n === 1000, 30_000, 'flood recorded');
    const key = `system|unpriced|${TODAY()}|fabricated`;
    const [m] = await eventually(async () => hookMessagesOf(rx, key), (x) => x.length >= 1, 20_000, 'unpriced alert');
    await sleep(1000);
    const incidents = await stack.pool.query(`SELECT count(*)::int AS n FROM alert_incidents WHERE rule = 'unpriced' AND condition_key LIKE $1`, [`system|unpriced|${TODAY()}|fabricated%`]);
    expect(incidents.rows[0].n).toBe(1);
    expect(hookMessagesOf(rx, key)).toHaveLength(1);
    expect(JSON.stringify(m)).toMatch(/made-up-\d+.* and 980 more/);
  });

});
