-- Up Migration

-- Calls answered by the client's response cache (src/client/cache): recorded in the ledger as their
-- own kind, never as spend. A cache-hit row has cost_usd = 0 (spend, budgets, alerts and forecasts
-- are unchanged by it) and avoided_usd = what the call would have cost, priced exactly like a call
-- with the token counts of the answer it replayed. Its token counts are kept on the row (they are
-- what priced the avoided cost) but are not added to the rollups' token sums, which count the
-- tokens the providers actually processed. `calls` in the rollups counts every answered request
-- (calls and cache hits); `cache_hits` says how many of them the cache answered.
ALTER TABLE usage_ledger
  ADD COLUMN kind text NOT NULL DEFAULT 'call' CHECK (kind IN ('call', 'cache_hit')),
  ADD COLUMN avoided_usd numeric NOT NULL DEFAULT 0 CHECK (avoided_usd >= 0),
  ADD CONSTRAINT usage_ledger_cache_hit_no_spend CHECK (kind = 'call' AND avoided_usd = 0 OR kind = 'cache_hit' AND cost_usd = 0);

ALTER TABLE usage_rollups
  ADD COLUMN avoided_usd numeric NOT NULL DEFAULT 0,
  ADD COLUMN cache_hits bigint NOT NULL DEFAULT 0;

-- New columns go at the end, so the view can be replaced in place (its readers are unchanged).
CREATE OR REPLACE VIEW usage_rollup_totals AS
SELECT scope, period_kind, timezone, period_start,
       sum(cost_usd) AS cost_usd, sum(calls)::bigint AS calls, sum(unpriced_calls)::bigint AS unpriced_calls,
       sum(input_tokens)::bigint AS input_tokens, sum(cache_read_tokens)::bigint AS cache_read_tokens,
       sum(cache_write_tokens)::bigint AS cache_write_tokens, sum(cache_write_1h_tokens)::bigint AS cache_write_1h_tokens,
       sum(output_tokens)::bigint AS output_tokens, sum(reasoning_tokens)::bigint AS reasoning_tokens,
       max(updated_at) AS updated_at,
       sum(avoided_usd) AS avoided_usd, sum(cache_hits)::bigint AS cache_hits
FROM usage_rollups
GROUP BY scope, period_kind, timezone, period_start;

-- Down Migration
DROP VIEW usage_rollup_totals;
CREATE VIEW usage_rollup_totals AS
SELECT scope, period_kind, timezone, period_start,
       sum(cost_usd) AS cost_usd, sum(calls)::bigint AS calls, sum(unpriced_calls)::bigint AS unpriced_calls,
       sum(input_tokens)::bigint AS input_tokens, sum(cache_read_tokens)::bigint AS cache_read_tokens,
       sum(cache_write_tokens)::bigint AS cache_write_tokens, sum(cache_write_1h_tokens)::bigint AS cache_write_1h_tokens,
       sum(output_tokens)::bigint AS output_tokens, sum(reasoning_tokens)::bigint AS reasoning_tokens,
       max(updated_at) AS updated_at
FROM usage_rollups
GROUP BY scope, period_kind, timezone, period_start;
ALTER TABLE usage_rollups DROP COLUMN cache_hits, DROP COLUMN avoided_usd;
ALTER TABLE usage_ledger DROP CONSTRAINT usage_ledger_cache_hit_no_spend, DROP COLUMN avoided_usd, DROP COLUMN kind;
