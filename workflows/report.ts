/**
 * The report workflow: generate and store one period's cost report (an activity reads the ledger),
 * then deliver it to each report channel. Started by the `costguard-daily-report` and
 * `costguard-monthly-report` schedules (src/temporal/schedules.ts), or on demand for any period.
 *
 * A scheduled run carries no period: it reports on the day (month) BEFORE its nominal time, taken
 * from the `TemporalScheduledStartTime` search attribute, so a run started late (catch-up after an
 * outage) still reports on the period it was scheduled for. Storage is idempotent per period and
 * each delivery is keyed by (report, channel) in the channels' delivery log, so a retried or
 * repeated run neither duplicates the report nor sends it twice.
 */
import { ApplicationFailure, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { GeneratedReport } from '../activities/reports.js';
import { type ReportWorkflowInput, type ReportWorkflowResult, scheduledStartTimeAttribute } from '../src/messages.js';

// Reading the ledger can fail transiently (PostgreSQL restarting); a bad period cannot succeed later.
const reports = proxyActivities<Activities>({
  startToCloseTimeout: '5m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 10, nonRetryableErrorTypes: ['ValidationError'] },
});

// A channel that is down is retried with backoff for about half an hour (5 s doubling to 5 min, 12
// attempts); a misconfigured one (4xx, bad credentials, unknown channel) fails at once. An attempt
// may take longer than a channel's own timeout (`timeoutMs`, at most 2 min, per request or SMTP
// stage) so the channel gives up first, with a reason, rather than Temporal.
const channels = proxyActivities<Activities>({
  startToCloseTimeout: '3m',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '5m', maximumAttempts: 12, nonRetryableErrorTypes: ['ChannelConfigError'] },
});

/** The schedule's nominal time of this run, else the workflow's start time. */
function nominalTime(): number {
  const info = workflowInfo();
  const scheduled = info.typedSearchAttributes.get(scheduledStartTimeAttribute);
  return (scheduled ?? info.startTime).getTime();
}

export async function reportWorkflow(input: ReportWorkflowInput): Promise<ReportWorkflowResult> {
  const generated: GeneratedReport = await reports.generateReport({
    kind: input.kind,
    period: input.period,
    timezone: input.timezone,
    nominalMs: nominalTime(),
  });
  const result: ReportWorkflowResult = {
    kind: generated.kind,
    period: generated.period,
    timezone: generated.timezone,
    empty: generated.empty,
    generations: generated.generations,
    deliveries: [],
  };
  if (input.deliver === false || generated.channels.length === 0) return result;
  // Every channel gets its chance even if another fails; failures are reported together at the end.
  const outcomes = await Promise.allSettled(
    generated.channels.map((channel) => channels.deliverNotification({ channel, notification: generated.notification })),
  );
  const failed: string[] = [];
  outcomes.forEach((o, i) => {
    const channel = generated.channels[i]!;
    if (o.status === 'fulfilled') result.deliveries.push({ channel, status: o.value.status });
    else {
      failed.push(channel);
      log.warn('report delivery failed', { channel, period: generated.period, error: String(o.reason) });
    }
  });
  if (failed.length > 0) {
    // The report is stored; the run fails so the failed delivery shows in the Temporal UI.
    throw ApplicationFailure.nonRetryable(`report ${generated.period} stored, but delivery failed on: ${failed.join(', ')}`, 'DeliveryFailed', result);
  }
  return result;
}
