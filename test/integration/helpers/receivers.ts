/**
 * Local servers that speak the protocols of the services Cost Guard notifies (SMTP, Slack incoming
 * webhooks, Twilio's Messages API, ntfy, Standard Webhooks consumers), for integration tests. Each
 * one CHECKS requests as the real service does (credentials, shape, signature) and answers as it
 * does; requests it refuses are recorded in `rejected`, so a test can assert that none were.
 *
 * Every receiver listens on 127.0.0.1 with an OS-chosen port and offers:
 * - `received`: accepted messages, parsed; `rejected`: refused requests with the reason;
 * - `requests`: every request or SMTP message seen, including those failed on purpose;
 * - `failNext(count, status)`: answer the next `count` requests with `status` (e.g. 500 twice);
 * - `stallNext(count)` (HTTP receivers): never answer the next `count` requests (the sender times out);
 * - `waitFor(n, timeoutMs)`: resolves once `n` messages were accepted;
 * - `close()`.
 */
import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerSession } from 'smtp-server';
import { Webhook } from 'standardwebhooks';

export interface Rejection {
  status: number;
  reason: string;
}

export interface Receiver<T> {
  url: string;
  port: number;
  received: T[];
  rejected: Rejection[];
  /** Everything that reached the receiver: accepted, rejected, and failed on purpose. */
  requests: number;
  waitFor(n: number, timeoutMs?: number): Promise<T[]>;
  failNext(count: number, status: number): void;
  close(): Promise<void>;
}

export interface HttpReceiver<T> extends Receiver<T> {
  stallNext(count: number): void;
}

/**
 * A receiver: `own` (url, port, close...) plus what it exposes of its tally, as live getters
 * (defined, not copied: `requests` is a number that keeps changing).
 */
function withTally<T, R extends object>(tally: Tally<T>, own: R): R & Pick<Receiver<T>, 'received' | 'rejected' | 'requests' | 'waitFor' | 'failNext'> {
  const view: Pick<Receiver<T>, 'received' | 'rejected' | 'requests' | 'waitFor' | 'failNext'> = {
    get received() {
      return tally.received;
    },
    get rejected() {
      return tally.rejected;
    },
    get requests() {
      return tally.requests;
    },
    waitFor: (n, timeoutMs) => tally.waitFor(n, timeoutMs),
    failNext: (count, status) => tally.failNext(count, status),
  };
  return Object.defineProperties(own, Object.getOwnPropertyDescriptors(view)) as R & typeof view;
}

/** A planned failure that is no answer at all. */
const STALL = 0;

/** The bookkeeping every receiver shares: accepted and rejected messages, waiters, planned failures. */
class Tally<T> {
  received: T[] = [];
  rejected: Rejection[] = [];
  requests = 0;
  private failures: number[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];

  failNext(count: number, status: number): void {
    for (let i = 0; i < count; i++) this.failures.push(status);
  }

  /** Counts a request; returns the status to fail it with (or STALL), if one was planned. */
  arrive(): number | undefined {
    this.requests++;
    return this.failures.shift();
  }

  accept(message: T): void {
    this.received.push(message);
    this.waiters = this.waiters.filter((w) => {
      if (this.received.length < w.n) return true;
      w.resolve();
      return false;
    });
  }

  reject(status: number, reason: string): void {
    this.rejected.push({ status, reason });
  }

  async waitFor(n: number, timeoutMs = 10_000): Promise<T[]> {
    if (this.received.length < n) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.waiters.push({ n, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`expected ${n} accepted message(s) within ${timeoutMs} ms, got ${this.received.length} (rejected: ${JSON.stringify(this.rejected)})`)),
            timeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return this.received;
  }
}

/** What an HTTP protocol check decides: accept (and record) a message, or refuse the request. */
type Verdict<T> =
  | { accept: T; status: number; body: string; contentType: string }
  | { reject: string; status: number; body: string; contentType: string };

const json = (status: number, value: unknown) => ({ status, body: JSON.stringify(value), contentType: 'application/json' });
const text = (status: number, value: string) => ({ status, body: value, contentType: 'text/plain; charset=utf-8' });

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function startHttpReceiver<T>(
  check: (req: IncomingMessage, body: Buffer) => Verdict<T>,
  failure: (status: number) => { status: number; body: string; contentType: string },
  path = '',
): Promise<HttpReceiver<T>> {
  const tally = new Tally<T>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const body = await readBody(req);
      const planned = tally.arrive();
      if (planned === STALL) return; // no answer: the socket stays open until the client gives up
      let answer: { status: number; body: string; contentType: string };
      if (planned !== undefined) {
        answer = failure(planned);
      } else {
        let verdict: Verdict<T>;
        try {
          verdict = check(req, body);
        } catch (err) {
          verdict = { reject: `receiver error: ${(err as Error).message}`, ...text(500, 'internal error') };
        }
        if ('accept' in verdict) tally.accept(verdict.accept);
        else tally.reject(verdict.status, verdict.reject);
        answer = verdict;
      }
      res.writeHead(answer.status, { 'content-type': answer.contentType });
      res.end(answer.body);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return withTally(tally, {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    stallNext: (count: number) => tally.failNext(count, STALL),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

function isJson(req: IncomingMessage): boolean {
  return /^application\/json\b/i.test(header(req, 'content-type') ?? '');
}

// ---------------------------------------------------------------------------------------------
// SMTP

export interface ReceivedEmail {
  /** The user that authenticated the session. */
  user: string | undefined;
  envelope: { from: string | false; to: string[] };
  parsed: ParsedMail;
}

/** An SMTP server requiring AUTH PLAIN or LOGIN (plain TCP, no TLS), parsing each message. */
export async function startSmtpReceiver(opts: { user: string; pass: string }): Promise<Receiver<ReceivedEmail>> {
  const tally = new Tally<ReceivedEmail>();
  const server = new SMTPServer({
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onAuth(auth: SMTPServerAuthentication, _session: SMTPServerSession, callback) {
      if (auth.username === opts.user && auth.password === opts.pass) return callback(null, { user: auth.username });
      tally.reject(535, `bad credentials for user ${String(auth.username)}`);
      return callback(Object.assign(new Error('Authentication credentials invalid'), { responseCode: 535 }));
    },
    onData(stream, session, callback) {
      const planned = tally.arrive();
      if (planned !== undefined) {
        stream.resume();
        stream.on('end', () => callback(Object.assign(new Error(`Planned failure ${planned}`), { responseCode: planned })));
        return;
      }
      simpleParser(stream)
        .then((parsed) => {
          tally.accept({
            user: session.user as string | undefined,
            envelope: { from: session.envelope.mailFrom ? session.envelope.mailFrom.address : false, to: session.envelope.rcptTo.map((r) => r.address) },
            parsed,
          });
          callback();
        })
        .catch((err: Error) => {
          tally.reject(550, `unparseable message: ${err.message}`);
          callback(Object.assign(new Error('Message rejected'), { responseCode: 550 }));
        });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return withTally(tally, {
    url: `smtp://127.0.0.1:${port}`,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

// ---------------------------------------------------------------------------------------------
// Slack incoming webhooks

/** Block types Slack accepts in messages. */
const SLACK_BLOCK_TYPES = new Set(['actions', 'context', 'divider', 'file', 'header', 'image', 'input', 'markdown', 'rich_text', 'section', 'video']);

function slackBlockProblem(block: unknown): string | undefined {
  if (typeof block !== 'object' || block === null) return 'a block is not an object';
  const b = block as { type?: unknown; text?: { type?: unknown; text?: unknown }; fields?: unknown[]; elements?: unknown[] };
  if (typeof b.type !== 'string' || !SLACK_BLOCK_TYPES.has(b.type)) return `invalid block type ${JSON.stringify(b.type)}`;
  const textOk = (t: { type?: unknown; text?: unknown } | undefined, max: number, types = ['plain_text', 'mrkdwn']) =>
    t !== undefined && typeof t.type === 'string' && types.includes(t.type) && typeof t.text === 'string' && t.text.length > 0 && t.text.length <= max;
  if (b.type === 'header' && !textOk(b.text, 150, ['plain_text'])) return 'header needs plain_text of 1-150 characters';
  if (b.type === 'section') {
    if (b.text === undefined && b.fields === undefined) return 'section needs text or fields';
    if (b.text !== undefined && !textOk(b.text, 3000)) return 'section text must be 1-3000 characters';
    if (b.fields !== undefined && (!Array.isArray(b.fields) || b.fields.length > 10 || !b.fields.every((f) => textOk(f as { type?: unknown; text?: unknown }, 2000)))) {
      return 'section fields: at most 10 text objects of 1-2000 characters';
    }
  }
  if (b.type === 'context' && (!Array.isArray(b.elements) || b.elements.length < 1 || b.elements.length > 10)) return 'context needs 1-10 elements';
  return undefined;
}

export interface ReceivedSlackMessage {
  text: string;
  blocks: { type: string; [k: string]: unknown }[];
  attachments?: { color?: string; blocks?: { type: string; [k: string]: unknown }[] }[];
  /** Legacy webhook overrides. */
  channel?: string;
  username?: string;
  icon_emoji?: string;
  icon_url?: string;
}

/** What a legacy incoming webhook refuses in its overrides (Slack: 404 channel_not_found, 400 invalid_payload). */
function slackOverrideProblem(msg: ReceivedSlackMessage): { reject: string; status: number; body: string } | undefined {
  if (msg.channel !== undefined && (typeof msg.channel !== 'string' || !/^(#[a-z0-9][a-z0-9._-]{0,79}|@[A-Za-z0-9][A-Za-z0-9._-]{0,79}|[CGD][A-Z0-9]{8,20})$/.test(msg.channel))) {
    return { reject: `unknown channel ${JSON.stringify(msg.channel)}`, status: 404, body: 'channel_not_found' };
  }
  if (msg.username !== undefined && (typeof msg.username !== 'string' || msg.username.length < 1 || msg.username.length > 80)) return { reject: 'bad username', status: 400, body: 'invalid_payload' };
  if (msg.icon_emoji !== undefined && (typeof msg.icon_emoji !== 'string' || !/^:[^:\s]+:$/.test(msg.icon_emoji))) return { reject: 'bad icon_emoji', status: 400, body: 'invalid_payload' };
  if (msg.icon_url !== undefined && (typeof msg.icon_url !== 'string' || !/^https?:\/\//.test(msg.icon_url))) return { reject: 'bad icon_url', status: 400, body: 'invalid_payload' };
  if (msg.icon_emoji !== undefined && msg.icon_url !== undefined) return { reject: 'both icon_emoji and icon_url', status: 400, body: 'invalid_payload' };
  return undefined;
}

/**
 * A Slack incoming webhook at `url` (a `/services/T.../B.../<secret>` path, like Slack's); other
 * paths get 404 `no_service`, a bad payload 400 `invalid_payload` or `invalid_blocks`, no text
 * fallback 400 `no_text`, a malformed `channel` override 404 `channel_not_found` (username and icon
 * overrides are checked as a legacy webhook does); success is 200 `ok`.
 */
export async function startSlackReceiver(): Promise<HttpReceiver<ReceivedSlackMessage>> {
  const path = `/services/T${randomBytes(4).toString('hex').toUpperCase()}/B${randomBytes(4).toString('hex').toUpperCase()}/${randomBytes(12).toString('hex')}`;
  return startHttpReceiver<ReceivedSlackMessage>(
    (req, body) => {
      if (req.method !== 'POST' || req.url !== path) return { reject: `no such webhook ${req.method} path`, ...text(404, 'no_service') };
      if (!isJson(req)) return { reject: 'not JSON', ...text(400, 'invalid_payload') };
      let msg: ReceivedSlackMessage;
      try {
        msg = JSON.parse(body.toString('utf8')) as ReceivedSlackMessage;
      } catch {
        return { reject: 'unparseable JSON', ...text(400, 'invalid_payload') };
      }
      if (typeof msg.text !== 'string' || msg.text.trim() === '') return { reject: 'no text fallback', ...text(400, 'no_text') };
      if (!Array.isArray(msg.blocks) || msg.blocks.length === 0 || msg.blocks.length > 50) return { reject: 'blocks must be an array of 1-50 blocks', ...text(400, 'invalid_blocks') };
      const nested = (msg.attachments ?? []).flatMap((a) => a.blocks ?? []);
      for (const a of msg.attachments ?? []) {
        if (a.color !== undefined && !/^#[0-9A-Fa-f]{6}$/.test(a.color)) return { reject: `bad attachment color ${a.color}`, ...text(400, 'invalid_attachments') };
      }
      const problem = [...msg.blocks, ...nested].map(slackBlockProblem).find((p) => p !== undefined);
      if (problem) return { reject: problem, ...text(400, 'invalid_blocks') };
      const override = slackOverrideProblem(msg);
      if (override) return { reject: override.reject, ...text(override.status, override.body) };
      return { accept: msg, ...text(200, 'ok') };
    },
    (status) => text(status, status === 429 ? 'rate_limited' : 'internal_error'),
    path,
  );
}

// ---------------------------------------------------------------------------------------------
// Twilio Messages API

export interface ReceivedSms {
  accountSid: string;
  to: string;
  from: string;
  body: string;
  sid: string;
}

const twilioError = (status: number, code: number, message: string) =>
  json(status, { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status });

/**
 * Twilio's `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: HTTP basic auth with the SID and
 * token (401 with error 20003 otherwise), a form body with To, From and Body; answers 201 with a
 * message resource (`sid` SM...).
 */
export async function startTwilioReceiver(opts: { accountSid: string; authToken: string }): Promise<HttpReceiver<ReceivedSms>> {
  return startHttpReceiver<ReceivedSms>(
    (req, body) => {
      const m = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !m) return { reject: `unknown resource ${req.method} ${req.url}`, ...twilioError(404, 20404, 'The requested resource was not found') };
      const auth = /^Basic (.+)$/.exec(header(req, 'authorization') ?? '');
      const [user, pass] = auth ? Buffer.from(auth[1]!, 'base64').toString('utf8').split(/:(.*)/s) : [];
      if (user !== opts.accountSid || pass !== opts.authToken) return { reject: 'bad credentials', ...twilioError(401, 20003, 'Authenticate') };
      if (m[1] !== opts.accountSid) return { reject: 'AccountSid in the path is not the authenticated account', ...twilioError(404, 20404, 'The requested resource was not found') };
      if (!/^application\/x-www-form-urlencoded\b/i.test(header(req, 'content-type') ?? '')) return { reject: 'not form-encoded', ...twilioError(400, 21604, "A 'To' phone number is required.") };
      const form = new URLSearchParams(body.toString('utf8'));
      const to = form.get('To');
      const from = form.get('From');
      const text = form.get('Body');
      if (!to) return { reject: 'no To', ...twilioError(400, 21604, "A 'To' phone number is required.") };
      if (!/^\+[1-9]\d{1,14}$/.test(to)) return { reject: `bad To ${to}`, ...twilioError(400, 21211, `Invalid 'To' Phone Number: ${to}`) };
      if (!from) return { reject: 'no From', ...twilioError(400, 21603, "A 'From' phone number is required.") };
      if (!text) return { reject: 'no Body', ...twilioError(400, 21602, 'Message body is required.') };
      if (text.length > 1600) return { reject: 'Body too long', ...twilioError(400, 21617, 'The concatenated message body exceeds the 1600 character limit.') };
      const sms: ReceivedSms = { accountSid: m[1]!, to, from, body: text, sid: `SM${randomBytes(16).toString('hex')}` };
      return { accept: sms, ...json(201, { sid: sms.sid, account_sid: sms.accountSid, to, from, body: text, status: 'queued', num_segments: '1' }) };
    },
    (status) => twilioError(status, status === 429 ? 20429 : 20500, status === 429 ? 'Too Many Requests' : 'Internal Server Error'),
  );
}

// ---------------------------------------------------------------------------------------------
// ntfy

export interface ReceivedPush {
  topic: string;
  title: string;
  priority: number;
  tags: string[];
  message: string;
}

const NTFY_PRIORITY_NAMES: Record<string, number> = { min: 1, low: 2, default: 3, high: 4, max: 5, urgent: 5 };

/** Decodes an RFC 2047 encoded word (`=?UTF-8?B?...?=`), as ntfy does for its headers. */
function decodeHeader(value: string): string {
  const m = /^=\?UTF-8\?([BQ])\?(.*)\?=$/i.exec(value);
  if (!m) return value;
  return m[1]!.toUpperCase() === 'B'
    ? Buffer.from(m[2]!, 'base64').toString('utf8')
    : Buffer.from(m[2]!.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
}

/**
 * An ntfy server: `POST /{topic}` with Title, Priority (1-5 or a name) and Tags headers. With a
 * `token`, requests without a bearer get 403 (40301) and with another token 401 (40101).
 */
export async function startNtfyReceiver(opts: { token?: string } = {}): Promise<HttpReceiver<ReceivedPush>> {
  const ntfyError = (status: number, code: number, error: string) => json(status, { code, http: status, error });
  return startHttpReceiver<ReceivedPush>(
    (req, body) => {
      const m = /^\/([-_A-Za-z0-9]{1,64})$/.exec(req.url ?? '');
      if ((req.method !== 'POST' && req.method !== 'PUT') || !m) return { reject: `bad request ${req.method} ${req.url}`, ...ntfyError(404, 40401, 'page not found') };
      if (opts.token !== undefined) {
        const auth = header(req, 'authorization');
        if (auth === undefined) return { reject: 'no bearer token', ...ntfyError(403, 40301, 'forbidden') };
        if (auth !== `Bearer ${opts.token}`) return { reject: 'wrong bearer token', ...ntfyError(401, 40101, 'unauthorized') };
      }
      const title = header(req, 'title') ?? header(req, 'x-title') ?? header(req, 't');
      if (!title) return { reject: 'no Title header', ...ntfyError(400, 40000, 'title required by this receiver') };
      const rawPriority = (header(req, 'priority') ?? header(req, 'x-priority') ?? header(req, 'p') ?? '3').toLowerCase();
      const priority = NTFY_PRIORITY_NAMES[rawPriority] ?? (/^[1-5]$/.test(rawPriority) ? Number(rawPriority) : NaN);
      if (Number.isNaN(priority)) return { reject: `bad priority ${rawPriority}`, ...ntfyError(400, 40007, 'invalid priority') };
      const tags = (header(req, 'tags') ?? header(req, 'x-tags') ?? '').split(',').map((t) => t.trim()).filter(Boolean);
      const push: ReceivedPush = { topic: m[1]!, title: decodeHeader(title), priority, tags, message: body.toString('utf8') };
      return { accept: push, ...json(200, { id: randomBytes(6).toString('hex'), time: Math.floor(Date.now() / 1000), event: 'message', ...push }) };
    },
    (status) => ntfyError(status, status * 100, status === 429 ? 'limit reached' : 'internal server error'),
  );
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks consumer

export interface ReceivedWebhook {
  id: string;
  timestamp: string;
  payload: Record<string, unknown>;
  headers: IncomingMessage['headers'];
}

/** A Standard Webhooks consumer at `/hooks`: verifies the signature with the reference library (401 if bad). */
export async function startWebhookReceiver(opts: { secret: string }): Promise<HttpReceiver<ReceivedWebhook>> {
  const wh = new Webhook(opts.secret);
  return startHttpReceiver<ReceivedWebhook>(
    (req, body) => {
      if (req.method !== 'POST' || req.url !== '/hooks') return { reject: `no such endpoint ${req.method} ${req.url}`, ...text(404, 'not found') };
      if (!isJson(req)) return { reject: 'not JSON', ...text(415, 'expected application/json') };
      const headers = {
        'webhook-id': header(req, 'webhook-id') ?? '',
        'webhook-timestamp': header(req, 'webhook-timestamp') ?? '',
        'webhook-signature': header(req, 'webhook-signature') ?? '',
      };
      let payload: Record<string, unknown>;
      try {
        payload = wh.verify(body, headers) as Record<string, unknown>;
      } catch (err) {
        return { reject: `signature: ${(err as Error).message}`, ...text(401, 'invalid signature') };
      }
      return { accept: { id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], payload, headers: req.headers }, status: 204, body: '', contentType: 'text/plain' };
    },
    (status) => text(status, 'unavailable'),
    '/hooks',
  );
}
