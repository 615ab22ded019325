-- Up Migration

-- Usage whose token counts are an estimate (e.g. a stream broken off before the provider reported
-- its usage): recorded and counted like any other usage, and flagged.
ALTER TABLE usage_ledger ADD COLUMN estimated boolean NOT NULL DEFAULT false;

-- Usage events that could not be recorded for a reason tied to the event itself (PostgreSQL
-- refused the row, the event failed validation after it was accepted, pricing threw). The rest of
-- their flush is recorded; these wait here, with the error and the original payload, to be listed
-- and replayed after a fix (`costguard deadletter list|replay`).
--   dead_letter_key: `<flush or batch id>/<request id or #index>`, so a retried flush records its
--                    dead letters once;
--   payload:         the event as received, as JSON text (text, not jsonb: jsonb refuses "\u0000",
--                    and the payload may hold exactly what made it fail);
--   stage:           'validation' | 'pricing' | 'persist'.
CREATE TABLE usage_dead_letters (
  id               bigserial PRIMARY KEY,
  dead_letter_key  text NOT NULL UNIQUE,
  batch_id         text NOT NULL,
  request_id       text,
  user_id          text,
  stage            text NOT NULL CHECK (stage IN ('validation', 'pricing', 'persist')),
  error            text NOT NULL,
  payload          text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  replayed_at      timestamptz,
  replay_batch_id  text
);
CREATE INDEX usage_dead_letters_open ON usage_dead_letters (created_at) WHERE replayed_at IS NULL;

-- Dead letters raise one incident a day: a rule of its own.
ALTER TABLE alert_incidents DROP CONSTRAINT alert_incidents_rule_check;
ALTER TABLE alert_incidents ADD CONSTRAINT alert_incidents_rule_check CHECK (rule IN ('threshold', 'forecast', 'spike', 'unpriced', 'deadletter'));

-- Down Migration
ALTER TABLE alert_incidents DROP CONSTRAINT alert_incidents_rule_check;
ALTER TABLE alert_incidents ADD CONSTRAINT alert_incidents_rule_check CHECK (rule IN ('threshold', 'forecast', 'spike', 'unpriced'));
DROP TABLE usage_dead_letters;
ALTER TABLE usage_ledger DROP COLUMN estimated;
