/**
 * `costguard status`: the live state of a scope's budgets, queried from its budget workflow.
 */
import { type LiveBudgetStatus, assertScope, readBudgetStatus } from '../client/budgets.js';
import { connectTemporal } from '../client/connect.js';
import type { Config } from '../config/index.js';
import { withPool } from './pool.js';
import type { Scope } from '../domain/budget.js';
import { ValidationError } from '../domain/errors.js';
import { type Currency, formatMoney } from '../domain/money.js';
import type { BudgetPeriodStatus, BudgetStatus } from '../domain/budget-status.js';

export interface StatusCommandOptions {
  user?: string;
  scope?: string;
}

/** `--user ID` means scope `user:ID`; `--scope` is taken as is; neither means `system`. */
export function statusScope(opts: StatusCommandOptions): Scope {
  if (opts.user !== undefined && opts.scope !== undefined) {
    throw new ValidationError([{ path: '--user', message: 'give --user or --scope, not both' }], 'invalid status request');
  }
  if (opts.user !== undefined) {
    const scope = `user:${opts.user.trim()}`;
    assertScope(scope, '--user');
    return scope;
  }
  const scope = opts.scope?.trim() ?? 'system';
  assertScope(scope, '--scope');
  return scope;
}

export async function runStatusCommand(config: Config, opts: StatusCommandOptions): Promise<LiveBudgetStatus> {
  const scope = statusScope(opts);
  const { client, connection } = await connectTemporal(config);
  try {
    return await withPool(config, (pool) => readBudgetStatus(client, pool, config, scope));
  } finally {
    await connection.close();
  }
}

const money = (usd: string) => formatMoney(usd, 'USD');

function budgetLine(b: BudgetPeriodStatus): string[] {
  const amount = b.currency === 'USD' ? money(b.amountUsd) : `${money(b.amountUsd)} (${b.amount} ${b.currency as Currency})`;
  return [
    b.period === 'day' || b.period === 'month' ? `${b.period} (${b.timezone})` : b.period,
    `${money(b.spentUsd)} / ${amount}`,
    `${(b.usageRatio * 100).toFixed(1)}%`,
    money(b.remainingUsd),
    b.level.toUpperCase(),
    b.periodEnd,
  ];
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)];
}

/** A small table per scope: one row per budget. Amounts are rounded half-even to 6 places for display. */
export function renderStatusText(status: BudgetStatus | LiveBudgetStatus): string {
  const live = 'live' in status ? status.live : null;
  const lines = [
    'workflow' in status && status.workflow === 'none'
      ? `Budgets of ${status.scope} (no budget workflow yet: its spend has not moved materially; totals live from the ledger's rollups, ${live?.readAt})`
      : `Budgets of ${status.scope} (workflow state updated ${status.updatedAt}${live ? `; live totals from the rollups, ${live.readAt}` : ''})`,
  ];
  if (status.budgets.length === 0) {
    lines.push('  no budgets set');
    return lines.join('\n');
  }
  lines.push(
    ...table(['PERIOD', 'SPENT / BUDGET', 'USAGE', 'REMAINING', 'LEVEL', 'PERIOD ENDS'], (live?.budgets ?? status.budgets).map(budgetLine)).map((l) => `  ${l}`),
  );
  if (live && 'workflow' in status && status.workflow === 'running') {
    for (const b of status.budgets) lines.push(`  workflow view of ${b.period}: ${money(b.spentUsd)} (${b.level.toUpperCase()}; it hears of spend in steps)`);
  }
  for (const b of live?.budgets ?? status.budgets) {
    const t = b.totals;
    const top = t.byModel.slice(0, 3).map((e) => `${e.key} ${money(e.costUsd)}`).join(', ');
    lines.push(`  ${b.period}: ${t.calls} call(s)${t.unpricedCalls ? `, ${t.unpricedCalls} UNPRICED` : ''}${top ? `; top models: ${top}` : ''}`);
  }
  for (const i of status.incidents ?? []) {
    lines.push(`  incident ${i.incidentId}: ${i.rule} ${i.level.toUpperCase()}${i.status === 'acknowledged' ? ' (acknowledged)' : ''}; see costguard alerts show ${i.incidentId}`);
  }
  return lines.join('\n');
}
