/**
 * Budgets: what a scope may spend per period, and the validation of budget changes. Pure (used by
 * the budget workflow's synchronous update validator and by the API).
 */
import { z } from 'zod';
import { type FieldIssue } from './errors.js';
import { SUPPORTED_CURRENCIES, isDecimalString } from './money.js';
import { isPeriodSpec, isTimeZone } from './periods.js';
import { zodIssues } from './usage.js';

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
}

const budgetSchema = z
  .object({
    period: z.string().refine(isPeriodSpec, { message: 'expected "day", "month" or a fixed length like "30s", "10m", "1h", "7d"' }),
    amount: z
      .string({ error: 'expected a decimal string like "25.00"' })
      .refine((s) => isDecimalString(s) && !s.startsWith('-') && /[1-9]/.test(s), { message: 'expected a positive decimal string like "25.00"' }),
    currency: z.enum(SUPPORTED_CURRENCIES, { error: `expected one of ${SUPPORTED_CURRENCIES.join(', ')}` }).default('USD'),
    timezone: z.string().refine(isTimeZone, { message: 'expected an IANA time zone such as "UTC" or "Europe/Paris"' }).optional(),
    thresholds: z
      .object({
        warning: z.number({ error: 'expected a ratio such as 0.8' }).gt(0).lt(1, 'expected a ratio below 1 (emergency is 100%)'),
        critical: z.number({ error: 'expected a ratio such as 0.95' }).gt(0).lt(1, 'expected a ratio below 1 (emergency is 100%)'),
        info: z.number({ error: 'expected a ratio such as 0.5' }).gt(0).lt(1).optional(),
        emergency: z.number({ error: 'expected a ratio such as 1' }).gt(0).max(10).optional(),
      })
      .strict()
      .refine((t) => t.warning < t.critical, { message: 'expected warning below critical' })
      .refine((t) => t.info === undefined || t.info < t.warning, { message: 'expected info below warning' })
      .refine((t) => t.emergency === undefined || t.emergency > t.critical, { message: 'expected emergency above critical' }),
  })
  .strict();

export const budgetChangeSchema = z
  .object({ budgets: z.array(budgetSchema).max(8, 'at most 8 budgets per scope') })
  .strict()
  .superRefine((v, ctx) => {
    const seen = new Set<string>();
    v.budgets.forEach((b, i) => {
      if (seen.has(b.period)) ctx.addIssue({ code: 'custom', path: ['budgets', i, 'period'], message: `duplicate period ${b.period}` });
      seen.add(b.period);
    });
  });

/** What PUT /v1/budgets/:scope and the setBudget update take: the scope's complete list of budgets. */
export interface BudgetChange {
  budgets: Array<Omit<Budget, 'timezone' | 'currency'> & { timezone?: string; currency?: Budget['currency'] }>;
}

/** Validates a budget change; `defaultTimezone` fills budgets that give none. */
export function validateBudgetChange(input: unknown, defaultTimezone: string): { ok: true; value: Budget[] } | { ok: false; issues: FieldIssue[] } {
  const parsed = budgetChangeSchema.safeParse(input);
  if (!parsed.success) return { ok: false, issues: zodIssues(parsed.error) };
  return { ok: true, value: parsed.data.budgets.map((b) => ({ ...b, timezone: b.timezone ?? defaultTimezone })) };
}
