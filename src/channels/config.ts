/**
 * Notification channels as configured under the config file's `channels:` key: a map of NAMED
 * channels, each with a `type`. Alerts and reports name the channels they deliver to, so one kind of
 * channel (two Slack workspaces, an ops and a finance mailbox) can be configured many times.
 *
 * Secrets may be written as `${ENV_VAR}`: `expandChannelSecrets` replaces them from the injected
 * environment before validation, inside `loadConfig`, so secrets stay out of the file.
 */
import { z } from 'zod';
import type { AlertLevel } from '../domain/notification.js';
import { DEFAULTS } from '../config/defaults.js';

export const CHANNEL_TYPES = ['email', 'slack', 'twilio', 'ntfy', 'webhook'] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

const httpUrl = (what: string) =>
  z.string().refine(
    (s) => {
      try {
        const u = new URL(s);
        return u.protocol === 'https:' || u.protocol === 'http:';
      } catch {
        return false;
      }
    },
    { message: `expected ${what} as an http(s) URL` },
  );

/** `ops@example.com` or `Cost Guard <ops@example.com>`. */
const ADDRESS_RE = /^(?:[^<>]*<\s*)?([^\s@<>]+@[^\s@<>]+\.[^\s@<>]+)\s*>?$/;
const emailAddress = z.string().trim().refine((s) => {
  const m = ADDRESS_RE.exec(s);
  return m !== null && z.email().safeParse(m[1]).success && (s.includes('<') === s.endsWith('>'));
}, { message: 'expected an email address like "ops@example.com" or "Cost Guard <ops@example.com>"' });

/** E.164: a plus, a country code, at most 15 digits in all. */
const e164 = z.string().regex(/^\+[1-9]\d{1,14}$/, 'expected a phone number in E.164 form like "+14155550100"');

const nonEmpty = (what: string) => z.string().min(1, `expected ${what}`);

const timeoutMs = z.number().int().min(100, 'expected at least 100 ms').max(120_000, 'expected at most 120000 ms')
  .default(DEFAULTS.channels.timeoutMs);

const emailChannel = z
  .object({
    type: z.literal('email'),
    smtp: z
      .object({
        host: nonEmpty('an SMTP host name'),
        port: z.number().int().min(1).max(65535),
        /** true: TLS from the first byte (port 465); false: plain, upgraded with STARTTLS when offered. */
        secure: z.boolean().default(false),
        auth: z.object({ user: nonEmpty('an SMTP user'), pass: nonEmpty('an SMTP password') }).strict().optional(),
      })
      .strict(),
    from: emailAddress,
    to: z.array(emailAddress).min(1, 'expected at least one recipient'),
    timeoutMs,
  })
  .strict();

const slackChannel = z
  .object({
    type: z.literal('slack'),
    /** An incoming webhook URL: it is the credential, so it is never logged or echoed. */
    webhookUrl: httpUrl('a Slack incoming webhook URL'),
    /**
     * The original specification's Slack options, sent as the payload's `channel`, `username`,
     * `icon_emoji` / `icon_url`. Legacy incoming webhooks honour them; a Slack app's webhook posts to
     * the channel it was installed for and ignores them.
     */
    channel: z
      .string()
      .regex(/^(#[a-z0-9][a-z0-9._-]{0,79}|@[A-Za-z0-9][A-Za-z0-9._-]{0,79}|[CGD][A-Z0-9]{8,20})$/, 'expected a Slack channel: "#name" (lower case, digits, ".", "_", "-", at most 80), "@user" or a channel id like "C0123456789"')
      .optional(),
    username: z
      .string()
      .trim()
      .min(1, 'expected a display name of 1 to 80 characters')
      .max(80, 'expected a display name of 1 to 80 characters')
      .refine((s) => !Array.from(s).some((c) => { const n = c.codePointAt(0)!; return n < 0x20 || (n >= 0x7f && n <= 0x9f); }), { message: 'expected no control characters' })
      .optional(),
    iconEmoji: z.string().regex(/^:[a-z0-9_+'-]{1,100}:$/, 'expected an emoji name between colons, like ":moneybag:"').optional(),
    iconUrl: httpUrl('an icon image URL').optional(),
    timeoutMs,
  })
  .strict()
  .refine((c) => c.iconEmoji === undefined || c.iconUrl === undefined, { message: 'expected iconEmoji or iconUrl, not both', path: ['iconUrl'] });

const twilioChannel = z
  .object({
    type: z.literal('twilio'),
    accountSid: z.string().regex(/^AC[0-9a-fA-F]{32}$/, 'expected a Twilio Account SID: "AC" and 32 hex digits'),
    authToken: nonEmpty('a Twilio auth token'),
    from: e164,
    to: z.array(e164).min(1, 'expected at least one phone number'),
    baseUrl: httpUrl('the Twilio API base URL').default('https://api.twilio.com'),
    timeoutMs,
  })
  .strict();

const priority = z.number().int().min(1, 'expected an ntfy priority from 1 to 5').max(5, 'expected an ntfy priority from 1 to 5');
export const DEFAULT_NTFY_PRIORITIES: Record<AlertLevel, number> = { info: 2, warning: 3, critical: 4, emergency: 5 };

const ntfyChannel = z
  .object({
    type: z.literal('ntfy'),
    /** The server's base URL, e.g. https://ntfy.sh. */
    url: httpUrl('the ntfy server URL'),
    topic: z.string().regex(/^[-_A-Za-z0-9]{1,64}$/, 'expected an ntfy topic: 1 to 64 letters, digits, "-" or "_"'),
    token: nonEmpty('an ntfy access token').optional(),
    priorities: z
      .object({ info: priority.optional(), warning: priority.optional(), critical: priority.optional(), emergency: priority.optional() })
      .strict()
      .default({})
      .transform((p): Record<AlertLevel, number> => ({ ...DEFAULT_NTFY_PRIORITIES, ...p })),
    timeoutMs,
  })
  .strict();

/** A Standard Webhooks secret: `whsec_` and base64 of 24 to 64 random bytes. */
const webhookSecret = z.string().refine(
  (s) => {
    const b64 = s.startsWith('whsec_') ? s.slice('whsec_'.length) : '';
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return false;
    const bytes = Buffer.from(b64, 'base64').length;
    return bytes >= 24 && bytes <= 64;
  },
  { message: 'expected a Standard Webhooks secret: "whsec_" and the base64 of 24 to 64 random bytes' },
);

const RESERVED_HEADERS = ['content-type', 'webhook-id', 'webhook-timestamp', 'webhook-signature'];
const webhookChannel = z
  .object({
    type: z.literal('webhook'),
    url: httpUrl('the webhook endpoint URL'),
    secret: webhookSecret,
    headers: z
      .record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected an HTTP header name'), z.string())
      .default({})
      .refine((h) => Object.keys(h).every((k) => !RESERVED_HEADERS.includes(k.toLowerCase())), {
        message: `expected no ${RESERVED_HEADERS.join(', ')} header (Cost Guard sets them)`,
      }),
    timeoutMs,
  })
  .strict();

export const channelSchema = z.discriminatedUnion('type', [emailChannel, slackChannel, twilioChannel, ntfyChannel, webhookChannel], {
  error: `expected a channel with type one of ${CHANNEL_TYPES.join(', ')}`,
});

export const channelsSchema = z
  .record(z.string().regex(/^[A-Za-z0-9][-_.A-Za-z0-9]{0,63}$/, 'expected a channel name: letters, digits, "-", "_" or "."'), channelSchema)
  .default({});

export type ChannelConfig = z.infer<typeof channelSchema>;
export type EmailChannelConfig = z.infer<typeof emailChannel>;
export type SlackChannelConfig = z.infer<typeof slackChannel>;
export type TwilioChannelConfig = z.infer<typeof twilioChannel>;
export type NtfyChannelConfig = z.infer<typeof ntfyChannel>;
export type WebhookChannelConfig = z.infer<typeof webhookChannel>;
export type ChannelsConfig = Record<string, ChannelConfig>;

/** A variable reference: the whole value or part of it (`Bearer ${TOKEN}`). */
const VAR_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** A `${VAR}` that names no variable in the environment; carries the key path, never a value. */
export interface MissingVariable {
  path: (string | number)[];
  variable: string;
}

/**
 * Replaces every `${VAR}` in the string values under `channels` with the variable's value from
 * `env`. Returns the expanded copy and the references that could not be resolved (with their key
 * paths, so the error can name them without echoing anything).
 */
export function expandChannelSecrets(
  channels: unknown,
  env: Record<string, string | undefined>,
): { value: unknown; missing: MissingVariable[] } {
  const missing: MissingVariable[] = [];
  const walk = (v: unknown, path: (string | number)[]): unknown => {
    if (typeof v === 'string') {
      return v.replace(VAR_RE, (ref, name: string) => {
        const value = env[name];
        if (value === undefined || value === '') {
          missing.push({ path, variable: name });
          return ref;
        }
        return value;
      });
    }
    if (Array.isArray(v)) return v.map((item, i) => walk(item, [...path, i]));
    if (typeof v === 'object' && v !== null) {
      return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, walk(item, [...path, k])]));
    }
    return v;
  };
  return { value: walk(channels, ['channels']), missing };
}

/** The secrets of a channel (to scrub from error text and logs). */
export function channelSecrets(channel: ChannelConfig): string[] {
  switch (channel.type) {
    case 'email':
      return channel.smtp.auth ? [channel.smtp.auth.pass] : [];
    case 'slack':
      return [channel.webhookUrl];
    case 'twilio':
      return [channel.authToken];
    case 'ntfy':
      return channel.token ? [channel.token] : [];
    case 'webhook':
      return [channel.secret, ...Object.values(channel.headers)];
  }
}
