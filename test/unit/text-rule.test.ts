/**
 * The one text rule and the bounds of the hostile-input issue, as pure functions: every string is
 * well-formed Unicode without control characters and within its length, never silently rewritten.
 */
import { describe, expect, it } from 'vitest';
import { UNPRICED_MODELS_LISTED } from '../../src/domain/alert-rules.js';
import { budgetAmountProblem, validateBudgetChange } from '../../src/domain/budget.js';
import { describeDbError, isDeterministicDbError } from '../../src/db/ledger.js';
import { acknowledgementIssues } from '../../src/domain/incident.js';
import { timeZoneProblem } from '../../src/domain/periods.js';
import { ScopeAlerts } from '../../src/domain/scope-alerts.js';
import { jsonProblem, textProblem } from '../../src/domain/text.js';
import { parseUsageEvent } from '../../src/domain/usage.js';

const NOW = Date.parse('2026-11-30T12:00:00Z');
const event = (over: Record<string, unknown>) => ({ requestId: 'r1', provider: 'openai', model: 'gpt-4o-mini', userId: 'u1', usage: { inputTokens: 10 }, ...over });
const issuesOf = (input: unknown) => {
  const r = parseUsageEvent(input, { now: NOW });
  return r.ok ? [] : r.issues;
};

describe('textProblem', () => {
  it('refuses NUL, other C0 and C1 controls, DEL and lone surrogates, naming the character', () => {
    expect(textProblem('gpt-4o-mini\u0000', { max: 200 })).toBe('must not contain control characters (found U+0000 at index 11)');
    expect(textProblem('a\u0007', { max: 200 })).toMatch(/U\+0007/);
    expect(textProblem('a\u007f', { max: 200 })).toMatch(/U\+007F/);
    expect(textProblem('a\u0085', { max: 200 })).toMatch(/U\+0085/);
    expect(textProblem('\ud800', { max: 200 })).toMatch(/lone UTF-16 surrogate/);
    expect(textProblem('x\udc00y', { max: 200 })).toMatch(/lone UTF-16 surrogate/);
  });

  it('accepts well-formed text of any script, emoji (surrogate pairs) included, within its length', () => {
    for (const ok of ['gpt-4o', 'é', '模型', '\u{1F600}', 'a b', '\u202e']) expect(textProblem(ok, { max: 20 })).toBeNull();
    expect(textProblem('x'.repeat(21), { max: 20 })).toBe('must be at most 20 characters, got 21');
    expect(textProblem('', { max: 20 })).toBe('must not be empty');
    expect(textProblem('', { max: 20, min: 0 })).toBeNull();
  });

  it('lets free text keep tabs and line breaks, nothing else', () => {
    expect(textProblem('line 1\nline 2\tx\r\n', { max: 100, multiline: true })).toBeNull();
    expect(textProblem('a\u0000', { max: 100, multiline: true })).toMatch(/U\+0000/);
    expect(textProblem('a\nb', { max: 100 })).toMatch(/U\+000A/);
  });
});

describe('jsonProblem (event metadata)', () => {
  it('refuses a nesting 8,000 levels deep without overflowing the stack', () => {
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 8000; i++) deep = (deep.a = {}) as Record<string, unknown>;
    expect(jsonProblem(root)).toMatchObject({ message: 'nests deeper than 8 levels' });
  });

  it('names the path of a bad key or value', () => {
    expect(jsonProblem({ ok: 1, nested: { list: ['x', 'bad\u0000'] } })).toEqual({ path: 'nested.list.1', message: 'must not contain control characters (found U+0000 at index 3)' });
    expect(jsonProblem({ ['k\u0000']: 1 })).toMatchObject({ message: expect.stringMatching(/^key must not contain control characters/) });
    expect(jsonProblem({ a: '\ud83d' })).toMatchObject({ path: 'a', message: expect.stringMatching(/lone UTF-16 surrogate/) });
    expect(jsonProblem({ n: Number.NaN })).toMatchObject({ path: 'n', message: 'must be a finite number, got NaN' });
    expect(jsonProblem({ b: 10n })).toMatchObject({ path: 'b', message: 'must be a JSON value, got a bigint' });
    expect(jsonProblem({ d: new Date(0) })).toMatchObject({ path: 'd', message: expect.stringMatching(/a Date/) });
    expect(jsonProblem({ a: 1, b: [true, null, 'x', { c: 2 }] })).toBeNull();
  });
});

describe('usage events under the text rule', () => {
  const bad = ['\u0000', 'a\u0001b', '\ud800', 'x\udfff'];
  const fields: [string, (v: string) => Record<string, unknown>, string][] = [
    ['provider', (v) => ({ provider: `openai${v}` }), 'provider'],
    ['model', (v) => ({ model: `gpt-4o-mini${v}` }), 'model'],
    ['taskType', (v) => ({ taskType: `chat${v}` }), 'taskType'],
    ['a tag key', (v) => ({ tags: { [`env${v}`]: 'prod' } }), 'tags'],
    ['a tag value', (v) => ({ tags: { env: `prod${v}` } }), 'tags.env'],
    ['a metadata key', (v) => ({ metadata: { [`k${v}`]: 1 } }), 'metadata'],
    ['a metadata value', (v) => ({ metadata: { trace: `t${v}` } }), 'metadata.trace'],
  ];
  for (const [what, make, path] of fields) {
    it(`refuses ${what} holding NUL, a control character or a lone surrogate, naming the field (never rewriting it)`, () => {
      for (const v of bad) {
        const issues = issuesOf(event(make(v)));
        expect(issues.length, `${what} ${JSON.stringify(v)}`).toBeGreaterThan(0);
        expect(issues[0]!.path.startsWith(path), `${issues[0]!.path} names ${path}`).toBe(true);
      }
    });
  }

  it('refuses a token count of null (an absent count is 0)', () => {
    expect(issuesOf(event({ usage: { inputTokens: null } }))).toEqual([{ path: 'usage.inputTokens', message: 'must be a whole number of tokens, got null (leave the field out for 0)' }]);
    const r = parseUsageEvent(event({ usage: { outputTokens: 3 } }), { now: NOW });
    expect(r.ok && r.value.usage.inputTokens).toBe(0);
  });

  it('takes an `estimated` flag, true or false only', () => {
    const r = parseUsageEvent(event({ estimated: true }), { now: NOW });
    expect(r.ok && r.value.estimated).toBe(true);
    expect(issuesOf(event({ estimated: 'yes' }))[0]).toMatchObject({ path: 'estimated' });
  });
});

describe('bounds and canonical forms', () => {
  it('budget amounts: at most 12 digits before the point and 6 after', () => {
    expect(budgetAmountProblem('999999999999.999999')).toBeNull();
    expect(budgetAmountProblem('1'.repeat(10_000))).toBe('expected at most 12 digits before the decimal point, got 10000');
    expect(budgetAmountProblem('1.1234567')).toBe('expected at most 6 decimal places, got 7');
    const r = validateBudgetChange({ budgets: [{ period: 'day', amount: '9'.repeat(10_000), thresholds: { warning: 0.8, critical: 0.9 } }] }, 'UTC');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issues[0]!.path).toBe('budgets.0.amount');
  });

  it('time zones: only the database spelling; a case variant names the one to use', () => {
    expect(timeZoneProblem('Europe/Paris')).toBeNull();
    expect(timeZoneProblem('UTC')).toBeNull();
    expect(timeZoneProblem('Asia/Kolkata')).toBeNull();
    expect(timeZoneProblem('America/Argentina/Buenos_Aires')).toBeNull();
    expect(timeZoneProblem('europe/paris')).toBe('expected the time zone\'s canonical spelling "Europe/Paris", got "europe/paris"');
    expect(timeZoneProblem('utc')).toMatch(/"UTC"/);
    expect(timeZoneProblem('asia/kolkata')).toMatch(/canonical spelling/);
    expect(timeZoneProblem('Mars/Olympus')).toMatch(/expected an IANA time zone/);
    const r = validateBudgetChange({ budgets: [{ period: 'day', amount: '5', timezone: 'europe/paris', thresholds: { warning: 0.8, critical: 0.9 } }] }, 'UTC');
    expect(!r.ok && r.issues[0]).toMatchObject({ path: 'budgets.0.timezone', message: expect.stringMatching(/"Europe\/Paris"/) });
  });

  it('occurredAt: never before 2000, never more than a day ahead, older than the window only as a backfill', () => {
    expect(issuesOf(event({ occurredAt: '0100-06-01T00:00:00Z' }))[0]).toMatchObject({ path: 'occurredAt' });
    const old = event({ occurredAt: '2026-01-01T00:00:00Z' });
    expect(issuesOf(old)[0]!.message).toMatch(/backfill/);
    expect(parseUsageEvent(old, { now: NOW, backfill: true }).ok).toBe(true);
  });

  it('acknowledgements: `by` and `note` under the text rule (a NUL would poison the alert history)', () => {
    expect(acknowledgementIssues({ by: 'dana\u0000' })).toEqual([{ path: 'by', message: 'must not contain control characters (found U+0000 at index 4)' }]);
    expect(acknowledgementIssues({ by: 'dana', note: 'line 1\nline 2' })).toEqual([]);
    expect(acknowledgementIssues({ by: 'dana', note: 'x\ud800' })[0]).toMatchObject({ path: 'note' });
  });
});

describe('unpriced incidents are bounded', () => {
  it('one condition per provider a day, listing at most 20 models; more models later raise nothing', () => {
    const alerts = new ScopeAlerts('user:flood');
    const seen = Array.from({ length: 1000 }, (_, i) => ({ provider: 'fabricated', model: `m${i}`, calls: 1 }));
    const out = alerts.unpricedByProvider(seen, NOW);
    expect(out).toHaveLength(1);
    expect(out[0]!.condition.key).toBe('system|unpriced|2026-11-30|fabricated');
    expect(out[0]!.models).toHaveLength(UNPRICED_MODELS_LISTED);
    expect(out[0]!.condition.summary).toMatch(/m19 and 980 more/);
    alerts.unpricedProviderRaised('fabricated', out[0]!.models, NOW);
    expect(alerts.unpricedByProvider([{ provider: 'fabricated', model: 'm5000', calls: 1 }], NOW)).toEqual([]);
    expect(alerts.unpricedByProvider([{ provider: 'other', model: 'x', calls: 1 }], NOW)).toHaveLength(1);
    expect(alerts.unpricedByProvider(seen.slice(0, 3), NOW)).toEqual([]);
  });

  it('the dead-letter incident is raised once a day per workflow', () => {
    const alerts = new ScopeAlerts('user:p');
    expect(alerts.deadLetters(0, NOW)).toBeNull();
    expect(alerts.deadLetters(2, NOW)?.key).toBe('system|deadletter|2026-11-30|deadletter');
    alerts.deadLettersRaised(NOW);
    expect(alerts.deadLetters(1, NOW)).toBeNull();
    expect(alerts.deadLetters(1, NOW + 86_400_000)).not.toBeNull();
  });
});

describe('which database errors are tied to the input', () => {
  it('data exceptions, integrity violations and serialisation errors are; connection loss and timeouts are not', () => {
    const pg = (code: string) => Object.assign(new Error(`pg ${code}`), { code });
    for (const code of ['22021', '22P05', '23514', '22003', '54000', '42804']) expect(isDeterministicDbError(pg(code)), code).toBe(true);
    for (const code of ['08006', '57P01', '53300', '40001', '40P01', '55P03', 'ECONNREFUSED']) expect(isDeterministicDbError(pg(code)), code).toBe(false);
    expect(isDeterministicDbError(new Error('Connection terminated unexpectedly'))).toBe(false);
    expect(isDeterministicDbError(new TypeError('Do not know how to serialize a BigInt'))).toBe(true);
    expect(describeDbError(Object.assign(new Error('new row violates check constraint'), { code: '23514', constraint: 'c1' }))).toBe('new row violates check constraint; SQLSTATE 23514; constraint c1');
  });
});
