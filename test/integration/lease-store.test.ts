/**
 * The lease scripts on a real Redis, driven by random sequences of grants, reservations,
 * settlements (after a simulated ledger commit), releases, renewals and expiries. After every
 * step: ledger spend + open holds + available <= budget; available below zero only by what late
 * settlements (after a release or an expiry) charged; Redis's `open` matches the model's open holds.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grantAmount } from '../../src/domain/leases.js';
import { createLeaseStore } from '../../src/redis/leases.js';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 3 });
const prefix = `costguard-test:${randomBytes(4).toString('hex')}:`;
const store = createLeaseStore(redis, prefix);

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

type Op =
  | { kind: 'grant'; need: number }
  | { kind: 'reserve'; amount: number; ttlMs: number }
  | { kind: 'settle'; pick: number; fraction: number }
  | { kind: 'release'; pick: number }
  | { kind: 'settleAgain'; pick: number }
  | { kind: 'wait'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('grant' as const), need: fc.integer({ min: 0, max: 400_000 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('reserve' as const), amount: fc.integer({ min: 1, max: 120_000 }), ttlMs: fc.constantFrom(30, 60_000, 60_000) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(), fraction: fc.integer({ min: 0, max: 100 }).map((n) => n / 100) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('settleAgain' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.constantFrom(0, 40) }) },
);

let run = 0;

describe('lease scripts', () => {
  beforeAll(async () => {
    await redis.ping();
  });

  it('keep spend + open + available within the budget whatever the order of operations', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 60 }), async (ops) => {
        const scope = `user:prop-${run++}`;
        const budget = 200_000;
        const bucket = `${scope}|day|UTC|0`;
        let spent = 0; // the "ledger"
        const open = new Map<string, number>(); // hold -> reserved, as the model sees it
        const finished = new Set<string>();
        const expiring = new Map<string, number>(); // hold -> expiry (ms), short-lived ones
        let seq = 0;
        let late = 0;
        const check = async () => {
          const lease = await store.scopeLease(scope);
          const b = lease?.buckets[0];
          if (!b) return;
          // Expired holds leave the model too (the scripts sweep them).
          expect(spent + b.open + b.available).toBeLessThanOrEqual(budget);
          expect(b.available).toBeGreaterThanOrEqual(-late);
          // Open holds: all the model's, less short-lived ones Redis may already have swept.
          const all = [...open.values()].reduce((a, v) => a + v, 0);
          const lasting = [...open].filter(([id]) => !expiring.has(id)).reduce((a, [, v]) => a + v, 0);
          expect(b.open).toBeLessThanOrEqual(all);
          expect(b.open).toBeGreaterThanOrEqual(lasting);
        };
        for (const o of ops) {
          if (o.kind === 'grant') {
            const snap = await store.snapshot([bucket]);
            const s = snap.buckets[0]!;
            const g = grantAmount({ budgetMicro: budget, spentMicro: spent, lostMicro: 0, snapshot: s, needMicro: o.need }, { sliceFraction: 0.25 });
            await store.grant({
              scope,
              epoch: snap.epoch,
              untilMs: Date.now() + 3_600_000,
              buckets: [{ name: bucket, grant: g, budget, base: spent, mode: 'hard', endMs: Date.now() + 3_600_000, failMode: 'closed', calls: 0, startMs: 0, snapshotGen: s.gen, snapshotSpent: s.spent }],
            });
          } else if (o.kind === 'reserve') {
            const id = `h0.0.prop${run}x${seq++}aaaaaaaa`;
            const r = await store.authorize({ scopes: [scope], amountMicro: o.amount, holdId: id, ttlMs: o.ttlMs, final: true, unpriced: false });
            if (r.kind === 'ok') {
              open.set(id, o.amount);
              if (o.ttlMs < 1000) expiring.set(id, r.expiresAtMs);
            }
          } else if (o.kind === 'settle' || o.kind === 'release' || o.kind === 'settleAgain') {
            const ids = o.kind === 'settleAgain' ? [...finished] : [...open.keys()];
            if (ids.length === 0) continue;
            const id = ids[o.pick % ids.length]!;
            const w = open.get(id) ?? 0;
            const actual = o.kind === 'settle' ? Math.floor(w * o.fraction) : o.kind === 'settleAgain' ? 1 : 0;
            if (o.kind === 'release') {
              await store.finish([{ holdId: id, action: 'r', actualMicro: 0 }]);
            } else {
              const state = (await store.holdState(id))?.state;
              // A settlement follows its ledger commit; a repeated one (a retried flush) commits nothing new.
              if (state === 'o' || state === 'x' || state === 'r') spent += actual;
              if (state === 'x' || state === 'r') late += actual;
              await store.finish([{ holdId: id, action: 's', actualMicro: actual }]);
            }
            open.delete(id);
            expiring.delete(id);
            finished.add(id);
          } else {
            await new Promise((r) => setTimeout(r, o.ms));
            const now = Date.now();
            for (const [id, exp] of expiring) {
              if (exp > now) continue;
              open.delete(id);
              expiring.delete(id);
              finished.add(id);
            }
            // Any script sweeps expired holds; the snapshot is the one that changes nothing else.
            await store.snapshot([]);
          }
          await check();
        }
      }),
      { numRuns: 100 },
    );
  }, 120_000);
});
