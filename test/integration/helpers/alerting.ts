/**
 * Alerting tests: the five local receivers, the `channels:` YAML that points at them, and helpers
 * to count what each receiver got for one incident.
 */
import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { incidentIdFor } from '../../../activities/alerts.js';
import { type Stack, sendUsage } from './stack.js';
import {
  type HttpReceiver,
  type ReceivedEmail,
  type ReceivedPush,
  type ReceivedSlackMessage,
  type ReceivedSms,
  type ReceivedWebhook,
  type Receiver,
  startNtfyReceiver,
  startSlackReceiver,
  startSmtpReceiver,
  startTwilioReceiver,
  startWebhookReceiver,
} from './receivers.js';

export interface Receivers {
  mail: Receiver<ReceivedEmail>;
  slack: HttpReceiver<ReceivedSlackMessage>;
  sms: HttpReceiver<ReceivedSms>;
  push: HttpReceiver<ReceivedPush>;
  hook: HttpReceiver<ReceivedWebhook>;
  /** The `channels:` block of a config file naming them mail, slack, sms, push and hook. */
  channelsYaml: string;
  close(): Promise<void>;
}

export async function startReceivers(): Promise<Receivers> {
  const smtpPass = `pass-${randomBytes(6).toString('hex')}`;
  const sid = `AC${randomBytes(16).toString('hex')}`;
  const token = `tok-${randomBytes(8).toString('hex')}`;
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const [mail, slack, sms, push, hook] = await Promise.all([
    startSmtpReceiver({ user: 'costguard', pass: smtpPass }),
    startSlackReceiver(),
    startTwilioReceiver({ accountSid: sid, authToken: token }),
    startNtfyReceiver(),
    startWebhookReceiver({ secret }),
  ]);
  const channelsYaml = `channels:
  mail:
    type: email
    smtp: { host: 127.0.0.1, port: ${mail.port}, auth: { user: costguard, pass: "${smtpPass}" } }
    from: "Cost Guard <alerts@costguard.test>"
    to: [ops@costguard.test]
  slack: { type: slack, webhookUrl: "${slack.url}" }
  sms: { type: twilio, accountSid: ${sid}, authToken: "${token}", from: "+14155550100", to: ["+14155550101"], baseUrl: "${sms.url}" }
  push: { type: ntfy, url: "${push.url}", topic: costguard-ops }
  hook: { type: webhook, url: "${hook.url}", secret: "${secret}" }
`;
  return {
    mail,
    slack,
    sms,
    push,
    hook,
    channelsYaml,
    async close() {
      await Promise.all([mail, slack, sms, push, hook].map((r) => r.close()));
    },
  };
}

/** The webhook payloads of one incident (by its condition key), in arrival order. */
export function hookMessagesOf(r: Receivers, conditionKey: string): { kind: string; level: string; notificationId: string; title: string }[] {
  const prefix = `alert/${incidentIdFor(conditionKey)}/`;
  return r.hook.received
    .map((m) => m.payload as { sourceId: string; kind: string; level: string; notificationId: string; title: string })
    .filter((p) => p.sourceId.startsWith(prefix));
}

/** Messages per channel for one incident, matched by the incident id each message carries. */
export function countsOf(r: Receivers, conditionKey: string): Record<'mail' | 'slack' | 'sms' | 'push' | 'hook', number> {
  const id = incidentIdFor(conditionKey);
  return {
    mail: r.mail.received.filter((m) => (m.parsed.text ?? '').includes(id)).length,
    slack: r.slack.received.filter((m) => JSON.stringify(m).includes(id)).length,
    sms: r.sms.received.filter((m) => m.body.includes(id)).length,
    push: r.push.received.filter((m) => m.message.includes(id) || m.title.includes(id)).length,
    hook: hookMessagesOf(r, conditionKey).length,
  };
}

/** The incident's history rows (kind and level), oldest first. */
export async function incidentEvents(pool: Pool, conditionKey: string): Promise<{ kind: string; level: string }[]> {
  const r = await pool.query<{ kind: string; level: string }>('SELECT kind, level FROM alert_events WHERE incident_id = $1 ORDER BY id', [incidentIdFor(conditionKey)]);
  return r.rows;
}

/**
 * Config shared by the alerting tests: a $1 daily budget per user (a system budget never reached),
 * one flat-priced model (each event of `flatEvents` costs exactly $0.05) and a fast ledger poll.
 */
export const FLAT_PRICED_YAML = `budgets:
  - { scope: system, period: day, amount: "100000", thresholds: { warning: 0.8, critical: 0.95 } }
  - { scope: user, period: day, amount: "1", thresholds: { warning: 0.8, critical: 0.95 } }
pricing:
  overrides:
    - { provider: testco, model: flat-1, inputPer1k: "0.1", outputPer1k: "0" }
budgetWorkflow:
  ledgerPollMs: 500
`;

let seq = 0;
/** `n` events of the flat-priced model ($0.05 each) for `userId`, with fresh request ids. */
export function flatEvents(userId: string, n: number, over: Record<string, unknown> = {}) {
  return Array.from({ length: n }, () => ({
    requestId: `${userId}-${seq++}`,
    occurredAt: new Date().toISOString(),
    provider: 'testco',
    model: 'flat-1',
    userId,
    usage: { inputTokens: 500, outputTokens: 0 },
    ...over,
  }));
}

/** Signals `n` flat-priced events of `userId` to its budget workflow, as one batch. */
export function sendFlat(stack: Pick<Stack, 'client' | 'taskQueue'>, userId: string, n: number, over: Record<string, unknown> = {}): Promise<void> {
  return sendUsage(stack, `user:${userId}`, { batchId: `b-${userId}-${seq++}`, events: flatEvents(userId, n, over) });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
