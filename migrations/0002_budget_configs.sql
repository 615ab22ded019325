-- Up Migration

-- Budgets changed at runtime (PUT /v1/budgets/:scope, the setBudget update), per scope. The budget
-- workflow holds its budgets in its own durable state; this table keeps them when a workflow is
-- recreated (terminated, reset) and lets reports and operators read them with SQL.
CREATE TABLE budget_configs (
  scope       text PRIMARY KEY,
  budgets     jsonb NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE budget_configs;
