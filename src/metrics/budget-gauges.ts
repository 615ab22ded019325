/**
 * Which budgets `budget_usage_ratio` can show, and how to read them (pure: no I/O).
 *
 * The gauge is computed on scrape from the ledger's exact rollups, which exist per hour, day and
 * month in ONE time zone (the configured reporting zone). So a budget is exported only when the
 * rollups can answer it exactly: a calendar `day` or `month` period in that same zone. A budget in
 * another zone or with a fixed-length period (`30s`, `7d`) is left out rather than approximated;
 * its live state is in the budget workflow (Temporal UI, `costguard status`).
 *
 * `budget_type` takes the original specification's values, `daily` and `monthly`, for every budget
 * of one scope (the system's, `team:infra`'s), and the `scope` label tells them apart; so the
 * original query `budget_usage_ratio{budget_type="daily"}` still finds the system's daily budget
 * (and, when named scopes have daily budgets, theirs beside it, each with its own `scope`).
 */
import { type Currency, type ExchangeRates, parseAmount, toUsd } from '../domain/money.js';

export interface BudgetLike {
  period: string;
  amount: string;
  currency?: Currency;
  timezone?: string;
}

/** One series of `budget_usage_ratio`. */
export interface BudgetGauge {
  /** `daily` or `monthly` (the original values); `user_daily_max` / `user_monthly_max` for the per-user maximum. */
  budgetType: string;
  /** The scope label: `system`, `team:infra`, or `user` for the per-user maximum. */
  scope: string;
  /** The rollup to read: the scope's row, or (for `user`) the top user's row. */
  periodKind: 'day' | 'month';
  /** The budget in USD, exact (converted at the configured rates). */
  amountUsd: string;
}

const PERIOD_NAME = { day: 'daily', month: 'monthly' } as const;

/**
 * The gauges for a set of budget rules (`scope` as in the config: `system`, a kind such as `user`
 * meaning every scope of that kind, or one scope `team:infra`). A kind-wide `user` budget becomes
 * `user_daily_max` (the most spent by any one user against it: bounded, unlike one series per
 * user); kind-wide `team`/`project` budgets are left out for the same reason. The maximum keeps a
 * budget_type of its own: it is no one budget, and under `daily` it would change what the original
 * query `budget_usage_ratio{budget_type="daily"}` answers (the system's daily budget).
 */
export function budgetGauges(
  rules: readonly (BudgetLike & { scope: string })[],
  reportingTimezone: string,
  rates: ExchangeRates,
): BudgetGauge[] {
  const gauges: BudgetGauge[] = [];
  for (const rule of rules) {
    if (rule.period !== 'day' && rule.period !== 'month') continue;
    if ((rule.timezone ?? reportingTimezone) !== reportingTimezone) continue;
    const specific = rule.scope.includes(':') || rule.scope === 'system';
    if (!specific && rule.scope !== 'user') continue;
    const amountUsd = toUsd(rule.amount, rule.currency ?? 'USD', rates);
    gauges.push({
      budgetType: specific ? PERIOD_NAME[rule.period] : `user_${PERIOD_NAME[rule.period]}_max`,
      scope: rule.scope,
      periodKind: rule.period,
      amountUsd,
    });
  }
  return gauges;
}

/** The ratio the gauge shows: spent over the budget, divided exactly and only then made a float. */
export function usageRatio(spentUsd: string, amountUsd: string): number {
  const amount = parseAmount(amountUsd);
  return amount.isZero() ? 0 : parseAmount(spentUsd).dividedBy(amount).toNumber();
}
