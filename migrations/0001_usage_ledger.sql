-- Up Migration

-- One row per usage event. `request_id` is the idempotency key: an event is counted once, however
-- many times it is delivered. Money is NUMERIC (exact); token counts are bigint.
--
-- Not partitioned yet, deliberately: a partitioned table's unique keys must include the partition
-- key (occurred_at), so global uniqueness of request_id would need a separate key registry table
-- consulted on every insert. At the volumes Cost Guard targets first (tens of millions of rows a
-- month) one table with a BRIN index on occurred_at serves range scans well. The plan, when a month
-- holds more than ~100M rows: move dedup to `usage_request_keys (request_id PK, occurred_at)`, turn
-- this table into `PARTITION BY RANGE (occurred_at)` with monthly partitions created ahead by the
-- worker, and detach old months for archiving. README "Ledger" describes it.
CREATE TABLE usage_ledger (
  request_id            text PRIMARY KEY,
  batch_id              text NOT NULL,
  occurred_at           timestamptz NOT NULL,
  recorded_at           timestamptz NOT NULL DEFAULT now(),
  provider              text NOT NULL CHECK (provider <> ''),
  model                 text NOT NULL CHECK (model <> ''),
  matched_provider      text,
  matched_model         text,
  user_id               text NOT NULL CHECK (user_id <> ''),
  task_type             text NOT NULL,
  team                  text,
  project               text,
  tags                  jsonb NOT NULL DEFAULT '{}'::jsonb,
  input_tokens          bigint NOT NULL CHECK (input_tokens >= 0),
  cache_read_tokens     bigint NOT NULL CHECK (cache_read_tokens >= 0),
  cache_write_tokens    bigint NOT NULL CHECK (cache_write_tokens >= 0),
  cache_write_1h_tokens bigint NOT NULL CHECK (cache_write_1h_tokens >= 0),
  output_tokens         bigint NOT NULL CHECK (output_tokens >= 0),
  reasoning_tokens      bigint NOT NULL CHECK (reasoning_tokens >= 0),
  cost_usd              numeric NOT NULL CHECK (cost_usd >= 0),
  cost_breakdown        jsonb NOT NULL DEFAULT '{}'::jsonb,
  price_source          text CHECK (price_source IN ('catalog', 'override')),
  price_effective_from  text,
  catalog_version       text,
  unpriced              boolean NOT NULL DEFAULT false,
  unpriced_reason       text,
  metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- The usage convention (inclusive totals), enforced by the database too.
  CHECK (cache_read_tokens + cache_write_tokens <= input_tokens),
  CHECK (cache_write_1h_tokens <= cache_write_tokens),
  CHECK (reasoning_tokens <= output_tokens),
  -- An unpriced row says why, and a priced row says from where.
  CHECK ((unpriced AND unpriced_reason IS NOT NULL AND cost_usd = 0) OR (NOT unpriced AND price_source IS NOT NULL))
);

CREATE INDEX usage_ledger_occurred_at_brin ON usage_ledger USING brin (occurred_at);
CREATE INDEX usage_ledger_user_occurred_at ON usage_ledger (user_id, occurred_at);
CREATE INDEX usage_ledger_unpriced ON usage_ledger (occurred_at) WHERE unpriced;

-- Exact running totals per (scope, period), maintained in the same statement as the ledger insert,
-- from the rows that statement newly inserted. So a rollup always equals the sum of its ledger rows.
-- scope: 'system', 'user:<id>', 'team:<id>', 'project:<id>', and the system's breakdown facets
-- 'system|provider:<p>', 'system|model:<m>', 'system|task:<t>'. Periods start at calendar boundaries
-- in `timezone` (the configured reporting time zone). Each (scope, period) is split over a few
-- `shard` rows (chosen per batch) so that concurrent batches do not queue on the same hot row
-- (every batch adds to 'system'); read the totals through the usage_rollup_totals view.
CREATE TABLE usage_rollups (
  scope                 text NOT NULL,
  period_kind           text NOT NULL CHECK (period_kind IN ('hour', 'day', 'month')),
  timezone              text NOT NULL,
  period_start          timestamptz NOT NULL,
  shard                 smallint NOT NULL DEFAULT 0,
  cost_usd              numeric NOT NULL DEFAULT 0,
  calls                 bigint NOT NULL DEFAULT 0,
  unpriced_calls        bigint NOT NULL DEFAULT 0,
  input_tokens          bigint NOT NULL DEFAULT 0,
  cache_read_tokens     bigint NOT NULL DEFAULT 0,
  cache_write_tokens    bigint NOT NULL DEFAULT 0,
  cache_write_1h_tokens bigint NOT NULL DEFAULT 0,
  output_tokens         bigint NOT NULL DEFAULT 0,
  reasoning_tokens      bigint NOT NULL DEFAULT 0,
  updated_at            timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (scope, period_kind, timezone, period_start, shard)
);

CREATE VIEW usage_rollup_totals AS
SELECT scope, period_kind, timezone, period_start,
       sum(cost_usd) AS cost_usd, sum(calls)::bigint AS calls, sum(unpriced_calls)::bigint AS unpriced_calls,
       sum(input_tokens)::bigint AS input_tokens, sum(cache_read_tokens)::bigint AS cache_read_tokens,
       sum(cache_write_tokens)::bigint AS cache_write_tokens, sum(cache_write_1h_tokens)::bigint AS cache_write_1h_tokens,
       sum(output_tokens)::bigint AS output_tokens, sum(reasoning_tokens)::bigint AS reasoning_tokens,
       max(updated_at) AS updated_at
FROM usage_rollups
GROUP BY scope, period_kind, timezone, period_start;

-- The result of every persisted batch, under its batch id: an activity retried after a commit
-- whose completion was lost finds its batch here and returns the very same result.
CREATE TABLE usage_batches (
  batch_id     text PRIMARY KEY,
  fingerprint  text NOT NULL,
  event_count  integer NOT NULL,
  result       jsonb,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_batches_created_at ON usage_batches (created_at);

-- Lets one SQL statement abort itself (and so roll back everything it did) when a check fails.
CREATE FUNCTION costguard_check(ok boolean, message text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT ok THEN
    RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = message, HINT = 'costguard_check';
  END IF;
  RETURN true;
END;
$$;

-- Down Migration
DROP FUNCTION costguard_check(boolean, text);
DROP VIEW usage_rollup_totals;
DROP TABLE usage_batches;
DROP TABLE usage_rollups;
DROP TABLE usage_ledger;
