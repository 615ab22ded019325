import { describe, expect, it } from 'vitest';
import type { AlertCondition } from '../../src/domain/alert-rules.js';
import { Incident, type PlannedNotification, type AlertSettings } from '../../src/domain/incident.js';
import type { AlertLevel } from '../../src/domain/notification.js';

const T0 = Date.parse('2026-11-28T10:00:00Z');
const MIN = 60_000;

const settings: AlertSettings = {
  routing: { info: ['email'], warning: ['email', 'slack'], critical: ['email', 'slack', 'sms'], emergency: ['email', 'slack', 'sms'] },
  repeatIntervalMs: 60 * MIN,
  escalation: { delayMs: 15 * MIN, channels: ['sms', 'push'], maxEscalations: 2 },
};

function cond(level: AlertLevel, periodEndMs: number | null = T0 + 24 * 60 * MIN): AlertCondition {
  return {
    key: 'user:alice|day|day:2026-11-28@UTC|threshold',
    rule: 'threshold',
    scope: 'user:alice',
    level,
    title: `Daily budget of user:alice (${level})`,
    summary: 'summary',
    fields: [{ label: 'Scope', value: 'user:alice' }],
    periodEndMs,
    budgetPeriod: 'day',
    periodKey: 'day:2026-11-28@UTC',
  };
}

/** Drains and "sends" everything queued at `now`, returning what was sent. */
function drain(i: Incident, now: number): PlannedNotification[] {
  const out: PlannedNotification[] = [];
  for (let n = i.takeQueued(); n; n = i.takeQueued()) {
    out.push(n);
    i.sent(n, n.channels, now);
  }
  return out;
}

const brief = (ns: PlannedNotification[]) => ns.map((n) => `${n.notificationId}:${n.channels.join('+')}`);

describe('Incident', () => {
  it('notifies the level\'s channels on opening, and once per higher level', () => {
    const i = new Incident('abc', cond('warning'), settings, T0);
    expect(brief(drain(i, T0))).toEqual(['opened-warning:email+slack']);
    i.update(cond('warning'), T0 + MIN);
    expect(drain(i, T0 + MIN)).toEqual([]);
    i.update(cond('critical'), T0 + 2 * MIN);
    i.update(cond('critical'), T0 + 3 * MIN);
    expect(brief(drain(i, T0 + 3 * MIN))).toEqual(['raised-critical:email+slack+sms']);
    i.update(cond('emergency'), T0 + 4 * MIN);
    expect(brief(drain(i, T0 + 4 * MIN))).toEqual(['raised-emergency:email+slack+sms']);
  });

  it('escalates an unacknowledged critical incident after the delay, widening channels, up to the maximum, then reminds', () => {
    const i = new Incident('abc', cond('critical'), settings, T0);
    drain(i, T0);
    expect(i.nextDueMs()).toBe(T0 + 15 * MIN);
    i.tick(T0 + 14 * MIN);
    expect(i.hasQueued()).toBe(false);
    i.tick(T0 + 15 * MIN);
    expect(brief(drain(i, T0 + 15 * MIN))).toEqual(['escalated-1:email+slack+sms+push']);
    i.tick(T0 + 30 * MIN);
    expect(brief(drain(i, T0 + 30 * MIN))).toEqual(['escalated-2:email+slack+sms+push']);
    // No third escalation; the next is a reminder once the repeat interval has passed since the last critical notice.
    expect(i.nextDueMs()).toBe(T0 + 90 * MIN);
    i.tick(T0 + 60 * MIN);
    expect(i.hasQueued()).toBe(false);
    i.tick(T0 + 90 * MIN);
    expect(brief(drain(i, T0 + 90 * MIN))).toEqual(['reminder-critical-3:email+slack+sms+push']);
  });

  it('stops escalating once acknowledged, keeping who, when and the note', () => {
    const i = new Incident('abc', cond('critical'), settings, T0);
    drain(i, T0);
    i.acknowledge({ by: ' dana ', note: ' on it ' }, T0 + 5 * MIN);
    expect(i.state.status).toBe('acknowledged');
    expect(i.state.acknowledged).toEqual({ by: 'dana', at: '2026-11-28T10:05:00.000Z', note: 'on it' });
    i.tick(T0 + 15 * MIN);
    i.tick(T0 + 120 * MIN);
    expect(i.hasQueued()).toBe(false);
    // A higher level is still announced.
    i.update(cond('emergency'), T0 + 121 * MIN);
    expect(brief(drain(i, T0 + 121 * MIN))).toEqual(['raised-emergency:email+slack+sms']);
  });

  it('does not escalate a warning', () => {
    const i = new Incident('abc', cond('warning'), settings, T0);
    drain(i, T0);
    i.tick(T0 + 15 * MIN);
    expect(i.hasQueued()).toBe(false);
  });

  it('resolves when the condition clears, sending a resolved notice to every channel notified', () => {
    const i = new Incident('abc', cond('warning'), settings, T0);
    drain(i, T0);
    i.update(cond('critical'), T0 + MIN);
    drain(i, T0 + MIN);
    i.update(null, T0 + 2 * MIN, 'budget raised');
    expect(i.state.status).toBe('resolved');
    expect(i.state.resolved).toEqual({ at: '2026-11-28T10:02:00.000Z', reason: 'budget raised' });
    expect(brief(drain(i, T0 + 2 * MIN))).toEqual(['resolved:email+slack+sms']);
    expect(i.nextDueMs()).toBeNull();
  });

  it('resolves itself when its period ends', () => {
    const end = T0 + 30 * MIN;
    const i = new Incident('abc', cond('warning', end), settings, T0);
    drain(i, T0);
    expect(i.nextDueMs()).toBe(end);
    i.tick(end);
    expect(i.state.resolved?.reason).toBe('the period ended');
  });

  it('sends no resolved notice when nothing was ever delivered', () => {
    const i = new Incident('abc', cond('warning'), settings, T0);
    const n = i.takeQueued()!;
    i.sent(n, [], T0); // suppressed by the repeat interval
    i.update(null, T0 + MIN);
    expect(i.hasQueued()).toBe(false);
  });

  it('builds messages with the incident id, how to acknowledge, and a delivery key unique per opening', () => {
    const i = new Incident('abc123', cond('critical'), settings, T0);
    const n = i.takeQueued()!;
    const m = i.message(n, T0);
    expect(m.sourceId).toBe(`alert/abc123/${T0}`);
    expect(m.notificationId).toBe('opened-critical');
    expect(m.ackHint).toContain('costguard alerts ack abc123');
    expect(m.fields).toContainEqual({ label: 'Incident', value: 'abc123' });
  });

  it('carries its whole state across continue-as-new', () => {
    const i = new Incident('abc', cond('critical'), settings, T0);
    drain(i, T0);
    const j = new Incident('abc', cond('critical'), settings, T0 + MIN, structuredClone(i.state));
    expect(j.hasQueued()).toBe(false);
    expect(j.nextDueMs()).toBe(T0 + 15 * MIN);
  });
});
