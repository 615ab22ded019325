import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { ActivityFailure, ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode } from '@temporalio/worker';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeliveryOutcome, type DeliveryResult, createChannelActivities } from '../../activities/channels.js';
import { renderSlackMessage } from '../../src/channels/slack.js';
import { type Config, loadConfig } from '../../src/config/index.js';
import type { Notification } from '../../src/domain/notification.js';
import { REDACT_PATHS } from '../../src/lib/logger.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import {
  type HttpReceiver, type Receiver, type ReceivedEmail, type ReceivedPush, type ReceivedSlackMessage, type ReceivedSms, type ReceivedWebhook,
  startNtfyReceiver, startSlackReceiver, startSmtpReceiver, startTwilioReceiver, startWebhookReceiver,
} from './helpers/receivers.js';
import { quietTemporalRuntime } from './helpers/stack.js';
import { startTemporal } from './helpers/temporal.js';

const SMTP_USER = 'costguard';
const SMTP_PASS = `smtp-pass-${randomBytes(6).toString('hex')}`;
const TWILIO_SID = `AC${randomBytes(16).toString('hex')}`;
const TWILIO_TOKEN = `twilio-token-${randomBytes(8).toString('hex')}`;
const NTFY_TOKEN = `tk_${randomBytes(10).toString('hex')}`;
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const WRONG = `wrong-${randomBytes(6).toString('hex')}`;

let env: TestWorkflowEnvironment;
let db: TestDatabase;
let worker: Worker;
let running: Promise<void>;
let config: Config;
let smtp: Receiver<ReceivedEmail>;
let slack: HttpReceiver<ReceivedSlackMessage>;
let twilio: HttpReceiver<ReceivedSms>;
let ntfy: HttpReceiver<ReceivedPush>;
let webhook: HttpReceiver<ReceivedWebhook>;
const taskQueue = `channels-${randomBytes(4).toString('hex')}`;
const logLines: string[] = [];
const outcomes: { channel: string; type: string; outcome: DeliveryOutcome }[] = [];
const configDir = mkdtempSync(join(tmpdir(), 'cg-channels-'));

/** Everything secret this file configures: none may reach a log line or a failure message. */
const secrets = () => [SMTP_PASS, TWILIO_TOKEN, NTFY_TOKEN, WEBHOOK_SECRET, WRONG, new URL(slack.url).pathname];

beforeAll(async () => {
  quietTemporalRuntime();
  [smtp, slack, twilio, ntfy, webhook] = await Promise.all([
    startSmtpReceiver({ user: SMTP_USER, pass: SMTP_PASS }),
    startSlackReceiver(),
    startTwilioReceiver({ accountSid: TWILIO_SID, authToken: TWILIO_TOKEN }),
    startNtfyReceiver({ token: NTFY_TOKEN }),
    startWebhookReceiver({ secret: WEBHOOK_SECRET }),
  ]);
  const configPath = join(configDir, 'costguard.yaml');
  writeFileSync(
    configPath,
    `channels:
  mail:
    type: email
    smtp: { host: 127.0.0.1, port: ${smtp.port}, auth: { user: ${SMTP_USER}, pass: "\${SMTP_PASS}" } }
    from: "Cost Guard <alerts@costguard.test>"
    to: [ops@costguard.test, finance@costguard.test]
  mail-bad-password:
    type: email
    smtp: { host: 127.0.0.1, port: ${smtp.port}, auth: { user: ${SMTP_USER}, pass: "\${WRONG}" } }
    from: alerts@costguard.test
    to: [ops@costguard.test]
  slack: { type: slack, webhookUrl: "\${SLACK_WEBHOOK_URL}" }
  slack-bad-url: { type: slack, webhookUrl: "\${SLACK_WEBHOOK_URL}\${WRONG}" }
  slack-custom: { type: slack, webhookUrl: "\${SLACK_WEBHOOK_URL}", channel: "#cost-alerts", username: "Cost Guard", iconEmoji: ":moneybag:" }
  slack-icon-url: { type: slack, webhookUrl: "\${SLACK_WEBHOOK_URL}", channel: "@dana", iconUrl: "https://example.com/costguard.png" }
  sms:
    type: twilio
    accountSid: ${TWILIO_SID}
    authToken: "\${TWILIO_AUTH_TOKEN}"
    from: "+14155550100"
    to: ["+14155550101", "+14155550102"]
    baseUrl: ${twilio.url}
  sms-bad-token:
    type: twilio
    accountSid: ${TWILIO_SID}
    authToken: "\${WRONG}"
    from: "+14155550100"
    to: ["+14155550101"]
    baseUrl: ${twilio.url}
  push: { type: ntfy, url: "${ntfy.url}", topic: costguard-ops, token: "\${NTFY_TOKEN}" }
  hook: { type: webhook, url: "${webhook.url}", secret: "\${WEBHOOK_SECRET}", headers: { X-Team: platform } }
  hook-impatient: { type: webhook, url: "${webhook.url}", secret: "\${WEBHOOK_SECRET}", timeoutMs: 500 }
`,
  );
  const [temporal, database, workflowBundle] = await Promise.all([
    startTemporal(),
    createTestDatabase(),
    bundleWorkflowCode({
      workflowsPath: fileURLToPath(new URL('../fixtures/workflows/deliver-notification.ts', import.meta.url)),
      logger: { log: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined, trace: () => undefined },
    }),
  ]);
  env = temporal;
  db = database;
  config = loadConfig({
    DATABASE_URL: db.url,
    COSTGUARD_CONFIG: configPath,
    SMTP_PASS,
    WRONG,
    SLACK_WEBHOOK_URL: slack.url,
    TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
    NTFY_TOKEN,
    WEBHOOK_SECRET,
  });
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
  const activities = createChannelActivities({
    pool: db.pool,
    config,
    logger,
    clock: Date.now,
    onDelivery: (channel, type, outcome) => outcomes.push({ channel, type, outcome }),
  });
  worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle, activities });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
  await db?.drop();
  await Promise.all([smtp, slack, twilio, ntfy, webhook].map((r) => r?.close()));
  rmSync(configDir, { recursive: true, force: true });
});

let seq = 0;
function notification(over: Partial<Notification> = {}): Notification {
  seq++;
  return {
    sourceId: `alert:test-${seq}`,
    notificationId: 'opened-critical',
    kind: 'opened',
    level: 'critical',
    title: `Daily budget of user:alice at 96% (#${seq})`,
    summary: 'user:alice spent $9.60 of $10.00 today.',
    fields: [
      { label: 'Scope', value: 'user:alice' },
      { label: 'Spent', value: '$9.60' },
    ],
    ackHint: `costguard alerts ack test-${seq}`,
    occurredAt: '2026-11-28T15:00:00.000Z',
    ...over,
  };
}

function deliver(channel: string, n: Notification): Promise<DeliveryResult> {
  return env.client.workflow.execute('deliverOnce', { taskQueue, workflowId: `deliver-${randomBytes(6).toString('hex')}`, args: [{ channel, notification: n }] });
}

/** The activity failure a failed delivery workflow ends with. */
async function failureOf(channel: string, n: Notification): Promise<ApplicationFailure> {
  const err: unknown = await deliver(channel, n).then(
    () => expect.fail('expected the delivery to fail'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const activityFailure = (err as WorkflowFailedError).cause;
  expect(activityFailure).toBeInstanceOf(ActivityFailure);
  const cause = (activityFailure as ActivityFailure).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

interface Row {
  status: string;
  attempts: number;
  channel_type: string;
  level: string;
  kind: string;
  sent_at: Date | null;
  last_error: string | null;
  response_status: number | null;
  sent_recipients: string[];
}
async function row(n: Notification, channel: string): Promise<Row | undefined> {
  const r = await db.pool.query<Row>(
    `SELECT status, attempts, channel_type, level, kind, sent_at, last_error, response_status, sent_recipients
       FROM notification_deliveries WHERE source_id = $1 AND notification_id = $2 AND channel = $3`,
    [n.sourceId, n.notificationId, channel],
  );
  return r.rows[0];
}

const outcomesOf = (channel: string) => outcomes.filter((o) => o.channel === channel).map((o) => o.outcome);

describe('each channel delivers once, in its protocol', () => {
  it('email: authenticated SMTP, subject [LEVEL] title, plain text and an HTML table', async () => {
    const n = notification();
    const result = await deliver('mail', n);
    expect(result).toMatchObject({ channel: 'mail', status: 'sent', attempts: 1 });
    const [mail] = await smtp.waitFor(1);
    expect(smtp.received).toHaveLength(1);
    expect(mail!.user).toBe(SMTP_USER);
    expect(mail!.envelope).toEqual({ from: 'alerts@costguard.test', to: ['ops@costguard.test', 'finance@costguard.test'] });
    expect(mail!.parsed.subject).toBe(`[CRITICAL] ${n.title}`);
    expect(mail!.parsed.from?.text).toBe('"Cost Guard" <alerts@costguard.test>');
    expect(mail!.parsed.text).toContain('Spent: $9.60');
    expect(mail!.parsed.text).toContain(`Acknowledge: ${n.ackHint}`);
    expect(mail!.parsed.html).toContain('<th style="text-align:left;padding:4px 12px 4px 0">Spent</th><td style="padding:4px 0">$9.60</td>');
    expect(await row(n, 'mail')).toMatchObject({ status: 'sent', attempts: 1, channel_type: 'email', level: 'critical', kind: 'opened', response_status: 250, last_error: null });
    expect(new Date(result.deliveredAt).getTime()).toBe((await row(n, 'mail'))!.sent_at!.getTime());
  });

  it('email: a report\'s HTML page is the HTML body', async () => {
    const before = smtp.received.length;
    const n = notification({ kind: 'report', level: 'info', ackHint: undefined, html: '<html><body><h1>Daily cost report</h1><svg width="10"></svg></body></html>' });
    await deliver('mail', n);
    const mails = await smtp.waitFor(before + 1);
    expect(mails[before]!.parsed.subject).toBe(`[INFO] ${n.title}`);
    expect(mails[before]!.parsed.html).toBe('<html><body><h1>Daily cost report</h1><svg width="10"></svg></body></html>');
  });

  it('slack: Block Kit with a text fallback and the level colour', async () => {
    const n = notification({ level: 'warning' });
    expect(await deliver('slack', n)).toMatchObject({ status: 'sent', attempts: 1 });
    const [msg] = await slack.waitFor(1);
    expect(slack.received).toHaveLength(1);
    expect(msg).toEqual(JSON.parse(JSON.stringify(renderSlackMessage(n))));
    expect(msg!.attachments?.[0]?.color).toBe('#FFA500');
    expect(await row(n, 'slack')).toMatchObject({ status: 'sent', attempts: 1, response_status: 200 });
  });

  it('slack: the channel, username and icon overrides are in the payload the webhook accepts', async () => {
    const before = slack.received.length;
    const n = notification({ level: 'critical' });
    expect(await deliver('slack-custom', n)).toMatchObject({ status: 'sent', attempts: 1 });
    const msg = (await slack.waitFor(before + 1))[before]!;
    expect(msg).toMatchObject({ channel: '#cost-alerts', username: 'Cost Guard', icon_emoji: ':moneybag:', text: `[CRITICAL] ${n.title}` });
    expect(msg.icon_url).toBeUndefined();
    const n2 = notification({ level: 'warning' });
    expect(await deliver('slack-icon-url', n2)).toMatchObject({ status: 'sent', attempts: 1 });
    const msg2 = (await slack.waitFor(before + 2))[before + 1]!;
    expect(msg2).toMatchObject({ channel: '@dana', icon_url: 'https://example.com/costguard.png' });
    expect(msg2.username).toBeUndefined();
    expect(slack.rejected).toEqual([]);
  });

  it('twilio: one form POST per number, basic auth, short text with the ack hint', async () => {
    const n = notification();
    expect(await deliver('sms', n)).toMatchObject({ status: 'sent', attempts: 1 });
    const texts = await twilio.waitFor(2);
    expect(texts).toHaveLength(2);
    expect(texts.map((t) => [t.accountSid, t.from, t.to, t.body])).toEqual([
      [TWILIO_SID, '+14155550100', '+14155550101', `[CRITICAL] ${n.title} — ack: ${n.ackHint}`],
      [TWILIO_SID, '+14155550100', '+14155550102', `[CRITICAL] ${n.title} — ack: ${n.ackHint}`],
    ]);
    expect(await row(n, 'sms')).toMatchObject({ status: 'sent', attempts: 1, response_status: 201, sent_recipients: ['+14155550101', '+14155550102'] });
  });

  it('ntfy: bearer token, title, priority by level, tags', async () => {
    const n = notification({ level: 'emergency', title: 'System budget — 120%' });
    expect(await deliver('push', n)).toMatchObject({ status: 'sent', attempts: 1 });
    const [push] = await ntfy.waitFor(1);
    expect(push).toEqual({
      topic: 'costguard-ops',
      title: '[EMERGENCY] System budget — 120%',
      priority: 5,
      tags: ['sos', 'costguard', 'opened'],
      message: `user:alice spent $9.60 of $10.00 today.\n\nScope: user:alice\nSpent: $9.60\n\nAcknowledge: ${n.ackHint}`,
    });
  });

  it('webhook: Standard Webhooks signature, stable id, the notification with its type', async () => {
    const before = webhook.received.length;
    const n = notification({ kind: 'escalated', notificationId: 'escalated-1' });
    expect(await deliver('hook', n)).toMatchObject({ status: 'sent', attempts: 1 });
    const hooks = await webhook.waitFor(before + 1);
    const hook = hooks[before]!;
    expect(hook.id).toBe(`${n.sourceId}/escalated-1`);
    expect(hook.payload).toEqual({ type: 'costguard.alert.escalated', ...n });
    expect(hook.headers['x-team']).toBe('platform');
    expect(await row(n, 'hook')).toMatchObject({ status: 'sent', attempts: 1, response_status: 204 });
  });

  it('no receiver refused any of these requests', () => {
    for (const r of [smtp, slack, twilio, ntfy, webhook]) expect(r.rejected).toEqual([]);
  });
});

describe('retries and the delivery log', () => {
  it('a receiver failing 500 twice then accepting gets exactly one message; the log says sent after 3 attempts', async () => {
    const accepted = webhook.received.length;
    const seen = webhook.requests;
    webhook.failNext(2, 500);
    const n = notification();
    const result = await deliver('hook', n);
    expect(result).toMatchObject({ channel: 'hook', status: 'sent', attempts: 3 });
    expect(webhook.requests - seen).toBe(3);
    expect(webhook.received.length - accepted).toBe(1);
    expect(webhook.received.filter((h) => h.id === `${n.sourceId}/${n.notificationId}`)).toHaveLength(1);
    expect(await row(n, 'hook')).toMatchObject({ status: 'sent', attempts: 3, last_error: 'webhook answered HTTP 500: unavailable', response_status: 204 });
    expect(outcomesOf('hook').slice(-3)).toEqual(['retryable_error', 'retryable_error', 'sent']);
  });

  it('a receiver that does not answer times out, and the retry delivers', async () => {
    const accepted = webhook.received.length;
    webhook.stallNext(1);
    const n = notification();
    expect(await deliver('hook-impatient', n)).toMatchObject({ status: 'sent', attempts: 2 });
    expect(webhook.received.length - accepted).toBe(1);
    expect(await row(n, 'hook-impatient')).toMatchObject({ status: 'sent', attempts: 2, last_error: 'webhook: no answer within 500 ms' });
  });

  it('delivering the same notification again returns already_sent with the first time, and sends nothing', async () => {
    const n = notification();
    const first = await deliver('slack', n);
    const accepted = slack.received.length;
    const seen = slack.requests;
    const again = await deliver('slack', n);
    expect(again).toEqual({ channel: 'slack', status: 'already_sent', deliveredAt: first.deliveredAt, attempts: 1 });
    expect(slack.requests).toBe(seen);
    expect(slack.received).toHaveLength(accepted);
    expect(outcomesOf('slack').at(-1)).toBe('already_sent');
  });

  it('concurrent attempts for the same notification and channel send once', async () => {
    const direct = createChannelActivities({ pool: db.pool, config, logger: pino({ level: 'silent' }), clock: Date.now });
    const n = notification();
    const accepted = ntfy.received.length;
    const results = await Promise.all([1, 2, 3].map(() => direct.deliverNotification({ channel: 'push', notification: n })));
    expect(results.map((r) => r.status).sort()).toEqual(['already_sent', 'already_sent', 'sent']);
    expect(new Set(results.map((r) => r.deliveredAt)).size).toBe(1);
    expect(ntfy.received.length - accepted).toBe(1);
  });

  it('an SMS retry after a partial failure texts only the numbers not reached yet', async () => {
    const n = notification();
    // The first attempt reached the first number, then failed: the log remembers the number.
    await db.pool.query(
      `INSERT INTO notification_deliveries (source_id, notification_id, channel, channel_type, level, kind, status, attempts,
         sent_recipients, first_attempt_at, last_attempt_at)
       VALUES ($1, $2, 'sms', 'twilio', 'critical', 'opened', 'sending', 1, ARRAY['+14155550101'], now(), now())`,
      [n.sourceId, n.notificationId],
    );
    const accepted = twilio.received.length;
    expect(await deliver('sms', n)).toMatchObject({ status: 'sent', attempts: 2 });
    expect(twilio.received.slice(accepted).map((t) => t.to)).toEqual(['+14155550102']);
  });
});

describe('permanent failures stop after one attempt as ChannelConfigError', () => {
  it('twilio with a bad auth token: Twilio error 20003, row failed', async () => {
    const seen = twilio.requests;
    const rejected = twilio.rejected.length;
    const n = notification();
    const failure = await failureOf('sms-bad-token', n);
    expect(failure.type).toBe('ChannelConfigError');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toBe('Channel "sms-bad-token" (twilio) failed on attempt 1: Twilio Messages API answered HTTP 401: Twilio error 20003 (Authenticate)');
    expect(twilio.requests - seen).toBe(1);
    expect(twilio.rejected.slice(rejected)).toEqual([{ status: 401, reason: 'bad credentials' }]);
    expect(await row(n, 'sms-bad-token')).toMatchObject({ status: 'failed', attempts: 1, response_status: 401, sent_at: null });
    expect(outcomesOf('sms-bad-token')).toEqual(['config_error']);
  });

  it('slack with a wrong webhook URL: 404 no_service, the URL never in the message', async () => {
    const seen = slack.requests;
    const n = notification();
    const failure = await failureOf('slack-bad-url', n);
    expect(failure.type).toBe('ChannelConfigError');
    expect(failure.message).toBe('Channel "slack-bad-url" (slack) failed on attempt 1: Slack webhook answered HTTP 404: no_service');
    expect(slack.requests - seen).toBe(1);
    expect(await row(n, 'slack-bad-url')).toMatchObject({ status: 'failed', attempts: 1, response_status: 404, last_error: 'Slack webhook answered HTTP 404: no_service' });
  });

  it('SMTP with a bad password: 535, not retried', async () => {
    const rejected = smtp.rejected.length;
    const accepted = smtp.received.length;
    const n = notification();
    const failure = await failureOf('mail-bad-password', n);
    expect(failure.type).toBe('ChannelConfigError');
    expect(failure.message).toBe('Channel "mail-bad-password" (email) failed on attempt 1: SMTP server refused the credentials (535)');
    expect(smtp.rejected.slice(rejected)).toEqual([{ status: 535, reason: `bad credentials for user ${SMTP_USER}` }]);
    expect(smtp.received).toHaveLength(accepted);
    expect(await row(n, 'mail-bad-password')).toMatchObject({ status: 'failed', attempts: 1, response_status: 535 });
  });

  it('an unknown channel name', async () => {
    const n = notification();
    const failure = await failureOf('pager', n);
    expect(failure.type).toBe('ChannelConfigError');
    expect(failure.message).toBe(
      'Channel "pager" is not configured: expected it under `channels:` in the config file (configured: mail, mail-bad-password, slack, slack-bad-url, slack-custom, slack-icon-url, sms, sms-bad-token, push, hook, hook-impatient)',
    );
    expect(await row(n, 'pager')).toBeUndefined();
  });
});

describe('secrets', () => {
  it('never appear in the logs or the delivery log; every outcome was logged with its keys', async () => {
    expect(logLines.length).toBeGreaterThan(10);
    const all = logLines.join('\n');
    for (const secret of secrets()) expect(all).not.toContain(secret);
    const errors = await db.pool.query<{ text: string }>(`SELECT string_agg(coalesce(last_error, ''), '\n') AS text FROM notification_deliveries`);
    for (const secret of secrets()) expect(errors.rows[0]!.text).not.toContain(secret);
    const entries = logLines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const failed = entries.find((e) => e.channel === 'sms-bad-token');
    expect(failed).toMatchObject({ channelType: 'twilio', outcome: 'config_error', attempts: 1, notificationId: 'opened-critical' });
    expect(entries.filter((e) => e.outcome === 'sent').length).toBeGreaterThanOrEqual(8);
  });
});
