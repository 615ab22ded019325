/**
 * Budget leases and holds in Redis (the arithmetic and its invariant: src/domain/leases.ts). Every
 * operation is one Lua script, so it is atomic and one round trip:
 *
 *   <p>epoch                 a random id, written once; gone after a Redis flush or restart (that is
 *                            how a loss is detected: every bucket is checked against it)
 *   <p>s:<scope>             HASH the scope's lease: epoch, until (ms; the first period end), buckets
 *                            (bucket names, newline separated), decision counters d:allow ...
 *   <p>b:<bucket>            HASH one budget period of a scope: epoch, avail, open, budget, base
 *                            (ledger spend at the last grant), spent (settled and charged since), mode
 *                            (h/s), end, gen (grants applied: a grant computed before another is refused)
 *   <p>h:<holdId>            HASH a hold: state (o open, s settled, r released, x expired, S settled
 *                            after release or expiry), w (µ$ reserved), b (its buckets), exp (ms),
 *                            e:<requestId> (each usage event recorded against it, so a retried flush
 *                            is recognised and a second event is charged in full)
 *   <p>exp                   ZSET open holds by expiry time (swept by every script that runs)
 *
 * `<p>` is `<keyPrefix>{lease}:`; the braces make every key hash to one Redis Cluster slot, which
 * the scripts need (they reach the buckets a scope or hold names, not only their declared keys).
 * Times are Redis's own clock (TIME), so API processes with skewed clocks agree on expiry.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Finished holds are kept this long so a repeated or late settlement is recognised and charged once. */
export const HOLD_RETENTION_MS = 2 * 24 * 3600 * 1000;
/** Expired holds released per script run (the rest by the next one). */
const SWEEP_LIMIT = 64;

const NOW = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

// cap: money returned to a lease never lifts it above what the budget leaves (budget - base - spent
// - open, all read here, in the same script): a release, an expiry, a settlement below the
// reservation or a lowered budget cannot make room the budget does not have.
// adjust: adds to open, avail and spent of each bucket of a hold that still exists (a bucket of an
// ended period may have expired), capping what it returns. sweep: releases up to `lim` expired
// open holds (their reservation goes back to their buckets).
const SWEEP = `
local function cap(bk)
  local v = redis.call('HMGET', bk, 'avail', 'open', 'budget', 'base', 'spent')
  if not v[1] or not v[3] then return end
  local room = tonumber(v[3]) - tonumber(v[4] or '0') - tonumber(v[5] or '0') - tonumber(v[2] or '0')
  if tonumber(v[1]) > room then redis.call('HSET', bk, 'avail', room) end
end
local function adjust(p, buckets, dopen, davail, dspent)
  for b in string.gmatch(buckets, '[^\\n]+') do
    local bk = p .. 'b:' .. b
    if redis.call('EXISTS', bk) == 1 then
      if dopen ~= 0 then redis.call('HINCRBY', bk, 'open', dopen) end
      if davail ~= 0 then redis.call('HINCRBY', bk, 'avail', davail) end
      if dspent ~= 0 then redis.call('HINCRBY', bk, 'spent', dspent) end
      if davail > 0 then cap(bk) end
    end
  end
end
local function sweep(p, expkey, now, lim)
  local due = redis.call('ZRANGEBYSCORE', expkey, '-inf', now, 'LIMIT', 0, lim)
  for _, id in ipairs(due) do
    local hk = p .. 'h:' .. id
    local h = redis.call('HMGET', hk, 'state', 'w', 'b')
    if h[1] == 'o' then
      local w = tonumber(h[2])
      adjust(p, h[3], -w, w, 0)
      redis.call('HSET', hk, 'state', 'x')
      redis.call('PEXPIRE', hk, ${HOLD_RETENTION_MS})
    end
    redis.call('ZREM', expkey, id)
  end
  return #due
end
`;

// KEYS: epoch, exp, hold. ARGV: prefix, amount µ$, hold id, ttl ms, final (0/1), unpriced (0/1), n scopes, scopes...
// Replies: {'NOEPOCH'} | {'NOLEASE', scope...} | {'HARD', epoch, buckets...} (unpriced and a bucket is hard) |
// {'SHORT', epoch, 0, buckets...} | {'OK', epoch, exp, buckets...}
// Bucket fields, 11 per bucket: name, then BUCKET_FIELDS (after the reservation for OK).
const AUTHORIZE = `${NOW}
${SWEEP}
local p = ARGV[1]
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'NOEPOCH'} end
sweep(p, KEYS[2], now, ${SWEEP_LIMIT})
local w = tonumber(ARGV[2])
local final = ARGV[5] == '1'
local unpriced = ARGV[6] == '1'
local n = tonumber(ARGV[7])
local missing = {'NOLEASE'}
local buckets = {}
for i = 1, n do
  local s = ARGV[7 + i]
  local d = redis.call('HMGET', p .. 's:' .. s, 'epoch', 'until', 'buckets')
  if d[1] ~= epoch or not d[2] or tonumber(d[2]) <= now then
    missing[#missing + 1] = s
  elseif d[3] and d[3] ~= '' then
    for b in string.gmatch(d[3], '[^\\n]+') do buckets[#buckets + 1] = b end
  end
end
if #missing > 1 then return missing end
local vals = {}
local fits = true
local hard = false
for _, b in ipairs(buckets) do
  local v = redis.call('HMGET', p .. 'b:' .. b, 'avail', 'open', 'budget', 'base', 'spent', 'mode', 'end', 'fm', 'calls', 'start', 'epoch')
  if v[11] ~= epoch then return {'NOLEASE', string.match(b, '^[^|]+')} end
  local avail = tonumber(v[1])
  if v[6] == 'h' then hard = true end
  if not (avail >= w or (final and v[6] == 's' and avail > 0)) then fits = false end
  vals[#vals + 1] = {b, v}
end
local out = {fits and 'OK' or 'SHORT', epoch, '0'}
if unpriced and hard then
  out[1] = 'HARD'
elseif fits then
  local exp = now + tonumber(ARGV[4])
  out[3] = tostring(exp)
  local names = {}
  for _, bv in ipairs(vals) do
    -- Read above in this same script: one HSET instead of two HINCRBYs.
    bv[2][1] = tostring(tonumber(bv[2][1]) - w)
    bv[2][2] = tostring(tonumber(bv[2][2]) + w)
    redis.call('HSET', p .. 'b:' .. bv[1], 'avail', bv[2][1], 'open', bv[2][2])
    names[#names + 1] = bv[1]
  end
  redis.call('HSET', KEYS[3], 'state', 'o', 'w', w, 'b', table.concat(names, '\\n'), 'exp', exp, 'at', now)
  for i = 1, n do redis.call('HINCRBY', p .. 's:' .. ARGV[7 + i], 'd:admitted', 1) end
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[4]) + ${HOLD_RETENTION_MS})
  redis.call('ZADD', KEYS[2], exp, ARGV[3])
end
for _, bv in ipairs(vals) do
  out[#out + 1] = bv[1]
  for k = 1, 10 do out[#out + 1] = bv[2][k] or '' end
end
return out`;

// KEYS: exp. ARGV: prefix, then triples (hold id, action s|r, actual µ$). Reply: one status per hold:
// settled | released | late (charged after a release or expiry) | duplicate | unknown. A settlement
// here (Authorizer.settle, by hand) knows no event: usage events go through RECORD instead.
const FINISH = `${NOW}
${SWEEP}
local p = ARGV[1]
sweep(p, KEYS[1], now, ${SWEEP_LIMIT})
local out = {}
for i = 2, #ARGV, 3 do
  local id, action, a = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local hk = p .. 'h:' .. id
  local h = redis.call('HMGET', hk, 'state', 'w', 'b')
  local status = 'unknown'
  if h[1] == 'o' then
    local w = tonumber(h[2])
    if action == 's' then adjust(p, h[3], -w, w - a, a) else adjust(p, h[3], -w, w, 0) end
    status = action == 's' and 'settled' or 'released'
    redis.call('HSET', hk, 'state', action == 's' and 's' or 'r', 'a', a)
    redis.call('ZREM', KEYS[1], id)
    redis.call('PEXPIRE', hk, ${HOLD_RETENTION_MS})
  elseif h[1] == 'r' or h[1] == 'x' then
    if action == 's' then
      adjust(p, h[3], 0, -a, a)
      redis.call('HSET', hk, 'state', 'S', 'a', a)
      status = 'late'
    else
      status = 'duplicate'
    end
  elseif h[1] then
    status = 'duplicate'
  end
  out[#out + 1] = status
end
return out`;

// Usage committed to the ledger (run by the ingest flush after the commit). KEYS: epoch, exp.
// ARGV: prefix, n, then n hold items (hold id, request id, at ms, actual µ$, k, k scopes), then
// triples (scope, at ms, µ$) of usage without a hold (summed per scope and second by the caller).
// Every event is charged to the lease of every bucket it counts in (the buckets of its own scopes
// whose period holds `at`), whatever hold it names: a hold only gives back its reservation, once,
// to the event that first settles it. So an unknown, foreign, released, expired or already settled
// hold id, or an event naming a team the check did not, never escapes its budgets. Reply: one
// status per hold item: settled | late (the hold had been released or had expired) | again (settled
// by another event) | unknown | duplicate (this very event again: a retried flush; nothing done).
const RECORD = `${NOW}
${SWEEP}
local p = ARGV[1]
local epoch = redis.call('GET', KEYS[1])
sweep(p, KEYS[2], now, ${SWEEP_LIMIT})
local scopes = {}
local function bucketsOf(scope)
  local list = scopes[scope]
  if list ~= nil then return list end
  list = {}
  if epoch then
    local d = redis.call('HMGET', p .. 's:' .. scope, 'epoch', 'buckets')
    if d[1] == epoch and d[2] then
      for b in string.gmatch(d[2], '[^\\n]+') do
        local v = redis.call('HMGET', p .. 'b:' .. b, 'start', 'end', 'epoch')
        if v[3] == epoch then list[#list + 1] = {p .. 'b:' .. b, tonumber(v[1]), tonumber(v[2])} end
      end
    end
  end
  scopes[scope] = list
  return list
end
local function charge(scope, at, c)
  local applied = 0
  for _, b in ipairs(bucketsOf(scope)) do
    if at >= b[2] and at < b[3] then
      redis.call('HINCRBY', b[1], 'avail', -c)
      redis.call('HINCRBY', b[1], 'spent', c)
      applied = applied + 1
    end
  end
  return applied
end
local out = {}
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  local id, key, at, a, k = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local first = i + 5
  i = first + k
  local hk = p .. 'h:' .. id
  local h = redis.call('HMGET', hk, 'state', 'w', 'b')
  if h[1] and redis.call('HSETNX', hk, 'e:' .. key, '1') == 0 then
    out[#out + 1] = 'duplicate'
  else
    local returned = {}
    local status = 'unknown'
    if h[1] == 'o' then
      local w = tonumber(h[2])
      for b in string.gmatch(h[3], '[^\\n]+') do
        local bk = p .. 'b:' .. b
        if redis.call('EXISTS', bk) == 1 then
          redis.call('HINCRBY', bk, 'open', -w)
          redis.call('HINCRBY', bk, 'avail', w)
          returned[#returned + 1] = bk
        end
      end
      redis.call('HSET', hk, 'state', 's', 'a', a)
      redis.call('ZREM', KEYS[2], id)
      redis.call('PEXPIRE', hk, ${HOLD_RETENTION_MS})
      status = 'settled'
    elseif h[1] == 'r' or h[1] == 'x' then
      redis.call('HSET', hk, 'state', 'S', 'a', a)
      status = 'late'
    elseif h[1] then
      status = 'again'
    end
    -- Charged once per bucket: the buckets of its scopes' leases whose period holds it, and the
    -- hold's own buckets of those scopes (a lease may have moved on to the next period since).
    local charged = {}
    local mine = {}
    for j = first, first + k - 1 do
      mine[ARGV[j]] = true
      for _, b in ipairs(bucketsOf(ARGV[j])) do
        if at >= b[2] and at < b[3] then charged[b[1]] = true end
      end
    end
    if h[3] then
      for b in string.gmatch(h[3], '[^\\n]+') do
        local bk = p .. 'b:' .. b
        if not charged[bk] and mine[string.match(b, '^[^|]+')] then
          local v = redis.call('HMGET', bk, 'start', 'end', 'epoch')
          if v[3] == epoch and at >= tonumber(v[1]) and at < tonumber(v[2]) then charged[bk] = true end
        end
      end
    end
    for bk in pairs(charged) do
      redis.call('HINCRBY', bk, 'avail', -a)
      redis.call('HINCRBY', bk, 'spent', a)
    end
    for _, bk in ipairs(returned) do cap(bk) end
    out[#out + 1] = status
  end
end
local charged = 0
for j = i, #ARGV, 3 do charged = charged + charge(ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2])) end
out[#out + 1] = tostring(charged)
return out`;

// Usage accepted for ingestion (before its signal is sent): each open hold it names lives at least
// `ttl` more, so a hold cannot expire, and its money go to another call, between the acceptance of
// its usage and the flush that settles it. KEYS: exp. ARGV: prefix, ttl ms, hold ids...
// Reply: one state per id: o (open, extended) | x (expired) | another state | unknown.
const ACCEPT = `${NOW}
${SWEEP}
local p = ARGV[1]
sweep(p, KEYS[1], now, ${SWEEP_LIMIT})
local ttl = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  local hk = p .. 'h:' .. ARGV[i]
  local h = redis.call('HMGET', hk, 'state', 'exp')
  if h[1] == 'o' and tonumber(h[2]) > now then
    local exp = now + ttl
    if exp > tonumber(h[2]) then
      redis.call('HSET', hk, 'exp', exp)
      redis.call('ZADD', KEYS[1], exp, ARGV[i])
      redis.call('PEXPIRE', hk, ttl + ${HOLD_RETENTION_MS})
    end
    out[#out + 1] = 'o'
  elseif h[1] == 'o' then
    out[#out + 1] = 'x'
  else
    out[#out + 1] = h[1] or 'unknown'
  end
end
return out`;

// KEYS: exp, hold. ARGV: prefix, hold id, ttl ms. Reply: {'OK', exp} | {state} | {'unknown'}.
const RENEW = `${NOW}
${SWEEP}
local p = ARGV[1]
sweep(p, KEYS[1], now, ${SWEEP_LIMIT})
local state = redis.call('HGET', KEYS[2], 'state')
if not state then return {'unknown'} end
if state ~= 'o' then return {state} end
local exp = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'exp', exp)
redis.call('ZADD', KEYS[1], exp, ARGV[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) + ${HOLD_RETENTION_MS})
return {'OK', tostring(exp)}`;

// KEYS: epoch, exp. ARGV: prefix, candidate epoch, n, bucket names... Creates the epoch if missing.
// Reply: {epoch, created (0/1), now, then per bucket: avail, open, spent, gen (0 when the bucket is
// not of this epoch)}.
const SNAPSHOT = `${NOW}
${SWEEP}
local p = ARGV[1]
local created = redis.call('SET', KEYS[1], ARGV[2], 'NX')
local epoch = redis.call('GET', KEYS[1])
sweep(p, KEYS[2], now, ${SWEEP_LIMIT})
local out = {epoch, created and '1' or '0', tostring(now)}
for i = 1, tonumber(ARGV[3]) do
  local v = redis.call('HMGET', p .. 'b:' .. ARGV[3 + i], 'epoch', 'avail', 'open', 'spent', 'gen')
  if v[1] == epoch then
    out[#out + 1] = v[2]; out[#out + 1] = v[3]; out[#out + 1] = v[4] or '0'; out[#out + 1] = v[5] or '0'
  else
    out[#out + 1] = '0'; out[#out + 1] = '0'; out[#out + 1] = '0'; out[#out + 1] = '0'
  end
end
return out`;

// KEYS: epoch. ARGV: prefix, scope, epoch, until ms, n, then per bucket 11 fields: name, grant µ$,
// budget µ$, base µ$ (ledger spend read after the snapshot, plus any reserve for lost holds), mode
// h|s, end ms, fail mode o|c, calls in the period so far, period start ms, and the bucket's gen and
// spent at the snapshot. Reply: {'EPOCH'} when the epoch changed since the snapshot; {'RACE'} when
// another grant was applied since (this one, computed without it, must not be); else {'OK', per
// bucket: avail, open}. `spent` becomes what was settled or charged since the snapshot (the ledger
// read may or may not hold it: counted at least once), and the bucket is capped (a lowered budget
// lowers what is available at once, from `open` as it is now).
const GRANT = `${SWEEP}
local p = ARGV[1]
if redis.call('GET', KEYS[1]) ~= ARGV[3] then return {'EPOCH'} end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  local o = 6 + i * 11
  local v = redis.call('HMGET', p .. 'b:' .. ARGV[o], 'epoch', 'gen')
  local gen = 0
  if v[1] == ARGV[3] then gen = tonumber(v[2] or '0') end
  if gen ~= tonumber(ARGV[o + 9]) then return {'RACE'} end
end
local out = {'OK'}
local names = {}
for i = 0, n - 1 do
  local o = 6 + i * 11
  local name, g = ARGV[o], tonumber(ARGV[o + 1])
  local endms = tonumber(ARGV[o + 5])
  local bk = p .. 'b:' .. name
  if redis.call('HGET', bk, 'epoch') ~= ARGV[3] then
    redis.call('DEL', bk)
    redis.call('HSET', bk, 'epoch', ARGV[3], 'avail', 0, 'open', 0, 'spent', 0, 'gen', 0)
  end
  local since = tonumber(redis.call('HGET', bk, 'spent') or '0') - tonumber(ARGV[o + 10])
  if since < 0 then since = 0 end
  redis.call('HINCRBY', bk, 'avail', g)
  redis.call('HSET', bk, 'budget', ARGV[o + 2], 'base', ARGV[o + 3], 'spent', since, 'mode', ARGV[o + 4], 'end', endms, 'fm', ARGV[o + 6], 'calls', ARGV[o + 7], 'start', ARGV[o + 8])
  redis.call('HINCRBY', bk, 'gen', 1)
  cap(bk)
  redis.call('PEXPIREAT', bk, endms + ${HOLD_RETENTION_MS})
  names[#names + 1] = name
  out[#out + 1] = redis.call('HGET', bk, 'avail')
  out[#out + 1] = redis.call('HGET', bk, 'open')
end
local sk = p .. 's:' .. ARGV[2]
redis.call('HSET', sk, 'epoch', ARGV[3], 'until', ARGV[4], 'buckets', table.concat(names, '\\n'))
redis.call('PEXPIREAT', sk, tonumber(ARGV[4]) + ${HOLD_RETENTION_MS})
return out`;

export interface BucketView {
  name: string;
  scope: string;
  /** µ$ */
  available: number;
  open: number;
  budget: number;
  /** Ledger spend at the last grant (with any reserve for lost holds), µ$. */
  base: number;
  /** Settled through holds since the last grant, µ$. */
  spent: number;
  mode: 'hard' | 'soft';
  failMode: 'open' | 'closed';
  endMs: number;
  startMs: number;
  /** Calls in the period at the last grant. */
  calls: number;
}

export type AuthorizeReply =
  | { kind: 'noepoch' }
  | { kind: 'nolease'; scopes: string[] }
  | { kind: 'short'; epoch: string; buckets: BucketView[] }
  | { kind: 'hard'; epoch: string; buckets: BucketView[] }
  | { kind: 'ok'; epoch: string; expiresAtMs: number; buckets: BucketView[] };

export type FinishStatus = 'settled' | 'released' | 'late' | 'duplicate' | 'unknown';
/** What recording a committed usage event did with the hold it names (see RECORD). */
export type RecordStatus = 'settled' | 'late' | 'again' | 'unknown' | 'duplicate';

/** A committed usage event that names a hold: charged to every scope it counts in, the hold settled if open. */
export interface RecordedHoldEvent {
  holdId: string;
  /** The ledger's key of the event (a retried flush sends the same one). */
  requestId: string;
  /** When it counts (ms): it is charged to the buckets whose period holds it. */
  atMs: number;
  actualMicro: number;
  /** Every scope the ledger counts it in (system, user, team, project). */
  scopes: readonly string[];
}

export interface GrantBucket {
  name: string;
  grant: number;
  budget: number;
  base: number;
  mode: 'hard' | 'soft';
  endMs: number;
  failMode: 'open' | 'closed';
  calls: number;
  startMs: number;
  /** The bucket's grant generation at the snapshot (another grant since refuses this one). */
  snapshotGen: number;
  /** The bucket's `spent` at the snapshot. */
  snapshotSpent: number;
}

interface LeaseCommands {
  cgAuthorize(...args: (string | number)[]): Promise<string[]>;
  cgFinish(...args: (string | number)[]): Promise<string[]>;
  cgRenew(...args: (string | number)[]): Promise<string[]>;
  cgSnapshot(...args: (string | number)[]): Promise<string[]>;
  cgGrant(...args: (string | number)[]): Promise<string[]>;
  cgRecord(...args: (string | number)[]): Promise<string[]>;
  cgAccept(...args: (string | number)[]): Promise<string[]>;
}

/** A bucket's fields as the scripts return them, after its name. */
const BUCKET_FIELDS = ['avail', 'open', 'budget', 'base', 'spent', 'mode', 'end', 'fm', 'calls', 'start'] as const;

function parseBuckets(flat: readonly (string | null)[], from: number): BucketView[] {
  const out: BucketView[] = [];
  const n = BUCKET_FIELDS.length + 1;
  for (let i = from; i + n - 1 < flat.length; i += n) {
    const name = flat[i] ?? '';
    const num = (k: number) => Number(flat[i + k] || 0);
    out.push({
      name,
      scope: name.slice(0, name.indexOf('|')),
      available: num(1),
      open: num(2),
      budget: num(3),
      base: num(4),
      spent: num(5),
      mode: flat[i + 6] === 'h' ? 'hard' : 'soft',
      endMs: num(7),
      failMode: flat[i + 8] === 'o' ? 'open' : 'closed',
      calls: num(9),
      startMs: num(10),
    });
  }
  return out;
}

export interface LeaseStore {
  readonly prefix: string;
  authorize(input: { scopes: readonly string[]; amountMicro: number; holdId: string; ttlMs: number; final: boolean; unpriced: boolean }): Promise<AuthorizeReply>;
  /** Settles (`s`, with the actual cost) or releases (`r`) holds; one status per hold. */
  finish(items: ReadonlyArray<{ holdId: string; action: 's' | 'r'; actualMicro: number }>): Promise<FinishStatus[]>;
  renew(holdId: string, ttlMs: number): Promise<{ ok: true; expiresAtMs: number } | { ok: false; state: string }>;
  snapshot(buckets: readonly string[]): Promise<{ epoch: string; created: boolean; nowMs: number; buckets: { available: number; open: number; spent: number; gen: number }[] }>;
  grant(input: { scope: string; epoch: string; untilMs: number; buckets: readonly GrantBucket[] }): Promise<{ ok: false; why: 'epoch' | 'race' } | { ok: true; buckets: { available: number; open: number }[] }>;
  /**
   * Usage committed to the ledger: events naming a hold (one status each), and usage without a
   * hold summed per scope and second. Every event is charged to the leases of every scope it counts in.
   */
  record(holds: readonly RecordedHoldEvent[], charges: ReadonlyArray<{ scope: string; atMs: number; costMicro: number }>): Promise<{ statuses: RecordStatus[]; charged: number }>;
  /** Usage naming these holds was accepted for ingestion: each open one lives at least `ttlMs` more. One state per id. */
  accept(holdIds: readonly string[], ttlMs: number): Promise<string[]>;
  /** The epoch, or null after a flush (before anything recreated it). */
  epoch(): Promise<string | null>;
  /** A hold's state: o, s, r, x, S, or null when unknown. */
  holdState(holdId: string): Promise<{ state: string; amountMicro: number; expiresAtMs: number } | null>;
  /** Adds to a scope's decision counters (best effort, not awaited by the caller). */
  countDecision(scopes: readonly string[], decision: string): Promise<void>;
  /** A scope's decision counters. */
  decisions(scope: string): Promise<Record<string, number>>;
  /** The buckets of a scope's current lease (for status). */
  scopeLease(scope: string): Promise<{ epoch: string | null; untilMs: number; buckets: BucketView[] } | null>;
}

export function newEpoch(): string {
  return randomBytes(6).readUIntBE(0, 6).toString(36);
}

export function createLeaseStore(redis: Redis, keyPrefix: string): LeaseStore {
  const p = `${keyPrefix}{lease}:`;
  const r = redis as Redis & LeaseCommands;
  if (!(r as unknown as Partial<LeaseCommands>).cgRecord) {
    redis.defineCommand('cgAuthorize', { numberOfKeys: 3, lua: AUTHORIZE });
    redis.defineCommand('cgFinish', { numberOfKeys: 1, lua: FINISH });
    redis.defineCommand('cgRenew', { numberOfKeys: 2, lua: RENEW });
    redis.defineCommand('cgSnapshot', { numberOfKeys: 2, lua: SNAPSHOT });
    redis.defineCommand('cgGrant', { numberOfKeys: 1, lua: GRANT });
    redis.defineCommand('cgRecord', { numberOfKeys: 2, lua: RECORD });
    redis.defineCommand('cgAccept', { numberOfKeys: 1, lua: ACCEPT });
  }
  const epochKey = `${p}epoch`;
  const expKey = `${p}exp`;
  return {
    prefix: p,
    async authorize({ scopes, amountMicro, holdId, ttlMs, final, unpriced }) {
      const reply = await r.cgAuthorize(epochKey, expKey, `${p}h:${holdId}`, p, amountMicro, holdId, ttlMs, final ? 1 : 0, unpriced ? 1 : 0, scopes.length, ...scopes);
      switch (reply[0]) {
        case 'NOEPOCH':
          return { kind: 'noepoch' };
        case 'NOLEASE':
          return { kind: 'nolease', scopes: reply.slice(1) };
        case 'SHORT':
          return { kind: 'short', epoch: reply[1]!, buckets: parseBuckets(reply, 3) };
        case 'HARD':
          return { kind: 'hard', epoch: reply[1]!, buckets: parseBuckets(reply, 3) };
        default:
          return { kind: 'ok', epoch: reply[1]!, expiresAtMs: Number(reply[2]), buckets: parseBuckets(reply, 3) };
      }
    },
    async finish(items) {
      if (items.length === 0) return [];
      const args: (string | number)[] = [];
      for (const i of items) args.push(i.holdId, i.action, i.actualMicro);
      return (await r.cgFinish(expKey, p, ...args)) as FinishStatus[];
    },
    async renew(holdId, ttlMs) {
      const reply = await r.cgRenew(expKey, `${p}h:${holdId}`, p, holdId, ttlMs);
      return reply[0] === 'OK' ? { ok: true, expiresAtMs: Number(reply[1]) } : { ok: false, state: reply[0]! };
    },
    async snapshot(buckets) {
      const reply = await r.cgSnapshot(epochKey, expKey, p, newEpoch(), buckets.length, ...buckets);
      const out: { available: number; open: number; spent: number; gen: number }[] = [];
      for (let i = 3; i + 3 < reply.length; i += 4) out.push({ available: Number(reply[i]), open: Number(reply[i + 1]), spent: Number(reply[i + 2]), gen: Number(reply[i + 3]) });
      return { epoch: reply[0]!, created: reply[1] === '1', nowMs: Number(reply[2]), buckets: out };
    },
    async grant({ scope, epoch, untilMs, buckets }) {
      const args: (string | number)[] = [p, scope, epoch, untilMs, buckets.length];
      for (const b of buckets) args.push(b.name, b.grant, b.budget, b.base, b.mode === 'hard' ? 'h' : 's', b.endMs, b.failMode === 'open' ? 'o' : 'c', b.calls, b.startMs, b.snapshotGen, b.snapshotSpent);
      const reply = await r.cgGrant(epochKey, ...args);
      if (reply[0] !== 'OK') return { ok: false, why: reply[0] === 'RACE' ? 'race' : 'epoch' };
      const out: { available: number; open: number }[] = [];
      for (let i = 1; i + 1 < reply.length; i += 2) out.push({ available: Number(reply[i]), open: Number(reply[i + 1] ?? 0) });
      return { ok: true, buckets: out };
    },
    async record(holds, charges) {
      if (holds.length === 0 && charges.length === 0) return { statuses: [], charged: 0 };
      const args: (string | number)[] = [p, holds.length];
      for (const h of holds) args.push(h.holdId, h.requestId, h.atMs, h.actualMicro, h.scopes.length, ...h.scopes);
      for (const c of charges) args.push(c.scope, c.atMs, c.costMicro);
      const reply = await r.cgRecord(epochKey, expKey, ...args);
      return { statuses: reply.slice(0, holds.length) as RecordStatus[], charged: Number(reply[holds.length] ?? 0) };
    },
    async accept(holdIds, ttlMs) {
      if (holdIds.length === 0) return [];
      return r.cgAccept(expKey, p, ttlMs, ...holdIds);
    },
    async epoch() {
      return redis.get(epochKey);
    },
    async holdState(holdId) {
      const [state, w, exp] = await redis.hmget(`${p}h:${holdId}`, 'state', 'w', 'exp');
      return state ? { state, amountMicro: Number(w), expiresAtMs: Number(exp) } : null;
    },
    async countDecision(scopes, decision) {
      const m = redis.multi();
      for (const s of scopes) m.hincrby(`${p}s:${s}`, `d:${decision}`, 1);
      await m.exec();
    },
    async decisions(scope) {
      const all = await redis.hgetall(`${p}s:${scope}`);
      const n = (k: string) => Number(all[`d:${k}`] ?? 0);
      // The script counts admissions (allow and downgrade alike); downgrades and denials are counted apart.
      const out: Record<string, number> = { allow: Math.max(0, n('admitted') - n('downgrade')), downgrade: n('downgrade'), deny: n('deny') };
      if (n('allow') > 0) out.allow! += n('allow'); // an admission without a reservation (fail open)
      return out;
    },
    async scopeLease(scope) {
      const [epoch, until, names] = await redis.hmget(`${p}s:${scope}`, 'epoch', 'until', 'buckets');
      if (!until) return null;
      const list = names ? names.split('\n').filter(Boolean) : [];
      const pipeline = redis.pipeline();
      for (const b of list) pipeline.hmget(`${p}b:${b}`, ...BUCKET_FIELDS);
      const replies = (await pipeline.exec()) ?? [];
      const flat: (string | null)[] = [];
      list.forEach((b, i) => flat.push(b, ...((replies[i]?.[1] as (string | null)[] | undefined) ?? BUCKET_FIELDS.map(() => null))));
      return { epoch: epoch ?? null, untilMs: Number(until), buckets: parseBuckets(flat, 0) };
    },
  };
}
