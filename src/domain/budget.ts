/**
 * Budgets: what a scope may spend per period, and the validation of budget changes. Pure (used by
 * the budget workflow's synchronous update validator and by the API).
 */
import { type FieldIssue } from './errors.js';
import { SUPPORTED_CURRENCIES, isDecimalString } from './money.js';
import { isPeriodSpec, timeZoneProblem } from './periods.js';

export type ScopeKind = 'system' | 'user' | 'team' | 'project';
export const SCOPE_KINDS: readonly ScopeKind[] = ['system', 'user', 'team', 'project'];
const SCOPE_RE = /^(system|(user|team|project):[A-Za-z0-9._@+=:/-]{1,200})$/;

/** `system`, `user:<id>`, `team:<id>` or `project:<id>`. */
export type Scope = string;

export function isScope(value: string): boolean {
  return SCOPE_RE.test(value);
}

export function scopeKind(scope: Scope): ScopeKind {
  return (scope === 'system' ? 'system' : scope.slice(0, scope.indexOf(':'))) as ScopeKind;
}

export function scopeId(scope: Scope): string {
  return scope === 'system' ? 'system' : scope.slice(scope.indexOf(':') + 1);
}

/** One budget of a scope (the scope itself is implied). */
export interface Budget {
  period: string; // 'day' | 'month' | '30s' ...
  amount: string; // decimal, in `currency`
  currency: (typeof SUPPORTED_CURRENCIES)[number];
  timezone: string;
  /**
   * Usage ratios at which the level changes: warning and critical are required; `info` (below
   * warning) is optional; emergency is at `emergency` (default 1, i.e. 100% of the budget).
   */
  thresholds: { warning: number; critical: number; info?: number; emergency?: number };
  /**
   * Pre-flight enforcement (POST /v1/authorize): `hard` denies a call whose worst case does not fit;
   * `soft` admits it with downgrade advice, overshooting by at most one call's worst case; `none`
   * (the default: unset) takes no part in pre-flight decisions, the budget only alerts and reports.
   */
  enforcement?: 'hard' | 'soft' | 'none';
  /** When Redis or Temporal cannot answer a pre-flight check: `closed` denies, `open` admits unreserved. Default: closed for hard, open otherwise. */
  failMode?: 'open' | 'closed';
}

/** What PUT /v1/budgets/:scope and the setBudget update take: the scope's complete list of budgets. */
export interface BudgetChange {
  budgets: Array<Omit<Budget, 'timezone' | 'currency'> & { timezone?: string; currency?: Budget['currency'] }>;
}

/** Budget amounts: at most 12 digits before the decimal point and 6 after (below a trillion). */
export const MAX_AMOUNT_DIGITS = 12;
export const MAX_AMOUNT_SCALE = 6;

/** Why `amount` is not a budget amount, or null: a positive decimal string within the bounds above. */
export function budgetAmountProblem(amount: string): string | null {
  if (!isDecimalString(amount) || amount.startsWith('-') || !/[1-9]/.test(amount)) {
    return 'expected a positive decimal string like "25.00"';
  }
  const [whole = '', fraction = ''] = amount.split('.');
  if (whole.replace(/^0+(?=\d)/, '').length > MAX_AMOUNT_DIGITS) return `expected at most ${MAX_AMOUNT_DIGITS} digits before the decimal point, got ${whole.length}`;
  if (fraction.length > MAX_AMOUNT_SCALE) return `expected at most ${MAX_AMOUNT_SCALE} decimal places, got ${fraction.length}`;
  return null;
}

const THRESHOLD_KEYS = ['warning', 'critical', 'info', 'emergency'] as const;
const BUDGET_KEYS = ['period', 'amount', 'currency', 'timezone', 'thresholds', 'enforcement', 'failMode'];
const MAX_BUDGETS = 8;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownFields(value: Record<string, unknown>, known: readonly string[]): string[] {
  return Object.keys(value).filter((k) => !known.includes(k));
}

const isRatio = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The thresholds of one budget, or undefined with the issues added. */
function checkThresholds(raw: unknown, path: string, issue: (path: string, message: string) => void): Budget['thresholds'] | undefined {
  if (!isRecord(raw)) {
    issue(path, 'expected { warning, critical } ratios such as { "warning": 0.8, "critical": 0.95 }');
    return undefined;
  }
  let ok = true;
  const extra = unknownFields(raw, THRESHOLD_KEYS);
  if (extra.length > 0) {
    issue(path, `unknown field(s) ${extra.join(', ')}`);
    ok = false;
  }
  const ratio = (key: (typeof THRESHOLD_KEYS)[number], required: boolean, max: number, example: string) => {
    const v = raw[key];
    if (v === undefined && !required) return;
    if (!isRatio(v)) issue(`${path}.${key}`, `expected a ratio such as ${example}`);
    else if (v <= 0) issue(`${path}.${key}`, 'expected a ratio above 0');
    else if (max === 1 && v >= 1) issue(`${path}.${key}`, 'expected a ratio below 1 (emergency is 100%)');
    else if (v > max) issue(`${path}.${key}`, `expected a ratio of at most ${max}`);
    else return;
    ok = false;
  };
  ratio('warning', true, 1, '0.8');
  ratio('critical', true, 1, '0.95');
  ratio('info', false, 1, '0.5');
  ratio('emergency', false, 10, '1');
  if (!ok) return undefined;
  const t = raw as Budget['thresholds'];
  if (t.warning >= t.critical) issue(path, 'expected warning below critical');
  else if (t.info !== undefined && t.info >= t.warning) issue(path, 'expected info below warning');
  else if (t.emergency !== undefined && t.emergency <= t.critical) issue(path, 'expected emergency above critical');
  else return { warning: t.warning, critical: t.critical, ...(t.info !== undefined ? { info: t.info } : {}), ...(t.emergency !== undefined ? { emergency: t.emergency } : {}) };
  return undefined;
}

/**
 * Validates a budget change; `defaultTimezone` fills budgets that give none. Every bad field is
 * named (`budgets.0.amount: expected a positive decimal string like "25.00"`).
 *
 * Written out rather than with zod (which the API and the configuration use): the budget
 * workflow's update validator runs this, and every module a workflow imports is evaluated again
 * for each workflow the worker loads. With zod in the workflow bundle, loading a budget workflow
 * cost about 40 ms of CPU and a megabyte or more of heap, for each of thousands of user workflows.
 */
export function validateBudgetChange(input: unknown, defaultTimezone: string): { ok: true; value: Budget[] } | { ok: false; issues: FieldIssue[] } {
  const issues: FieldIssue[] = [];
  const issue = (path: string, message: string) => issues.push({ path, message });
  if (!isRecord(input)) return { ok: false, issues: [{ path: '', message: 'expected { "budgets": [...] }' }] };
  const extra = unknownFields(input, ['budgets']);
  if (extra.length > 0) issue('', `unknown field(s) ${extra.join(', ')}`);
  if (!Array.isArray(input.budgets)) {
    issue('budgets', 'expected an array of budgets');
    return { ok: false, issues };
  }
  if (input.budgets.length > MAX_BUDGETS) issue('budgets', `at most ${MAX_BUDGETS} budgets per scope`);
  const budgets: Budget[] = [];
  const periods = new Set<string>();
  input.budgets.forEach((raw: unknown, i) => {
    const path = `budgets.${i}`;
    if (!isRecord(raw)) {
      issue(path, 'expected a budget: { period, amount, currency, timezone, thresholds }');
      return;
    }
    const before = issues.length;
    const unknown = unknownFields(raw, BUDGET_KEYS);
    if (unknown.length > 0) issue(path, `unknown field(s) ${unknown.join(', ')}`);
    const { period, amount, currency = 'USD', timezone } = raw;
    if (typeof period !== 'string' || !isPeriodSpec(period)) issue(`${path}.period`, 'expected "day", "month" or a fixed length like "30s", "10m", "1h", "7d"');
    else if (periods.has(period)) issue(`${path}.period`, `duplicate period ${period}`);
    else periods.add(period);
    if (typeof amount !== 'string') issue(`${path}.amount`, 'expected a decimal string like "25.00"');
    else {
      const problem = budgetAmountProblem(amount);
      if (problem) issue(`${path}.amount`, problem);
    }
    if (!(SUPPORTED_CURRENCIES as readonly unknown[]).includes(currency)) issue(`${path}.currency`, `expected one of ${SUPPORTED_CURRENCIES.join(', ')}`);
    if (timezone !== undefined) {
      const problem = typeof timezone === 'string' ? timeZoneProblem(timezone) : 'expected an IANA time zone such as "UTC" or "Europe/Paris"';
      if (problem) issue(`${path}.timezone`, problem);
    }
    const thresholds = checkThresholds(raw.thresholds, `${path}.thresholds`, issue);
    const { enforcement, failMode } = raw;
    if (enforcement !== undefined && enforcement !== 'hard' && enforcement !== 'soft' && enforcement !== 'none') issue(`${path}.enforcement`, 'expected "hard", "soft" or "none"');
    if (failMode !== undefined && failMode !== 'open' && failMode !== 'closed') issue(`${path}.failMode`, 'expected "open" or "closed"');
    if (issues.length === before && thresholds) {
      budgets.push({
        period: period as string,
        amount: amount as string,
        currency: currency as Budget['currency'],
        timezone: (timezone as string | undefined) ?? defaultTimezone,
        thresholds,
        ...(enforcement !== undefined ? { enforcement: enforcement as 'hard' | 'soft' | 'none' } : {}),
        ...(failMode !== undefined ? { failMode: failMode as 'open' | 'closed' } : {}),
      });
    }
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value: budgets };
}

/** Optional fields a change may remove by sending `null` (back to their defaults). */
const NULLABLE_FIELDS = ['enforcement', 'failMode'] as const;
const NULLABLE_THRESHOLDS = ['info', 'emergency'] as const;

function withoutNulls(raw: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out = { ...raw };
  for (const k of keys) if (out[k] === null) delete out[k];
  return out;
}

/**
 * What `PUT /v1/budgets/:scope` does with a change: a MERGE into the scope's current budgets, by
 * period.
 *
 * - A budget in the change whose `period` matches a current budget keeps every field the change
 *   omits (amount, currency, timezone, enforcement, failMode); `thresholds` merge key by key
 *   (`{ "warning": 0.7 }` keeps critical, info and emergency). `null` removes an optional field:
 *   `enforcement`, `failMode`, `thresholds.info`, `thresholds.emergency`.
 * - A budget whose period is new needs `amount` and `thresholds` (warning and critical); the 400
 *   names each one missing. currency and timezone default as before (USD, `defaultTimezone`).
 * - Periods of current budgets that the change does not list are REMOVED: the list is the scope's
 *   complete set of periods (`{ "budgets": [] }` removes them all).
 *
 * The merged list is then validated like any change (`validateBudgetChange`), so every bad field is
 * named with its index in the change (`budgets.1.thresholds.critical`).
 */
export function mergeBudgetChange(
  current: readonly Budget[],
  input: unknown,
  defaultTimezone: string,
): { ok: true; value: Budget[] } | { ok: false; issues: FieldIssue[] } {
  if (!isRecord(input) || !Array.isArray(input.budgets)) return validateBudgetChange(input, defaultTimezone);
  const missing: FieldIssue[] = [];
  const merged = input.budgets.map((raw: unknown, i) => {
    if (!isRecord(raw)) return raw;
    const given = withoutNulls(raw, NULLABLE_FIELDS);
    const existing = typeof raw.period === 'string' ? current.find((b) => b.period === raw.period) : undefined;
    if (isRecord(given.thresholds)) given.thresholds = withoutNulls(given.thresholds, NULLABLE_THRESHOLDS);
    if (!existing) {
      const period = typeof raw.period === 'string' ? raw.period : null;
      for (const field of ['amount', 'thresholds'] as const) {
        if (raw[field] === undefined && period !== null && isPeriodSpec(period)) {
          missing.push({ path: `budgets.${i}.${field}`, message: `required for a new period (the scope has no "${period}" budget to keep it from)` });
        }
      }
      return given;
    }
    const out: Record<string, unknown> = { ...existing, ...given };
    for (const k of NULLABLE_FIELDS) if (raw[k] === null) delete out[k];
    if (isRecord(raw.thresholds)) {
      const t: Record<string, unknown> = { ...existing.thresholds, ...(given.thresholds as Record<string, unknown>) };
      for (const k of NULLABLE_THRESHOLDS) if (raw.thresholds[k] === null) delete t[k];
      out.thresholds = t;
    }
    return out;
  });
  const checked = validateBudgetChange({ ...input, budgets: merged }, defaultTimezone);
  if (missing.length === 0) return checked;
  const named = new Set(missing.map((m) => m.path));
  const others = checked.ok ? [] : checked.issues.filter((i) => ![...named].some((p) => i.path === p || i.path.startsWith(`${p}.`)));
  return { ok: false, issues: [...missing, ...others] };
}
