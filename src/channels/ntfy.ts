/**
 * ntfy push notifications: POST the message to `{url}/{topic}` with its title, priority (1-5 by
 * level) and tags as headers, and a bearer token when the topic is protected.
 */
import type { AlertLevel, Notification } from '../domain/notification.js';
import type { NtfyChannelConfig } from './config.js';
import { levelTitle } from './format.js';
import { post } from './http.js';
import type { SendContext, SendReport } from './types.js';

/** ntfy tags that match an emoji shortcode are shown as that emoji before the title. */
const LEVEL_TAGS: Record<AlertLevel, string> = {
  info: 'information_source',
  warning: 'warning',
  critical: 'rotating_light',
  emergency: 'sos',
};

/**
 * HTTP header values must be Latin-1 (fetch refuses others): a title with other characters is sent
 * as an RFC 2047 encoded word, which ntfy decodes.
 */
export function encodeHeaderValue(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : `=?UTF-8?B?${Buffer.from(value, 'utf8').toString('base64')}?=`;
}

export function renderNtfy(n: Notification, priorities: Record<AlertLevel, number>): { headers: Record<string, string>; body: string } {
  const lines = [n.summary];
  if (n.fields.length > 0) lines.push('', ...n.fields.map((f) => `${f.label}: ${f.value}`));
  if (n.ackHint) lines.push('', `Acknowledge: ${n.ackHint}`);
  return {
    headers: {
      Title: encodeHeaderValue(levelTitle(n)),
      Priority: String(priorities[n.level]),
      Tags: [LEVEL_TAGS[n.level], 'costguard', n.kind].join(','),
    },
    body: lines.join('\n'),
  };
}

export async function sendNtfy(channel: NtfyChannelConfig, n: Notification, ctx: SendContext): Promise<SendReport> {
  const { headers, body } = renderNtfy(n, channel.priorities);
  const url = `${channel.url.replace(/\/+$/, '')}/${encodeURIComponent(channel.topic)}`;
  const res = await post(
    'ntfy',
    url,
    { headers: { ...headers, 'content-type': 'text/plain; charset=utf-8', ...(channel.token ? { authorization: `Bearer ${channel.token}` } : {}) }, body },
    ctx.timeoutMs,
  );
  return { responseStatus: res.status };
}
