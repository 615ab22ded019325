-- Up Migration

-- Today's rows of every scope, for the Prometheus top-N gauge (`costguard_top_user_cost_usd`) and
-- the per-user budget maximum, read on every scrape. The primary key leads with `scope`, so without
-- this index "every user's row for today" scans every user's rows of every day ever kept.
CREATE INDEX usage_rollups_day_period ON usage_rollups (timezone, period_start) WHERE period_kind = 'day';

-- Down Migration
DROP INDEX usage_rollups_day_period;
