import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { classifySmtpError, renderEmail } from '../../src/channels/email.js';
import { isRetryableStatus, scrubSecrets } from '../../src/channels/errors.js';
import { encodeHeaderValue, renderNtfy } from '../../src/channels/ntfy.js';
import { renderSlackMessage } from '../../src/channels/slack.js';
import { describeTwilioError, renderSms } from '../../src/channels/twilio.js';
import { renderWebhookPayload, signWebhook, webhookEventType, webhookMessageId } from '../../src/channels/webhook.js';
import type { Notification } from '../../src/domain/notification.js';

const alert: Notification = {
  sourceId: 'alert/user:alice/day/2026-11-28/cost',
  notificationId: 'opened-critical',
  kind: 'opened',
  level: 'critical',
  title: 'Daily budget of user:alice at 96%',
  summary: 'user:alice spent $9.60 of $10.00 today (UTC) & <still> counting.',
  fields: [
    { label: 'Scope', value: 'user:alice' },
    { label: 'Spent', value: '$9.60' },
  ],
  ackHint: 'costguard alerts ack a1b2',
  occurredAt: '2026-11-28T15:00:00.000Z',
};

describe('email', () => {
  it('renders subject, plain text and an HTML table with escaped values', () => {
    expect(renderEmail(alert)).toEqual({
      subject: '[CRITICAL] Daily budget of user:alice at 96%',
      text:
        'Daily budget of user:alice at 96%\n\nuser:alice spent $9.60 of $10.00 today (UTC) & <still> counting.\n\nScope: user:alice\nSpent: $9.60\n\n' +
        'Acknowledge: costguard alerts ack a1b2\nOccurred at: 2026-11-28T15:00:00.000Z\n',
      html:
        '<!doctype html><html><body style="font-family:sans-serif">' +
        '<h2 style="border-left:6px solid #E01E5A;padding-left:8px">[CRITICAL] Daily budget of user:alice at 96%</h2>' +
        '<p>user:alice spent $9.60 of $10.00 today (UTC) &amp; &lt;still&gt; counting.</p>' +
        '<table style="border-collapse:collapse">' +
        '<tr><th style="text-align:left;padding:4px 12px 4px 0">Scope</th><td style="padding:4px 0">user:alice</td></tr>' +
        '<tr><th style="text-align:left;padding:4px 12px 4px 0">Spent</th><td style="padding:4px 0">$9.60</td></tr></table>' +
        '<p>Acknowledge: <code>costguard alerts ack a1b2</code></p>' +
        '<p style="color:#666">Occurred at 2026-11-28T15:00:00.000Z</p></body></html>',
    });
  });

  it('uses a report\'s own HTML page as the HTML body', () => {
    const report: Notification = { ...alert, kind: 'report', level: 'info', fields: [], ackHint: undefined, html: '<html><svg/></html>' };
    const email = renderEmail(report);
    expect(email.subject).toBe('[INFO] Daily budget of user:alice at 96%');
    expect(email.html).toBe('<html><svg/></html>');
    expect(email.text).not.toContain('Acknowledge');
  });

  it('classifies SMTP failures: credentials and 5xx are permanent, 4xx and connections retry', () => {
    const cases: [object, boolean, number | null, string][] = [
      [{ code: 'EAUTH', responseCode: 535, command: 'AUTH PLAIN' }, false, 535, 'SMTP server refused the credentials (535)'],
      [{ code: 'EENVELOPE', responseCode: 550, command: 'RCPT TO' }, false, 550, 'SMTP server answered 550 to RCPT (EENVELOPE)'],
      [{ code: 'EMESSAGE', responseCode: 451, command: 'DATA' }, true, 451, 'SMTP server answered 451 to DATA (EMESSAGE)'],
      [{ code: 'ECONNECTION' }, true, null, 'SMTP connection failed (ECONNECTION)'],
      [{ code: 'ETIMEDOUT' }, true, null, 'SMTP connection failed (ETIMEDOUT)'],
    ];
    for (const [err, retryable, status, message] of cases) {
      expect(classifySmtpError(Object.assign(new Error('x'), err))).toMatchObject({ retryable, status, message });
    }
  });
});

describe('slack', () => {
  it('renders a header, then beside a bar coloured by level: summary, fields and the ack hint', () => {
    expect(renderSlackMessage(alert)).toEqual({
      text: '[CRITICAL] Daily budget of user:alice at 96%',
      blocks: [{ type: 'header', text: { type: 'plain_text', text: '[CRITICAL] Daily budget of user:alice at 96%', emoji: true } }],
      attachments: [
        {
          color: '#E01E5A',
          blocks: [
            { type: 'section', text: { type: 'mrkdwn', text: 'user:alice spent $9.60 of $10.00 today (UTC) &amp; &lt;still&gt; counting.' } },
            { type: 'section', fields: [{ type: 'mrkdwn', text: '*Scope*\nuser:alice' }, { type: 'mrkdwn', text: '*Spent*\n$9.60' }] },
            {
              type: 'context',
              elements: [
                { type: 'mrkdwn', text: 'Acknowledge: `costguard alerts ack a1b2`' },
                { type: 'mrkdwn', text: 'CRITICAL · opened · 2026-11-28T15:00:00.000Z' },
              ],
            },
          ],
        },
      ],
    });
  });

  it('keeps within Slack limits: header 150 characters, 10 fields per section', () => {
    const many: Notification = { ...alert, level: 'warning', title: 'x'.repeat(200), fields: Array.from({ length: 12 }, (_, i) => ({ label: `f${i}`, value: String(i) })) };
    const msg = renderSlackMessage(many);
    const header = msg.blocks[0];
    expect(header?.type).toBe('header');
    expect(Array.from(header?.type === 'header' ? header.text.text : '')).toHaveLength(150);
    expect(msg.attachments[0]!.color).toBe('#FFA500');
    expect(msg.attachments[0]!.blocks.filter((b) => b.type === 'section' && b.fields).map((b) => (b.type === 'section' ? b.fields?.length : 0))).toEqual([10, 2]);
  });
});

describe('sms (Twilio)', () => {
  it('is `[LEVEL] title — ack: hint`', () => {
    expect(renderSms(alert)).toBe('[CRITICAL] Daily budget of user:alice at 96% — ack: costguard alerts ack a1b2');
    expect(renderSms({ ...alert, kind: 'resolved', level: 'info', ackHint: undefined })).toBe('[INFO] Daily budget of user:alice at 96%');
  });

  it('shortens the title to 320 characters in all, keeping the ack hint whole', () => {
    const text = renderSms({ ...alert, title: 'y'.repeat(400) });
    expect(Array.from(text)).toHaveLength(320);
    expect(text.startsWith('[CRITICAL] yyy')).toBe(true);
    expect(text.endsWith('y… — ack: costguard alerts ack a1b2')).toBe(true);
  });

  it('names Twilio\'s error code', () => {
    expect(describeTwilioError('{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}')).toBe(
      'Twilio error 20003 (Authenticate)',
    );
    expect(describeTwilioError('<html>Bad gateway</html>')).toBe('<html>Bad gateway</html>');
  });
});

describe('ntfy', () => {
  it('sends title, priority by level and tags as headers, the details as the body', () => {
    expect(renderNtfy(alert, { info: 2, warning: 3, critical: 4, emergency: 5 })).toEqual({
      headers: { Title: '[CRITICAL] Daily budget of user:alice at 96%', Priority: '4', Tags: 'rotating_light,costguard,opened' },
      body: 'user:alice spent $9.60 of $10.00 today (UTC) & <still> counting.\n\nScope: user:alice\nSpent: $9.60\n\nAcknowledge: costguard alerts ack a1b2',
    });
    expect(renderNtfy({ ...alert, level: 'emergency' }, { info: 1, warning: 2, critical: 3, emergency: 5 }).headers).toMatchObject({ Priority: '5', Tags: 'sos,costguard,opened' });
  });

  it('encodes a title that is not plain ASCII as an RFC 2047 encoded word', () => {
    expect(encodeHeaderValue('Budget — 95 %')).toBe(`=?UTF-8?B?${Buffer.from('Budget — 95 %').toString('base64')}?=`);
    expect(encodeHeaderValue('plain title')).toBe('plain title');
  });
});

describe('webhook (Standard Webhooks)', () => {
  const secret = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;

  it('sends the notification with a type, under a stable message id', () => {
    expect(renderWebhookPayload(alert)).toEqual({ type: 'costguard.alert.opened', ...alert });
    expect(webhookEventType({ kind: 'report' })).toBe('costguard.report');
    expect(webhookEventType({ kind: 'escalated' })).toBe('costguard.alert.escalated');
    expect(webhookMessageId(alert)).toBe('alert/user:alice/day/2026-11-28/cost/opened-critical');
  });

  it('signs so that the reference library verifies it, and a changed body fails', () => {
    const body = JSON.stringify(renderWebhookPayload(alert));
    const now = Date.now();
    const headers = signWebhook(secret, webhookMessageId(alert), now, body);
    expect(headers['webhook-timestamp']).toBe(String(Math.floor(now / 1000)));
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(secret).verify(body.replace('96%', '97%'), headers)).toThrow(/signature/i);
  });
});

describe('failure text', () => {
  it('retries 408, 429 and 5xx only', () => {
    expect([400, 401, 403, 404, 408, 409, 429, 500, 502, 503].filter(isRetryableStatus)).toEqual([408, 429, 500, 502, 503]);
  });

  it('scrubs given secrets, URLs and long tokens', () => {
    expect(scrubSecrets('token hunter2pass failed at https://hooks.slack.com/services/T/B/abc?x=1, sig AbCdEfGhIjKlMnOpQrStUvWxYz0123456789', ['hunter2pass'])).toBe(
      'token [redacted] failed at [url] sig [redacted]',
    );
  });
});
