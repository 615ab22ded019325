import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { projectRoot } from '../../src/lib/paths.js';
import { createPricingEngine } from '../../src/pricing/index.js';
import { DEFAULT_AT, costOf } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'costguard-config-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function configFile(text: string, ext = 'yaml'): string {
  const path = join(dir, `config-${++fileCount}.${ext}`);
  writeFileSync(path, text);
  return path;
}

/** The ConfigError message loadConfig stops with (fails the test if it does not stop). */
function configError(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  return expect.fail('expected loadConfig to throw a ConfigError');
}

const fileError = (yaml: string) => {
  const path = configFile(yaml);
  return { path, message: configError({ COSTGUARD_CONFIG: path }) };
};

const budget = (over: string) =>
  `budgets:\n  - scope: system\n    period: day\n    amount: 100\n    thresholds: { warning: 0.8, critical: 0.95 }\n${over}`;

describe('loadConfig({}): the defaults', () => {
  const config = loadConfig({});

  it('has the specified budgets: system daily $100 (80/95%), system monthly $2000 (85/98%), per-user daily $10 (90/98%)', () => {
    expect(config.budgets).toEqual([
      { scope: 'system', period: 'day', amount: '100', currency: 'USD', thresholds: { warning: 0.8, critical: 0.95 } },
      { scope: 'system', period: 'month', amount: '2000', currency: 'USD', thresholds: { warning: 0.85, critical: 0.98 } },
      { scope: 'user', period: 'day', amount: '10', currency: 'USD', thresholds: { warning: 0.9, critical: 0.98 } },
    ]);
  });

  it('has the specified exchange rates (units per 1 USD)', () => {
    expect(config.exchangeRates).toEqual({ USD: '1', EUR: '0.92', GBP: '0.79', JPY: '149.50', CNY: '7.24' });
  });

  it('has the documented service defaults and no overrides', () => {
    expect(config).toMatchObject({
      databaseUrl: DEFAULTS.databaseUrl,
      redis: { url: 'redis://127.0.0.1:6379', keyPrefix: 'costguard:' },
      temporal: { address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'costguard' },
      api: { host: '127.0.0.1', port: 8080, keys: [] },
      logLevel: 'info',
      dataDir: '.data',
      configFile: null,
      timezone: 'UTC',
      pricing: { overrides: [] },
      channels: {},
    });
  });

  it('gives each load its own copy of the defaults (changing one config does not change the next)', () => {
    // e.g. a test or a CLI command that adjusts a loaded budget must not change every later load
    const first = loadConfig({});
    const budget0 = first.budgets[0]!;
    const saved = { amount: budget0.amount, warning: budget0.thresholds.warning };
    budget0.thresholds.warning = 0.1;
    budget0.amount = '1';
    try {
      const second = loadConfig({});
      expect(second.budgets[0]).toEqual({ scope: 'system', period: 'day', amount: '100', currency: 'USD', thresholds: { warning: 0.8, critical: 0.95 } });
    } finally {
      // undo, so a shared default cannot leak into the other tests of this file
      budget0.amount = saved.amount;
      budget0.thresholds.warning = saved.warning;
    }
  });
});

describe('loadConfig: the environment', () => {
  it('reads and coerces the variables', () => {
    const config = loadConfig({
      API_PORT: '9090',
      API_HOST: '0.0.0.0',
      API_KEYS: ' aaaaaaaaaaaaaaaa , bbbbbbbbbbbbbbbb ',
      LOG_LEVEL: 'debug',
      DATABASE_URL: 'postgresql://cg:pw@db:5432/cg',
      REDIS_URL: 'rediss://cache:6380',
      TEMPORAL_ADDRESS: 'temporal:7233',
    });
    expect(config.api).toEqual({
      host: '0.0.0.0',
      port: 9090,
      keys: [
        { scope: 'admin', key: 'aaaaaaaaaaaaaaaa' },
        { scope: 'admin', key: 'bbbbbbbbbbbbbbbb' },
      ],
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      rateLimit: { windowMs: 10_000, ingest: 10_000, read: 1_000, admin: 10_000 },
    });
    expect(config.logLevel).toBe('debug');
    expect(config.databaseUrl).toBe('postgresql://cg:pw@db:5432/cg');
    expect(config.redis.url).toBe('rediss://cache:6380');
    expect(config.temporal.address).toBe('temporal:7233');
  });

  it('API_PORT=abc stops with the key, the value and what was expected', () => {
    const message = configError({ API_PORT: 'abc' });
    expect(message).toBe('Invalid configuration in the environment:\n  API_PORT = "abc": expected a port number');
  });

  it.each(['0', '65536', '80.5'])('API_PORT=%s is refused', (port) => {
    expect(configError({ API_PORT: port })).toContain(`API_PORT = "${port}"`);
  });

  it('a wrong DATABASE_URL is named but its (secret) value is not echoed', () => {
    const message = configError({ DATABASE_URL: 'mysql://admin:s3cr3t-pw@db.internal/costguard' });
    expect(message).toContain('DATABASE_URL');
    expect(message).toContain('expected a postgres:// URL');
    expect(message).not.toContain('s3cr3t-pw');
    expect(message).not.toContain('db.internal');
  });

  it('short API keys are refused without echoing them', () => {
    const message = configError({ API_KEYS: 'tooShortKey1' });
    expect(message).toContain('API_KEYS');
    expect(message).toContain('at least 16 characters');
    expect(message).not.toContain('tooShortKey1');
  });

  it('API_KEYS takes scoped keys (<scope>:<key>) next to plain ones, which mean admin', () => {
    const config = loadConfig({ API_KEYS: 'ingest:cg_ingest_0123456789ab, read:cg_read_0123456789abcd,cg_old_plain_key_0123' });
    expect(config.api.keys).toEqual([
      { scope: 'ingest', key: 'cg_ingest_0123456789ab' },
      { scope: 'read', key: 'cg_read_0123456789abcd' },
      { scope: 'admin', key: 'cg_old_plain_key_0123' },
    ]);
  });

  it('an unknown key scope, a short scoped key or a key listed twice stops start-up, naming the key by position only', () => {
    const unknown = configError({ API_KEYS: 'cg_fine_key_0123456789,injest:cg_secret_value_0123456789' });
    expect(unknown).toContain('API_KEYS = (redacted): key 2: unknown key scope "injest"');
    expect(unknown).not.toContain('cg_secret_value_0123456789');
    const short = configError({ API_KEYS: 'read:cg_short' });
    expect(short).toContain('key 1: expected a key of at least 16 characters after "read:"');
    expect(short).not.toContain('cg_short');
    const twice = configError({ API_KEYS: 'read:cg_twice_0123456789ab,ingest:cg_twice_0123456789ab' });
    expect(twice).toContain('key 2: the same key is listed more than once');
    expect(twice).not.toContain('cg_twice_0123456789ab');
  });

  it('reports every bad variable at once', () => {
    const message = configError({ API_PORT: 'abc', LOG_LEVEL: 'loud', TEMPORAL_ADDRESS: 'no-port' });
    expect(message).toContain('API_PORT = "abc"');
    expect(message).toContain('LOG_LEVEL = "loud"');
    expect(message).toContain('TEMPORAL_ADDRESS = "no-port": expected host:port');
  });
});

describe('loadConfig: the Temporal connection (TLS, API key)', () => {
  it('is plain by default', () => {
    expect(loadConfig({}).temporal).toMatchObject({ tls: null, apiKey: null });
  });

  it('turns TLS on with a CA, a client certificate and key and a server name (mTLS)', () => {
    const t = loadConfig({
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/certs/ca.pem',
      TEMPORAL_TLS_CLIENT_CERT_PATH: '/certs/client.pem',
      TEMPORAL_TLS_CLIENT_KEY_PATH: '/certs/client-key.pem',
      TEMPORAL_TLS_SERVER_NAME: 'temporal.internal',
    }).temporal;
    expect(t.tls).toEqual({ serverCaCertPath: '/certs/ca.pem', clientCertPath: '/certs/client.pem', clientKeyPath: '/certs/client-key.pem', serverName: 'temporal.internal' });
    expect(t.apiKey).toBeNull();
  });

  it('an API key (Temporal Cloud) turns TLS on with the system CAs; TEMPORAL_TLS=true alone does too', () => {
    expect(loadConfig({ TEMPORAL_API_KEY: 'tc-key-0123456789' }).temporal).toMatchObject({ tls: {}, apiKey: 'tc-key-0123456789' });
    expect(loadConfig({ TEMPORAL_TLS: 'true' }).temporal.tls).toEqual({});
    expect(loadConfig({ TEMPORAL_API_KEY: 'k', TEMPORAL_TLS: 'false' }).temporal.tls).toBeNull();
  });

  it('refuses a certificate without its key, TLS files with TEMPORAL_TLS=false, and never echoes the API key', () => {
    expect(configError({ TEMPORAL_TLS_CLIENT_CERT_PATH: '/c.pem' })).toContain('TEMPORAL_TLS_CLIENT_KEY_PATH = (missing): a client certificate and its key go together');
    expect(configError({ TEMPORAL_TLS_CLIENT_KEY_PATH: '/k.pem' })).toContain('TEMPORAL_TLS_CLIENT_CERT_PATH = (missing)');
    expect(configError({ TEMPORAL_TLS: 'false', TEMPORAL_TLS_SERVER_CA_CERT_PATH: '/ca.pem' })).toContain('TEMPORAL_TLS = "false": TLS is turned off, yet a TLS setting is given');
    expect(configError({ TEMPORAL_TLS: 'maybe' })).toContain('TEMPORAL_TLS = "maybe": expected true or false');
    expect(configError({ TEMPORAL_TLS_CLIENT_CERT_PATH: '/c.pem', TEMPORAL_API_KEY: 'secret-key-0123456789' })).not.toContain('secret-key-0123456789');
  });

  it('empty variables mean unset (a deployment passes them through with or without TLS)', () => {
    expect(loadConfig({ TEMPORAL_TLS: '', TEMPORAL_TLS_SERVER_CA_CERT_PATH: '', TEMPORAL_TLS_CLIENT_CERT_PATH: '', TEMPORAL_TLS_CLIENT_KEY_PATH: '', TEMPORAL_TLS_SERVER_NAME: '', TEMPORAL_API_KEY: '' }).temporal).toMatchObject({ tls: null, apiKey: null });
  });
});

describe('loadConfig: the config file', () => {
  it('refuses the removed display currency, saying amounts are shown in USD', () => {
    const path = configFile('currency: EUR\n');
    expect(() => loadConfig({ COSTGUARD_CONFIG: path })).toThrow(/currency.*no longer a setting: every amount is shown in USD/s);
    expect(readFileSync(`${projectRoot()}/config/costguard.example.yaml`, 'utf8')).not.toMatch(/^currency:/m);
  });

  it('loads budgets, overrides and exchange rates from YAML', () => {
    const path = configFile(`
timezone: Europe/Paris
exchangeRates:
  EUR: "0.95"
  JPY: 150
budgets:
  - scope: system
    period: day
    amount: "250.50"
    timezone: America/New_York
    thresholds: { warning: 0.7, critical: 0.9 }
  - scope: user:alice
    period: 1h
    amount: 5
    currency: GBP
    thresholds: { warning: 0.5, critical: 1.2 }
pricing:
  overrides:
    - provider: openai
      model: gpt-4
      inputPer1k: "0.03"
      outputPer1k: 0.06
    - provider: anthropic
      model: claude-3-opus
      effectiveFrom: "2025-01-01"
      inputPer1k: "0.015"
      outputPer1k: "0.075"
channels:
  slack: { type: slack, webhookUrl: "https://hooks.example/x" }
`);
    const config = loadConfig({ COSTGUARD_CONFIG: path });
    expect(config.configFile).toBe(path);
    expect(config.timezone).toBe('Europe/Paris');
    expect('currency' in config).toBe(false);
    expect(config.exchangeRates).toEqual({ USD: '1', EUR: '0.95', GBP: '0.79', JPY: '150', CNY: '7.24' });
    expect(config.budgets).toEqual([
      { scope: 'system', period: 'day', amount: '250.50', currency: 'USD', timezone: 'America/New_York', thresholds: { warning: 0.7, critical: 0.9 } },
      { scope: 'user:alice', period: '1h', amount: '5', currency: 'GBP', thresholds: { warning: 0.5, critical: 1.2 } },
    ]);
    expect(config.pricing.overrides).toEqual([
      { provider: 'openai', model: 'gpt-4', inputPer1k: '0.03', outputPer1k: '0.06' },
      { provider: 'anthropic', model: 'claude-3-opus', effectiveFrom: '2025-01-01', inputPer1k: '0.015', outputPer1k: '0.075' },
    ]);
    expect(config.channels).toEqual({ slack: { type: 'slack', webhookUrl: 'https://hooks.example/x', timeoutMs: 10_000 } });

    // and the overrides reach the pricing engine: gpt-4 1000 in + 1000 out = 0.03 + 0.06
    const engine = createPricingEngine(config);
    expect(costOf(engine, 'openai', 'gpt-4', { inputTokens: 1000, outputTokens: 1000 })).toBe('0.09');
    expect(engine.price({ provider: 'anthropic', model: 'claude-3-opus-20240229', occurredAtMs: DEFAULT_AT, usage: { inputTokens: 1000, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0, reasoningTokens: 0 } })).toMatchObject({
      costUsd: '0.015',
      price: { source: 'override', effectiveFrom: '2025-01-01' },
    });
  });

  it('loads JSON too, and an empty file means all defaults', () => {
    const json = loadConfig({ COSTGUARD_CONFIG: configFile('{"timezone": "Asia/Tokyo"}', 'json') });
    expect(json.timezone).toBe('Asia/Tokyo');
    expect(json.budgets).toHaveLength(3);
    const empty = loadConfig({ COSTGUARD_CONFIG: configFile('') });
    expect(empty.budgets).toEqual(loadConfig({}).budgets);
  });

  it('a missing file stops start-up, naming the path', () => {
    const missing = join(dir, 'nope.yaml');
    expect(configError({ COSTGUARD_CONFIG: missing })).toContain(`Cannot read COSTGUARD_CONFIG=${JSON.stringify(missing)}`);
  });

  it('budgets[0].amount: -5 names the key, the value and what was expected', () => {
    const { path, message } = fileError(budget('').replace('amount: 100', 'amount: -5'));
    expect(message).toBe(
      `Invalid configuration in ${path}:\n  budgets[0].amount = -5: expected a budget amount as a non-negative decimal like "12.50"`,
    );
  });

  it('a zero budget amount is refused', () => {
    expect(fileError(budget('').replace('amount: 100', 'amount: "0.00"')).message).toContain(
      'budgets[0].amount = "0.00": expected a budget amount greater than zero',
    );
  });

  it('an unknown currency in exchangeRates is named', () => {
    const { message } = fileError('exchangeRates:\n  XYZ: "1.5"\n');
    expect(message).toContain('exchangeRates.XYZ = "1.5": unsupported currency; expected one of USD, EUR, GBP, JPY, CNY');
  });

  it('a USD rate other than 1 is refused', () => {
    expect(fileError('exchangeRates:\n  USD: 2\n').message).toContain('exchangeRates.USD = 2: expected 1 (rates are per 1 USD)');
  });

  it('timezone Mars/Olympus is refused, at the top level and in a budget', () => {
    expect(fileError('timezone: Mars/Olympus\n').message).toContain(
      'timezone = "Mars/Olympus": expected an IANA time zone such as "UTC" or "Europe/Paris"',
    );
    expect(fileError(budget('    timezone: Mars/Olympus\n')).message).toContain('budgets[0].timezone = "Mars/Olympus"');
  });

  it.each([
    ['0.95', '0.9'],
    ['0.9', '0.9'],
  ])('warning %s >= critical %s is refused', (warning, critical) => {
    const { message } = fileError(budget('').replace('{ warning: 0.8, critical: 0.95 }', `{ warning: ${warning}, critical: ${critical} }`));
    expect(message).toContain(`budgets[0].thresholds = {"warning":${warning},"critical":${critical}}: expected warning below critical`);
  });

  it('an unknown top-level key is named', () => {
    expect(fileError('budget: []\n').message).toContain('(root): unknown key(s) budget');
  });

  it('an unknown key in an override is named, with its bad neighbour', () => {
    const { message } = fileError('pricing:\n  overrides:\n    - provider: openai\n      model: gpt-4\n      inputPer1k: abc\n      outputPer1k: 0.06\n      extra: 1\n');
    expect(message).toContain('pricing.overrides[0].inputPer1k = "abc": expected inputPer1k (USD per 1K tokens) as a non-negative decimal');
    expect(message).toContain('pricing.overrides[0]: unknown key(s) extra');
  });

  it('invalid YAML stops start-up, naming the file', () => {
    const { path, message } = fileError('budgets: [\n');
    expect(message).toContain(`Invalid configuration in ${path}: not valid YAML/JSON`);
  });

  it('invalid YAML does not echo a secret from the broken line', () => {
    // The YAML parser quotes the offending source line; a config file holds channel credentials.
    const { message } = fileError('channels:\n  smtp:\n    password: "hunter2-secret\n');
    expect(message).toContain('not valid YAML/JSON');
    expect(message).not.toContain('hunter2-secret');
  });
});

describe('loadConfig: the API section of the file', () => {
  it('has the documented defaults: 30 s per request, 10 s for headers, per-key rate limits by scope', () => {
    const { api } = loadConfig({});
    expect(api).toMatchObject({ requestTimeoutMs: 30_000, headersTimeoutMs: 10_000, rateLimit: { windowMs: 10_000, ingest: 10_000, read: 1_000, admin: 10_000 } });
  });

  it('reads timeouts, rate limits and keys (${VAR} expanded, added after API_KEYS)', () => {
    const path = configFile(`
api:
  keys: ["read:\${CG_READ_KEY}", "ingest:cg_file_ingest_key_0123"]
  requestTimeoutMs: 20000
  headersTimeoutMs: 5000
  rateLimit: { windowMs: 60000, ingest: 0, read: 50 }
`);
    const { api } = loadConfig({ COSTGUARD_CONFIG: path, CG_READ_KEY: 'cg_read_from_env_0123', API_KEYS: 'cg_plain_admin_key_0123' });
    expect(api.keys).toEqual([
      { scope: 'admin', key: 'cg_plain_admin_key_0123' },
      { scope: 'read', key: 'cg_read_from_env_0123' },
      { scope: 'ingest', key: 'cg_file_ingest_key_0123' },
    ]);
    expect(api).toMatchObject({ requestTimeoutMs: 20_000, headersTimeoutMs: 5_000, rateLimit: { windowMs: 60_000, ingest: 0, read: 50, admin: 10_000 } });
  });

  it('refuses a headers timeout above the request timeout, a negative budget and a bad key, without echoing the key', () => {
    expect(fileError('api: { requestTimeoutMs: 5000, headersTimeoutMs: 6000 }\n').message).toContain(
      // (its value is redacted: "headers" is one of the words that mark secrets, as in a webhook's headers)
      'api.headersTimeoutMs = (redacted): expected at most requestTimeoutMs (5000)',
    );
    const { message } = fileError(`
api:
  keys: ["write:cg_file_secret_0123456789"]
  requestTimeoutMs: 500
  rateLimit: { read: -1 }
`);
    expect(message).toContain('api.requestTimeoutMs = 500: expected at least 1000 ms');
    expect(message).toContain('api.rateLimit.read = -1: expected 0 (no limit) or more');
    expect(message).toContain('api.keys = (redacted): key 1: unknown key scope "write"');
    expect(message).not.toContain('cg_file_secret_0123456789');
  });

  it('refuses a key both in API_KEYS and in the file, and a ${VAR} that is not set', () => {
    const both = configFile('api: { keys: ["read:cg_both_places_0123"] }\n');
    const message = configError({ COSTGUARD_CONFIG: both, API_KEYS: 'cg_both_places_0123' });
    expect(message).toContain('api.keys[0] = (redacted): the same key is also in API_KEYS');
    expect(message).not.toContain('cg_both_places_0123');
    const unset = configFile('api: { keys: ["ingest:${CG_NOT_SET}"] }\n');
    expect(configError({ COSTGUARD_CONFIG: unset })).toContain('api.keys[0]: environment variable CG_NOT_SET is not set');
  });
});

describe('the shipped example configuration', () => {
  it('loads, with the catalog table and two example overrides', async () => {
    const { loadConfig: load } = await import('../../src/config/index.js');
    const { projectRoot } = await import('../../src/lib/paths.js');
    const cfg = load({ COSTGUARD_CONFIG: `${projectRoot()}/config/costguard.example.yaml` });
    expect(cfg.pricing.table).toBe('catalog');
    expect(cfg.pricing.overrides).toHaveLength(2);
    expect(cfg.pricing.overrides[1]).toMatchObject({ provider: 'google', model: 'gemini-pro', inputPer1k: '0.0005', outputPer1k: '0.0015' });
    expect(cfg.budgets.map((b) => `${b.scope}/${b.period}/${b.amount}`)).toEqual(['system/day/100', 'system/month/2000', 'user/day/10']);
  });
});
