/**
 * What a budget workflow knows of its scope's alerts, as a plain class (unit-tested without
 * Temporal): the incidents it raised that are still open, which rules are due, and what changed.
 *
 * Thresholds and forecasts are re-evaluated after every persisted batch (cheap: from the status).
 * Spikes need the ledger, so they are checked at most every `evaluateEveryMs`, and for a user only
 * once its spend reaches the spike floor. A forecast or a spike can only newly fire on new usage
 * (with no usage, the projected rate and the window's spend only fall), so the timer only runs
 * while such an incident is open, to clear it.
 */
import {
  type AlertChange,
  type AlertCondition,
  type AlertRule,
  type AlertRuleSettings,
  type SpendWindows,
  type TrackedIncident,
  budgetConditions,
  diffConditions,
  UNPRICED_MODELS_LISTED,
  deadLetterCondition,
  spikeCondition,
  unpricedCondition,
  unpricedProviderCondition,
} from './alert-rules.js';
import type { BudgetStatus } from './budget-status.js';
import type { UnpricedUsage } from './flush-summary.js';
import type { IncidentChange } from './incident.js';
import { parseAmount } from './money.js';

export interface ScopeAlertSettings extends AlertRuleSettings {
  enabled: boolean;
  evaluateEveryMs: number;
}

export interface OpenIncident {
  incidentId: string;
  key: string;
  rule: AlertRule;
  level: TrackedIncident['level'];
  status: 'open' | 'acknowledged';
}

export class ScopeAlerts {
  readonly scope: string;
  private open = new Map<string, TrackedIncident>();
  private unpricedRaised = new Set<string>();
  lastSpikeCheckMs = 0;
  private lastEvalMs = 0;

  constructor(scope: string, carried?: { incidents?: Record<string, TrackedIncident>; unpricedRaised?: string[] }) {
    this.scope = scope;
    for (const [key, t] of Object.entries(carried?.incidents ?? {})) this.open.set(key, { ...t });
    for (const k of carried?.unpricedRaised ?? []) this.unpricedRaised.add(k);
  }

  /** Forgets incidents whose period is over: their alert workflows resolve themselves then. */
  private prune(nowMs: number): void {
    for (const [key, t] of this.open) if (t.periodEndMs !== null && t.periodEndMs <= nowMs) this.open.delete(key);
    const today = new Date(nowMs).toISOString().slice(0, 10);
    for (const k of this.unpricedRaised) if (!k.startsWith(`${today}|`)) this.unpricedRaised.delete(k);
  }

  /** True when the spike rule should be checked now (then the caller reads the spend windows). */
  spikeDue(status: BudgetStatus, nowMs: number, s: ScopeAlertSettings): boolean {
    if (!s.enabled || !s.spike.enabled || nowMs - this.lastSpikeCheckMs < s.evaluateEveryMs) return false;
    if (status.scopeKind !== 'user') return true;
    if (!s.spike.users) return false;
    const floor = parseAmount(s.spike.floorUsd);
    return this.hasOpen('spike') || status.budgets.some((b) => parseAmount(b.spentUsd).greaterThanOrEqualTo(floor));
  }

  /**
   * Evaluates the rules against the status (and the spend windows, when the spike rule was
   * checked) and returns what to raise or clear; unchanged conditions give nothing.
   */
  evaluate(status: BudgetStatus, nowMs: number, s: ScopeAlertSettings, windows: SpendWindows | null): AlertChange[] {
    this.prune(nowMs);
    this.lastEvalMs = nowMs;
    if (!s.enabled) return [];
    const rules: AlertRule[] = ['threshold', 'forecast'];
    const now: AlertCondition[] = budgetConditions(status, nowMs, s);
    if (windows) {
      this.lastSpikeCheckMs = nowMs;
      rules.push('spike');
      const spike = spikeCondition(this.scope, windows, nowMs, s.spike);
      if (spike) now.push(spike);
    }
    return diffConditions(this.open, now, rules);
  }

  raised(c: AlertCondition, incidentId: string): void {
    const before = this.open.get(c.key);
    this.open.set(c.key, { level: c.level, rule: c.rule, incidentId, periodEndMs: c.periodEndMs, acknowledged: before?.acknowledged ?? false });
  }

  cleared(key: string): void {
    this.open.delete(key);
  }

  /** The alert workflow reports an acknowledgement or a resolution. */
  incidentChanged(change: IncidentChange): void {
    const t = this.open.get(change.key);
    if (!t || t.incidentId !== change.incidentId) return;
    if (change.status === 'resolved') this.open.delete(change.key);
    else if (change.status === 'acknowledged') t.acknowledged = true;
  }

  /** Unpriced (provider, model) pairs seen in a flush and not yet raised today. */
  unpriced(seen: readonly UnpricedUsage[], nowMs: number): AlertCondition[] {
    this.prune(nowMs);
    const today = new Date(nowMs).toISOString().slice(0, 10);
    return seen
      .filter((u) => !this.unpricedRaised.has(`${today}|${u.provider}/${u.model}`))
      .map((u) => unpricedCondition(u.provider, u.model, u.reason, u.calls, nowMs));
  }

  unpricedRaisedFor(c: AlertCondition): void {
    const [, , day, id] = c.key.split('|');
    this.unpricedRaised.add(`${day}|${id}`);
  }

  /**
   * Unpriced usage, one condition per provider per day (since `unpriced-by-provider-v1`): raised
   * again only when a model not yet listed appears, and never for more than UNPRICED_MODELS_LISTED
   * models of a provider a day (further ones are counted in the incident's text, not raised), so
   * the workflow's memory and the signals it sends stay bounded whatever callers send.
   * Remembered as `<day>|<provider>/<model>` and `<day>|<provider>#more` entries.
   */
  unpricedByProvider(seen: readonly UnpricedUsage[], nowMs: number, unlisted: Readonly<Record<string, number>> = {}): { condition: AlertCondition; provider: string; models: string[] }[] {
    this.prune(nowMs);
    const today = new Date(nowMs).toISOString().slice(0, 10);
    const byProvider = new Map<string, UnpricedUsage[]>();
    for (const u of seen) byProvider.set(u.provider, [...(byProvider.get(u.provider) ?? []), u]);
    const out: { condition: AlertCondition; provider: string; models: string[] }[] = [];
    for (const [provider, list] of byProvider) {
      const raised = [...this.unpricedRaised].filter((k) => k.startsWith(`${today}|${provider}/`)).map((k) => k.slice(`${today}|${provider}/`.length));
      const fresh = list.filter((u) => !raised.includes(u.model));
      if (fresh.length === 0) continue;
      const room = Math.max(0, UNPRICED_MODELS_LISTED - raised.length);
      if (room === 0) continue;
      const taken = fresh.slice(0, room);
      const models = [...raised.map((model) => ({ model, calls: 0 })), ...taken];
      out.push({ condition: unpricedProviderCondition(provider, models, fresh.length - taken.length + (unlisted[provider] ?? 0), nowMs), provider, models: taken.map((u) => u.model) });
    }
    return out;
  }

  unpricedProviderRaised(provider: string, models: readonly string[], nowMs: number): void {
    const today = new Date(nowMs).toISOString().slice(0, 10);
    for (const m of models) this.unpricedRaised.add(`${today}|${provider}/${m}`);
  }

  /** The day's dead-letter condition, once a day per workflow. */
  deadLetters(count: number, nowMs: number): AlertCondition | null {
    this.prune(nowMs);
    const today = new Date(nowMs).toISOString().slice(0, 10);
    return count > 0 && !this.unpricedRaised.has(`${today}|#deadletter`) ? deadLetterCondition(count, nowMs) : null;
  }

  deadLettersRaised(nowMs: number): void {
    this.unpricedRaised.add(`${new Date(nowMs).toISOString().slice(0, 10)}|#deadletter`);
  }

  hasOpen(rule: AlertRule): boolean {
    for (const t of this.open.values()) if (t.rule === rule) return true;
    return false;
  }

  /** When the time-based rules must be re-checked even without usage (to clear), or Infinity. */
  nextCheckMs(s: ScopeAlertSettings): number {
    if (!s.enabled || (!this.hasOpen('forecast') && !this.hasOpen('spike'))) return Infinity;
    return this.lastEvalMs + s.evaluateEveryMs;
  }

  list(): OpenIncident[] {
    return [...this.open.entries()]
      .map(([key, t]) => ({ incidentId: t.incidentId, key, rule: t.rule, level: t.level, status: t.acknowledged ? ('acknowledged' as const) : ('open' as const) }))
      .sort((a, b) => a.key.localeCompare(b.key));
  }

  carry(): { incidents: Record<string, TrackedIncident>; unpricedRaised: string[] } {
    return { incidents: Object.fromEntries([...this.open].map(([k, t]) => [k, { ...t }])), unpricedRaised: [...this.unpricedRaised] };
  }
}
