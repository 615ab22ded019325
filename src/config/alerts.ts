/**
 * The `alerts:` part of the config file: rule settings, routing from level to channels, repeat
 * interval and escalation. Defaults are in src/config/defaults.ts.
 */
import { z } from 'zod';
import { isDecimalString } from '../domain/money.js';
import { ALERT_LEVELS, type AlertLevel } from '../domain/notification.js';
import { DEFAULTS } from './defaults.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `30s`, `15m`, `1h`, `1d` (or a number of milliseconds) to milliseconds. */
export function parseDuration(value: string | number): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : null;
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value.trim());
  return m ? Number(m[1]) * UNITS[m[2]!]! : null;
}

const duration = (what: string, minMs: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx): number => {
    const ms = parseDuration(v);
    if (ms === null || ms < minMs) {
      ctx.addIssue({ code: 'custom', message: `expected ${what} such as "15m", "1h" or "30s" (at least ${minMs} ms)` });
      return z.NEVER;
    }
    return ms;
  });

const channelList = z.array(z.string().min(1, 'expected a channel name'));

const alertsObject = z
  .object({
    /** Off: no rule is evaluated and no incident opens (budgets and totals work as before). */
    enabled: z.boolean().default(true),
    repeatInterval: duration('the repeat interval', 1000).default(DEFAULTS.alerts.repeatIntervalMs),
    evaluateEvery: duration('the evaluation interval', 1000).default(DEFAULTS.alerts.evaluateEveryMs),
    routing: z
      .object(Object.fromEntries(ALERT_LEVELS.map((l) => [l, channelList.optional()])) as Record<AlertLevel, z.ZodOptional<typeof channelList>>)
      .strict()
      .optional(),
    escalation: z
      .object({
        delay: duration('the escalation delay', 1000).default(DEFAULTS.alerts.escalation.delayMs),
        channels: channelList.default(() => [...DEFAULTS.alerts.escalation.channels]),
        maxEscalations: z.number().int().min(0).max(100).default(DEFAULTS.alerts.escalation.maxEscalations),
      })
      .strict()
      .default(() => ({ delay: DEFAULTS.alerts.escalation.delayMs, channels: [...DEFAULTS.alerts.escalation.channels], maxEscalations: DEFAULTS.alerts.escalation.maxEscalations })),
    forecast: z
      .object({
        enabled: z.boolean().default(true),
        minElapsedFraction: z.number().gt(0).lt(1).default(DEFAULTS.alerts.forecast.minElapsedFraction),
        minCalls: z.number().int().min(1).default(DEFAULTS.alerts.forecast.minCalls),
      })
      .strict()
      .default(() => ({ enabled: true, ...DEFAULTS.alerts.forecast })),
    spike: z
      .object({
        enabled: z.boolean().default(true),
        windowMinutes: z.number().int().min(1).max(24 * 60).default(DEFAULTS.alerts.spike.windowMinutes),
        factor: z.number().gt(1, 'expected a factor above 1').default(DEFAULTS.alerts.spike.factor),
        floorUsd: z
          .union([z.string(), z.number()])
          .transform((v) => String(v))
          .refine((s) => isDecimalString(s) && !s.startsWith('-'), { message: 'expected a non-negative USD amount like "1.00"' })
          .default(DEFAULTS.alerts.spike.floorUsd),
        baselineDays: z.number().int().min(1).max(28).default(DEFAULTS.alerts.spike.baselineDays),
        minBaselineDays: z.number().int().min(1).max(28).default(DEFAULTS.alerts.spike.minBaselineDays),
        /** Also watch each user scope (checked only once its day's spend reaches the floor). */
        users: z.boolean().default(true),
      })
      .strict()
      .default(() => ({ enabled: true, users: true, ...DEFAULTS.alerts.spike })),
  })
  .strict();

export const alertsSchema = alertsObject.default(() => alertsObject.parse({}));

export type AlertsFileConfig = z.infer<typeof alertsSchema>;

/** Resolved alert settings: routing completed with the defaults. */
export interface AlertsConfig extends Omit<AlertsFileConfig, 'routing'> {
  routing: Record<AlertLevel, string[]>;
  /** Levels whose routing the file gives (there an unknown channel name is an error). */
  explicitLevels: AlertLevel[];
}

export function resolveAlerts(file: AlertsFileConfig): AlertsConfig {
  const routing = Object.fromEntries(ALERT_LEVELS.map((l) => [l, [...(file.routing?.[l] ?? DEFAULTS.alerts.routing[l])]])) as Record<AlertLevel, string[]>;
  const explicitLevels = ALERT_LEVELS.filter((l) => file.routing?.[l] !== undefined);
  return { ...file, routing, explicitLevels };
}
