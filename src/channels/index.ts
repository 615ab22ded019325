/**
 * Sends one notification to one configured channel, by type. The delivery log, retries and
 * failure classes are the activity's (activities/channels.ts); senders only send and classify.
 */
import type { Notification } from '../domain/notification.js';
import type { ChannelConfig } from './config.js';
import { sendEmail } from './email.js';
import { sendNtfy } from './ntfy.js';
import { sendSlack } from './slack.js';
import { sendTwilio } from './twilio.js';
import type { SendContext, SendReport } from './types.js';
import { sendWebhook } from './webhook.js';

export function sendToChannel(channel: ChannelConfig, n: Notification, ctx: SendContext): Promise<SendReport> {
  switch (channel.type) {
    case 'email':
      return sendEmail(channel, n, ctx);
    case 'slack':
      return sendSlack(channel, n, ctx);
    case 'twilio':
      return sendTwilio(channel, n, ctx);
    case 'ntfy':
      return sendNtfy(channel, n, ctx);
    case 'webhook':
      return sendWebhook(channel, n, ctx);
  }
}

export { ChannelDeliveryError, scrubSecrets } from './errors.js';
export type { SendContext, SendReport } from './types.js';
