import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alertSettings } from '../../activities/alerts.js';
import { parseDuration } from '../../src/config/alerts.js';
import { ConfigError, type Config, loadConfig } from '../../src/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'costguard-alert-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function load(yaml: string): Config {
  const path = join(dir, `c${++n}.yaml`);
  writeFileSync(path, yaml);
  return loadConfig({ COSTGUARD_CONFIG: path });
}

function loadError(yaml: string): string {
  try {
    load(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  return expect.fail('expected a ConfigError');
}

const CHANNELS = `channels:
  mail: { type: email, smtp: { host: 127.0.0.1, port: 2525 }, from: a@b.test, to: [ops@b.test] }
  hook: { type: webhook, url: "http://127.0.0.1:9/h", secret: "whsec_${Buffer.alloc(32, 7).toString('base64')}" }
`;

describe('alerts config', () => {
  it('parses durations', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration(2000)).toBe(2000);
    expect(parseDuration('soon')).toBeNull();
    expect(parseDuration(-1)).toBeNull();
  });

  it('defaults: 1 h repeat interval, 15 min escalation adding sms and push, original routing', () => {
    const c = loadConfig({});
    expect(c.alerts).toMatchObject({
      enabled: true,
      repeatInterval: 3_600_000,
      evaluateEvery: 60_000,
      escalation: { delay: 900_000, channels: ['sms', 'push'], maxEscalations: 3 },
      routing: { critical: ['email', 'slack', 'sms', 'push', 'webhook'] },
      explicitLevels: [],
    });
    expect(c.alerts.spike).toMatchObject({ windowMinutes: 60, factor: 3, floorUsd: '1' });
  });

  it("default routing is the original's table: email, Slack and push at every level, SMS from critical on (plus a webhook named `webhook`)", () => {
    expect(loadConfig({}).alerts.routing).toEqual({
      info: ['email', 'slack', 'push', 'webhook'],
      warning: ['email', 'slack', 'push', 'webhook'],
      critical: ['email', 'slack', 'sms', 'push', 'webhook'],
      emergency: ['email', 'slack', 'sms', 'push', 'webhook'],
    });
  });

  it('keeps only configured channels in the settings an incident snapshots', () => {
    const c = load(`${CHANNELS}alerts: { escalation: { delay: 2s } }\n`);
    const s = alertSettings(c);
    expect(s.routing.warning).toEqual([]);
    expect(s.routing.critical).toEqual([]);
    const routed = alertSettings(load(`${CHANNELS}alerts: { routing: { warning: [mail, hook] }, escalation: { channels: [hook, sms] } }\n`));
    expect(routed.routing.warning).toEqual(['mail', 'hook']);
    expect(routed.escalation.channels).toEqual(['hook']);
  });

  it('names an unknown channel in explicit routing, and bad values with what was expected', () => {
    expect(loadError(`${CHANNELS}alerts: { routing: { critical: [mail, pager] } }\n`)).toContain(
      'alerts.routing.critical: unknown channel "pager"; configured channels: mail, hook',
    );
    expect(loadError('alerts: { escalation: { delay: soon } }')).toContain('alerts.escalation.delay = "soon": expected the escalation delay such as "15m"');
    expect(loadError('alerts: { spike: { factor: 1 } }')).toContain('alerts.spike.factor = 1: expected a factor above 1');
    expect(loadError('alerts: { routing: { page: [mail] } }')).toContain('alerts.routing: unknown key(s) page');
  });

  it('validates thresholds: info below warning, emergency above critical', () => {
    expect(loadError('budgets: [{ scope: user, period: day, amount: "1", thresholds: { warning: 0.8, critical: 0.9, info: 0.85 } }]')).toContain('expected info below warning');
    expect(loadError('budgets: [{ scope: user, period: day, amount: "1", thresholds: { warning: 0.8, critical: 0.9, emergency: 0.9 } }]')).toContain('expected emergency above critical');
    const c = load('budgets: [{ scope: user, period: day, amount: "1", thresholds: { info: 0.5, warning: 0.8, critical: 0.9, emergency: 1.2 } }]');
    expect(c.budgets[0]!.thresholds).toEqual({ info: 0.5, warning: 0.8, critical: 0.9, emergency: 1.2 });
  });
});
