import { ScheduleOverlapPolicy } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { reportChannels, reportTimezone } from '../../src/config/reports.js';
import { ConfigError, parseConfigFile, loadConfig } from '../../src/config/index.js';
import { reportCommandPeriod } from '../../src/cli/report.js';
import { reportScheduleOptions } from '../../src/temporal/schedules.js';

type FileConfig = ReturnType<typeof parseConfigFile>;

function file(yaml: string): FileConfig {
  return parseConfigFile(yaml, 'costguard.yaml');
}

/**
 * Complete channels of four types, as a config file gives them (flow-style YAML), so the configs
 * below are validated by the real schema like a production file.
 */
const CHANNELS = {
  ops: '{ type: email, smtp: { host: smtp.example.com, port: 587 }, from: "Cost Guard <costguard@example.com>", to: [ops@example.com] }',
  chat: '{ type: slack, webhookUrl: "https://hooks.slack.com/services/T0000/B0000/report-config-test" }',
  pager: '{ type: twilio, accountSid: AC0123456789abcdef0123456789abcdef, authToken: twilio-test-token, from: "+14155550100", to: ["+14155550101"] }',
  hook: '{ type: webhook, url: "https://hooks.example.com/costguard", secret: "whsec_Y29zdGd1YXJkLXJlcG9ydC1jb25maWctdGVzdC1zZWNyZXQh" }',
} as const;

/** `channels: { ... }` with the named channels of CHANNELS. */
function channels(...names: (keyof typeof CHANNELS)[]): string {
  return `channels: { ${names.map((n) => `${n}: ${CHANNELS[n]}`).join(', ')} }`;
}

function fileError(yaml: string): string {
  try {
    file(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('reports config', () => {
  it('defaults: enabled, top 10 users, a one-day catch-up window, the configured zone, every email and slack channel', () => {
    const config = loadConfig({});
    expect(config.reports).toEqual({ enabled: true, topUsers: 10, catchupWindow: '1d' });
    expect(reportTimezone(config)).toBe('UTC');
    const withChannels = file(channels('ops', 'chat', 'pager', 'hook'));
    expect(withChannels.reports).toEqual(config.reports);
    expect(Object.keys(withChannels.channels).sort()).toEqual(['chat', 'hook', 'ops', 'pager']);
    expect(reportChannels(withChannels)).toEqual(['chat', 'ops']);
  });

  it('takes a zone of its own, a channel list and a window', () => {
    const f = file(`timezone: UTC\n${channels('ops', 'chat')}\nreports: { timezone: Asia/Tokyo, channels: [chat], topUsers: 3, catchupWindow: 12h }`);
    expect(f.reports).toEqual({ enabled: true, timezone: 'Asia/Tokyo', channels: ['chat'], topUsers: 3, catchupWindow: '12h' });
    expect(reportChannels(f)).toEqual(['chat']);
    expect(reportTimezone(f)).toBe('Asia/Tokyo');
  });

  it('names the bad key and what was expected', () => {
    expect(fileError('reports: { timezone: Mars/Olympus }')).toContain('reports.timezone = "Mars/Olympus": expected an IANA time zone');
    expect(fileError('reports: { catchupWindow: soon }')).toContain('reports.catchupWindow = "soon": expected a duration such as "30m", "12h" or "1d"');
    expect(fileError('reports: { topUsers: 0 }')).toContain('reports.topUsers = 0');
    expect(fileError('reports: { sendAt: "01:00" }')).toContain('reports: unknown key(s) sendAt');
    expect(fileError(`${channels('ops')}\nreports: { channels: [ops, pager] }`)).toContain(
      'reports.channels[1] = "pager": expected the name of a channel under "channels" (one of ops)',
    );
  });
});

describe('report schedules', () => {
  const config = { ...loadConfig({ TEMPORAL_TASK_QUEUE: 'cg' }), reports: { enabled: true, topUsers: 10, catchupWindow: '1d', timezone: 'Europe/Paris' } };

  it('daily at 00:05 and monthly at 00:05 on the 1st, in the report zone, SKIP, with the catch-up window', () => {
    const daily = reportScheduleOptions(config, 'daily');
    expect(daily).toMatchObject({
      scheduleId: 'costguard-daily-report',
      spec: { calendars: [{ hour: 0, minute: 5 }], timezone: 'Europe/Paris' },
      action: { type: 'startWorkflow', workflowType: 'reportWorkflow', taskQueue: 'cg', args: [{ kind: 'daily', timezone: 'Europe/Paris' }] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 86_400_000 },
    });
    const monthly = reportScheduleOptions(config, 'monthly');
    expect(monthly).toMatchObject({
      scheduleId: 'costguard-monthly-report',
      spec: { calendars: [{ dayOfMonth: 1, hour: 0, minute: 5 }], timezone: 'Europe/Paris' },
      action: { args: [{ kind: 'monthly', timezone: 'Europe/Paris' }] },
    });
  });
});

describe('costguard report: which period', () => {
  const config = { ...loadConfig({}), reports: { enabled: true, topUsers: 10, catchupWindow: '1d', timezone: 'America/New_York' } };

  it('defaults to the last complete day (month) in the report zone', () => {
    // 03:00Z on 9 March is still the evening of 8 March in New York: the last complete day is the 7th.
    expect(reportCommandPeriod(config, 'daily', {}, Date.parse('2026-03-09T03:00:00Z')).period).toBe('2026-03-07');
    expect(reportCommandPeriod(config, 'daily', { tz: 'UTC' }, Date.parse('2026-03-09T03:00:00Z')).period).toBe('2026-03-08');
    expect(reportCommandPeriod(config, 'monthly', {}, Date.parse('2026-04-01T03:00:00Z')).period).toBe('2026-02');
  });

  it('takes the date given, trimmed, and rejects a bad zone even without one', () => {
    expect(reportCommandPeriod(config, 'daily', { period: ' 2026-03-08 ' }, 0)).toMatchObject({ period: '2026-03-08', timezone: 'America/New_York' });
    expect(() => reportCommandPeriod(config, 'monthly', { tz: 'Nowhere/Land' }, 0)).toThrow(/tz: expected an IANA time zone/);
  });
});
