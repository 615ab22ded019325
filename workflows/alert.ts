/**
 * The alert workflow: one per incident (workflow id `alert/<incident id>`), opened by the budget
 * workflow through signal-with-start, so a condition never has two open incidents.
 *
 * It notifies the channels of the incident's level at once, announces a higher level at once,
 * escalates an unacknowledged critical incident after the escalation delay with wider channels,
 * reminds after the repeat interval, and stops escalating once someone acknowledges (update
 * `acknowledge` from the API/CLI, signal `ack` from the Temporal UI). It resolves when the
 * condition clears or its period ends, sending a resolved notice to every channel notified.
 *
 * Deliveries run beside the main loop (one activity per channel, retried with backoff), so a slow
 * or failing channel never delays an escalation or an acknowledgement. Each notification is first
 * recorded and claimed in PostgreSQL against the repeat interval of its (condition, level), which
 * holds across incidents, worker restarts and server restarts; the delivery log keyed by
 * (incident, notification, channel) makes a retried delivery send nothing twice.
 * State lives in a plain class (src/domain/incident.ts).
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { Incident, type PlannedNotification, acknowledgementIssues, type IncidentState } from '../src/domain/incident.js';
import {
  type AlertWorkflowInput,
  acknowledgeUpdate,
  ackSignal,
  conditionSignal,
  incidentChangedSignal,
  incidentQuery,
  searchAttributes,
} from '../src/messages.js';

// Recording the history (and claiming a notification) is a short PostgreSQL transaction: a local
// activity, so the first notification is not held up by two round trips through the task queue,
// which under load wait behind the ingestion traffic.
const history = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: ['PoisonInput'] },
});

/**
 * A history write that failed for a reason tied to its input (`PoisonInput`: PostgreSQL refused a
 * value, so retrying would fail for ever) is logged and skipped: the incident goes on (its state
 * lives in this workflow), and later acknowledgements are not blocked behind it. Anything else
 * keeps being retried by the activity's policy (PostgreSQL unreachable).
 */
async function tolerant<T>(what: string, incidentId: string, write: () => Promise<T>, fallback: T): Promise<T> {
  try {
    return await write();
  } catch (err) {
    log.error(`could not ${what}; the incident goes on without it`, { incidentId, error: String(err) });
    return fallback;
  }
}

// A channel that is down is retried with backoff for about half an hour; a configuration error
// (4xx, bad credentials, unknown channel) fails at once and is reported, never retried forever.
// The attempt timeout leaves room for a channel's own request timeouts (one SMS per number).
const channels = proxyActivities<Activities>({
  startToCloseTimeout: '3m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '2m', maximumAttempts: 20, nonRetryableErrorTypes: ['ChannelConfigError'] },
});

/** The acknowledgement's problems as one line, or null when it is fine. */
function checkAck(ack: unknown): string | null {
  const issues = acknowledgementIssues(ack);
  return issues.length === 0 ? null : issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
}

export async function alertWorkflow(input: AlertWorkflowInput): Promise<IncidentState> {
  const workflowId = workflowInfo().workflowId;
  const incident = new Incident(input.incidentId, input.condition, input.settings, Date.now(), input.carried);
  let wake = false;
  let ackRecorded = input.carried?.acknowledged != null;
  let eventSeq = 0;
  const eventKey = () => `${incident.sourceId}/${workflowInfo().runId}/${eventSeq++}`;
  const pending = new Set<Promise<void>>();

  let levelChanged = false;
  setHandler(conditionSignal, (update) => {
    try {
      const before = incident.state.level;
      incident.update(update?.condition ?? null, Date.now(), update?.reason);
      if (incident.state.level !== before) levelChanged = true;
    } catch (err) {
      log.warn('ignored a malformed condition update', { incidentId: input.incidentId, error: String(err) });
    }
    wake = true;
  });

  setHandler(ackSignal, (ack) => {
    const problem = checkAck(ack);
    if (problem) {
      log.warn('ignored an acknowledgement', { incidentId: input.incidentId, problem });
      return;
    }
    incident.acknowledge(ack, Date.now());
    wake = true;
  });

  setHandler(
    acknowledgeUpdate,
    async (ack) => {
      incident.acknowledge(ack, Date.now());
      wake = true;
      // Answer once the acknowledgement is in the alert history too.
      await condition(() => ackRecorded || incident.isResolved);
      return incident.state;
    },
    {
      validator: (ack) => {
        const problem = checkAck(ack);
        if (problem) throw new Error(problem);
        if (incident.isResolved) throw new Error(`incident ${input.incidentId} is already resolved`);
      },
      description: 'Acknowledge the incident: { "by": "who takes responsibility", "note": "optional" }. Stops escalation.',
    },
  );

  setHandler(incidentQuery, () => incident.state);

  const tellBudget = async () => {
    if (!input.budgetWorkflowId) return;
    try {
      await getExternalWorkflowHandle(input.budgetWorkflowId).signal(incidentChangedSignal, {
        incidentId: input.incidentId,
        key: incident.state.condition.key,
        status: incident.state.status,
      });
    } catch (err) {
      // The budget workflow may be between runs or gone; it re-learns from its own evaluation.
      log.info('could not tell the budget workflow', { budgetWorkflowId: input.budgetWorkflowId, error: String(err) });
    }
  };

  const deliver = async (plan: PlannedNotification): Promise<void> => {
    const message = incident.message(plan, Date.now());
    await Promise.all(
      plan.channels.map(async (channel) => {
        try {
          await channels.deliverNotification({ channel, notification: message });
        } catch (err) {
          log.error('notification not delivered', { incidentId: input.incidentId, channel, notificationId: plan.notificationId, error: String(err) });
        }
      }),
    );
  };

  const notify = async (plan: PlannedNotification): Promise<void> => {
    // Unrecordable: notify anyway (staying silent would lose the alert).
    const { allowed } = await tolerant('record a notification', input.incidentId, () => history.recordNotification({
      state: incident.state,
      workflowId,
      sourceId: incident.sourceId,
      plan,
      eventKey: eventKey(),
      repeatIntervalMs: input.settings.repeatIntervalMs,
    }), { allowed: true });
    incident.sent(plan, allowed ? plan.channels : [], Date.now());
    if (!allowed) return;
    const p = deliver(plan).finally(() => pending.delete(p));
    pending.add(p);
  };

  if (!input.carried) {
    await tolerant('record the incident history', input.incidentId, () => history.recordIncident({ state: incident.state, workflowId, eventKey: eventKey(), kind: 'opened' }), undefined);
  }

  for (;;) {
    if (levelChanged) {
      levelChanged = false;
      upsertSearchAttributes([{ key: searchAttributes.alertLevel, value: incident.state.level }]);
      await tolerant('record the incident history', input.incidentId, () => history.recordIncident({ state: incident.state, workflowId, eventKey: eventKey(), kind: 'level_changed', detail: { level: incident.state.level } }), undefined);
    }
    while (incident.hasQueued()) await notify(incident.takeQueued()!);
    if (incident.state.acknowledged && !ackRecorded) {
      await tolerant('record the incident history', input.incidentId, () => history.recordIncident({ state: incident.state, workflowId, eventKey: eventKey(), kind: 'acknowledged', detail: { ...incident.state.acknowledged } }), undefined);
      ackRecorded = true;
      await tellBudget();
    }
    if (incident.isResolved) {
      while (incident.hasQueued()) await notify(incident.takeQueued()!);
      await tolerant('record the incident history', input.incidentId, () => history.recordIncident({ state: incident.state, workflowId, eventKey: eventKey(), kind: 'resolved', detail: { reason: incident.state.resolved?.reason } }), undefined);
      upsertSearchAttributes([{ key: searchAttributes.alertLevel, value: 'resolved' }]);
      await tellBudget();
      await Promise.all([...pending]);
      await condition(allHandlersFinished);
      return incident.state;
    }

    const due = incident.nextDueMs();
    const timeout = due === null ? undefined : Math.max(1, due - Date.now());
    wake = false;
    const work = () => wake || incident.hasQueued() || levelChanged || (incident.state.acknowledged !== null && !ackRecorded) || incident.isResolved;
    if (timeout === undefined) await condition(work);
    else await condition(work, timeout);
    incident.tick(Date.now());

    if (workflowInfo().continueAsNewSuggested && !incident.hasQueued() && !levelChanged) {
      await Promise.all([...pending]);
      await condition(allHandlersFinished);
      if (!incident.hasQueued()) await continueAsNew<typeof alertWorkflow>({ ...input, carried: incident.state });
    }
  }
}
