/**
 * Incidents for the HTTP API and the CLI: listing them from the alert history, and acknowledging
 * one through its alert workflow (the `acknowledge` update), in Cost Guard's error vocabulary. The
 * history is passed in (`incidentHistory(pool)` from src/db/alerts.ts where the pool is wired).
 */
import { type Client, WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import type { IncidentDetail, IncidentHistory, IncidentRow } from '../db/alerts.js';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../domain/errors.js';
import { acknowledgementIssues, type Acknowledgement, type IncidentState } from '../domain/incident.js';
import { acknowledgeUpdate, alertWorkflowId } from '../messages.js';
import { isTransientSendError } from './cost-tracker.js';

const INCIDENT_ID_RE = /^[0-9a-f]{12}$/;

export function assertIncidentId(id: string): void {
  if (!INCIDENT_ID_RE.test(id)) throw new ValidationError([{ path: 'id', message: `expected an incident id of 12 hex digits (as listed by \`costguard alerts list\`), got ${JSON.stringify(id.slice(0, 40))}` }], 'invalid incident id');
}

export function parseAcknowledgement(input: unknown): Acknowledgement {
  const issues = acknowledgementIssues(input, { strict: true });
  if (issues.length > 0) throw new ValidationError(issues, 'invalid acknowledgement');
  const a = input as { by: string; note?: string };
  return { by: a.by.trim(), ...(typeof a.note === 'string' && a.note.trim() ? { note: a.note.trim() } : {}) };
}

export interface AlertListOptions {
  /** Include resolved incidents (most recent first). */
  all?: boolean;
  scope?: string;
  limit?: number;
}

export async function listAlerts(history: IncidentHistory, opts: AlertListOptions = {}): Promise<IncidentRow[]> {
  const limit = opts.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new ValidationError([{ path: 'limit', message: 'expected a whole number from 1 to 1000' }]);
  return history.list({ includeResolved: opts.all ?? false, scope: opts.scope, limit });
}

export async function getAlert(history: IncidentHistory, id: string): Promise<IncidentDetail> {
  assertIncidentId(id);
  const found = await history.get(id);
  if (!found) throw new NotFoundError(`no incident ${id}`);
  return found;
}

/**
 * Acknowledges an open incident: escalation stops. An incident that is already resolved, or that
 * never existed, is a conflict or not-found error (nothing changes).
 */
export async function acknowledgeAlert(temporal: Client, history: IncidentHistory, id: string, input: unknown): Promise<IncidentState> {
  assertIncidentId(id);
  const ack = parseAcknowledgement(input);
  try {
    return await temporal.workflow.getHandle(alertWorkflowId(id)).executeUpdate(acknowledgeUpdate, { args: [ack] });
  } catch (err) {
    if (err instanceof WorkflowNotFoundError || (err instanceof Error && /workflow execution already completed/i.test(err.message))) {
      const known = await history.get(id);
      if (!known) throw new NotFoundError(`no incident ${id}`);
      throw new ConflictError(`incident ${id} is already ${known.status}${known.resolved ? ` (${known.resolved.reason}, at ${known.resolved.at})` : ''}`);
    }
    if (err instanceof WorkflowUpdateFailedError) {
      const message = err.cause?.message ?? err.message;
      if (/already resolved/.test(message)) throw new ConflictError(message);
      throw new ValidationError([{ path: '', message }], 'acknowledgement rejected');
    }
    if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isTransientSendError(err)) {
      throw new UnavailableError(`Temporal is unavailable: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
}
