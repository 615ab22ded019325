/**
 * The ingest tier's wire format and routing, pure (CostTracker, the API, the ingest workflow and
 * its flush activity all use it; free of zod, because the ingest workflow imports it).
 *
 * Routing: a user's events always go to the same shard, `ingest/<fnv1a(userId) mod shards>`, so
 * one user scope is never flushed by two shards at once (its rollup rows have one writer).
 *
 * Compact batches: a signal carries events as arrays, not objects, with the strings that repeat
 * across events (provider, model, task type, user) listed once per batch in `strings` and referred
 * to by index. Token counts are positional; only non-zero kinds are sent. Team, project, tags,
 * metadata and the estimated flag travel in an optional trailing object. A quarter to a third of
 * the bytes of the object form for typical events (BENCHMARKS.md gives the measured figures).
 *
 *   event = [requestId, occurredAtMs, provider#, model#, user#, taskType#, tokens, extra?]
 *   tokens = [input, cacheRead, cacheWrite, cacheWrite1h, output, reasoning] with trailing zeros cut
 *   extra  = { team?, project?, tags?, metadata?, estimated?, hold?, hit? }   (hit: a response-cache hit)
 */
import { TOKEN_KINDS } from './tokens.js';

export const INGEST_BATCH_VERSION = 1;

/** Batch ids an ingest workflow remembers against re-sends (carried across continue-as-new). */
export const INGEST_RECENT_BATCH_IDS = 4096;

export type CompactTokens = number[];
export type CompactEvent = [string, number, number, number, number, number, CompactTokens, CompactExtra?];
export interface CompactExtra {
  team?: string;
  project?: string;
  tags?: Record<string, string>;
  metadata?: Record<string, unknown>;
  estimated?: true;
  /** The pre-flight hold the call settles. */
  hold?: string;
  /** Answered by the response cache: cost avoided, not spend. */
  hit?: true;
}

/** A batch of usage events as signalled to an ingest shard; `batchId` makes a re-send harmless. */
export interface IngestBatch {
  v: typeof INGEST_BATCH_VERSION;
  batchId: string;
  strings: string[];
  events: CompactEvent[];
}

/** The input shape of one event, as the flush activity validates it. */
export interface WireEvent {
  requestId: string;
  occurredAt: string;
  provider: string;
  model: string;
  userId: string;
  taskType: string;
  usage: Partial<Record<(typeof TOKEN_KINDS)[number], number>>;
  team?: string;
  project?: string;
  tags?: Record<string, string>;
  metadata?: Record<string, unknown>;
  estimated?: boolean;
  holdId?: string;
  cacheHit?: boolean;
}

/** FNV-1a (32 bit) of a string's UTF-16 code units: stable across processes and versions. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The ingest shard of a user's events. */
export function shardOf(userId: string, shards: number): number {
  return fnv1a(userId) % shards;
}

/** Builds compact batches: strings are interned per batch. */
export class CompactBatchBuilder {
  private readonly index = new Map<string, number>();
  readonly strings: string[] = [];
  readonly events: CompactEvent[] = [];

  private intern(s: string): number {
    let i = this.index.get(s);
    if (i === undefined) {
      i = this.strings.length;
      this.strings.push(s);
      this.index.set(s, i);
    }
    return i;
  }

  /** Adds a validated event (in the input shape); returns the event's encoded form. */
  add(e: WireEvent): CompactEvent {
    const tokens: number[] = TOKEN_KINDS.map((k) => e.usage[k] ?? 0);
    while (tokens.length > 0 && tokens[tokens.length - 1] === 0) tokens.pop();
    const compact: CompactEvent = [e.requestId, Date.parse(e.occurredAt), this.intern(e.provider), this.intern(e.model), this.intern(e.userId), this.intern(e.taskType), tokens];
    const extra: CompactExtra = {};
    if (e.team) extra.team = e.team;
    if (e.project) extra.project = e.project;
    if (e.tags && Object.keys(e.tags).length > 0) extra.tags = e.tags;
    if (e.metadata && Object.keys(e.metadata).length > 0) extra.metadata = e.metadata;
    if (e.estimated) extra.estimated = true;
    if (e.holdId) extra.hold = e.holdId;
    if (e.cacheHit) extra.hit = true;
    if (extra.team !== undefined || extra.project !== undefined || extra.tags || extra.metadata || extra.estimated || extra.hold !== undefined || extra.hit) compact.push(extra);
    this.events.push(compact);
    return compact;
  }

  build(batchId: string): IngestBatch {
    return { v: INGEST_BATCH_VERSION, batchId, strings: this.strings, events: this.events };
  }
}

/** Encodes a whole batch at once. */
export function encodeBatch(batchId: string, events: readonly WireEvent[]): IngestBatch {
  const b = new CompactBatchBuilder();
  for (const e of events) b.add(e);
  return b.build(batchId);
}

/**
 * Decodes a batch back to input-shaped events for validation. Never throws: an event that is not
 * a well-formed compact event comes back as `{ malformed }` with the raw value, so the flush can
 * refuse it (and dead-letter it) while its batch-mates are recorded.
 */
export function decodeBatch(batch: IngestBatch): (WireEvent | { malformed: string; raw: unknown })[] {
  const strings = Array.isArray(batch.strings) ? batch.strings : [];
  const str = (i: unknown): string | undefined => (typeof i === 'number' && Number.isInteger(i) && i >= 0 && i < strings.length && typeof strings[i] === 'string' ? strings[i] : undefined);
  return (Array.isArray(batch.events) ? batch.events : []).map((raw) => {
    if (!Array.isArray(raw) || raw.length < 7 || raw.length > 8) return { malformed: 'not a compact usage event', raw };
    const [requestId, at, p, m, u, t, tokens, extra] = raw as unknown[];
    const provider = str(p);
    const model = str(m);
    const userId = str(u);
    const taskType = str(t);
    if (typeof requestId !== 'string' || typeof at !== 'number' || !Number.isFinite(at) || provider === undefined || model === undefined || userId === undefined || taskType === undefined) {
      return { malformed: 'a compact usage event with a bad id, time or string reference', raw };
    }
    if (!Array.isArray(tokens) || tokens.length > TOKEN_KINDS.length) return { malformed: 'compact token counts must be an array of at most 6 counts', raw };
    const usage: WireEvent['usage'] = {};
    tokens.forEach((n, i) => {
      if (n !== 0) usage[TOKEN_KINDS[i]!] = n as number;
    });
    const d = new Date(at);
    if (Number.isNaN(d.getTime())) return { malformed: 'a compact usage event with a bad time', raw };
    const out: WireEvent = { requestId, occurredAt: d.toISOString(), provider, model, userId, taskType, usage };
    if (extra !== undefined) {
      if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) return { malformed: 'compact extra fields must be an object', raw };
      const x = extra as CompactExtra;
      if (x.team !== undefined) out.team = x.team;
      if (x.project !== undefined) out.project = x.project;
      if (x.tags !== undefined) out.tags = x.tags;
      if (x.metadata !== undefined) out.metadata = x.metadata;
      if (x.estimated !== undefined) out.estimated = x.estimated;
      if (x.hold !== undefined) out.holdId = x.hold;
      if (x.hit !== undefined) out.cacheHit = x.hit;
    }
    return out;
  });
}

/** A cheap shape check for the ingest workflow's signal handler (which must never throw). */
export function ingestBatchProblem(batch: unknown): string | null {
  if (typeof batch !== 'object' || batch === null) return 'a batch must be an object';
  const b = batch as Partial<IngestBatch>;
  if (b.v !== INGEST_BATCH_VERSION) return `unsupported batch version ${JSON.stringify(b.v)}`;
  if (typeof b.batchId !== 'string' || b.batchId.length === 0 || b.batchId.length > 300) return 'batchId must be a string of 1-300 characters';
  if (!Array.isArray(b.strings) || !Array.isArray(b.events)) return 'strings and events must be arrays';
  if (b.events.length === 0 || b.events.length > 20_000) return 'a batch holds 1 to 20,000 events';
  return null;
}

/** What an ingest shard counts (its status, carried across continue-as-new). */
export interface IngestCounters {
  batches: number;
  duplicateBatches: number;
  droppedBatches: number;
  events: number;
  counted: number;
  duplicateEvents: number;
  deadLettered: number;
  flushes: number;
  signalsSent: number;
  /** Flushes that failed (PostgreSQL or Temporal unreachable) and were tried again after a pause. */
  flushRetries?: number;
}

/** Carried across continue-as-new: kept small (no pending events: the shard continues only when idle). */
export interface IngestCarriedState {
  flushSeq: number;
  recentBatchIds: string[];
  counters: IngestCounters;
  raised: string[];
}

/** An ingest shard's live state (its `ingestStatus` query). */
export interface IngestStatus {
  shard: number;
  pendingBatches: number;
  pendingEvents: number;
  counters: IngestCounters;
  lastFlush: { flushId: string; atMs: number; events: number; durationMs: number } | null;
}
