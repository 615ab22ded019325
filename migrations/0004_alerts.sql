-- Up Migration

-- Alert history: one row per incident (a condition that fired: a budget threshold, a forecast, a
-- spike, unpriced usage), its events (opened, level changes, notifications, acknowledgement,
-- resolution), and the notification claims that keep one (condition, level) from notifying twice
-- within the repeat interval, across incidents, worker restarts and server restarts.
-- The incident id is a hash of the condition key, which includes the period: a condition that
-- clears and fires again in the same period reopens the same incident.
CREATE TABLE alert_incidents (
  id               text PRIMARY KEY,
  condition_key    text NOT NULL,
  rule             text NOT NULL CHECK (rule IN ('threshold', 'forecast', 'spike', 'unpriced')),
  scope            text NOT NULL,
  budget_period    text,
  period_key       text,
  level            text NOT NULL CHECK (level IN ('info', 'warning', 'critical', 'emergency')),
  status           text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
  title            text NOT NULL,
  summary          text NOT NULL,
  fields           jsonb NOT NULL DEFAULT '[]'::jsonb,
  opened_at        timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  acknowledged_by  text,
  acknowledged_at  timestamptz,
  ack_note         text,
  resolved_at      timestamptz,
  resolved_reason  text,
  escalations      integer NOT NULL DEFAULT 0,
  notifications    integer NOT NULL DEFAULT 0,
  workflow_id      text NOT NULL
);
CREATE INDEX alert_incidents_open ON alert_incidents (opened_at DESC) WHERE status <> 'resolved';
CREATE INDEX alert_incidents_recent ON alert_incidents (updated_at DESC);
CREATE INDEX alert_incidents_scope ON alert_incidents (scope, updated_at DESC);

-- `event_key` makes recording idempotent: an activity retried after its commit inserts nothing.
CREATE TABLE alert_events (
  id           bigserial PRIMARY KEY,
  incident_id  text NOT NULL REFERENCES alert_incidents (id),
  event_key    text NOT NULL UNIQUE,
  at           timestamptz NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('opened', 'reopened', 'level_changed', 'notified', 'suppressed', 'acknowledged', 'resolved')),
  level        text NOT NULL,
  detail       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX alert_events_incident ON alert_events (incident_id, at);

-- Invariant 7: one notification per (condition, level) within the repeat interval. A notification
-- claims its row before anything is sent; a second claim for the same (condition, level) within
-- the interval is refused (the notification is suppressed and the event says so).
CREATE TABLE alert_notification_claims (
  condition_key    text NOT NULL,
  level            text NOT NULL,
  notification_key text NOT NULL,
  incident_id      text NOT NULL,
  claimed_at       timestamptz NOT NULL,
  PRIMARY KEY (condition_key, level, notification_key)
);
CREATE INDEX alert_notification_claims_recent ON alert_notification_claims (condition_key, level, claimed_at DESC);

-- Down Migration
DROP TABLE alert_notification_claims;
DROP TABLE alert_events;
DROP TABLE alert_incidents;
