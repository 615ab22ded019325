import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createLogger, resolveLogFormat } from '../../src/lib/logger.js';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('log format', () => {
  it('auto is pretty on a terminal and JSON otherwise; json and pretty are kept', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('auto', undefined)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
  });

  it('LOG_FORMAT is validated, naming the variable', () => {
    expect(loadConfig({}).logFormat).toBe('auto');
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(() => loadConfig({ LOG_FORMAT: 'fancy' })).toThrow(/LOG_FORMAT.*expected auto, json or pretty/s);
  });

  it('pretty lines are human-readable and still redact secrets', () => {
    const out = capture();
    const logger = createLogger('info', 'costguard', 'pretty', out.stream);
    logger.info({ channel: { webhookUrl: 'https://hooks.slack.com/services/T/B/SECRET' }, apiKey: 'k-123456789012345678' }, 'delivered');
    const text = out.text();
    expect(text).toMatch(/INFO.*\(costguard\): delivered/);
    expect(text).toContain('[redacted]');
    expect(text).not.toContain('SECRET');
    expect(text).not.toContain('k-123456789012345678');
    expect(() => JSON.parse(text.split('\n')[0]!)).toThrow();
  });

  it('json lines are one object each, with the same redaction', () => {
    const out = capture();
    const logger = createLogger('info', 'costguard', 'json', out.stream);
    logger.info({ token: 'ntfy-secret', databaseUrl: 'postgres://u:p@h/db' }, 'started');
    const line = JSON.parse(out.text().trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ msg: 'started', name: 'costguard', token: '[redacted]', databaseUrl: '[redacted]' });
  });
});
