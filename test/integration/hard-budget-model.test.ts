/**
 * An adversary against hard budgets: fast-check generates command sequences (checks by tokens and
 * by `costUsd`, usage that settles, exceeds, repeats, resends without `requestId`, names foreign,
 * unknown or released holds, names teams and projects the check did not, usage that never asked,
 * releases, expiries at the boundary, budget raises and lowers, a worker restart, a Redis loss),
 * sent over HTTP and through the client library to the real stack. After every step, and once
 * everything has landed, the ledger's spend of every hard budget stays within
 *
 *     spend <= max(B, committed when B was last lowered)
 *              + sum over calls that settled their own open hold of max(0, actual - reserved)
 *              + sum over other usage of max(0, cost - room left when it was recorded)
 *
 * where "other usage" never asked (no hold, or a hold that was not its own open one) and "room" is
 * the budget less spend and open reservations (0 while the usage may still be in flight, as in the
 * concurrent case). The sequential case waits for each event to land before the next step.
 * (docs/architecture.md, "The invariant"). A concurrent version runs three processes at once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dec } from '../../src/domain/money.js';
import { microUp } from '../../src/domain/leases.js';
import { projectRoot } from '../../src/lib/paths.js';
import { eventually, type Stack, type StackApi, startApi, startStack } from './helpers/stack.js';

const KEY = 'cg_adversary_test_key_0123456789';
const THRESHOLDS = { warning: 0.8, critical: 0.95 };
/** Expiry decisions closer than this to a hold's expiry are not the model's to make. */
const BOUNDARY_MS = 600;
let stack: Stack;
let api: StackApi;
let base = '';

beforeAll(async () => {
  stack = await startStack({
    configYaml: `budgets:
  - { scope: system, period: day, amount: "3", thresholds: { warning: 0.8, critical: 0.95 } }
pricing:
  overrides:
    - { provider: test, model: race-model, inputPer1k: "0.5", outputPer1k: "1" }
ingest: { shards: 2, lingerMs: 20 }
preflight: { holdTtlMs: 20000, maxHoldTtlMs: 120000, refillTimeoutMs: 10000, unknownPriceUsd: "0.10", acceptedHoldTtlMs: 120000 }
`,
  });
  api = await startApi(stack, KEY, { lingerMs: 10 });
  base = await api.app.listen({ port: 0, host: '127.0.0.1' });
}, 120_000);

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

async function http(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { method, headers: { 'x-api-key': KEY, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

// ---- the model ---------------------------------------------------------------------------------

/** A hard budget of one scope: its amount, and what was committed when it was last lowered (µ$). */
interface HardBudget {
  amountMicro: number;
  floorMicro: number;
}

/** An admitted check, as the caller knows it. */
interface Held {
  holdId: string;
  scopes: string[];
  reservedMicro: number;
  expiresAtMs: number;
  released: boolean;
  /** An event has claimed it (the first usage that named it while it was open). */
  claimed: boolean;
}

interface Sent {
  scopes: string[];
  costMicro: number;
  /** Per hard scope: what this event may add beyond the budget. */
  allowance: Map<string, number>;
}

interface World {
  run: string;
  budgets: Map<string, HardBudget>;
  held: Held[];
  sent: Sent[];
  /** Events whose fate (settled or late) sits on an expiry boundary: the formula treats them as never asked. */
  boundary: number;
  /** What happened, for the failure message. */
  trace: string[];
}

function scopesOf(user: string, team?: string, project?: string): string[] {
  return [`user:${user}`, ...(team ? [`team:${team}`] : []), ...(project ? [`project:${project}`] : [])];
}

/**
 * What an event may add beyond each hard budget. Where it settles its own open hold: what it spent
 * beyond the reservation. Anything else (no hold, or a hold that is not its own open one: unknown,
 * another user's, already settled, released, expired, or not naming this scope) was never reserved
 * here, so it is charged after its ledger commit and may overshoot by what it costs beyond the room
 * the budget had left (spend and open reservations) when it was recorded; with `landed` false (it
 * may still be in flight while other checks are admitted, the concurrent case) by all of its cost.
 */
function allowanceOf(w: World, scopes: string[], costMicro: number, hold: Held | undefined, acceptedAtMs: number, landed: boolean): Map<string, number> {
  const out = new Map<string, number>();
  let covers = false;
  let ambiguous = false;
  if (hold && !hold.released && !hold.claimed) {
    if (acceptedAtMs < hold.expiresAtMs - BOUNDARY_MS) covers = true;
    else if (acceptedAtMs <= hold.expiresAtMs + BOUNDARY_MS) ambiguous = true;
  }
  if (ambiguous) w.boundary++;
  for (const s of scopes) {
    const b = w.budgets.get(s);
    if (!b) continue;
    if (covers && hold!.scopes.includes(s)) {
      out.set(s, Math.max(0, costMicro - hold!.reservedMicro));
      continue;
    }
    if (!landed || ambiguous) {
      out.set(s, costMicro);
      continue;
    }
    const spent = w.sent.reduce((a, e) => a + (e.scopes.includes(s) ? e.costMicro : 0), 0);
    const open = w.held.filter((h) => h !== hold && h.scopes.includes(s) && !h.released && !h.claimed && h.expiresAtMs > acceptedAtMs - BOUNDARY_MS).reduce((a, h) => a + h.reservedMicro, 0);
    const room = Math.max(0, Math.max(b.amountMicro, b.floorMicro) - spent - open);
    out.set(s, Math.max(0, costMicro - room));
  }
  if (hold && (covers || ambiguous)) hold.claimed = true;
  return out;
}

async function spendOf(scope: string): Promise<number> {
  const [kind, id] = [scope.slice(0, scope.indexOf(':')), scope.slice(scope.indexOf(':') + 1)];
  const col = kind === 'user' ? 'user_id' : kind;
  const r = await stack.pool.query<{ cost: string }>(`SELECT coalesce(sum(cost_usd), 0)::text AS cost FROM usage_ledger WHERE ${col} = $1`, [id]);
  return microUp(r.rows[0]!.cost);
}

async function checkInvariant(w: World, label: string): Promise<void> {
  for (const [scope, b] of w.budgets) {
    const spent = await spendOf(scope);
    const allowance = w.sent.reduce((a, e) => a + (e.allowance.get(scope) ?? 0), 0);
    const bound = Math.max(b.amountMicro, b.floorMicro) + allowance;
    expect(spent, `${label}: ${scope} spent ${spent} µ$ > bound ${bound} (budget ${b.amountMicro}, floor ${b.floorMicro}, allowed excess ${allowance})\n${w.trace.join('\n')}`).toBeLessThanOrEqual(bound);
  }
}

/** Waits until every event sent in this world is in the ledger, then for the flush to record it in the leases. */
async function landed(w: World): Promise<void> {
  await eventually(() => ledgerCalls(w.run), (n) => n >= w.sent.length, 60_000, `${w.sent.length} events of ${w.run} in the ledger`);
  await new Promise((r) => setTimeout(r, 150));
}

async function ledgerCalls(run: string): Promise<number> {
  const r = await stack.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM usage_ledger WHERE user_id LIKE $1`, [`${run}-%`]);
  return Number(r.rows[0]!.n);
}

// ---- commands ----------------------------------------------------------------------------------

type Via = 'http' | 'lib';
type Cmd =
  | { kind: 'check'; user: number; team: boolean; project: boolean; by: 'tokens' | 'cost'; usd: number; short: boolean; via: Via }
  | { kind: 'use'; pick: number; fraction: number; variant: 'own' | 'extraTeam' | 'foreign' | 'noTeam'; via: Via; requestId: boolean }
  | { kind: 'resend'; pick: number }
  | { kind: 'unknownHold'; user: number; usd: number }
  | { kind: 'noAsk'; user: number; team: boolean; usd: number }
  | { kind: 'release'; pick: number; via: Via }
  | { kind: 'budget'; scope: number; usd: number }
  | { kind: 'wait'; ms: number }
  | { kind: 'restartWorker' }
  | { kind: 'loseRedis' };

const USERS = 3;
const money = (min: number, max: number) => fc.integer({ min: min * 100, max: max * 100 }).map((c) => c / 100);
const via = fc.constantFrom<Via>('http', 'lib');
const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('check' as const), user: fc.nat(USERS - 1), team: fc.boolean(), project: fc.boolean(), by: fc.constantFrom('tokens' as const, 'cost' as const), usd: money(0.05, 0.9), short: fc.boolean(), via }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('use' as const), pick: fc.nat(), fraction: fc.constantFrom(0, 0.3, 0.8, 1, 1, 1.2), variant: fc.constantFrom('own' as const, 'own' as const, 'extraTeam' as const, 'foreign' as const, 'noTeam' as const), via, requestId: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('resend' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unknownHold' as const), user: fc.nat(USERS - 1), usd: money(0.05, 0.6) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('noAsk' as const), user: fc.nat(USERS - 1), team: fc.boolean(), usd: money(0.05, 0.5) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(), via }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('budget' as const), scope: fc.nat(USERS + 1), usd: money(0.2, 2.5) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.constantFrom(100, 2600) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restartWorker' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'loseRedis' as const }) },
);

const TEAM = (w: World) => `${w.run}-team`;
const PROJECT = (w: World) => `${w.run}-proj`;
const USER = (w: World, i: number) => `${w.run}-u${i}`;
const allScopes = (w: World) => [...Array.from({ length: USERS }, (_, i) => `user:${USER(w, i)}`), `team:${TEAM(w)}`, `project:${PROJECT(w)}`];

async function putBudget(scope: string, usd: string): Promise<void> {
  const r = await http('PUT', `/v1/budgets/${encodeURIComponent(scope)}`, { budgets: [{ period: 'day', amount: usd, thresholds: THRESHOLDS, enforcement: 'hard' }] });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
}

/** Tokens for `usd` of test/race-model: output at $1 per 1K, plus a small prompt at $0.5 per 1K. */
function tokensFor(usd: number): { inputTokens: number; maxOutputTokens: number } {
  return { inputTokens: 100, maxOutputTokens: Math.max(1, Math.round((usd - 0.05) * 1000)) };
}

async function authorize(w: World, c: Extract<Cmd, { kind: 'check' }>): Promise<void> {
  const user = USER(w, c.user);
  const req = {
    userId: user,
    ...(c.team ? { teamId: TEAM(w) } : {}),
    ...(c.project ? { projectId: PROJECT(w) } : {}),
    provider: 'test',
    model: 'race-model',
    ...(c.by === 'tokens' ? tokensFor(c.usd) : { costUsd: c.usd.toFixed(2) }),
    ...(c.short ? { ttlSeconds: 2 } : {}),
  };
  const r = c.via === 'http' ? ((await http('POST', '/v1/authorize', req)).json as unknown as { holdId: string | null; reservedUsd: string; expiresAt: string | null }) : await api.tracker.authorize(req);
  w.trace.push(`check ${JSON.stringify(req)} -> ${r.holdId ?? 'denied'} reserved ${r.reservedUsd}`);
  if (!r.holdId) return;
  w.held.push({ holdId: r.holdId, scopes: scopesOf(user, c.team ? TEAM(w) : undefined, c.project ? PROJECT(w) : undefined), reservedMicro: microUp(r.reservedUsd), expiresAtMs: Date.parse(r.expiresAt!), released: false, claimed: false });
}

/** Sends one usage event; the model's allowance is decided at acceptance. */
async function sendUsage(w: World, e: { user: string; team?: string; project?: string; costMicro: number; holdId?: string; requestId?: string; via: Via }, hold: Held | undefined): Promise<void> {
  // $1 per 1K output tokens: one output token is 1,000 µ$.
  const outputTokens = Math.ceil(e.costMicro / 1000);
  const event = { provider: 'test', model: 'race-model', userId: e.user, usage: { outputTokens }, ...(e.team ? { team: e.team } : {}), ...(e.project ? { project: e.project } : {}), ...(e.holdId ? { holdId: e.holdId } : {}), ...(e.requestId ? { requestId: e.requestId } : {}) };
  const scopes = scopesOf(e.user, e.team, e.project);
  const costMicro = outputTokens * 1000;
  const acceptedBefore = Date.now();
  if (e.via === 'http') {
    const r = await http('POST', '/v1/usage', event);
    expect(r.status, JSON.stringify(r.json)).toBe(202);
  } else {
    await api.tracker.record(event);
  }
  // Accepted no earlier than `acceptedBefore` and no later than now: the model takes the later end
  // for "was the hold still open" and the earlier for "had it expired".
  const acceptedAfter = Date.now();
  const at = hold && acceptedBefore < hold.expiresAtMs - BOUNDARY_MS && acceptedAfter >= hold.expiresAtMs - BOUNDARY_MS ? hold.expiresAtMs : acceptedAfter;
  const allowance = allowanceOf(w, scopes, costMicro, hold, at, true);
  w.sent.push({ scopes, costMicro, allowance });
  w.trace.push(`usage ${scopes.join(',')} ${costMicro} hold=${e.holdId ?? '-'} allowance=${JSON.stringify([...allowance])}`);
  // The next step starts once this event is in the ledger and recorded in the leases.
  await landed(w);
}

interface Used {
  user: string;
  team?: string;
  project?: string;
  costMicro: number;
  holdId: string;
}

async function step(w: World, c: Cmd, used: Used[]): Promise<void> {
  if (c.kind === 'release' || c.kind === 'wait' || c.kind === 'restartWorker' || c.kind === 'loseRedis') w.trace.push(c.kind);
  switch (c.kind) {
    case 'check':
      return authorize(w, c);
    case 'use': {
      if (w.held.length === 0) return;
      const hold = w.held[c.pick % w.held.length]!;
      const ownUser = hold.scopes.find((s) => s.startsWith('user:'))!.slice(5);
      const user = c.variant === 'foreign' ? USER(w, (Number(ownUser.slice(ownUser.lastIndexOf('u') + 1)) + 1) % USERS) : ownUser;
      const team = c.variant === 'extraTeam' ? TEAM(w) : c.variant === 'noTeam' ? undefined : hold.scopes.includes(`team:${TEAM(w)}`) ? TEAM(w) : undefined;
      const project = hold.scopes.includes(`project:${PROJECT(w)}`) ? PROJECT(w) : undefined;
      const costMicro = Math.max(1000, Math.floor((hold.reservedMicro * c.fraction) / 1000) * 1000);
      const e = { user, ...(team ? { team } : {}), ...(project ? { project } : {}), costMicro, holdId: hold.holdId, via: c.via, ...(c.requestId ? { requestId: `${w.run}-${randomBytes(6).toString('hex')}` } : {}) };
      await sendUsage(w, e, hold);
      used.push(e);
      return;
    }
    case 'resend': {
      if (used.length === 0) return;
      const e = used[c.pick % used.length]!;
      const hold = w.held.find((h) => h.holdId === e.holdId);
      // A client retrying a timed-out POST without a requestId: a new call for the ledger, the same hold.
      const { requestId: _sameCallId, ...again } = e as Used & { requestId?: string };
      return sendUsage(w, { ...again, via: 'http' }, hold);
    }
    case 'unknownHold':
      return sendUsage(w, { user: USER(w, c.user), costMicro: Math.round(c.usd * 1e6), holdId: `h0.${Date.now().toString(36)}.unknown${randomBytes(6).toString('hex')}`, via: 'http' }, undefined);
    case 'noAsk':
      return sendUsage(w, { user: USER(w, c.user), ...(c.team ? { team: TEAM(w) } : {}), costMicro: Math.round(c.usd * 1e6), via: 'lib' }, undefined);
    case 'release': {
      const open = w.held.filter((h) => !h.released && !h.claimed);
      if (open.length === 0) return;
      const h = open[c.pick % open.length]!;
      if (c.via === 'http') await http('DELETE', `/v1/holds/${h.holdId}`);
      else await api.tracker.releaseHold(h.holdId);
      h.released = true;
      return;
    }
    case 'budget': {
      const scope = allScopes(w)[c.scope]!;
      const b = w.budgets.get(scope)!;
      const amountMicro = Math.round(c.usd * 1e6);
      if (amountMicro < b.amountMicro) {
        // What is already committed cannot be clawed back: spend, plus every hold that may still settle here.
        const pending = w.held.filter((h) => h.scopes.includes(scope) && !h.released).reduce((a, h) => a + h.reservedMicro, 0);
        b.floorMicro = Math.max(b.floorMicro, (await spendOf(scope)) + pending);
      }
      b.amountMicro = amountMicro;
      w.trace.push(`budget ${scope} -> ${amountMicro} floor ${b.floorMicro}`);
      return putBudget(scope, new Dec(amountMicro).div(1e6).toFixed());
    }
    case 'wait':
      await new Promise((r) => setTimeout(r, c.ms));
      return;
    case 'restartWorker':
      await stack.stopWorker();
      await stack.startWorker();
      return;
    case 'loseRedis': {
      // What a flush, a restart without persistence or a failover to an empty replica does to Cost Guard's keys.
      const keys = await stack.redis.keys(`${stack.config.redis.keyPrefix}*`);
      if (keys.length > 0) await stack.redis.del(...keys);
      return;
    }
  }
}

let runs = 0;

async function newWorld(): Promise<World> {
  const w: World = { run: `adv${runs++}${randomBytes(3).toString('hex')}`, budgets: new Map(), held: [], sent: [], boundary: 0, trace: [] };
  for (const [i, scope] of allScopes(w).entries()) {
    const usd = [1, 1.5, 0.8, 2, 2.5][i] ?? 1;
    w.budgets.set(scope, { amountMicro: usd * 1e6, floorMicro: 0 });
    await putBudget(scope, String(usd));
  }
  return w;
}

describe('hard budgets against an adversary', () => {
  it('no command sequence spends a hard budget beyond the formula (HTTP and the client library)', async () => {
    let boundary = 0;
    let steps = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(cmd, { minLength: 10, maxLength: 25 }), async (cmds) => {
        const w = await newWorld();
        const used: Used[] = [];
        for (const [i, c] of cmds.entries()) {
          await step(w, c, used);
          await checkInvariant(w, `after step ${i} (${c.kind})`);
          steps++;
        }
        // Every admitted call that is still open is made, spending its whole reservation: an
        // admission the budget could not afford becomes spend the formula does not allow.
        for (const h of w.held.filter((x) => !x.released && !x.claimed)) {
          const user = h.scopes.find((x) => x.startsWith('user:'))!.slice(5);
          const team = h.scopes.includes(`team:${TEAM(w)}`) ? TEAM(w) : undefined;
          const project = h.scopes.includes(`project:${PROJECT(w)}`) ? PROJECT(w) : undefined;
          await sendUsage(w, { user, ...(team ? { team } : {}), ...(project ? { project } : {}), costMicro: Math.floor(h.reservedMicro / 1000) * 1000, holdId: h.holdId, via: 'http' }, h);
        }
        // Everything accepted reaches the ledger; then the bound must still hold.
        await eventually(() => ledgerCalls(w.run), (n) => n === w.sent.length, 60_000, `${w.sent.length} events of ${w.run} in the ledger`);
        await checkInvariant(w, 'once everything landed');
        boundary += w.boundary;
      }),
      // ADVERSARY_SEED and ADVERSARY_PATH replay a failing run (fast-check prints both).
      { numRuns: 6, endOnFailure: true, ...(process.env.ADVERSARY_SEED ? { seed: Number(process.env.ADVERSARY_SEED), path: process.env.ADVERSARY_PATH ?? '0' } : {}) },
    );
    // The property ran: steps were taken and only a few events sat on an expiry boundary.
    expect(steps).toBeGreaterThan(50);
    expect(boundary).toBeLessThan(steps / 4);
  }, 900_000);

  it('three processes racing the same budgets over HTTP never spend beyond the formula', async () => {
    const w = await newWorld();
    const children: ChildProcess[] = [];
    const reports = await Promise.all(
      [1, 2, 3].map(
        (seed) =>
          new Promise<string[]>((resolve, reject) => {
            const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/adversary-process.ts'], {
              cwd: projectRoot(),
              env: { ...process.env, ADVERSARY_BASE: base, ADVERSARY_KEY: KEY, ADVERSARY_RUN: w.run, ADVERSARY_SEED: String(seed), ADVERSARY_STEPS: '60', ADVERSARY_USERS: String(USERS) },
              stdio: ['ignore', 'pipe', 'inherit'],
            });
            children.push(child);
            const lines: string[] = [];
            createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
            child.once('exit', (code) => (code === 0 ? resolve(lines) : reject(new Error(`adversary ${seed} exited ${code}`))));
          }),
      ),
    );
    // Each child reports its admitted holds and its events with their acceptance times.
    const holds = new Map<string, Held>();
    const events: Array<{ scopes: string[]; costMicro: number; holdId?: string; acceptedAtMs: number; acceptedBeforeMs: number }> = [];
    for (const line of reports.flat()) {
      const m = JSON.parse(line) as { hold?: Held; event?: (typeof events)[number] };
      if (m.hold) holds.set(m.hold.holdId, { ...m.hold, claimed: false });
      if (m.event) events.push(m.event);
      if (m.hold?.released) holds.get(m.hold.holdId)!.released = true;
    }
    // Holds claimed in acceptance order, across processes.
    events.sort((a, b) => a.acceptedBeforeMs - b.acceptedBeforeMs);
    for (const e of events) {
      const hold = e.holdId ? holds.get(e.holdId) : undefined;
      w.sent.push({ scopes: e.scopes, costMicro: e.costMicro, allowance: allowanceOf(w, e.scopes, e.costMicro, hold, e.acceptedAtMs, false) });
    }
    expect(events.length).toBeGreaterThan(30);
    await eventually(() => ledgerCalls(w.run), (n) => n === events.length, 60_000, `${events.length} events in the ledger`);
    await checkInvariant(w, 'three processes');
  }, 300_000);
});
