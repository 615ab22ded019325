/**
 * `costguard alerts list|show|ack`: incidents from the alert history, and acknowledgement through
 * the incident's alert workflow (the same path as POST /v1/alerts/:id/ack).
 */
import { userInfo } from 'node:os';
import { acknowledgeAlert, getAlert, listAlerts } from '../client/alerts.js';
import { connectTemporal } from '../client/connect.js';
import type { Config } from '../config/index.js';
import { withPool } from './pool.js';
import { type IncidentRow, incidentHistory } from '../db/alerts.js';
import type { IncidentState } from '../domain/incident.js';

export function runAlertsList(config: Config, opts: { all?: boolean; scope?: string; limit?: string }): Promise<IncidentRow[]> {
  return withPool(config, (pool) => listAlerts(incidentHistory(pool), { all: opts.all, scope: opts.scope, limit: opts.limit === undefined ? 100 : Number(opts.limit) }));
}

export function runAlertsShow(config: Config, id: string) {
  return withPool(config, (pool) => getAlert(incidentHistory(pool), id));
}

/** `--by` defaults to the local user name, so `costguard alerts ack ID` just works at 3 a.m. */
export async function runAlertsAck(config: Config, id: string, opts: { by?: string; note?: string }): Promise<IncidentState> {
  const by = opts.by ?? userInfo().username;
  const { client, connection } = await connectTemporal(config);
  try {
    return await withPool(config, (pool) => acknowledgeAlert(client, incidentHistory(pool), id, { by, ...(opts.note !== undefined ? { note: opts.note } : {}) }));
  } finally {
    await connection.close();
  }
}

function age(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

export function renderAlertsList(rows: IncidentRow[], now = Date.now()): string {
  if (rows.length === 0) return 'No open incidents.';
  const header = ['ID', 'LEVEL', 'STATUS', 'AGE', 'RULE', 'TITLE'];
  const cells = rows.map((r) => [
    r.id,
    r.level.toUpperCase(),
    r.status === 'acknowledged' && r.acknowledged ? `ack by ${r.acknowledged.by}` : r.status,
    age(r.openedAt, now),
    r.rule,
    r.title,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ');
  return [line(header), ...cells.map(line), '', 'Acknowledge with: costguard alerts ack <ID> [--by NAME] [--note TEXT]'].join('\n');
}

export function renderIncident(i: Awaited<ReturnType<typeof getAlert>>): string {
  const lines = [`${i.id}  [${i.level.toUpperCase()}] ${i.title}`, `  status: ${i.status}; opened ${i.openedAt}; ${i.notifications} notification(s), ${i.escalations} escalation(s)`];
  if (i.acknowledged) lines.push(`  acknowledged by ${i.acknowledged.by} at ${i.acknowledged.at}${i.acknowledged.note ? `: ${i.acknowledged.note}` : ''}`);
  if (i.resolved) lines.push(`  resolved at ${i.resolved.at}: ${i.resolved.reason}`);
  lines.push(`  ${i.summary}`);
  for (const f of i.fields) lines.push(`  ${f.label}: ${f.value}`);
  lines.push('  history:');
  for (const e of i.events) lines.push(`    ${e.at}  ${e.kind.padEnd(13)} ${e.level}${e.kind === 'notified' || e.kind === 'suppressed' ? `  ${JSON.stringify((e.detail as { channels?: string[] }).channels ?? [])}` : ''}`);
  return lines.join('\n');
}

export function renderAck(s: IncidentState): string {
  return `Incident ${s.incidentId} acknowledged by ${s.acknowledged?.by} at ${s.acknowledged?.at}; escalation stopped. Level: ${s.level}. It resolves when the condition clears or the period ends.`;
}
