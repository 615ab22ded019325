/**
 * Reading and changing a scope's budgets through its budget workflow (used by the HTTP API and the
 * CLI), and the translation of Temporal client errors into Cost Guard's error vocabulary.
 */
import {
  type Client,
  NamespaceNotFoundError,
  QueryNotRegisteredError,
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import type { Pool } from 'pg';
import type { Config } from '../config/index.js';
import { loadBudgets } from '../db/budgets.js';
import { readScopeTotals } from '../db/scope-totals.js';
import { type Scope, isScope, mergeBudgetChange } from '../domain/budget.js';
import { BudgetState } from '../domain/budget-state.js';
import { type CostGuardError, NotFoundError, UnavailableError, ValidationError } from '../domain/errors.js';
import { BUDGET_WORKFLOW_TYPE, type BudgetWorkflowInput, budgetWorkflowId, setBudgetUpdate, statusQuery } from '../messages.js';
import type { BudgetStatus } from '../domain/budget-status.js';
import { isTransientSendError } from './cost-tracker.js';

export const SCOPE_MESSAGE = 'expected "system", "user:<id>", "team:<id>" or "project:<id>" (ids of letters, digits and ._@+=:/-, at most 200)';

/** The budget workflow rejected a change (its update validator threw): nothing changed. */
export class BudgetChangeRejectedError extends ValidationError {
  constructor(message: string, cause: unknown) {
    super([{ path: '', message }], 'budget change rejected');
    this.message = message;
    this.cause = cause;
  }
}

/** Throws a ValidationError naming `scope` when it is not a scope. */
export function assertScope(scope: string, path = 'scope'): asserts scope is Scope {
  if (!isScope(scope)) throw new ValidationError([{ path, message: `${SCOPE_MESSAGE}, got ${JSON.stringify(scope.slice(0, 220))}` }], 'invalid scope');
}

/**
 * Maps an error of the Temporal client to the vocabulary callers act on: not_found, validation,
 * unavailable. Anything else (a bug, an unexpected server answer) is returned unchanged.
 */
export function fromTemporalError(err: unknown, scope?: Scope): unknown {
  if (err instanceof WorkflowNotFoundError) {
    return new NotFoundError(`no budget workflow for scope ${scope ?? err.workflowId}: it has had no usage and no budget set yet`);
  }
  if (err instanceof NamespaceNotFoundError) return new NotFoundError(`Temporal namespace ${JSON.stringify(err.namespace)} does not exist`);
  if (err instanceof WorkflowUpdateFailedError) {
    const message = err.cause?.message ?? err.message;
    // The workflow had not registered its handler yet (the SDK's own rejection): not the change's fault.
    if (message.startsWith('No registered handler for update')) {
      return new UnavailableError(`the budget workflow of ${scope ?? 'this scope'} is starting and cannot take the change yet; retry shortly`, { cause: err });
    }
    return new BudgetChangeRejectedError(message, err);
  }
  if (err instanceof QueryNotRegisteredError) {
    return new UnavailableError(`the budget workflow of ${scope ?? 'this scope'} is starting and cannot answer yet; retry shortly`, { cause: err });
  }
  if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isTransientSendError(err)) {
    return new UnavailableError(`Temporal is unavailable: ${(err as Error).message}`, { cause: err });
  }
  return err;
}

/** How long the status waits for the budget workflow's own view before answering with the live totals alone. */
const WORKFLOW_STATUS_WAIT_MS = 3000;

/** A scope's budgets as its workflow holds them, beside the exact live totals read from the rollups. */
export interface LiveBudgetStatus extends BudgetStatus {
  /**
   * `running` when the scope has a budget workflow; `none` when it has none yet (no material
   * usage); `starting` when its workflow exists but could not answer within 3 seconds (it is
   * running its first task): the budgets and live totals are then this status's own.
   */
  workflow: 'running' | 'none' | 'starting';
  /**
   * Exact live totals of the same budgets, read now from the ledger's rollups: ahead of the
   * workflow's own figures by less than one step (ingest.stepFraction of the smallest budget).
   */
  live: { readAt: string; budgets: BudgetStatus['budgets'] };
}

/**
 * The status of a scope's budgets for the API and `costguard status`: the budget workflow's state
 * (alert levels, incidents) beside exact live totals from the rollups. A scope that has no workflow
 * yet (its spend never moved materially, or it never had usage) answers with its configured (or
 * saved) budgets and the live totals, instead of "not found".
 */
export async function readBudgetStatus(client: Client, pool: Pool, config: Config, scope: Scope, nowMs = Date.now()): Promise<LiveBudgetStatus> {
  const budgets = (await loadBudgets(pool, config, [scope])).get(scope) ?? [];
  const state = new BudgetState({ scope, budgets, rates: config.exchangeRates }, nowMs);
  for (const r of await readScopeTotals(pool, config.timezone, scope, state.currentPeriods())) state.setTotals(r.spec, r.key, r.totals, nowMs);
  const live = state.status(nowMs);
  const liveView = { readAt: new Date(nowMs).toISOString(), budgets: live.budgets };
  // The workflow's own view, if it answers promptly: a workflow running its first task would hold
  // a query for up to ~30 s, and the live totals already answer the question.
  const query = queryBudgetStatus(client, scope);
  query.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), WORKFLOW_STATUS_WAIT_MS);
  });
  try {
    const fromWorkflow = await Promise.race([query, late]);
    if (fromWorkflow !== 'late') return { ...fromWorkflow, workflow: 'running', live: liveView };
    return { ...live, source: 'ledger', workflow: 'starting', live: liveView };
  } catch (err) {
    if (err instanceof NotFoundError) return { ...live, source: 'ledger', workflow: 'none', live: liveView };
    if (err instanceof UnavailableError && /is starting/.test(err.message)) return { ...live, source: 'ledger', workflow: 'starting', live: liveView };
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** The live status of a scope's budgets. Throws NotFoundError if the scope has no budget workflow. */
export async function queryBudgetStatus(client: Client, scope: Scope): Promise<BudgetStatus> {
  try {
    return await client.workflow.getHandle(budgetWorkflowId(scope)).query(statusQuery);
  } catch (err) {
    throw fromTemporalError(err, scope) as CostGuardError;
  }
}

/**
 * Changes a scope's budgets through the workflow's setBudget update, starting the workflow if it
 * does not exist (update-with-start): one call, and the caller learns whether the change was
 * accepted. The change is MERGED into the scope's current budgets by period (`mergeBudgetChange`:
 * omitted fields are kept, new periods need amount and thresholds, periods not listed are removed),
 * validated (each bad field named) and sent as the complete, normalised list, which the workflow's
 * update stores as given. The current budgets are the ones last set for the scope
 * (`budget_configs`), else the configuration's for it. Two changes to one scope at the same moment
 * each merge with what they read; the later one's list wins.
 */
export async function setScopeBudgets(
  client: Client,
  opts: { scope: Scope; taskQueue: string; change: unknown; defaultTimezone: string; pool: Pool; config: Config },
): Promise<BudgetStatus> {
  const current = (await loadBudgets(opts.pool, opts.config, [opts.scope])).get(opts.scope) ?? [];
  const checked = mergeBudgetChange(current, opts.change, opts.defaultTimezone);
  if (!checked.ok) throw new ValidationError(checked.issues, 'invalid budget change');
  const input: BudgetWorkflowInput = { scope: opts.scope };
  const startWorkflowOperation = new WithStartWorkflowOperation(BUDGET_WORKFLOW_TYPE, {
    workflowId: budgetWorkflowId(opts.scope),
    taskQueue: opts.taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: `Cost Guard budget for ${opts.scope}`,
  });
  try {
    return await client.workflow.executeUpdateWithStart(setBudgetUpdate, { args: [{ budgets: checked.value }], startWorkflowOperation });
  } catch (err) {
    throw fromTemporalError(err, opts.scope) as CostGuardError;
  }
}
