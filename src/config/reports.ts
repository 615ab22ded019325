/** Settings of the reports derived from the config: where they go and in which time zone. */
import type { Config } from './index.js';

const DELIVERED_CHANNEL_TYPES = new Set(['email', 'slack']);

/** Where reports go: `reports.channels` if set, else every configured channel of type email or slack. */
export function reportChannels(config: Pick<Config, 'channels' | 'reports'>): string[] {
  if (config.reports.channels) return [...config.reports.channels];
  return Object.entries(config.channels)
    .filter(([, c]) => DELIVERED_CHANNEL_TYPES.has(String((c as { type?: unknown } | null)?.type)))
    .map(([name]) => name)
    .sort();
}

/** The report time zone: explicit, else `reports.timezone`, else the configured `timezone`. */
export function reportTimezone(config: Pick<Config, 'timezone' | 'reports'>, explicit?: string): string {
  return explicit ?? config.reports.timezone ?? config.timezone;
}
