/**
 * Hostile or careless input on the real stack (Temporal dev server, budget and alert workflows,
 * PostgreSQL, Redis): it is refused with a 400 / typed error naming the field, or stored exactly;
 * it never stops a user's metering, never blocks a workflow, and the ledger holds exactly what was
 * accepted. One poisoned event (the database refuses its row) is set aside as a dead letter, the
 * rest of its batch counts once, and it replays after the fix.
 */
import type { LogEntry } from '@temporalio/worker';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlertActivities } from '../../activities/alerts.js';
import { CostTrackerValidationError } from '../../src/client/cost-tracker.js';
import { runDeadLetterList, runDeadLetterReplay } from '../../src/cli/deadletter.js';
import { deadLetterCondition } from '../../src/domain/alert-rules.js';
import { createLogger } from '../../src/lib/logger.js';
import { ackSignal, alertWorkflowId, incidentQuery } from '../../src/messages.js';
import { eventually, quietTemporalRuntime, type Stack, type StackApi, startApi, startStack } from './helpers/stack.js';

const KEY = 'cg_hostile_test_key_0123456789ab';
const headers = { 'x-api-key': KEY };
const runtimeLog: LogEntry[] = [];
let stack: Stack;
let api: StackApi;
let app: FastifyInstance;
/** Every request id the API or the client accepted in this file: the ledger must hold exactly these (or their dead letters). */
const accepted = new Set<string>();

beforeAll(async () => {
  quietTemporalRuntime((entry) => runtimeLog.push(entry));
  stack = await startStack();
  api = await startApi(stack, KEY, { lingerMs: 20 });
  ({ app } = api);
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const valid = (userId: string, over: Record<string, unknown> = {}) => ({ provider: 'openai', model: 'gpt-4o-mini', userId, usage: { inputTokens: 1000, outputTokens: 100 }, ...over });

async function post(body: unknown, url = '/v1/usage') {
  const res = await app.inject({ method: 'POST', url, headers, payload: body as object });
  const json = res.json() as { accepted?: number; requestIds?: string[]; error?: string; message?: string; issues?: { path: string; message: string }[] };
  if (res.statusCode === 202) for (const id of json.requestIds ?? []) accepted.add(id);
  return { status: res.statusCode, body: json };
}

async function ledgerRows(userId: string) {
  const { rows } = await stack.pool.query('SELECT * FROM usage_ledger WHERE user_id = $1 ORDER BY request_id', [userId]);
  return rows as Record<string, unknown>[];
}

const countFor = async (userId: string) => (await ledgerRows(userId)).length;
/** What GET /v1/budgets/:scope shows: the live totals (the user's daily budget) and whether a workflow runs. */
async function budgetStatus(scope: string): Promise<{ calls: number; workflow: string }> {
  const res = await app.inject({ method: 'GET', url: `/v1/budgets/${scope}`, headers });
  const body = res.json() as { workflow: string; live: { budgets: { period: string; totals: { calls: number } }[] } };
  return { calls: body.live.budgets.find((b) => b.period === 'day')?.totals.calls ?? -1, workflow: body.workflow };
}

describe('the reproduction: one NUL byte used to stop a user\'s metering for good', () => {
  it('refuses the event with a 400 naming `model`, and the user\'s next event is counted', async () => {
    const bad = await post({ provider: 'openai', model: 'gpt-4o-mini\u0000', userId: 'u1', usage: { inputTokens: 10 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('validation');
    expect(bad.body.issues).toEqual([{ path: 'model', message: 'model must not contain control characters (found U+0000 at index 11)' }]);
    const good = await post({ provider: 'openai', model: 'gpt-4o-mini', userId: 'u1', usage: { inputTokens: 1000 } });
    expect(good.status).toBe(202);
    await eventually(() => countFor('u1'), (n) => n === 1, 30_000, 'u1 counted');
    // The status answers with exact live totals, although so small a spend never made a budget workflow.
    expect(await budgetStatus('user:u1')).toEqual({ calls: 1, workflow: 'none' });
  });
});

describe('each finding of the probe, refused at the entry', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['NUL in provider', { provider: 'openai\u0000' }, 'provider'],
    ['NUL in taskType', { taskType: 'chat\u0000' }, 'taskType'],
    ['NUL in a tag value', { tags: { env: 'p\u0000' } }, 'tags.env'],
    ['NUL in a metadata key', { metadata: { ['k\u0000']: 1 } }, 'metadata'],
    ['NUL in a metadata value', { metadata: { k: 'v\u0000' } }, 'metadata.k'],
    ['a lone surrogate in metadata', { metadata: { k: 'v\ud800' } }, 'metadata.k'],
    ['a lone surrogate in model', { model: 'gpt\udc00' }, 'model'],
    ['a lone surrogate in taskType', { taskType: '\ud83dchat' }, 'taskType'],
    ['a token count of null', { usage: { inputTokens: null } }, 'usage.inputTokens'],
    ['occurredAt in year 100', { occurredAt: '0100-01-01T00:00:00Z' }, 'occurredAt'],
  ];
  for (const [what, over, path] of cases) {
    it(`${what}: 400 naming ${path}, nothing recorded`, async () => {
      const user = `finding-${path.replace(/\W/g, '')}-${Math.random().toString(36).slice(2, 8)}`;
      const res = await post(valid(user, over));
      expect(res.status).toBe(400);
      expect(res.body.issues?.[0]?.path.startsWith(path), JSON.stringify(res.body)).toBe(true);
      expect(await countFor(user)).toBe(0);
    });
  }

  it('invalid UTF-8 in the body is a 400, never stored as U+FFFD', async () => {
    const body = Buffer.concat([Buffer.from('{"provider":"openai","model":"gpt'), Buffer.from([0xc3, 0x28]), Buffer.from('","userId":"utf8","usage":{"inputTokens":1}}')]);
    const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: { ...headers, 'content-type': 'application/json' }, payload: body });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'validation', message: expect.stringMatching(/UTF-8/) });
    expect(await countFor('utf8')).toBe(0);
  });

  it('metadata nested 8,000 levels: 400 from the API, a typed error from the client, no stack overflow', async () => {
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 8000; i++) deep = (deep.a = {}) as Record<string, unknown>;
    // Written by hand: JSON.stringify itself recurses, and 8,000 levels overflow its stack.
    const body = `{"provider":"openai","model":"gpt-4o-mini","userId":"deep","usage":{"inputTokens":1},"metadata":${'{"a":'.repeat(8000)}{}${'}'.repeat(8000)}}`;
    const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: { ...headers, 'content-type': 'application/json' }, payload: body });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'validation', message: expect.stringMatching(/nests too deeply/) });
    await expect(api.tracker.record(valid('deep', { metadata: root }) as never)).rejects.toBeInstanceOf(CostTrackerValidationError);
    await expect(api.tracker.record(valid('deep', { metadata: root }) as never)).rejects.toThrow(/metadata.*nests deeper than 8 levels/);
  });

  it('events older than the window need the explicit backfill flag', async () => {
    const old = valid('backfiller', { occurredAt: new Date(Date.now() - 30 * 86_400_000).toISOString() });
    const refused = await post(old);
    expect(refused.status).toBe(400);
    expect(refused.body.issues?.[0]).toMatchObject({ path: 'occurredAt', message: expect.stringMatching(/backfill/) });
    const taken = await post(old, '/v1/usage?backfill=true');
    expect(taken.status).toBe(202);
    await eventually(() => countFor('backfiller'), (n) => n === 1, 30_000, 'backfill counted');
  });

  it('budgets: a 10,000-digit amount and "europe/paris" are refused naming the field; {"budgets":[]} answers at once', async () => {
    const put = (body: unknown) => app.inject({ method: 'PUT', url: '/v1/budgets/user:budgeted', headers, payload: body as object });
    const huge = await put({ budgets: [{ period: 'day', amount: '9'.repeat(10_000), thresholds: { warning: 0.8, critical: 0.9 } }] });
    expect(huge.statusCode).toBe(400);
    expect(huge.json().issues[0]).toMatchObject({ path: 'budgets.0.amount', message: 'expected at most 12 digits before the decimal point, got 10000' });
    const tz = await put({ budgets: [{ period: 'day', amount: '5', timezone: 'europe/paris', thresholds: { warning: 0.8, critical: 0.9 } }] });
    expect(tz.statusCode).toBe(400);
    expect(tz.json().issues[0]).toMatchObject({ path: 'budgets.0.timezone', message: expect.stringMatching(/"Europe\/Paris"/) });
    const none = await put({ budgets: [] });
    expect(none.statusCode).toBe(200);
    expect(none.json()).toMatchObject({ scope: 'user:budgeted', budgets: [] });
    const back = await put({ budgets: [{ period: 'day', amount: '5', thresholds: { warning: 0.8, critical: 0.9 } }] });
    expect(back.statusCode).toBe(200);
    expect(back.json().budgets[0]).toMatchObject({ period: 'day', amount: '5' });
  });
});

describe('acknowledgements', () => {
  it('a NUL in `by` is a 400 from the API and dropped by the ack signal; the incident can still be acknowledged', async () => {
    const alerting = createAlertActivities({ pool: stack.pool, config: stack.config, logger: createLogger('silent'), clock: Date.now, temporal: () => stack.client });
    const condition = { ...deadLetterCondition(1, Date.now()), key: `system|deadletter|test-ack|${Date.now()}` };
    const { incidentId } = await alerting.raiseAlert({ condition, budgetWorkflowId: null });
    const handle = stack.client.workflow.getHandle(alertWorkflowId(incidentId));
    await eventually(() => handle.query(incidentQuery), (s) => s.status === 'open', 20_000, 'incident open');

    const viaApi = await app.inject({ method: 'POST', url: `/v1/alerts/${incidentId}/ack`, headers, payload: { by: 'mallory\u0000' } });
    expect(viaApi.statusCode).toBe(400);
    expect(viaApi.json().issues[0]).toMatchObject({ path: 'by' });
    // The Temporal UI's "Send a Signal" path: the handler drops it (and never throws).
    await handle.signal(ackSignal, { by: 'mallory\u0000' });
    await new Promise((r) => setTimeout(r, 500));
    expect((await handle.query(incidentQuery)).acknowledged).toBeNull();

    const ok = await app.inject({ method: 'POST', url: `/v1/alerts/${incidentId}/ack`, headers, payload: { by: 'dana', note: 'looking\ninto it' } });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ status: 'acknowledged', acknowledged: { by: 'dana', note: 'looking\ninto it' } });
    const events = await stack.pool.query(`SELECT kind FROM alert_events WHERE incident_id = $1 ORDER BY id`, [incidentId]);
    expect(events.rows.map((r) => r.kind)).toContain('acknowledged');
  });
});

describe('poison isolation', () => {
  it('an event the database refuses is dead-lettered; its batch-mates count once; an alert is raised; it replays after the fix', async () => {
    // A real PostgreSQL refusal tied to one event: a CHECK only this test's database has.
    await stack.pool.query(`ALTER TABLE usage_ledger ADD CONSTRAINT test_poison CHECK (model <> 'poison-model')`);
    const events = Array.from({ length: 9 }, (_, i) => valid('p1', { requestId: `p1-${i}`, model: i === 4 ? 'poison-model' : 'gpt-4o-mini' }));
    const receipts = await api.tracker.recordMany(events as never);
    for (const r of receipts) accepted.add(r.requestId);
    await eventually(() => countFor('p1'), (n) => n === 8, 30_000, 'the other 8 counted');
    const letters = await eventually(() => runDeadLetterList(stack.config, {}), (l) => l.some((d) => d.requestId === 'p1-4'), 30_000, 'dead letter');
    const letter = letters.find((d) => d.requestId === 'p1-4')!;
    expect(letter).toMatchObject({ stage: 'persist', userId: 'p1' });
    expect(letter.error).toMatch(/test_poison/);
    expect(JSON.parse(letter.payload)).toMatchObject({ requestId: 'p1-4', model: 'poison-model', userId: 'p1' });
    expect((await budgetStatus('user:p1')).calls).toBe(8);
    // The user's metering goes on.
    expect((await post(valid('p1', { requestId: 'p1-after' }))).status).toBe(202);
    await eventually(() => countFor('p1'), (n) => n === 9, 30_000, 'next event counted');
    // Counted in Prometheus, and one incident for the day.
    expect(await stack.metrics.render()).toMatch(/costguard_dead_letter_events_total\{stage="persist"\} 1/);
    await eventually(async () => (await stack.pool.query(`SELECT count(*)::int AS n FROM alert_incidents WHERE rule = 'deadletter' AND condition_key LIKE 'system|deadletter|2%'`)).rows[0].n, (n) => n === 1, 20_000, 'dead-letter incident');

    // The fix, then the replay: counted once, in the ledger and in the budget workflow.
    await stack.pool.query('ALTER TABLE usage_ledger DROP CONSTRAINT test_poison');
    const replay = await runDeadLetterReplay(stack.config, [letter.id], {});
    expect(replay).toMatchObject({ replayed: 1, invalid: 0 });
    await eventually(() => countFor('p1'), (n) => n === 10, 30_000, 'replayed event counted');
    expect((await budgetStatus('user:p1')).calls).toBe(10);
    expect(await runDeadLetterList(stack.config, {})).toEqual([]);
    expect((await runDeadLetterList(stack.config, { all: true })).find((d) => d.id === letter.id)?.replayedAt).not.toBeNull();
    const cost = await stack.pool.query(`SELECT sum(cost_usd)::text AS c, count(*)::int AS n FROM usage_ledger WHERE user_id = 'p1'`);
    const rollup = await stack.pool.query(`SELECT sum(cost_usd)::text AS c, sum(calls)::int AS n FROM usage_rollups WHERE scope = 'user:p1' AND period_kind = 'day'`);
    expect(rollup.rows[0]).toEqual(cost.rows[0]);
  });
});

// ----------------------------------------------------------------------------------------------
// Property-based: hostile values for every field, through the API and through the client.

const nasty = fc.constantFrom('\u0000', 'a\u0000b', '\u0001', '\u001f', '\u007f', '\u0085', '\u009f', '\ud800', 'x\udbff', '\udc00y', '\ufffd', '\u202e', '\u{1F600}', '', ' ', '  padded  ', '\n', 'a\tb', 'x'.repeat(201), 'x'.repeat(10_000), 'null', '__proto__', 'constructor', '../..', "'; DROP TABLE usage_ledger; --", 'é', '模型');
const hostileString = fc.oneof(nasty, fc.string({ unit: 'binary', maxLength: 12 }), fc.string({ maxLength: 12 }));
const hostileNumber = fc.oneof(
  fc.constantFrom(null, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 1e9, 1e9 + 1, 2 ** 53, -0, '12', true, [], {}),
  fc.integer({ min: 0, max: 1000 }),
);
const hostileTime = fc.oneof(
  fc.constantFrom('0100-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '2026-02-30T00:00:00Z', 'yesterday', '', 0, null, '1999-12-31T23:59:59Z', new Date(Date.now() - 8 * 86_400_000).toISOString(), new Date(Date.now() + 2 * 86_400_000).toISOString()),
  fc.integer({ min: 0, max: 6 * 86_400_000 }).map((ms) => new Date(Date.now() - ms).toISOString()),
);
const hostileShape = fc.constantFrom(null, [], 'string', 42, { nested: { deeper: { deepest: {} } } }, [1, 2, 3]);
const fieldArb: Record<string, fc.Arbitrary<unknown>> = {
  provider: fc.oneof(hostileString, hostileShape),
  model: fc.oneof(hostileString, hostileShape),
  userId: fc.oneof(hostileString, hostileShape),
  taskType: fc.oneof(hostileString, hostileShape),
  team: fc.oneof(hostileString, hostileShape),
  project: fc.oneof(hostileString, hostileShape),
  requestId: fc.oneof(hostileString, hostileShape),
  occurredAt: fc.oneof(hostileTime, hostileShape),
  tags: fc.oneof(fc.dictionary(hostileString, fc.oneof(hostileString, hostileNumber), { maxKeys: 3 }), hostileShape),
  metadata: fc.oneof(fc.dictionary(hostileString, fc.oneof(hostileString, hostileNumber, fc.jsonValue({ maxDepth: 3 })), { maxKeys: 3 }), hostileShape),
  usage: fc.oneof(fc.dictionary(fc.constantFrom('inputTokens', 'outputTokens', 'cacheReadTokens', 'reasoningTokens', 'bogus'), hostileNumber, { maxKeys: 3 }), hostileShape),
  estimated: fc.oneof(fc.boolean(), hostileShape, hostileString),
  extra: hostileString,
};
/** A well-formed event with one or two fields replaced by a hostile value. */
const hostileEvent = fc
  .array(fc.constantFrom(...Object.keys(fieldArb)), { minLength: 1, maxLength: 2 })
  .chain((keys) => fc.tuple(...keys.map((k) => fieldArb[k]!.map((v) => [k, v] as const))));

type Case = { user: string; input: Record<string, unknown>; followUp: string };
const storedCases: { input: Record<string, unknown>; requestId: string }[] = [];
const followUps: Case[] = [];

function hostileInput(n: number, changes: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const input: Record<string, unknown> = { ...valid(`pbt-${n}`), requestId: `pbt-${n}-${Math.random().toString(36).slice(2, 10)}` };
  for (const [k, v] of changes) input[k] = v;
  return input;
}

describe('property: every hostile event is refused (4xx) or stored exactly, and never stops its user', () => {
  it('through the API', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(hostileEvent, async (changes) => {
        const input = hostileInput(n++, changes);
        const res = await app.inject({ method: 'POST', url: '/v1/usage', headers: { ...headers, 'content-type': 'application/json' }, payload: JSON.stringify(input) });
        expect([202, 400], `status ${res.statusCode}: ${res.body.slice(0, 300)}`).toContain(res.statusCode);
        const body = res.json();
        if (res.statusCode === 202) {
          // A hostile-looking but valid request id may repeat an earlier case's: the first one counts.
          if (!accepted.has(body.requestIds[0])) storedCases.push({ input, requestId: body.requestIds[0] });
          for (const id of body.requestIds) accepted.add(id);
        } else {
          expect(body.error).toBe('validation');
          expect(body.issues.length).toBeGreaterThan(0);
        }
        // After each case, a valid event for the same user (or a fresh one, when the user id was the hostile part).
        const user = typeof input.userId === 'string' && /^[A-Za-z0-9._@+=:/-]{1,200}$/.test(input.userId) ? input.userId : `pbt-${n}-fresh`;
        const follow = await post(valid(user, { requestId: `follow-${n}-${Math.random().toString(36).slice(2, 8)}` }));
        expect(follow.status).toBe(202);
        followUps.push({ user, input, followUp: follow.body.requestIds![0]! });
      }),
      { numRuns: 150, seed: 20261130 },
    );
  });

  it('through the client (CostTracker): a typed error naming the field, or stored exactly', async () => {
    let n = 10_000;
    await fc.assert(
      fc.asyncProperty(hostileEvent, async (changes) => {
        const input = hostileInput(n++, changes);
        try {
          const receipt = await api.tracker.record(input as never);
          if (!accepted.has(receipt.requestId)) storedCases.push({ input, requestId: receipt.requestId });
          accepted.add(receipt.requestId);
        } catch (err) {
          expect(err).toBeInstanceOf(CostTrackerValidationError);
          expect((err as CostTrackerValidationError).issues.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 100, seed: 20261201 },
    );
  });

  it('afterwards: every follow-up counted, every accepted event stored exactly, the ledger holds exactly what was accepted, nothing retried for ever', async () => {
    const ids = [...accepted];
    const inLedgerOrDead = async () => {
      const ledger = await stack.pool.query<{ request_id: string }>('SELECT request_id FROM usage_ledger WHERE request_id = ANY($1)', [ids]);
      const dead = await stack.pool.query<{ request_id: string }>('SELECT request_id FROM usage_dead_letters WHERE request_id = ANY($1) AND replayed_at IS NULL', [ids]);
      return ledger.rowCount! + dead.rowCount!;
    };
    await eventually(inLedgerOrDead, (n) => n === ids.length, 90_000, 'every accepted event in the ledger');
    const total = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_ledger');
    expect(total.rows[0]!.n, 'the ledger holds nothing that was not accepted').toBe(ids.length);
    const dead = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_dead_letters WHERE replayed_at IS NULL');
    expect(dead.rows[0]!.n, 'no hostile event that passed the entry was refused later').toBe(0);

    const followIds = followUps.map((f) => f.followUp);
    const counted = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_ledger WHERE request_id = ANY($1)', [followIds]);
    expect(counted.rows[0]!.n).toBe(followIds.length);

    // Stored exactly: what went in is what the ledger holds (spaces around labels trimmed and the
    // provider lower-cased: the two documented canonical forms).
    const { rows } = await stack.pool.query('SELECT * FROM usage_ledger WHERE request_id = ANY($1)', [storedCases.map((c) => c.requestId)]);
    const byId = new Map(rows.map((r) => [r.request_id as string, r]));
    for (const { input, requestId } of storedCases) {
      const row = byId.get(requestId)!;
      expect(row, requestId).toBeDefined();
      expect(row.provider).toBe(String(input.provider).trim().toLowerCase());
      expect(row.model).toBe(String(input.model).trim());
      expect(row.user_id).toBe(String(input.userId).trim());
      expect(row.task_type).toBe(input.taskType === undefined ? 'default' : String(input.taskType).trim());
      expect(row.tags).toEqual(input.tags === undefined ? {} : JSON.parse(JSON.stringify(input.tags)));
      expect(row.metadata).toEqual(input.metadata === undefined ? {} : JSON.parse(JSON.stringify(input.metadata)));
      const usage = input.usage as Record<string, number>;
      // (+ 0 turns a -0 sent as a count into the 0 the database holds.)
      expect(Number(row.input_tokens)).toBe((usage.inputTokens ?? 0) + 0);
      expect(Number(row.output_tokens)).toBe((usage.outputTokens ?? 0) + 0);
      expect(row.estimated).toBe(input.estimated === true);
    }
    expect(storedCases.length, 'some hostile-looking but valid events were accepted').toBeGreaterThan(20);

    // Nothing was retried for ever: no flush or history write failed along the way.
    const failures = runtimeLog.filter((e) => /Activity failed|Workflow task failed|failed to activate/i.test(e.message));
    expect(failures.map((e) => `${e.message} ${JSON.stringify(e.meta).slice(0, 300)}`)).toEqual([]);
  });
});
