/**
 * An incident's life as a plain class, no Temporal and no I/O (the alert workflow wires it to
 * signals, timers and activities): what to notify, when, and to which channels.
 *
 * - opened: notify the channels of its level at once;
 * - raised (warning -> critical -> emergency): notify the new level's channels at once;
 * - lowered: remember the level, notify nobody;
 * - unacknowledged at critical or above: after the escalation delay, notify again with the
 *   escalation channels added, up to `maxEscalations` times;
 * - unacknowledged and still holding after the repeat interval: a reminder at its level;
 * - acknowledged: no more escalations or reminders (a higher level is still announced);
 * - resolved (condition cleared, period over): a resolved notice to every channel notified.
 */
import type { AlertCondition } from './alert-rules.js';
import type { FieldIssue } from './errors.js';
import { textProblem } from './text.js';
import { type AlertLevel, type Notification, type NotificationKind, levelRank } from './notification.js';

/** How an incident notifies: snapshotted from the config when the incident opens. */
export interface AlertSettings {
  /** Channel names per level (only configured channels). */
  routing: Record<AlertLevel, string[]>;
  /** No second notification for the same (condition, level) within this interval. */
  repeatIntervalMs: number;
  /** Unacknowledged critical/emergency incidents re-notify after `delayMs`, adding `channels`. */
  escalation: { delayMs: number; channels: string[]; maxEscalations: number };
}

export interface Acknowledgement {
  /** Who takes responsibility (a name or an e-mail address). */
  by: string;
  note?: string;
}

/** The condition again (a level change) or `null` when it no longer holds. */
export interface ConditionUpdate {
  condition: AlertCondition | null;
  reason?: string;
}

export type IncidentStatus = 'open' | 'acknowledged' | 'resolved';

/** An incident as the alert workflow sees it (query `incident`, update `acknowledge`). */
export interface IncidentState {
  incidentId: string;
  status: IncidentStatus;
  condition: AlertCondition;
  level: AlertLevel;
  openedAt: string;
  acknowledged: { by: string; at: string; note: string | null } | null;
  resolved: { at: string; reason: string } | null;
  escalations: number;
  /** Every channel notified so far (the resolved notice goes to these). */
  notifiedChannels: string[];
  /** Last notification time per level (ms), for the repeat interval. */
  lastNotifiedMs: Partial<Record<AlertLevel, number>>;
  /** Last time anything was sent, for the escalation delay. */
  lastNotificationMs: number | null;
  notifications: number;
}

/** Alert workflow -> budget workflow: an incident was acknowledged or resolved. */
export interface IncidentChange {
  incidentId: string;
  key: string;
  status: IncidentStatus;
}

/**
 * What is wrong with an acknowledgement (`{ by, note? }`), for the API/CLI and for the alert
 * workflow's update validator and UI signal alike. `strict` also refuses unknown fields.
 */
export function acknowledgementIssues(input: unknown, opts: { strict?: boolean } = {}): FieldIssue[] {
  const issues: FieldIssue[] = [];
  if (typeof input !== 'object' || input === null) return [{ path: '', message: 'expected { "by": "<who>", "note": "<optional>" }' }];
  const a = input as Record<string, unknown>;
  if (typeof a.by !== 'string' || a.by.trim() === '') issues.push({ path: 'by', message: 'expected who takes responsibility (a name or e-mail address)' });
  else {
    const problem = textProblem(a.by, { max: 200 });
    if (problem) issues.push({ path: 'by', message: a.by.length > 200 ? 'expected at most 200 characters' : problem });
  }
  if (a.note !== undefined) {
    const problem = typeof a.note !== 'string' || a.note.length > 2000 ? 'expected a string of at most 2000 characters' : textProblem(a.note, { max: 2000, min: 0, multiline: true });
    if (problem) issues.push({ path: 'note', message: problem });
  }
  if (opts.strict) for (const key of Object.keys(a)) if (key !== 'by' && key !== 'note') issues.push({ path: key, message: 'unknown field (expected "by" and optionally "note")' });
  return issues;
}

/** One notification to send now, to these channels. */
export interface PlannedNotification {
  notificationId: string;
  kind: NotificationKind;
  level: AlertLevel;
  channels: string[];
  /** Goes through the repeat-interval check of (condition, level) shared with earlier incidents. */
  deduplicate: boolean;
}

const union = (a: readonly string[], b: readonly string[]) => [...new Set([...a, ...b])];

export class Incident {
  state: IncidentState;
  private readonly settings: AlertSettings;
  /** Notifications decided but not yet sent (the workflow drains them). */
  private queue: PlannedNotification[] = [];

  constructor(incidentId: string, condition: AlertCondition, settings: AlertSettings, nowMs: number, carried?: IncidentState) {
    this.settings = settings;
    if (carried) {
      this.state = carried;
      return;
    }
    this.state = {
      incidentId,
      status: 'open',
      condition,
      level: condition.level,
      openedAt: new Date(nowMs).toISOString(),
      acknowledged: null,
      resolved: null,
      escalations: 0,
      notifiedChannels: [],
      lastNotifiedMs: {},
      lastNotificationMs: null,
      notifications: 0,
    };
    this.queue.push({ notificationId: `opened-${condition.level}`, kind: 'opened', level: condition.level, channels: this.channelsFor(condition.level), deduplicate: true });
  }

  /** Where the delivery log files this incident's notifications (unique per opening). */
  get sourceId(): string {
    return `alert/${this.state.incidentId}/${Date.parse(this.state.openedAt)}`;
  }

  get isResolved(): boolean {
    return this.state.status === 'resolved';
  }

  private channelsFor(level: AlertLevel): string[] {
    return [...(this.settings.routing[level] ?? [])];
  }

  /** A new reading of the condition, or null when it cleared. */
  update(condition: AlertCondition | null, nowMs: number, reason = 'the condition cleared'): void {
    if (this.isResolved) return;
    if (condition === null) {
      this.resolve(nowMs, reason);
      return;
    }
    const previous = this.state.level;
    this.state.condition = condition;
    this.state.level = condition.level;
    if (levelRank(condition.level) > levelRank(previous)) {
      this.queue.push({
        notificationId: `raised-${condition.level}`,
        kind: 'raised',
        level: condition.level,
        channels: this.channelsFor(condition.level),
        deduplicate: true,
      });
    }
  }

  acknowledge(ack: Acknowledgement, nowMs: number): void {
    if (this.isResolved || this.state.acknowledged) return;
    this.state.acknowledged = { by: ack.by.trim(), at: new Date(nowMs).toISOString(), note: ack.note?.trim() || null };
    this.state.status = 'acknowledged';
  }

  resolve(nowMs: number, reason: string): void {
    if (this.isResolved) return;
    this.state.status = 'resolved';
    this.state.resolved = { at: new Date(nowMs).toISOString(), reason };
    this.queue = this.queue.filter((n) => n.kind === 'resolved');
    if (this.state.notifiedChannels.length > 0) {
      this.queue.push({ notificationId: 'resolved', kind: 'resolved', level: this.state.level, channels: [...this.state.notifiedChannels], deduplicate: false });
    }
  }

  /** When something is next due by time alone (escalation, reminder, end of period), or null. */
  nextDueMs(): number | null {
    if (this.isResolved) return null;
    const times: number[] = [];
    if (this.state.condition.periodEndMs !== null) times.push(this.state.condition.periodEndMs);
    if (!this.state.acknowledged && this.state.lastNotificationMs !== null) {
      if (this.canEscalate()) times.push(this.state.lastNotificationMs + this.settings.escalation.delayMs);
      const last = this.state.lastNotifiedMs[this.state.level];
      if (last !== undefined) times.push(last + this.settings.repeatIntervalMs);
    }
    return times.length > 0 ? Math.min(...times) : null;
  }

  private canEscalate(): boolean {
    return levelRank(this.state.level) >= levelRank('critical') && this.state.escalations < this.settings.escalation.maxEscalations;
  }

  /** Applies what time alone makes due (period end, escalation, reminder). */
  tick(nowMs: number): void {
    if (this.isResolved) return;
    const end = this.state.condition.periodEndMs;
    if (end !== null && nowMs >= end) {
      this.resolve(nowMs, 'the period ended');
      return;
    }
    if (this.state.acknowledged || this.state.lastNotificationMs === null || this.queue.length > 0) return;
    if (this.canEscalate() && nowMs >= this.state.lastNotificationMs + this.settings.escalation.delayMs) {
      this.state.escalations++;
      this.queue.push({
        notificationId: `escalated-${this.state.escalations}`,
        kind: 'escalated',
        level: this.state.level,
        channels: union(this.channelsFor(this.state.level), this.settings.escalation.channels),
        deduplicate: false,
      });
      return;
    }
    const last = this.state.lastNotifiedMs[this.state.level];
    if (last !== undefined && nowMs >= last + this.settings.repeatIntervalMs) {
      const n = this.state.notifications;
      const widened = this.state.escalations > 0 ? union(this.channelsFor(this.state.level), this.settings.escalation.channels) : this.channelsFor(this.state.level);
      this.queue.push({ notificationId: `reminder-${this.state.level}-${n}`, kind: 'reminder', level: this.state.level, channels: widened, deduplicate: true });
    }
  }

  hasQueued(): boolean {
    return this.queue.length > 0;
  }

  takeQueued(): PlannedNotification | undefined {
    return this.queue.shift();
  }

  /** Records a notification as sent (`delivered` = the channels that took it) or suppressed. */
  sent(n: PlannedNotification, delivered: readonly string[], nowMs: number): void {
    this.state.notifiedChannels = union(this.state.notifiedChannels, delivered);
    this.state.lastNotificationMs = nowMs;
    if (n.kind !== 'resolved') this.state.lastNotifiedMs[n.level] = nowMs;
    this.state.notifications++;
  }

  /** The message for a planned notification. */
  message(n: PlannedNotification, nowMs: number): Notification {
    const c = this.state.condition;
    const id = this.state.incidentId;
    const prefix =
      n.kind === 'resolved' ? 'Resolved: ' : n.kind === 'escalated' ? `Escalation ${this.state.escalations}, not acknowledged: ` : n.kind === 'reminder' ? 'Still open: ' : '';
    const fields = [...c.fields, { label: 'Incident', value: id }, { label: 'Level', value: this.state.level }];
    if (this.state.acknowledged) fields.push({ label: 'Acknowledged by', value: this.state.acknowledged.by });
    return {
      sourceId: this.sourceId,
      notificationId: n.notificationId,
      kind: n.kind,
      level: n.level,
      title: `${prefix}${c.title}`,
      summary: n.kind === 'resolved' ? `${c.title}: resolved (${this.state.resolved?.reason ?? 'resolved'}).` : c.summary,
      fields,
      ...(n.kind === 'resolved' ? {} : { ackHint: `costguard alerts ack ${id}` }),
      occurredAt: new Date(nowMs).toISOString(),
    };
  }
}
