/**
 * SMS through Twilio's Messages API: one POST per recipient, form-encoded, HTTP basic auth with the
 * Account SID and auth token. Each number reached is recorded before the next is tried, so a retry
 * after a partial failure texts only the numbers not yet reached.
 */
import type { Notification } from '../domain/notification.js';
import type { TwilioChannelConfig } from './config.js';
import { levelTitle, truncate } from './format.js';
import { post } from './http.js';
import type { SendContext, SendReport } from './types.js';

/** Two SMS segments of GSM-7 text; longer messages cost more and arrive split. */
export const SMS_MAX = 320;

/** `[CRITICAL] title — ack: costguard alerts ack ID`, the title shortened to keep the ack hint whole. */
export function renderSms(n: Notification): string {
  const ack = n.ackHint ? ` — ack: ${n.ackHint}` : '';
  const prefix = `[${n.level.toUpperCase()}] `;
  const room = SMS_MAX - Array.from(prefix).length - Array.from(ack).length;
  if (room < 10) return truncate(`${levelTitle(n)}${ack}`, SMS_MAX);
  return `${prefix}${truncate(n.title, room)}${ack}`;
}

/** Twilio's JSON error body: `{ code, message, more_info, status }`. */
export function describeTwilioError(body: string): string {
  try {
    const e = JSON.parse(body) as { code?: unknown; message?: unknown };
    if (typeof e.code === 'number' || typeof e.message === 'string') {
      return `Twilio error ${String(e.code ?? 'unknown')}${typeof e.message === 'string' ? ` (${e.message})` : ''}`;
    }
  } catch {
    // not JSON: fall through
  }
  return body.replace(/\s+/g, ' ').trim().slice(0, 200);
}

export async function sendTwilio(channel: TwilioChannelConfig, n: Notification, ctx: SendContext): Promise<SendReport> {
  const url = `${channel.baseUrl.replace(/\/+$/, '')}/2010-04-01/Accounts/${encodeURIComponent(channel.accountSid)}/Messages.json`;
  const authorization = `Basic ${Buffer.from(`${channel.accountSid}:${channel.authToken}`).toString('base64')}`;
  const text = renderSms(n);
  let responseStatus: number | null = null;
  for (const to of channel.to) {
    if (ctx.reached.has(to)) continue;
    const res = await post(
      'Twilio Messages API',
      url,
      {
        headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ To: to, From: channel.from, Body: text }).toString(),
      },
      ctx.timeoutMs,
      describeTwilioError,
    );
    responseStatus = res.status;
    await ctx.recipientReached(to);
  }
  return { responseStatus };
}
