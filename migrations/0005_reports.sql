-- Up Migration

-- Generated cost reports, one row per (kind, period, time zone). Generating a report again for the
-- same period (a retried activity, a schedule catch-up, a backfill) replaces its body in place:
-- there is never more than one report per period. `body` is the JSON report (money as decimal
-- strings), `html` the page sent by email and served at GET /v1/reports/:kind/:period.html.
CREATE TABLE reports (
  kind          text NOT NULL CHECK (kind IN ('daily', 'monthly')),
  period_key    text NOT NULL,
  timezone      text NOT NULL,
  period_start  timestamptz NOT NULL,
  period_end    timestamptz NOT NULL,
  body          jsonb NOT NULL,
  html          text NOT NULL,
  generated_at  timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  generations   integer NOT NULL DEFAULT 1,
  PRIMARY KEY (kind, period_key, timezone),
  CHECK (period_start < period_end)
);

CREATE INDEX reports_generated_at ON reports (generated_at);

-- Down Migration
DROP TABLE reports;
