/**
 * The budget workflow: one per scope (`user:<id>`, `system`, `team:<id>`...), running for as long
 * as the scope exists, continuing-as-new at every period rollover and whenever the server suggests.
 *
 * - `user:` scopes receive `usage` signals (batches from CostTracker or the API). Each signal is
 *   validated and deduplicated by batch id in the handler (which never throws); the main loop
 *   flushes pending events through ONE local activity per flush (price + ledger + Redis) and adds only
 *   what the ledger newly counted.
 * - `system`, `team:` and `project:` scopes take no per-event signals (no fan-in at 10,000
 *   events/s): they re-read their exact totals from the ledger's rollups every few seconds.
 * - Periods roll over on a durable timer even when no usage arrives.
 * - State lives in a plain class (src/domain/budget-state.ts); this function only wires it.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { scopeId, scopeKind, validateBudgetChange } from '../src/domain/budget.js';
import { BudgetState, totalsUpdateProblem } from '../src/domain/budget-state.js';
import type { AlertChange } from '../src/domain/alert-rules.js';
import type { FlushSummary } from '../src/domain/flush-summary.js';
import { ScopeAlerts } from '../src/domain/scope-alerts.js';
import { renderBudgetMarkdown, visibilityUpdates } from '../src/domain/visibility.js';
import { EMPTY_LEASE_RECORD, type LeaseRecord, activeLost, usdOf, type LeaseStatus } from '../src/domain/leases.js';
import {
  type BudgetWorkflowInput,
  leaseUpdate,
  incidentChangedSignal,
  scopeTotalsSignal,
  searchAttributes,
  setBudgetUpdate,
  statusQuery,
  usageSignal,
} from '../src/messages.js';
import type { BudgetStatus, ScopeTotalsUpdate } from '../src/domain/budget-status.js';

const settingsActivities = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

// Since `local-activities-v1`, the settings and totals reads and the flushes are local activities:
// run by the worker that runs the workflow task, inside that task, so a flush costs one workflow
// task instead of two plus an activity task, and the batch crosses the server once (in its signal),
// not three times. Their results are recorded in history like an activity's. A worker that dies
// mid-flush leaves the task to time out and the next worker to run the flush again under the same
// flush id, possibly with more events (signals that arrived since); the flush reads its result back
// from the ledger (persistFlush in src/db/ledger.ts), so what the first attempt committed still counts.
const localSettings = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

// Flushes retry for as long as it takes (PostgreSQL down must not lose accepted usage); bad input
// and batch-id conflicts are not retryable: the same input would fail the same way.
const flushRetry = { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: ['ValidationError', 'ConflictError'] };
const localLedger = proxyLocalActivities<Activities>({ startToCloseTimeout: '60s', retry: flushRetry });
/** Workflows started before `local-activities-v1` replay with a regular flush activity. */
const ledger = proxyActivities<Activities>({ startToCloseTimeout: '60s', heartbeatTimeout: '5s', retry: flushRetry });

// Raising an alert is a signal-with-start to the incident's workflow: a local activity, so the
// notification is not held up by a round trip through the task queue.
// Bounded, and failures are caught: alerting must never hold up the ledger flushes. A condition
// that could not be raised is not recorded as raised, so the next evaluation raises it again.
const alerting = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 5 },
});
/**
 * Since `visibility-by-percent-v1`, search-attribute changes other than the alert level and the open
 * incidents are upserted at most this often (each upsert is a history event and a visibility write
 * on the server; a busy scope's spend changes with nearly every flush). The loop wakes to publish
 * the last change held back. The Current Details and the status query are always live.
 */
const VISIBILITY_EVERY_MS = 10_000;

// A lease grant answers a waiting pre-flight check: bounded, and its failure fails the update (the
// check then applies its budget's fail mode) rather than being retried for long. A regular activity,
// not a local one: a grant changes Redis, and a local activity is run again whenever its workflow
// task fails or times out (its result is recorded only with the task), while a regular activity's
// completion is its own history event. (A local activity completing an update in the same task as
// the main loop's timer was cancelled also failed replay: "Update machine does not handle this event:
// TimerCanceled", SDK 1.24.)
const leaseGrants = proxyActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '100ms', backoffCoefficient: 2, maximumInterval: '1s', maximumAttempts: 3 },
});

const spendWindows = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 3 },
});

export async function budgetWorkflow(input: BudgetWorkflowInput): Promise<void> {
  const { scope } = input;
  // Handlers are registered before the first await, so an update-with-start or an early query finds
  // them; signals that arrive before the settings are loaded wait in `early`.
  let state: BudgetState | undefined = undefined;
  const early: unknown[] = [];
  let budgetsChanged = false;
  // A user scope's totals come from its own flushes; on a fresh chain (the workflow may have been
  // recreated mid-period) and after a budget change (new periods), they are re-read from the ledger
  // first, at a moment when no flush is in flight, so nothing is counted twice.
  let reseed = input.carried === undefined;

  const accept = (s: BudgetState, batch: unknown) => {
    const outcome = s.acceptBatch(batch, Date.now());
    if (outcome.outcome === 'dropped') {
      log.warn('dropped a malformed usage batch', { scope, batchId: (batch as { batchId?: unknown })?.batchId, issues: outcome.issues });
    }
  };

  setHandler(usageSignal, (batch) => {
    if (state) accept(state, batch);
    else early.push(batch);
  });

  // Exact totals from the ingest shards, sent on material change only (the usual way usage reaches
  // a budget workflow since the ingest tier). Applied only when newer: repeats and late ones change nothing.
  let totalsChanged = false;
  const earlyTotals: ScopeTotalsUpdate[] = [];
  const applyTotals = (s: BudgetState, update: ScopeTotalsUpdate) => {
    if (s.applyTotals(update, Date.now())) totalsChanged = true;
  };
  setHandler(scopeTotalsSignal, (update) => {
    const problem = totalsUpdateProblem(update, scope);
    if (problem) {
      log.warn('dropped a malformed totals update', { scope, problem });
      return;
    }
    if (state) applyTotals(state, update);
    else earlyTotals.push(update);
  });

  // Alerts this scope raised (src/domain/scope-alerts.ts); incidents report back when they are
  // acknowledged or resolved.
  const alerts = new ScopeAlerts(scope, input.carried);
  setHandler(incidentChangedSignal, (change) => {
    if (change && typeof change.key === 'string') alerts.incidentChanged(change);
  });

  // Pre-flight leases (src/domain/leases.ts): this workflow is their source of truth. Grants run one
  // at a time, each from a fresh read of Redis and the ledger.
  let leases: LeaseRecord = input.carried?.leases ?? EMPTY_LEASE_RECORD;
  let leaseBuckets: LeaseStatus['buckets'] = input.carried?.leaseBuckets ?? [];
  let leaseDecisions: Record<string, number> = input.carried?.leaseDecisions ?? {};
  let granting = false;
  let leasesChanged = false;
  const leaseStatus = (): LeaseStatus => {
    const lost = activeLost(leases, Date.now());
    return {
      epoch: leases.epoch,
      grants: leases.grants,
      grantedUsd: usdOf(leases.grantedMicro),
      lastGrantAt: leases.lastGrantAtMs === null ? null : new Date(leases.lastGrantAtMs).toISOString(),
      lostReserveUsd: usdOf(Object.values(lost).reduce((a, b) => a + b, 0)),
      lostUntil: Object.keys(lost).length > 0 ? new Date(leases.lostUntilMs).toISOString() : null,
      decisions: leaseDecisions,
      buckets: leaseBuckets,
    };
  };
  const grantLease = async (needMicro: number, shrink: boolean): Promise<LeaseStatus> => {
    // One grant at a time. A loop, not one condition: every handler waiting on the same condition
    // wakes in the same activation, and only the first to run may take the turn.
    while (state === undefined || granting) await condition(() => state !== undefined && !granting);
    granting = true;
    try {
      const now = Date.now();
      let r;
      try {
        r = await leaseGrants.grantLease({ scope, budgets: state!.budgets, needMicro, shrink, expectEpoch: leases.epoch, outstanding: leases.outstanding, lost: activeLost(leases, now) });
      } catch (err) {
        // Fails this update only (a plain error would fail the workflow task, and retry it forever).
        throw ApplicationFailure.nonRetryable(`could not grant a lease: ${(err as Error).message}`, 'LeaseUnavailable');
      }
      if (r.epochChanged) log.warn('Redis lost the pre-flight state: what was outstanding is held in reserve until lost holds have expired', { scope, epoch: r.epoch, reserve: r.lost });
      leases = {
        epoch: r.epoch,
        outstanding: Object.fromEntries(r.buckets.map((b) => [b.name, b.availableMicro + b.openMicro])),
        lost: r.lost,
        lostUntilMs: r.epochChanged ? now + r.lostHoldMs : leases.lostUntilMs,
        grants: leases.grants + 1,
        grantedMicro: leases.grantedMicro + r.grantedMicro,
        lastGrantAtMs: now,
      };
      leaseBuckets = r.buckets.map((b) => ({
        name: b.name,
        period: b.period,
        enforcement: b.enforcement,
        budgetUsd: usdOf(b.budgetMicro),
        spentUsd: usdOf(b.spentMicro),
        availableUsd: usdOf(b.availableMicro),
        openUsd: usdOf(b.openMicro),
      }));
      leaseDecisions = r.decisions ?? {};
      leasesChanged = true;
      return leaseStatus();
    } finally {
      granting = false;
    }
  };
  setHandler(leaseUpdate, (request) => grantLease(request.needMicro, false), {
    validator: (request) => {
      if (typeof request?.needMicro !== 'number' || !Number.isSafeInteger(request.needMicro) || request.needMicro < 0) throw new Error('invalid lease request: needMicro must be a whole number of micro-dollars, 0 or more');
    },
    description: 'Grant this scope a pre-flight lease in Redis: { needMicro } (what waiting checks need, in micro-USD)',
  });

  setHandler(statusQuery, (): BudgetStatus => {
    if (!state) throw new Error(`the budget workflow for ${scope} is starting; ask again in a moment`);
    return { ...state.status(Date.now()), incidents: alerts.list(), ...(leases.grants > 0 ? { leases: leaseStatus() } : {}) };
  });

  setHandler(
    setBudgetUpdate,
    async (change) => {
      await condition(() => state !== undefined);
      const s = state!;
      const checked = validateBudgetChange(change, s.budgets[0]?.timezone ?? 'UTC');
      if (!checked.ok) throw ApplicationFailure.nonRetryable('invalid budget change', 'ValidationError');
      s.setBudgets(checked.value, Date.now());
      budgetsChanged = true;
      reseed = true;
      await settingsActivities.saveBudgets(scope, checked.value);
      // Leases granted under the old budgets shrink to what the new ones leave (the next check refills).
      if (leases.epoch !== null) await grantLease(0, true);
      return s.status(Date.now());
    },
    {
      // Synchronous, so a bad change is rejected before it reaches history.
      validator: (change) => {
        const checked = validateBudgetChange(change, 'UTC');
        if (!checked.ok) throw new Error(`invalid budget change: ${checked.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
      },
      description: 'Replace this scope\'s budgets: { budgets: [{ period, amount, currency, timezone, thresholds }] }',
    },
  );

  // Workflows started before alerting existed replay without it (their histories have no marker).
  const alertsOn = patched('alerts-v1');
  const local = patched('local-activities-v1');
  const byPercent = patched('visibility-by-percent-v1');
  // Since `no-poll-without-budgets-v1`, a ledger-sourced scope with no budget does not re-read the
  // ledger every few seconds (pre-flight checks start a workflow for every team and project they
  // name, most of which have no budget): it waits for a budget change or a lease request.
  const quietWithoutBudgets = patched('no-poll-without-budgets-v1');
  const reads = local ? localSettings : settingsActivities;
  const settings = await reads.loadScopeSettings(scope);
  const alertSettings = alertsOn ? settings.alerts : undefined;
  state = new BudgetState({ scope, budgets: settings.budgets, rates: settings.rates }, Date.now(), input.carried);
  for (const batch of early.splice(0)) accept(state, batch);
  for (const update of earlyTotals.splice(0)) applyTotals(state, update);
  const chainId = `${workflowInfo().workflowId}/${workflowInfo().firstExecutionRunId}`;

  const apply = async (changes: AlertChange[]) => {
    for (const change of changes) {
      try {
        if (change.kind === 'raise') {
          const { incidentId } = await alerting.raiseAlert({ condition: change.condition, budgetWorkflowId: workflowInfo().workflowId });
          alerts.raised(change.condition, incidentId);
        } else {
          await alerting.clearAlert({ incidentId: change.incidentId, reason: 'the condition no longer holds' });
          alerts.cleared(change.key);
        }
      } catch (err) {
        log.error('could not raise or clear an alert; retrying at the next evaluation', { scope, change: change.kind, error: String(err) });
      }
    }
  };

  /**
   * Runs the alert rules on `status` (and the spend windows when a spike check is due). Returns true
   * when it had to wait for an activity, during which an update may have changed the budgets.
   */
  const evaluateAlerts = async (status: BudgetStatus, now: number): Promise<boolean> => {
    if (!alertSettings?.enabled) return false;
    let windows = null;
    let waited = false;
    if (alerts.spikeDue(status, now, alertSettings)) {
      waited = true;
      try {
        windows = await spendWindows.readSpendWindows({ scope, windowMinutes: alertSettings.spike.windowMinutes, baselineDays: alertSettings.spike.baselineDays });
      } catch (err) {
        log.warn('spike check skipped: the spend windows could not be read', { scope, error: String(err) });
      }
    }
    const changes = alerts.evaluate(status, Date.now(), alertSettings, windows);
    await apply(changes);
    return waited || changes.length > 0;
  };

  let upsertedAtMs = -Infinity;
  /** When a search-attribute change held back (see VISIBILITY_EVERY_MS) is due. */
  let visibilityDueMs = Infinity;

  /** Search attributes (on material change) and the Current Details, from one status. */
  const publish = (current = state.status(Date.now())) => {
    const status = { ...current, incidents: alerts.list(), ...(leases.grants > 0 ? { leases: leaseStatus() } : {}) };
    const updates = visibilityUpdates(status, state.lastMaterial, byPercent ? 'percent' : 'cent');
    visibilityDueMs = Infinity;
    if (updates.changed.length > 0) {
      const now = Date.now();
      const urgent = updates.changed.some((c) => c.key === 'alertLevel' || c.key === 'openIncidents');
      if (!byPercent || urgent || now - upsertedAtMs >= VISIBILITY_EVERY_MS) {
        upsertSearchAttributes(updates.changed.map(({ key, value }) => ({ key: searchAttributes[key], value }) as never));
        state.lastMaterial = updates.material;
        upsertedAtMs = now;
      } else {
        visibilityDueMs = upsertedAtMs + VISIBILITY_EVERY_MS;
      }
    }
    setCurrentDetails(renderBudgetMarkdown(status));
  };

  if (input.carried === undefined) {
    upsertSearchAttributes([
      { key: searchAttributes.scopeKind, value: scopeKind(scope) },
      { key: searchAttributes.scopeId, value: scopeId(scope) },
    ]);
  }
  let lastPoll = 0;
  publish();

  for (;;) {
    const now = Date.now();
    const nextPoll = state.source === 'ledger' && !(quietWithoutBudgets && state.budgets.length === 0) ? lastPoll + settings.pollIntervalMs : Infinity;
    const nextAlertCheck = alertSettings ? alerts.nextCheckMs(alertSettings) : Infinity;
    const deadline = Math.min(state.nextRolloverMs(), nextPoll, nextAlertCheck, visibilityDueMs);
    const work = () => state.hasPending() || budgetsChanged || totalsChanged || leasesChanged || workflowInfo().continueAsNewSuggested;
    // A scope with no budgets (`{"budgets": []}`) has no period to roll over: nothing to wait for but work.
    if (Number.isFinite(deadline)) await condition(work, Math.max(1, deadline - now));
    else await condition(work);
    budgetsChanged = false;
    totalsChanged = false;
    leasesChanged = false;

    while (state.hasPending()) {
      const flush = state.takeFlush(chainId, settings.maxFlushEvents);
      let summary: FlushSummary;
      if (local) {
        summary = await localLedger.flushUsage({ ...flush, targets: state.currentPeriods() });
        state.applySummary(summary, Date.now());
      } else {
        summary = state.applyFlush(await ledger.recordUsageBatch(flush), Date.now());
      }
      if (summary.rejected.length > 0) log.warn('the ledger refused invalid usage events', { scope, batchId: flush.batchId, rejected: summary.rejected });
      if (alertSettings?.enabled) {
        // Since `unpriced-by-provider-v1`: one incident per provider per day, listing a bounded
        // number of models (a flood of made-up model names opens one incident, not thousands).
        if (summary.unpriced.length > 0 && patched('unpriced-by-provider-v1')) {
          for (const { condition: c, provider, models } of alerts.unpricedByProvider(summary.unpriced, Date.now())) {
            try {
              await alerting.raiseAlert({ condition: c, budgetWorkflowId: null });
              alerts.unpricedProviderRaised(provider, models, Date.now());
            } catch (err) {
              log.error('could not raise an unpriced-usage alert; retrying with the next such event', { scope, error: String(err) });
            }
          }
        } else {
          for (const c of alerts.unpriced(summary.unpriced, Date.now())) {
            try {
              await alerting.raiseAlert({ condition: c, budgetWorkflowId: null });
              alerts.unpricedRaisedFor(c);
            } catch (err) {
              log.error('could not raise an unpriced-usage alert; retrying with the next such event', { scope, error: String(err) });
            }
          }
        }
        const dead = alerts.deadLetters(summary.deadLettered ?? 0, Date.now());
        if (dead) {
          try {
            await alerting.raiseAlert({ condition: dead, budgetWorkflowId: null });
            alerts.deadLettersRaised(Date.now());
          } catch (err) {
            log.error('could not raise the dead-letter alert; retrying with the next dead letter', { scope, error: String(err) });
          }
        }
      }
      if ((summary.deadLettered ?? 0) > 0) log.error('usage events were set aside as dead letters (costguard deadletter list)', { scope, batchId: flush.batchId, count: summary.deadLettered });
    }

    const rolledOver = state.rollover(Date.now()).length > 0;
    if (state.source === 'ledger' ? Date.now() >= nextPoll || rolledOver || reseed : reseed) {
      reseed = false;
      const periods = state.currentPeriods();
      for (const r of await reads.readScopeTotals(scope, periods)) state.setTotals(r.spec, r.key, r.totals, Date.now());
      lastPoll = Date.now();
    }
    // One status for the rules and the publication, unless evaluating had to wait (then fresh).
    const current = state.status(Date.now());
    publish((await evaluateAlerts(current, Date.now())) ? undefined : current);

    if (rolledOver || workflowInfo().continueAsNewSuggested) {
      // Never from inside a handler: wait for running handlers, flush what they queued, then go.
      await condition(allHandlersFinished);
      if (!state.hasPending()) {
        await continueAsNew<typeof budgetWorkflow>({ scope, carried: { ...state.carry(), ...alerts.carry(), ...(leases.grants > 0 ? { leases, leaseBuckets, leaseDecisions } : {}) } });
      }
    }
  }
}
