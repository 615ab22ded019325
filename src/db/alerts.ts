/**
 * Alert history in PostgreSQL: incidents, their events, and the notification claims behind the
 * repeat interval (migrations/0004_alerts.sql). Parameterised SQL only.
 */
import type { Pool, PoolClient } from 'pg';
import type { IncidentState } from '../domain/incident.js';

export type IncidentEventKind = 'opened' | 'reopened' | 'level_changed' | 'notified' | 'suppressed' | 'acknowledged' | 'resolved';

export interface IncidentEvent {
  /** Unique per event (e.g. `<workflow run>/<seq>`): a retried activity records nothing twice. */
  eventKey: string;
  kind: IncidentEventKind;
  atMs: number;
  detail?: Record<string, unknown>;
}

async function upsertIncident(db: Pool | PoolClient, state: IncidentState, workflowId: string, nowMs: number): Promise<void> {
  const c = state.condition;
  await db.query(
    `INSERT INTO alert_incidents (id, condition_key, rule, scope, budget_period, period_key, level, status, title, summary, fields,
       opened_at, updated_at, acknowledged_by, acknowledged_at, ack_note, resolved_at, resolved_reason, escalations, notifications, workflow_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
     ON CONFLICT (id) DO UPDATE SET level = EXCLUDED.level, status = EXCLUDED.status, title = EXCLUDED.title, summary = EXCLUDED.summary,
       fields = EXCLUDED.fields, opened_at = EXCLUDED.opened_at, updated_at = GREATEST(alert_incidents.updated_at, EXCLUDED.updated_at),
       acknowledged_by = EXCLUDED.acknowledged_by, acknowledged_at = EXCLUDED.acknowledged_at, ack_note = EXCLUDED.ack_note,
       resolved_at = EXCLUDED.resolved_at, resolved_reason = EXCLUDED.resolved_reason,
       escalations = EXCLUDED.escalations, notifications = EXCLUDED.notifications, workflow_id = EXCLUDED.workflow_id
     WHERE alert_incidents.opened_at <= EXCLUDED.opened_at`,
    [
      state.incidentId,
      c.key,
      c.rule,
      c.scope,
      c.budgetPeriod,
      c.periodKey,
      state.level,
      state.status,
      c.title,
      c.summary,
      JSON.stringify(c.fields),
      state.openedAt,
      new Date(nowMs).toISOString(),
      state.acknowledged?.by ?? null,
      state.acknowledged?.at ?? null,
      state.acknowledged?.note ?? null,
      state.resolved?.at ?? null,
      state.resolved?.reason ?? null,
      state.escalations,
      state.notifications,
      workflowId,
    ],
  );
}

async function insertEvent(db: Pool | PoolClient, incidentId: string, level: string, e: IncidentEvent): Promise<boolean> {
  const r = await db.query(
    `INSERT INTO alert_events (incident_id, event_key, at, kind, level, detail) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (event_key) DO NOTHING`,
    [incidentId, e.eventKey, new Date(e.atMs).toISOString(), e.kind, level, JSON.stringify(e.detail ?? {})],
  );
  return (r.rowCount ?? 0) > 0;
}

/** Runs `fn` in one transaction on one pooled connection. */
async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** Saves the incident's current state and one event (idempotent per event key). */
export async function recordIncidentEvent(pool: Pool, state: IncidentState, workflowId: string, event: IncidentEvent): Promise<void> {
  await inTransaction(pool, async (client) => {
    await upsertIncident(client, state, workflowId, event.atMs);
    await insertEvent(client, state.incidentId, state.level, event);
  });
}

export interface ClaimInput {
  conditionKey: string;
  level: string;
  /** `<sourceId>/<notificationId>`: the same notification claiming again (a retry) is allowed. */
  notificationKey: string;
  repeatIntervalMs: number;
  nowMs: number;
}

/**
 * Claims the right to notify (condition, level) now. Refused when another notification of the same
 * (condition, level) was claimed within the repeat interval; a retry of the same notification gets
 * the same answer as the first attempt. Serialised per (condition, level) by an advisory lock.
 */
export async function claimNotification(db: PoolClient, c: ClaimInput): Promise<{ allowed: boolean; previousAt: string | null }> {
  await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${c.conditionKey}#${c.level}`]);
  const own = await db.query<{ allowed: boolean }>(
    'SELECT true AS allowed FROM alert_notification_claims WHERE condition_key = $1 AND level = $2 AND notification_key = $3',
    [c.conditionKey, c.level, c.notificationKey],
  );
  if (own.rowCount) return { allowed: true, previousAt: null };
  const since = new Date(c.nowMs - c.repeatIntervalMs).toISOString();
  const recent = await db.query<{ claimed_at: Date }>(
    `SELECT claimed_at FROM alert_notification_claims WHERE condition_key = $1 AND level = $2 AND claimed_at > $3
     ORDER BY claimed_at DESC LIMIT 1`,
    [c.conditionKey, c.level, since],
  );
  if (recent.rowCount) return { allowed: false, previousAt: recent.rows[0]!.claimed_at.toISOString() };
  return { allowed: true, previousAt: null };
}

export async function insertClaim(db: PoolClient, c: ClaimInput, incidentId: string): Promise<void> {
  await db.query(
    `INSERT INTO alert_notification_claims (condition_key, level, notification_key, incident_id, claimed_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT DO NOTHING`,
    [c.conditionKey, c.level, c.notificationKey, incidentId, new Date(c.nowMs).toISOString()],
  );
}

/**
 * Records a notification: with `claim`, first checks the repeat interval; the incident's state,
 * the claim and a `notified` (or `suppressed`) event are written in one transaction.
 */
export async function recordNotification(
  pool: Pool,
  state: IncidentState,
  workflowId: string,
  event: Omit<IncidentEvent, 'kind'>,
  claim: ClaimInput | null,
): Promise<{ allowed: boolean; previousAt: string | null }> {
  return inTransaction(pool, async (client) => {
    const verdict = claim ? await claimNotification(client, claim) : { allowed: true, previousAt: null };
    if (claim && verdict.allowed) await insertClaim(client, claim, state.incidentId);
    await upsertIncident(client, state, workflowId, event.atMs);
    await insertEvent(client, state.incidentId, (event.detail?.level as string | undefined) ?? state.level, {
      ...event,
      kind: verdict.allowed ? 'notified' : 'suppressed',
      detail: { ...event.detail, ...(verdict.previousAt ? { previousAt: verdict.previousAt } : {}) },
    });
    return verdict;
  });
}

export interface IncidentRow {
  id: string;
  rule: string;
  scope: string;
  budgetPeriod: string | null;
  periodKey: string | null;
  level: string;
  status: string;
  title: string;
  summary: string;
  fields: { label: string; value: string }[];
  openedAt: string;
  updatedAt: string;
  acknowledged: { by: string; at: string; note: string | null } | null;
  resolved: { at: string; reason: string } | null;
  escalations: number;
  notifications: number;
}

interface DbIncident {
  id: string;
  rule: string;
  scope: string;
  budget_period: string | null;
  period_key: string | null;
  level: string;
  status: string;
  title: string;
  summary: string;
  fields: { label: string; value: string }[];
  opened_at: Date;
  updated_at: Date;
  acknowledged_by: string | null;
  acknowledged_at: Date | null;
  ack_note: string | null;
  resolved_at: Date | null;
  resolved_reason: string | null;
  escalations: number;
  notifications: number;
}

function toRow(r: DbIncident): IncidentRow {
  return {
    id: r.id,
    rule: r.rule,
    scope: r.scope,
    budgetPeriod: r.budget_period,
    periodKey: r.period_key,
    level: r.level,
    status: r.status,
    title: r.title,
    summary: r.summary,
    fields: r.fields,
    openedAt: r.opened_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    acknowledged: r.acknowledged_by ? { by: r.acknowledged_by, at: r.acknowledged_at!.toISOString(), note: r.ack_note } : null,
    resolved: r.resolved_at ? { at: r.resolved_at.toISOString(), reason: r.resolved_reason ?? '' } : null,
    escalations: r.escalations,
    notifications: r.notifications,
  };
}

/** Open incidents first (most severe, newest), then recently resolved ones. */
export async function listIncidents(pool: Pool, opts: { includeResolved: boolean; scope?: string; limit: number }): Promise<IncidentRow[]> {
  const r = await pool.query<DbIncident>(
    `SELECT * FROM alert_incidents
     WHERE ($1::boolean OR status <> 'resolved') AND ($2::text IS NULL OR scope = $2)
     ORDER BY (status = 'resolved'), array_position(ARRAY['emergency', 'critical', 'warning', 'info'], level), updated_at DESC
     LIMIT $3`,
    [opts.includeResolved, opts.scope ?? null, opts.limit],
  );
  return r.rows.map(toRow);
}

/** An incident with its history, oldest event first. */
export type IncidentDetail = IncidentRow & { events: { at: string; kind: string; level: string; detail: unknown }[] };

export async function getIncident(pool: Pool, id: string): Promise<IncidentDetail | null> {
  const r = await pool.query<DbIncident>('SELECT * FROM alert_incidents WHERE id = $1', [id]);
  if (!r.rowCount) return null;
  const events = await pool.query<{ at: Date; kind: string; level: string; detail: unknown }>(
    'SELECT at, kind, level, detail FROM alert_events WHERE incident_id = $1 ORDER BY at, id',
    [id],
  );
  return { ...toRow(r.rows[0]!), events: events.rows.map((e) => ({ at: e.at.toISOString(), kind: e.kind, level: e.level, detail: e.detail })) };
}

/** The alert history's reads, as the API and the CLI use them (src/client/alerts.ts takes one, not a pool). */
export interface IncidentHistory {
  list(opts: { includeResolved: boolean; scope?: string; limit: number }): Promise<IncidentRow[]>;
  get(id: string): Promise<IncidentDetail | null>;
}

/** The alert history of this database. */
export function incidentHistory(pool: Pool): IncidentHistory {
  return { list: (opts) => listIncidents(pool, opts), get: (id) => getIncident(pool, id) };
}
