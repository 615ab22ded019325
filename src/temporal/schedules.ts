/**
 * The report schedules, created or updated at every start-up so that running `costguard start` any
 * number of times (or on several machines at once) leaves exactly one schedule of each, matching
 * the current config:
 *
 * - `costguard-daily-report`: 00:05 every day, reporting on the previous day;
 * - `costguard-monthly-report`: 00:05 on the 1st, reporting on the previous month;
 *
 * both in `reports.timezone` (default `timezone`), overlap SKIP (a slow report never runs twice at
 * once) and an explicit catch-up window (`reports.catchupWindow`; the SDK's own default is
 * documented inconsistently, so it is always set): after an outage shorter than the window the
 * missed run still happens, after a longer one it is skipped (backfill with `costguard report
 * ... --generate`). With `reports.enabled: false` existing schedules are deleted.
 */
import { type Client, type ScheduleOptions, ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Config } from '../config/index.js';
import { fixedLengthMs } from '../domain/periods.js';
import type { ReportKind } from '../domain/report-period.js';
import type { Logger } from '../lib/logger.js';
import { REPORT_WORKFLOW_TYPE } from '../messages.js';

export const REPORT_SCHEDULE_IDS: Record<ReportKind, string> = {
  daily: 'costguard-daily-report',
  monthly: 'costguard-monthly-report',
};

/** The full definition of one report schedule from the config (pure; what create and update send). */
export function reportScheduleOptions(config: Pick<Config, 'timezone' | 'reports' | 'temporal'>, kind: ReportKind): ScheduleOptions {
  const timezone = config.reports.timezone ?? config.timezone;
  return {
    scheduleId: REPORT_SCHEDULE_IDS[kind],
    spec: {
      calendars: [kind === 'daily' ? { hour: 0, minute: 5 } : { dayOfMonth: 1, hour: 0, minute: 5 }],
      timezone,
    },
    action: {
      type: 'startWorkflow',
      workflowType: REPORT_WORKFLOW_TYPE,
      // Runs get ids `<workflowId>-<nominal time>`: one per scheduled time, visible in the UI.
      workflowId: `report-${kind}`,
      taskQueue: config.temporal.taskQueue,
      // The time zone travels with each run, so a run reports in the zone it was scheduled in.
      args: [{ kind, timezone }],
      staticSummary: `Cost Guard ${kind} cost report (${timezone})`,
    },
    policies: {
      overlap: ScheduleOverlapPolicy.SKIP,
      catchupWindow: fixedLengthMs(config.reports.catchupWindow),
      pauseOnFailure: false,
    },
  };
}

export type ScheduleOutcome = 'created' | 'updated' | 'deleted' | 'absent';

/** Creates each report schedule, or updates it in place if it exists; deletes them when disabled. */
export async function ensureReportSchedules(
  client: Client,
  config: Pick<Config, 'timezone' | 'reports' | 'temporal'>,
  logger?: Logger,
): Promise<Record<ReportKind, ScheduleOutcome>> {
  const outcome = {} as Record<ReportKind, ScheduleOutcome>;
  for (const kind of ['daily', 'monthly'] as const) {
    const options = reportScheduleOptions(config, kind);
    const handle = client.schedule.getHandle(options.scheduleId);
    if (!config.reports.enabled) {
      try {
        await handle.delete();
        outcome[kind] = 'deleted';
      } catch (err) {
        if (!(err instanceof ScheduleNotFoundError)) throw err;
        outcome[kind] = 'absent';
      }
      continue;
    }
    try {
      await client.schedule.create(options);
      outcome[kind] = 'created';
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      // Exists (an earlier start, or another process just now): bring it to the current config,
      // keeping its state (paused by an operator stays paused).
      await handle.update((previous) => ({
        spec: options.spec,
        action: options.action,
        policies: options.policies,
        state: { paused: previous.state.paused, note: previous.state.note, remainingActions: previous.state.remainingActions },
      }));
      outcome[kind] = 'updated';
    }
    logger?.info({ scheduleId: options.scheduleId, outcome: outcome[kind], timezone: options.spec.timezone }, 'report schedule ready');
  }
  return outcome;
}
