/**
 * Generic webhooks signed as Standard Webhooks (standardwebhooks.com) with its reference library:
 * the body is the notification as JSON with a `type`; `webhook-id` is `<sourceId>/<notificationId>`,
 * the same on every retry, so a consumer can drop a delivery it already processed.
 */
import { Webhook } from 'standardwebhooks';
import type { Notification } from '../domain/notification.js';
import type { WebhookChannelConfig } from './config.js';
import { post } from './http.js';
import type { SendContext, SendReport } from './types.js';

export type WebhookPayload = Notification & { type: string };

/** `costguard.report` for reports, `costguard.alert.<kind>` for alert notifications. */
export function webhookEventType(n: Pick<Notification, 'kind'>): string {
  return n.kind === 'report' ? 'costguard.report' : `costguard.alert.${n.kind}`;
}

export function renderWebhookPayload(n: Notification): WebhookPayload {
  return { type: webhookEventType(n), ...n };
}

export function webhookMessageId(n: Pick<Notification, 'sourceId' | 'notificationId'>): string {
  return `${n.sourceId}/${n.notificationId}`;
}

/** The three Standard Webhooks headers for `body`, signed at `nowMs`. */
export function signWebhook(secret: string, messageId: string, nowMs: number, body: string): Record<string, string> {
  const timestamp = new Date(Math.floor(nowMs / 1000) * 1000);
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(timestamp.getTime() / 1000),
    'webhook-signature': new Webhook(secret).sign(messageId, timestamp, body),
  };
}

export async function sendWebhook(channel: WebhookChannelConfig, n: Notification, ctx: SendContext): Promise<SendReport> {
  const body = JSON.stringify(renderWebhookPayload(n));
  const res = await post(
    'webhook',
    channel.url,
    { headers: { ...channel.headers, 'content-type': 'application/json', ...signWebhook(channel.secret, webhookMessageId(n), ctx.now(), body) }, body },
    ctx.timeoutMs,
  );
  return { responseStatus: res.status };
}
