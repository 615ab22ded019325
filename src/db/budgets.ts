/**
 * A scope's budgets: those saved at runtime (`budget_configs`, written by the budget workflow when
 * PUT /v1/budgets/:scope or `costguard` changes them), else the configured defaults for the scope.
 */
import type { Pool } from 'pg';
import type { Config } from '../config/index.js';
import { type Budget, type Scope, scopeKind } from '../domain/budget.js';

/** The configured budgets of a scope: its own rules if the config names it, else its kind's. */
export function defaultBudgets(config: Config, scope: Scope): Budget[] {
  const kind = scopeKind(scope);
  const exact = config.budgets.filter((b) => b.scope === scope);
  const rules = exact.length > 0 ? exact : config.budgets.filter((b) => b.scope === kind);
  return rules.map((b) => ({
    period: b.period,
    amount: b.amount,
    currency: b.currency,
    timezone: b.timezone ?? config.timezone,
    thresholds: { ...b.thresholds },
    ...(b.enforcement ? { enforcement: b.enforcement } : {}),
    ...(b.failMode ? { failMode: b.failMode } : {}),
  }));
}

/** The budgets saved at runtime for these scopes (a scope never changed at runtime is absent). */
export async function readSavedBudgets(pool: Pool, scopes: readonly string[]): Promise<Map<string, Budget[]>> {
  if (scopes.length === 0) return new Map();
  const { rows } = await pool.query<{ scope: string; budgets: Budget[] }>('SELECT scope, budgets FROM budget_configs WHERE scope = ANY($1::text[])', [scopes]);
  return new Map(rows.map((r) => [r.scope, r.budgets]));
}

/** Budgets of several scopes at once: saved ones from `budget_configs`, the configured defaults for the rest. */
export async function loadBudgets(pool: Pool, config: Config, scopes: readonly Scope[]): Promise<Map<Scope, Budget[]>> {
  const out = await readSavedBudgets(pool, scopes);
  for (const scope of scopes) if (!out.has(scope)) out.set(scope, defaultBudgets(config, scope));
  return out;
}

/** Persists a scope's budgets (idempotent: the same budgets written twice is one state). */
export async function saveBudgets(pool: Pool, scope: Scope, budgets: readonly Budget[]): Promise<void> {
  await pool.query(
    `INSERT INTO budget_configs (scope, budgets) VALUES ($1, $2)
     ON CONFLICT (scope) DO UPDATE SET budgets = EXCLUDED.budgets, updated_at = now()`,
    [scope, JSON.stringify(budgets)],
  );
}
