/** Small pure text helpers shared by the renderers. */
import type { AlertLevel, Notification } from '../domain/notification.js';

/** `[WARNING] Daily budget of user:alice at 95%`: the subject line every channel starts from. */
export function levelTitle(n: Pick<Notification, 'level' | 'title'>): string {
  return `[${n.level.toUpperCase()}] ${n.title}`;
}

/** Cuts `text` to at most `max` characters (code points), ending with an ellipsis when cut. */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, Math.max(0, max - 1)).join('')}…`;
}

/** Colours by level, as Slack attachments and the email header use them. */
export const LEVEL_COLOURS: Record<AlertLevel, string> = {
  info: '#439FE0',
  warning: '#FFA500',
  critical: '#E01E5A',
  emergency: '#8B0000',
};

/** The plain-text body: summary, one `label: value` line per field, how to acknowledge. */
export function plainText(n: Notification): string {
  const parts = [n.title, '', n.summary];
  if (n.fields.length > 0) parts.push('', ...n.fields.map((f) => `${f.label}: ${f.value}`));
  parts.push('');
  if (n.ackHint) parts.push(`Acknowledge: ${n.ackHint}`);
  parts.push(`Occurred at: ${n.occurredAt}`);
  return `${parts.join('\n')}\n`;
}
