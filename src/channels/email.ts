/**
 * Email over SMTP with nodemailer: subject `[LEVEL] title`, a plain-text part and an HTML part (a
 * table of the fields, or the report's own page when `notification.html` is set).
 */
import { createTransport } from 'nodemailer';
import type { Notification } from '../domain/notification.js';
import type { EmailChannelConfig } from './config.js';
import { ChannelDeliveryError } from './errors.js';
import { LEVEL_COLOURS, levelTitle, plainText } from './format.js';
import type { SendContext, SendReport } from './types.js';

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

function alertHtml(n: Notification): string {
  const rows = n.fields
    .map((f) => `<tr><th style="text-align:left;padding:4px 12px 4px 0">${escapeHtml(f.label)}</th><td style="padding:4px 0">${escapeHtml(f.value)}</td></tr>`)
    .join('');
  return [
    '<!doctype html><html><body style="font-family:sans-serif">',
    `<h2 style="border-left:6px solid ${LEVEL_COLOURS[n.level]};padding-left:8px">${escapeHtml(levelTitle(n))}</h2>`,
    `<p>${escapeHtml(n.summary)}</p>`,
    rows ? `<table style="border-collapse:collapse">${rows}</table>` : '',
    n.ackHint ? `<p>Acknowledge: <code>${escapeHtml(n.ackHint)}</code></p>` : '',
    `<p style="color:#666">Occurred at ${escapeHtml(n.occurredAt)}</p>`,
    '</body></html>',
  ].join('');
}

export function renderEmail(n: Notification): RenderedEmail {
  return { subject: levelTitle(n), text: plainText(n), html: n.html ?? alertHtml(n) };
}

/** SMTP replies that mean the credentials are wrong: 530 auth required, 534 mechanism too weak, 535 invalid, 538. */
const AUTH_REPLIES = new Set([530, 534, 535, 538]);

/**
 * Classifies a nodemailer error. Permanent: bad credentials and 5xx replies (a rejected recipient
 * or message stays rejected). Retryable: 4xx replies (temporary) and connection-level failures.
 */
export function classifySmtpError(err: unknown): ChannelDeliveryError {
  const e = err as { code?: unknown; responseCode?: unknown; command?: unknown };
  const code = typeof e.code === 'string' ? e.code : 'unknown';
  const reply = typeof e.responseCode === 'number' ? e.responseCode : null;
  const command = typeof e.command === 'string' ? ` to ${e.command.split(' ')[0]}` : '';
  if (code === 'EAUTH' || (reply !== null && AUTH_REPLIES.has(reply))) {
    return new ChannelDeliveryError(`SMTP server refused the credentials (${reply ?? code})`, { retryable: false, status: reply });
  }
  if (reply !== null) {
    return new ChannelDeliveryError(`SMTP server answered ${reply}${command} (${code})`, { retryable: reply < 500, status: reply });
  }
  if (code === 'EENVELOPE') return new ChannelDeliveryError('SMTP envelope rejected (EENVELOPE)', { retryable: false });
  return new ChannelDeliveryError(`SMTP connection failed (${code})`, { retryable: true });
}

export async function sendEmail(channel: EmailChannelConfig, n: Notification, ctx: SendContext): Promise<SendReport> {
  const transport = createTransport({
    host: channel.smtp.host,
    port: channel.smtp.port,
    secure: channel.smtp.secure,
    ...(channel.smtp.auth ? { auth: { user: channel.smtp.auth.user, pass: channel.smtp.auth.pass } } : {}),
    connectionTimeout: ctx.timeoutMs,
    greetingTimeout: ctx.timeoutMs,
    socketTimeout: ctx.timeoutMs,
  });
  const { subject, text, html } = renderEmail(n);
  try {
    const info = await transport.sendMail({ from: channel.from, to: channel.to, subject, text, html });
    const reply = /^(\d{3})/.exec(String(info.response ?? ''));
    return { responseStatus: reply ? Number(reply[1]) : null };
  } catch (err) {
    throw classifySmtpError(err);
  } finally {
    transport.close();
  }
}
