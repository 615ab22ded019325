/**
 * Escalation and acknowledgement with short delays, and notification dedup across a worker restart
 * and a Temporal server restart (the server persists to a SQLite file that is kept), on the real
 * stack with real local receivers.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/lib/paths.js';
import { incidentIdFor } from '../../activities/alerts.js';
import { ackSignal, alertWorkflowId, budgetWorkflowId, statusQuery } from '../../src/messages.js';
import type { BudgetStatus } from '../../src/domain/budget-status.js';
import { FLAT_PRICED_YAML, type Receivers, countsOf, sendFlat, hookMessagesOf, incidentEvents, sleep, startReceivers } from './helpers/alerting.js';
import { type Stack, eventually, startStack } from './helpers/stack.js';
import { type PersistentTemporal, startPersistentTemporal } from './helpers/temporal.js';

let stack: Stack;
let server: PersistentTemporal;
let rx: Receivers;
const dir = mkdtempSync(join(tmpdir(), 'cg-alerts-sqlite-'));
const TODAY = () => new Date().toISOString().slice(0, 10);
const key = (user: string) => `user:${user}|day|day:${TODAY()}@UTC|threshold`;

beforeAll(async () => {
  rx = await startReceivers();
  server = await startPersistentTemporal(join(dir, 'temporal.sqlite'));
  stack = await startStack({
    temporalAddress: server.address,
    configYaml: `${rx.channelsYaml}${FLAT_PRICED_YAML}alerts:
  evaluateEvery: 1s
  escalation: { delay: 2s, channels: [sms, push], maxEscalations: 2 }
  routing:
    warning: [mail, hook]
    critical: [mail, slack, hook]
    emergency: [mail, slack, hook]
  forecast: { enabled: false }
`,
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await server?.stop();
  await rx?.close();
  rmSync(dir, { recursive: true, force: true });
});

const send = (userId: string, n: number) => sendFlat(stack, userId, n);

const status = (scope: string): Promise<BudgetStatus> => stack.client.workflow.getHandle(budgetWorkflowId(scope)).query(statusQuery);
const kinds = (user: string) => hookMessagesOf(rx, key(user)).map((m) => `${m.kind}:${m.level}`);

describe('escalation', () => {
  it('re-notifies an unacknowledged emergency after the delay, adding SMS and push, up to the maximum', async () => {
    await send('e1', 20); // $1.00: emergency at once
    await eventually(async () => kinds('e1'), (k) => k.length === 3, 30_000, 'opened + two escalations');
    await sleep(3000); // a third escalation would be due by now
    expect(kinds('e1')).toEqual(['opened:emergency', 'escalated:emergency', 'escalated:emergency']);
    // The first notice went to mail, slack, hook; each escalation added sms and push.
    expect(countsOf(rx, key('e1'))).toEqual({ mail: 3, slack: 3, sms: 2, push: 2, hook: 3 });
    const [first, second] = rx.push.received.filter((m) => m.message.includes(incidentIdFor(key('e1'))));
    expect(first).toMatchObject({ priority: 5 });
    expect(second!.title).toContain('Escalation 2, not acknowledged');
  });

  it('stops escalating once acknowledged from the Temporal UI (the `ack` signal)', async () => {
    await send('e2', 20);
    await eventually(async () => kinds('e2'), (k) => k.length === 1, 30_000, 'opened');
    await stack.client.workflow.getHandle(alertWorkflowId(incidentIdFor(key('e2')))).signal(ackSignal, { by: 'ui-operator', note: 'looking' });
    await eventually(
      async () => (await stack.pool.query('SELECT status, acknowledged_by FROM alert_incidents WHERE id = $1', [incidentIdFor(key('e2'))])).rows[0],
      (r) => r?.status === 'acknowledged',
      10_000,
      'acknowledged in the history',
    );
    await sleep(4500); // two escalation delays
    expect(kinds('e2')).toEqual(['opened:emergency']);
    expect(countsOf(rx, key('e2')).push).toBe(0);
  });
});

describe('dedup across restarts', () => {
  it('notifies once per level across a worker restart and a Temporal server restart', async () => {
    await send('d1', 16); // 80%: warning
    await eventually(async () => kinds('d1'), (k) => k.length === 1, 30_000, 'warning');

    await stack.stopWorker();
    await stack.startWorker();
    await send('d1', 1); // 85%: still warning
    await eventually(() => status('user:d1'), (s) => s.counters.eventsCounted === 17, 30_000, 'counted after the worker restart');

    await stack.stopWorker();
    await server.restart();
    await stack.startWorker();
    await eventually(() => status('user:d1'), (s) => s.counters.eventsCounted === 17, 60_000, 'the budget workflow is back after the server restart');
    await send('d1', 1); // 90%: still warning
    await eventually(() => status('user:d1'), (s) => s.counters.eventsCounted === 18, 30_000, 'counted after the server restart');
    await sleep(1500);
    expect(kinds('d1')).toEqual(['opened:warning']);

    await send('d1', 1); // 95%: critical, once
    await eventually(async () => kinds('d1'), (k) => k.length === 2, 30_000, 'critical');
    await sleep(1500);
    expect(kinds('d1')).toEqual(['opened:warning', 'raised:critical']);
    expect(countsOf(rx, key('d1'))).toMatchObject({ mail: 2, hook: 2, slack: 1 });
    const notified = (await incidentEvents(stack.pool, key('d1'))).filter((e) => e.kind === 'notified');
    expect(notified.map((e) => e.level)).toEqual(['warning', 'critical']);
  });
});

describe('costguard alerts (the built CLI)', () => {
  const BIN = join(projectRoot(), 'dist/src/cli/main.js');
  async function costguard(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build first`);
    const env = {
      ...process.env,
      DATABASE_URL: stack.db.url,
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_TASK_QUEUE: stack.taskQueue,
      LOG_LEVEL: 'silent',
    };
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  it('lists open incidents, shows one with its history, and acknowledges it', async () => {
    const id = incidentIdFor(key('e1'));
    const list = await costguard(['alerts', 'list', '--json']);
    expect(list.code).toBe(0);
    const incidents = (JSON.parse(list.stdout) as { incidents: { id: string; level: string; status: string }[] }).incidents;
    expect(incidents.find((i) => i.id === id)).toMatchObject({ level: 'emergency', status: 'open' });
    const text = await costguard(['alerts', 'list']);
    expect(text.stdout).toMatch(new RegExp(`^${id}\\s+EMERGENCY\\s+open`, 'm'));

    const ack = await costguard(['alerts', 'ack', id, '--by', 'cli-oncall', '--note', 'rolling back the deploy', '--json']);
    expect(ack.code).toBe(0);
    expect(JSON.parse(ack.stdout)).toMatchObject({ incidentId: id, status: 'acknowledged', acknowledged: { by: 'cli-oncall', note: 'rolling back the deploy' } });

    const show = await costguard(['alerts', 'show', id]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('acknowledged by cli-oncall');
    expect(show.stdout).toMatch(/escalated|notified/);
  });

  it('exits 2 for a malformed id and 3 for an unknown one', async () => {
    expect((await costguard(['alerts', 'ack', 'nope', '--by', 'x'])).code).toBe(2);
    const unknown = await costguard(['alerts', 'ack', '0123456789ab', '--by', 'x']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('no incident 0123456789ab');
  });
});
