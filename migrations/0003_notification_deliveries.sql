-- Up Migration

-- One row per (notification, channel): the delivery log. The activity that sends reads it under a
-- lock first, so a retry after a successful send never sends again (docs/architecture.md, invariant 7), and
-- operators can see with SQL what was sent where, how many attempts it took and why it failed.
CREATE TABLE notification_deliveries (
  source_id         text NOT NULL,
  notification_id   text NOT NULL,
  channel           text NOT NULL,
  channel_type      text NOT NULL,
  level             text NOT NULL,
  kind              text NOT NULL,
  status            text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
  attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- Recipients already reached by channels that send one request per recipient (SMS), so a retry
  -- after a partial failure skips them.
  sent_recipients   text[] NOT NULL DEFAULT '{}',
  first_attempt_at  timestamptz NOT NULL,
  last_attempt_at   timestamptz NOT NULL,
  sent_at           timestamptz,
  -- Scrubbed of URLs and tokens before it is written: never a secret.
  last_error        text,
  response_status   integer,
  PRIMARY KEY (source_id, notification_id, channel),
  CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

CREATE INDEX notification_deliveries_source_idx ON notification_deliveries (source_id, first_attempt_at);

-- Down Migration
DROP TABLE notification_deliveries;
