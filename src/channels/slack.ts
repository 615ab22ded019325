/**
 * Slack incoming webhooks: a Block Kit message (header; then, beside a bar coloured by level, the
 * summary, the fields and how to acknowledge) with a plain `text` fallback for notifications, and
 * the channel's optional `channel`, `username` and icon overrides.
 */
import type { Notification } from '../domain/notification.js';
import type { SlackChannelConfig } from './config.js';
import { LEVEL_COLOURS, levelTitle, truncate } from './format.js';
import { post } from './http.js';
import type { SendContext, SendReport } from './types.js';

type Text = { type: 'plain_text' | 'mrkdwn'; text: string; emoji?: boolean };
export type SlackBlock =
  | { type: 'header'; text: Text }
  | { type: 'section'; text?: Text; fields?: Text[] }
  | { type: 'context'; elements: Text[] };

export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
  attachments: { color: string; blocks: SlackBlock[] }[];
  /** The channel's overrides (config `channel`, `username`, `iconEmoji`, `iconUrl`), when set. */
  channel?: string;
  username?: string;
  icon_emoji?: string;
  icon_url?: string;
}

/** The payload fields a Slack channel's configuration overrides. */
export type SlackOverrides = Pick<SlackChannelConfig, 'channel' | 'username' | 'iconEmoji' | 'iconUrl'>;

/** Slack's documented limits: header text 150, section text 3000, 10 fields of 2000 each. */
const HEADER_MAX = 150;
const SECTION_MAX = 3000;
const FIELDS_PER_SECTION = 10;
const FIELD_MAX = 2000;

/** mrkdwn treats &, < and > as control characters: escape them as Slack documents. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function renderSlackMessage(n: Notification, overrides: SlackOverrides = {}): SlackMessage {
  const details: SlackBlock[] = [{ type: 'section', text: { type: 'mrkdwn', text: truncate(escapeMrkdwn(n.summary), SECTION_MAX) } }];
  for (let i = 0; i < n.fields.length; i += FIELDS_PER_SECTION) {
    details.push({
      type: 'section',
      fields: n.fields.slice(i, i + FIELDS_PER_SECTION).map((f) => ({
        type: 'mrkdwn' as const,
        text: truncate(`*${escapeMrkdwn(f.label)}*\n${escapeMrkdwn(f.value)}`, FIELD_MAX),
      })),
    });
  }
  const context: Text[] = [];
  if (n.ackHint) context.push({ type: 'mrkdwn', text: `Acknowledge: \`${escapeMrkdwn(n.ackHint)}\`` });
  context.push({ type: 'mrkdwn', text: `${n.level.toUpperCase()} · ${n.kind} · ${n.occurredAt}` });
  details.push({ type: 'context', elements: context });
  return {
    text: levelTitle(n),
    blocks: [{ type: 'header', text: { type: 'plain_text', text: truncate(levelTitle(n), HEADER_MAX), emoji: true } }],
    attachments: [{ color: LEVEL_COLOURS[n.level], blocks: details }],
    ...(overrides.channel !== undefined ? { channel: overrides.channel } : {}),
    ...(overrides.username !== undefined ? { username: overrides.username } : {}),
    ...(overrides.iconEmoji !== undefined ? { icon_emoji: overrides.iconEmoji } : {}),
    ...(overrides.iconUrl !== undefined ? { icon_url: overrides.iconUrl } : {}),
  };
}

export async function sendSlack(channel: SlackChannelConfig, n: Notification, ctx: SendContext): Promise<SendReport> {
  const res = await post(
    'Slack webhook',
    channel.webhookUrl,
    { headers: { 'content-type': 'application/json' }, body: JSON.stringify(renderSlackMessage(n, channel)) },
    ctx.timeoutMs,
  );
  return { responseStatus: res.status };
}
