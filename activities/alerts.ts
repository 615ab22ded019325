/**
 * Activities of alerting: raising an incident (start or signal its alert workflow), recording its
 * history, claiming notifications against the repeat interval, and reading spend windows for the
 * spike rule. Channel deliveries are in activities/channels.ts.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import type { Config } from '../src/config/index.js';
import { recordIncidentEvent, recordNotification, type IncidentEventKind } from '../src/db/alerts.js';
import { describeDbError, isDeterministicDbError } from '../src/db/ledger.js';
import { readSpendByDay, readTopContributors } from '../src/db/spend-windows.js';
import type { AlertCondition, SpendWindows } from '../src/domain/alert-rules.js';
import { scopeId, scopeKind } from '../src/domain/budget.js';
import type { AlertSettings, IncidentState, PlannedNotification } from '../src/domain/incident.js';
import { ALERT_LEVELS } from '../src/domain/notification.js';
import type { Logger } from '../src/lib/logger.js';
import { ALERT_WORKFLOW_TYPE, type AlertWorkflowInput, alertWorkflowId, conditionSignal, searchAttributes } from '../src/messages.js';

export interface AlertActivityDeps {
  pool: Pool;
  config: Config;
  logger: Logger;
  clock: () => number;
  /** Starts and signals alert workflows. */
  temporal: () => Client;
}

/** The incident id of a condition: short, URL-safe, the same for the same condition key. */
export function incidentIdFor(conditionKey: string): string {
  return createHash('sha256').update(conditionKey).digest('hex').slice(0, 12);
}

/** The alert settings from the config, keeping only channels that are configured. */
export function alertSettings(config: Config): AlertSettings {
  const configured = new Set(Object.keys(config.channels));
  const keep = (names: readonly string[]) => names.filter((n) => configured.has(n));
  return {
    routing: Object.fromEntries(ALERT_LEVELS.map((l) => [l, keep(config.alerts.routing[l])])) as AlertSettings['routing'],
    repeatIntervalMs: config.alerts.repeatInterval,
    escalation: { delayMs: config.alerts.escalation.delay, channels: keep(config.alerts.escalation.channels), maxEscalations: config.alerts.escalation.maxEscalations },
  };
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && (err.name === 'WorkflowNotFoundError' || /not found|already completed/i.test(err.message));
}

/**
 * Runs a history write; a failure tied to its input (PostgreSQL refusing a value: the same write
 * would fail the same way) becomes a non-retryable `PoisonInput` failure, so the alert workflow
 * logs it and carries on instead of retrying it for ever (which would block every later
 * acknowledgement of the incident). Anything else (PostgreSQL unreachable) is retried.
 */
async function nonRetryableIfPoisoned<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (isDeterministicDbError(err)) throw ApplicationFailure.nonRetryable(describeDbError(err), 'PoisonInput');
    throw err;
  }
}

export const createAlertActivities = (deps: AlertActivityDeps) => ({
  /**
   * Opens the condition's incident (or tells the running one the new level): signal-with-start on
   * the incident's workflow id, so a condition has at most one open incident whoever raises it.
   */
  async raiseAlert(input: { condition: AlertCondition; budgetWorkflowId: string | null }): Promise<{ incidentId: string }> {
    const incidentId = incidentIdFor(input.condition.key);
    const workflowId = alertWorkflowId(incidentId);
    const client = deps.temporal();
    const c = input.condition;
    const args: AlertWorkflowInput = { incidentId, condition: c, settings: alertSettings(deps.config), budgetWorkflowId: input.budgetWorkflowId };
    await client.workflow.signalWithStart(ALERT_WORKFLOW_TYPE, {
      workflowId,
      taskQueue: deps.config.temporal.alertTaskQueue,
      args: [args],
      signal: conditionSignal,
      signalArgs: [{ condition: c }],
      typedSearchAttributes: [
        { key: searchAttributes.scopeKind, value: scopeKind(c.scope) },
        { key: searchAttributes.scopeId, value: scopeId(c.scope) },
        { key: searchAttributes.alertLevel, value: c.level },
      ],
      staticSummary: c.title.slice(0, 190),
      staticDetails: [
        `**${c.title}**`,
        '',
        c.summary,
        '',
        `Incident \`${incidentId}\` (${c.rule}). To acknowledge from this page: **Send a Signal** named \`ack\` with input \`{"by": "your name", "note": "optional"}\`.`,
        `Or: \`costguard alerts ack ${incidentId} --by "your name"\`.`,
      ].join('\n'),
    });
    deps.logger.info({ incidentId, rule: c.rule, scope: c.scope, level: c.level }, 'alert raised');
    return { incidentId };
  },

  /** Tells a running incident that its condition no longer holds (none running: nothing to do). */
  async clearAlert(input: { incidentId: string; reason: string }): Promise<void> {
    try {
      await deps.temporal().workflow.getHandle(alertWorkflowId(input.incidentId)).signal(conditionSignal, { condition: null, reason: input.reason });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  },

  /** Saves the incident's state with one event of its history (idempotent per event key). */
  async recordIncident(input: { state: IncidentState; workflowId: string; eventKey: string; kind: IncidentEventKind; detail?: Record<string, unknown> }): Promise<void> {
    await nonRetryableIfPoisoned(() =>
      recordIncidentEvent(deps.pool, input.state, input.workflowId, { eventKey: input.eventKey, kind: input.kind, atMs: deps.clock(), detail: input.detail }),
    );
  },

  /**
   * Records a notification before it is sent and, for first notifications and reminders, claims
   * it against the repeat interval of its (condition, level): `allowed: false` means another
   * notification of the same (condition, level) went out within the interval, so send nothing.
   */
  async recordNotification(input: {
    state: IncidentState;
    workflowId: string;
    sourceId: string;
    plan: PlannedNotification;
    eventKey: string;
    repeatIntervalMs: number;
  }): Promise<{ allowed: boolean }> {
    const now = deps.clock();
    const { plan } = input;
    const claim = plan.deduplicate
      ? { conditionKey: input.state.condition.key, level: plan.level, notificationKey: `${input.sourceId}/${plan.notificationId}`, repeatIntervalMs: input.repeatIntervalMs, nowMs: now }
      : null;
    const verdict = await nonRetryableIfPoisoned(() =>
      recordNotification(deps.pool, input.state, input.workflowId, {
        eventKey: input.eventKey,
        atMs: now,
        detail: { notificationId: plan.notificationId, kind: plan.kind, level: plan.level, channels: plan.channels },
      }, claim),
    );
    if (!verdict.allowed) deps.logger.info({ incidentId: input.state.incidentId, level: plan.level, previousAt: verdict.previousAt }, 'notification suppressed: repeat interval');
    return { allowed: verdict.allowed };
  },

  /**
   * Spend of `scope` in the last `windowMinutes`, and in the same window on each of the previous
   * `baselineDays` days on which the scope already had usage (from the hour rollups' first row);
   * when the window spent anything, its top model, user and task type by cost (one more read of the
   * window's ledger rows, grouped three ways).
   */
  async readSpendWindows(input: { scope: string; windowMinutes: number; baselineDays: number }): Promise<SpendWindows> {
    const now = deps.clock();
    const query = { scope: input.scope, windowMinutes: input.windowMinutes, baselineDays: input.baselineDays, nowMs: now };
    const { byDay, firstHourMs } = await readSpendByDay(deps.pool, query);
    const firstMs = firstHourMs ?? Infinity;
    const baselineUsd: string[] = [];
    for (let d = 1; d <= input.baselineDays; d++) {
      // A day counts only if the scope already existed before that day's window ended.
      if (firstMs < now - d * 86_400_000) baselineUsd.push(byDay.get(d) ?? '0');
    }
    const windowUsd = byDay.get(0) ?? '0';
    return { windowUsd, baselineUsd, ...(windowUsd === '0' ? {} : { top: await readTopContributors(deps.pool, query) }) };
  },
});
