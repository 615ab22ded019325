/**
 * What an alert or a report hands to a notification channel: plain data, no I/O, shared by the
 * alert workflow, the report workflow and the channel activities (src/channels/).
 */

/** Alert levels, least to most severe. */
export const ALERT_LEVELS = ['info', 'warning', 'critical', 'emergency'] as const;
export type AlertLevel = (typeof ALERT_LEVELS)[number];

export function levelRank(level: AlertLevel): number {
  return ALERT_LEVELS.indexOf(level);
}

/** Why a notification is sent. */
export type NotificationKind = 'opened' | 'raised' | 'escalated' | 'reminder' | 'resolved' | 'report';

/** One message, rendered by each channel in its own format (email, Slack blocks, SMS text...). */
export interface Notification {
  /** The incident (or report) this belongs to: the first part of the delivery log key. */
  sourceId: string;
  /**
   * Stable within the source, e.g. `opened-warning`, `escalated-2`, `resolved`: the second part of
   * the delivery log key, so a retried delivery of the same notification never sends twice.
   */
  notificationId: string;
  kind: NotificationKind;
  level: AlertLevel;
  /** One line, no secrets: `Daily budget of user:alice at 95%`. Email subject is `[LEVEL] title`. */
  title: string;
  /** A few sentences of plain text. */
  summary: string;
  /** Label/value pairs shown as a table or fields (scope, period, spent, budget, usage...). */
  fields: { label: string; value: string }[];
  /** How to acknowledge, e.g. `costguard alerts ack <id>`; absent for resolved notices and reports. */
  ackHint?: string;
  /** ISO time the condition was observed. */
  occurredAt: string;
  /** Optional rich body for email (reports: an HTML page with inline SVG). */
  html?: string;
}
