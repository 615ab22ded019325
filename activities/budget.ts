/**
 * Activities of the budget workflow besides the ledger: its configuration, and the exact totals of
 * ledger-sourced scopes (system, team, project), read from the rollups.
 */
import type { Pool } from 'pg';
import type { Config } from '../src/config/index.js';
import { loadBudgets, saveBudgets } from '../src/db/budgets.js';
import { type PeriodRange, readScopeTotals } from '../src/db/scope-totals.js';
import type { Budget, Scope } from '../src/domain/budget.js';
import type { ExchangeRates } from '../src/domain/money.js';
import type { ScopeAlertSettings } from '../src/domain/scope-alerts.js';
import type { PeriodTotals } from '../src/domain/budget-status.js';

export type { PeriodRange } from '../src/db/scope-totals.js';

export interface ScopeSettings {
  budgets: Budget[];
  rates: ExchangeRates;
  /** How often a ledger-sourced scope re-reads its totals. */
  pollIntervalMs: number;
  /** Most events one flush persists. */
  maxFlushEvents: number;
  /** Alert rules (absent in results recorded before alerting existed). */
  alerts?: ScopeAlertSettings;
}

export interface BudgetActivityDeps {
  pool: Pool;
  config: Config;
}

export const createBudgetActivities = (deps: BudgetActivityDeps) => ({
  /** The scope's budgets (saved at runtime, else the configured defaults) and its settings. */
  async loadScopeSettings(scope: Scope): Promise<ScopeSettings> {
    const budgets = (await loadBudgets(deps.pool, deps.config, [scope])).get(scope) ?? [];
    return {
      budgets,
      rates: deps.config.exchangeRates,
      pollIntervalMs: deps.config.budgetWorkflow.ledgerPollMs,
      maxFlushEvents: deps.config.budgetWorkflow.maxFlushEvents,
      alerts: {
        enabled: deps.config.alerts.enabled,
        evaluateEveryMs: deps.config.alerts.evaluateEvery,
        forecast: { ...deps.config.alerts.forecast },
        spike: { ...deps.config.alerts.spike },
      },
    };
  },

  /** Persists a scope's budgets (idempotent: the same budgets written twice is one state). */
  async saveBudgets(scope: Scope, budgets: Budget[]): Promise<void> {
    await saveBudgets(deps.pool, scope, budgets);
  },

  /**
   * Exact totals of a scope for each period, from the rollups when the period lines up with them
   * (its day/month row in the rollups' own time zone, or whole hours), else from the ledger rows
   * (short fixed periods). Breakdowns: the system's from the rollup facets, a user's and short
   * periods' from the ledger rows; none for team/project calendar periods.
   */
  async readScopeTotals(scope: Scope, periods: PeriodRange[]): Promise<{ key: string; spec: string; totals: PeriodTotals }[]> {
    return readScopeTotals(deps.pool, deps.config.timezone, scope, periods);
  },
});

export type BudgetActivities = ReturnType<typeof createBudgetActivities>;
