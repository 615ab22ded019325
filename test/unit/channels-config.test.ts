import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { channelSecrets } from '../../src/channels/config.js';
import { ConfigError, parseConfigFile } from '../../src/config/index.js';
import { projectRoot } from '../../src/lib/paths.js';

const SLACK_URL = 'https://hooks.slack.com/services/T0001/B0001/s3cr3tWebhookPathValue';
const WHSEC = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const SID = `AC${'0123456789abcdef'.repeat(2)}`;

/** The ConfigError message parsing `yaml` stops with (fails the test if it parses). */
function errorOf(yaml: string, env: Record<string, string> = {}): string {
  try {
    parseConfigFile(yaml, 'test.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  return expect.fail('expected a ConfigError');
}

const channels = (yaml: string, env: Record<string, string> = {}) => parseConfigFile(`channels:\n${yaml}`, 'test.yaml', env).channels;

describe('channels: valid configurations', () => {
  it('slack channel, username and icon overrides are kept as given', () => {
    const parsed = channels(`  s: { type: slack, webhookUrl: "${SLACK_URL}", channel: "#cost-alerts", username: "Cost Guard", iconEmoji: ":moneybag:" }\n  t: { type: slack, webhookUrl: "${SLACK_URL}", channel: "C0123456789", iconUrl: "https://example.com/i.png" }\n`);
    expect(parsed.s).toEqual({ type: 'slack', webhookUrl: SLACK_URL, channel: '#cost-alerts', username: 'Cost Guard', iconEmoji: ':moneybag:', timeoutMs: 10_000 });
    expect(parsed.t).toMatchObject({ channel: 'C0123456789', iconUrl: 'https://example.com/i.png' });
  });


  it('parses one channel of each type, with the defaults filled in', () => {
    const parsed = channels(
      `
  ops-mail:
    type: email
    smtp: { host: smtp.example.com, port: 587, auth: { user: alerts, pass: "\${SMTP_PASS}" } }
    from: "Cost Guard <alerts@example.com>"
    to: [ops@example.com, finance@example.com]
  ops-slack: { type: slack, webhookUrl: "\${SLACK_WEBHOOK_URL}" }
  oncall-sms:
    type: twilio
    accountSid: ${SID}
    authToken: "\${TWILIO_AUTH_TOKEN}"
    from: "+14155550100"
    to: ["+14155550101"]
  phone: { type: ntfy, url: "https://ntfy.sh", topic: costguard-ops, token: "\${NTFY_TOKEN}", priorities: { info: 1 } }
  hook:
    type: webhook
    url: https://example.com/hooks/costguard
    secret: "\${WEBHOOK_SECRET}"
    headers: { X-Team: platform }
`,
      { SMTP_PASS: 'smtp-pass-1', SLACK_WEBHOOK_URL: SLACK_URL, TWILIO_AUTH_TOKEN: 'twilio-token-1', NTFY_TOKEN: 'tk_ntfy1', WEBHOOK_SECRET: WHSEC },
    );
    expect(parsed).toEqual({
      'ops-mail': {
        type: 'email',
        smtp: { host: 'smtp.example.com', port: 587, secure: false, auth: { user: 'alerts', pass: 'smtp-pass-1' } },
        from: 'Cost Guard <alerts@example.com>',
        to: ['ops@example.com', 'finance@example.com'],
        timeoutMs: 10_000,
      },
      'ops-slack': { type: 'slack', webhookUrl: SLACK_URL, timeoutMs: 10_000 },
      'oncall-sms': {
        type: 'twilio',
        accountSid: SID,
        authToken: 'twilio-token-1',
        from: '+14155550100',
        to: ['+14155550101'],
        baseUrl: 'https://api.twilio.com',
        timeoutMs: 10_000,
      },
      phone: {
        type: 'ntfy',
        url: 'https://ntfy.sh',
        topic: 'costguard-ops',
        token: 'tk_ntfy1',
        priorities: { info: 1, warning: 3, critical: 4, emergency: 5 },
        timeoutMs: 10_000,
      },
      hook: { type: 'webhook', url: 'https://example.com/hooks/costguard', secret: WHSEC, headers: { 'X-Team': 'platform' }, timeoutMs: 10_000 },
    });
    expect(channelSecrets(parsed['ops-slack']!)).toEqual([SLACK_URL]);
    expect(channelSecrets(parsed['oncall-sms']!)).toEqual(['twilio-token-1']);
  });

  it('expands a variable inside a longer value and leaves values without references alone', () => {
    const parsed = channels(`  hook: { type: webhook, url: "https://\${HOOK_HOST}/in", secret: "${WHSEC}", timeoutMs: 2500 }\n`, { HOOK_HOST: 'hooks.example.net' });
    expect(parsed.hook).toMatchObject({ url: 'https://hooks.example.net/in', secret: WHSEC, timeoutMs: 2500 });
  });

  it('ntfy without a token and default priorities', () => {
    expect(channels('  p: { type: ntfy, url: "http://127.0.0.1:8090", topic: alerts }\n').p).toEqual({
      type: 'ntfy', url: 'http://127.0.0.1:8090', topic: 'alerts', priorities: { info: 2, warning: 3, critical: 4, emergency: 5 }, timeoutMs: 10_000,
    });
  });
});

describe('channels: invalid configurations name the key and never echo a secret', () => {
  it('a missing variable names the key path and the variable', () => {
    const message = errorOf(`channels:\n  ops-slack: { type: slack, webhookUrl: "\${SLACK_WEBHOOK_URL}" }\n`);
    expect(message).toBe('Invalid configuration in test.yaml:\n  channels.ops-slack.webhookUrl: environment variable SLACK_WEBHOOK_URL is not set (referenced as ${SLACK_WEBHOOK_URL})');
  });

  it('an unknown key', () => {
    const message = errorOf(`channels:\n  s: { type: slack, webhookUrl: "${SLACK_URL}", room: "#ops" }\n`);
    expect(message).toContain('channels.s: unknown key(s) room');
    expect(message).not.toContain('s3cr3tWebhookPathValue');
  });

  it('slack overrides: each bad one named, never the webhook URL', () => {
    const bad = (fields: string) => errorOf(`channels:\n  s: { type: slack, webhookUrl: "${SLACK_URL}", ${fields} }\n`);
    expect(bad('channel: "ops"')).toContain('channels.s.channel = "ops": expected a Slack channel: "#name"');
    expect(bad('channel: "#Ops Team"')).toContain('channels.s.channel');
    expect(bad('username: ""')).toContain('channels.s.username');
    expect(bad('iconEmoji: "moneybag"')).toContain('channels.s.iconEmoji = "moneybag": expected an emoji name between colons');
    expect(bad('iconUrl: "ftp://x/y.png"')).toContain('channels.s.iconUrl');
    const both = bad('iconEmoji: ":moneybag:", iconUrl: "https://example.com/i.png"');
    expect(both).toContain('channels.s.iconUrl');
    expect(both).toContain('expected iconEmoji or iconUrl, not both');
    expect(both).not.toContain('s3cr3tWebhookPathValue');
  });

  it('an unknown type', () => {
    expect(errorOf('channels:\n  s: { type: pager, url: "https://x.example" }\n')).toContain('channels.s.type = "pager": expected a channel with type one of email, slack, twilio, ntfy, webhook');
  });

  it('a bad Slack URL (from a variable) is named but not shown', () => {
    const message = errorOf('channels:\n  s: { type: slack, webhookUrl: "${SLACK}" }\n', { SLACK: 'not a url s3cr3tValue' });
    expect(message).toBe('Invalid configuration in test.yaml:\n  channels.s.webhookUrl = (redacted): expected a Slack incoming webhook URL as an http(s) URL');
  });

  it('a bad webhook secret is named but not shown', () => {
    const message = errorOf('channels:\n  h: { type: webhook, url: "https://x.example/h", secret: "${S}" }\n', { S: 'plain-s3cr3t-without-prefix' });
    expect(message).toContain('channels.h.secret = (redacted): expected a Standard Webhooks secret');
    expect(message).not.toContain('plain-s3cr3t');
  });

  it('a malformed SMTP password is never echoed, nor a whole channel object', () => {
    const message = errorOf('channels:\n  m:\n    type: email\n    smtp: { host: h, port: 25, auth: { user: u, pass: 12345678 } }\n    from: a@example.com\n    to: [b@example.com]\n');
    expect(message).toContain('channels.m.smtp.auth.pass');
    expect(message).not.toContain('12345678');
    const objectMessage = errorOf('channels:\n  h: { type: webhook, url: "https://x.example/h", secret: "${S}", headers: { webhook-id: "abc-s3cr3t" } }\n', { S: WHSEC });
    expect(objectMessage).toContain('channels.h.headers = (redacted): expected no content-type, webhook-id, webhook-timestamp, webhook-signature header');
    expect(objectMessage).not.toContain('abc-s3cr3t');
  });

  it('bad addresses and phone numbers', () => {
    const email = errorOf('channels:\n  m:\n    type: email\n    smtp: { host: h, port: 25 }\n    from: "nobody"\n    to: [ok@example.com, "bad@"]\n');
    expect(email).toContain('channels.m.from = "nobody": expected an email address');
    expect(email).toContain('channels.m.to[1] = "bad@": expected an email address');
    const sms = errorOf(`channels:\n  t: { type: twilio, accountSid: ${SID}, authToken: x, from: "+1415", to: ["4155550100"] }\n`);
    expect(sms).toContain('channels.t.to[0] = "4155550100": expected a phone number in E.164 form');
    expect(errorOf('channels:\n  t: { type: twilio, accountSid: "AC12", authToken: x, from: "+14155550100", to: ["+14155550101"] }\n')).toContain(
      'channels.t.accountSid = "AC12": expected a Twilio Account SID',
    );
  });

  it('an ntfy priority outside 1..5', () => {
    expect(errorOf('channels:\n  p: { type: ntfy, url: "https://ntfy.sh", topic: t, priorities: { emergency: 6 } }\n')).toContain(
      'channels.p.priorities.emergency = 6: expected an ntfy priority from 1 to 5',
    );
  });

  it('an empty recipient list', () => {
    expect(errorOf('channels:\n  m: { type: email, smtp: { host: h, port: 25 }, from: a@example.com, to: [] }\n')).toContain('channels.m.to = (a list): expected at least one recipient');
  });
});

describe('the example configuration', () => {
  it('has a valid, commented example of each channel type', () => {
    const text = readFileSync(`${projectRoot()}/config/costguard.example.yaml`, 'utf8');
    const start = text.indexOf('# channels:');
    expect(start).toBeGreaterThan(0);
    // The commented block that starts at `# channels:` (up to the first line that is not a comment).
    const lines = text.slice(start).split('\n');
    const end = lines.findIndex((l) => !l.startsWith('#'));
    const block = lines.slice(0, end === -1 ? undefined : end).map((l) => l.slice(2)).join('\n');
    const parsed = parseConfigFile(block, 'example', {
      SMTP_PASSWORD: 'p', SLACK_WEBHOOK_URL: SLACK_URL, TWILIO_AUTH_TOKEN: 't', NTFY_TOKEN: 'n', COSTGUARD_WEBHOOK_SECRET: WHSEC,
    }).channels;
    expect(Object.values(parsed).map((c) => c.type).sort()).toEqual(['email', 'ntfy', 'slack', 'twilio', 'webhook']);
  });
});
