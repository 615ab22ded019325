/**
 * CostTracker's batching, retry and backpressure logic. The Temporal Client is faked HERE ONLY: the
 * unit under test is our own logic around one call, `client.workflow.signalWithStart`. Delivery to
 * a real server is covered by test/integration/client.test.ts.
 */
import { ServiceError } from '@temporalio/client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CostTracker,
  CostTrackerClosedError,
  CostTrackerSendError,
  CostTrackerUnavailableError,
  CostTrackerValidationError,
  type CostTrackerClient,
  type CostTrackerOptions,
  type RecordReceipt,
  isTransientSendError,
  scopeOfEvent,
} from '../../src/client/index.js';
import { type UsageEventInput, type UsageBatch } from '../../src/domain/usage.js';
import { type IngestBatch, type WireEvent, decodeBatch, shardOf } from '../../src/domain/ingest.js';
import { BUDGET_WORKFLOW_TYPE, INGEST_WORKFLOW_TYPE, ingestSignal, usageSignal } from '../../src/messages.js';

interface Call {
  workflowType: string;
  workflowId: string;
  taskQueue: string;
  args: unknown[];
  signal: unknown;
  batch: UsageBatch;
  staticSummary: string | undefined;
}

/** A stand-in for the Temporal Client: records every signalWithStart, can hold calls and fail on demand. */
class FakeTemporal {
  readonly calls: Call[] = [];
  /** Errors thrown by the next calls, in order (undefined = succeed). */
  readonly failures: (Error | undefined)[] = [];
  /** When set, every call waits for it before answering. */
  hold: Promise<void> | undefined;
  failAlways: Error | undefined;

  readonly client = {
    workflow: {
      signalWithStart: async (workflowType: string, options: Record<string, unknown>) => {
        this.calls.push({
          workflowType,
          workflowId: options.workflowId as string,
          taskQueue: options.taskQueue as string,
          args: structuredClone(options.args as unknown[]),
          signal: options.signal,
          batch: structuredClone((options.signalArgs as unknown[])[0] as UsageBatch),
          staticSummary: options.staticSummary as string | undefined,
        });
        if (this.hold) await this.hold;
        const failure = this.failAlways ?? this.failures.shift();
        if (failure) throw failure;
        return { workflowId: options.workflowId, signaledRunId: 'run-1' };
      },
    },
  } as unknown as CostTrackerClient;

  batchesOf(scope: string): UsageBatch[] {
    return this.calls.filter((c) => c.workflowId === `budget/${scope}`).map((c) => c.batch);
  }
}

/** What the SDK throws when the server cannot be reached: a ServiceError around a gRPC UNAVAILABLE. */
function unavailable(): ServiceError {
  const grpc = Object.assign(new Error('14 UNAVAILABLE: No connection established'), {
    code: 14,
    details: 'No connection established',
    metadata: {},
  });
  return new ServiceError('Failed to signalWithStart Workflow', { cause: grpc });
}

function invalidArgument(): ServiceError {
  const grpc = Object.assign(new Error('3 INVALID_ARGUMENT: payload too large'), { code: 3, details: 'payload too large', metadata: {} });
  return new ServiceError('Failed to signalWithStart Workflow', { cause: grpc });
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const NOW = Date.parse('2026-03-01T12:00:00.000Z');

function event(userId: string, over: Partial<UsageEventInput> = {}): UsageEventInput {
  return {
    provider: 'openai',
    model: 'gpt-4o-mini',
    userId,
    occurredAt: '2026-03-01T11:59:00Z',
    usage: { inputTokens: 1000, outputTokens: 100 },
    ...over,
  };
}

const trackers: CostTracker[] = [];
let ids = 0;

function tracker(fake: FakeTemporal, opts: Partial<CostTrackerOptions> = {}): CostTracker {
  const t = new CostTracker({
    client: fake.client,
    taskQueue: 'cost-guard-test',
    lingerMs: 5,
    retryBaseMs: 1,
    clock: () => NOW,
    generateId: () => `gen-${++ids}`,
    // Most tests here check per-scope batching (the `budget` target); the ingest target's own
    // routing and coalescing are tested below.
    target: 'budget',
    ...opts,
  });
  trackers.push(t);
  return t;
}

afterEach(async () => {
  // Clear linger timers of trackers a test left open (failures are the test's business, not teardown's).
  await Promise.allSettled(trackers.splice(0).map((t) => t.close()));
});

/** Waits until `predicate` holds, letting timers and I/O run; fails after a generous deadline. */
async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

describe('CostTracker batching', () => {
  it('sends a batch as soon as it reaches maxBatchSize, and the remainder on flush', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake, { maxBatchSize: 3, lingerMs: 60_000 });
    const receipts = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => t.record(event('alice', { requestId: `r${i}` }))));
    expect(fake.calls.map((c) => c.batch.events.map((e) => e.requestId))).toEqual([
      ['r1', 'r2', 'r3'],
      ['r4', 'r5', 'r6'],
    ]);
    expect(new Set(receipts.map((r) => r.batchId)).size).toBe(2);

    const seventh = t.record(event('alice', { requestId: 'r7' }));
    await until(() => t.stats().pending === 1, 'the 7th event to be queued');
    expect(fake.calls).toHaveLength(2); // held back: neither full nor lingered long enough
    await t.flush();
    expect(fake.calls).toHaveLength(3);
    expect((await seventh).requestId).toBe('r7');
  });

  it('sends a partial batch lingerMs after its first event, one signal-with-start per scope', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake, { lingerMs: 10 });
    const receipts = await Promise.all([
      t.record(event('alice', { requestId: 'a1' })),
      t.record(event('bob', { requestId: 'b1' })),
      t.record(event('alice', { requestId: 'a2' })),
    ]);
    expect(fake.calls).toHaveLength(2);
    const alice = fake.calls.find((c) => c.workflowId === 'budget/user:alice')!;
    expect(alice).toMatchObject({
      workflowType: BUDGET_WORKFLOW_TYPE,
      taskQueue: 'cost-guard-test',
      args: [{ scope: 'user:alice' }],
      signal: usageSignal,
      staticSummary: 'Cost Guard budget for user:alice',
    });
    expect(alice.batch.events.map((e) => e.requestId)).toEqual(['a1', 'a2']);
    expect(receipts).toEqual([
      { requestId: 'a1', scope: 'user:alice', batchId: alice.batch.batchId },
      { requestId: 'b1', scope: 'user:bob', batchId: fake.batchesOf('user:bob')[0]!.batchId },
      { requestId: 'a2', scope: 'user:alice', batchId: alice.batch.batchId },
    ]);
    expect(alice.batch.batchId).toMatch(new RegExp(`^${t.instanceId}:\\d+$`));
  });

  it('sends the validated events in the input shape: defaults filled, occurredAt ISO, provider normalised', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake);
    await t.record({ provider: ' OpenAI ', model: 'gpt-4o', userId: 'carol', usage: { inputTokens: 10 }, occurredAt: new Date(NOW - 1000), tags: { env: 'prod' } });
    expect(fake.calls[0]!.batch.events).toEqual([
      {
        requestId: 'gen-' + ids,
        occurredAt: new Date(NOW - 1000).toISOString(),
        provider: 'openai',
        model: 'gpt-4o',
        userId: 'carol',
        taskType: 'default',
        tags: { env: 'prod' },
        usage: { inputTokens: 10 },
      },
    ]);
  });

  it('splits a scope\'s events by size in bytes so one signal stays well below the payload limit', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake, { maxBatchBytes: 20_000, lingerMs: 60_000 });
    const big = { blob: 'x'.repeat(9_000) };
    const pending = [1, 2, 3, 4].map((i) => t.record(event('dave', { requestId: `d${i}`, metadata: big })));
    await t.flush();
    await Promise.all(pending);
    expect(fake.calls.map((c) => c.batch.events.length)).toEqual([2, 2]);
    for (const c of fake.calls) expect(JSON.stringify(c.batch).length).toBeLessThan(20_500);
  });

  it('starts one scope\'s batches in order and at most maxInFlightPerScope at a time', async () => {
    const fake = new FakeTemporal();
    const gate = deferred();
    fake.hold = gate.promise;
    const t = tracker(fake, { maxBatchSize: 1, maxInFlightPerScope: 1 });
    const pending = [1, 2, 3].map((i) => t.record(event('erin', { requestId: `e${i}` })));
    await until(() => fake.calls.length === 1, 'the first send');
    await until(() => t.stats().pending === 3, 'all three events queued');
    expect(fake.calls).toHaveLength(1); // the 2nd batch waits for the 1st
    gate.resolve();
    await Promise.all(pending);
    expect(fake.calls.map((c) => c.batch.events[0]!.requestId)).toEqual(['e1', 'e2', 'e3']);
  });

  it('names the scope of an event after its user', () => {
    expect(scopeOfEvent({ userId: 'alice@example.com' })).toBe('user:alice@example.com');
  });
});

describe('CostTracker request ids and retries', () => {
  it('generates a requestId for an event without one and reuses it, with the same batchId, when resending', async () => {
    const fake = new FakeTemporal();
    fake.failures.push(unavailable(), unavailable());
    const t = tracker(fake);
    const receipt = await t.record(event('frank'));
    expect(receipt.requestId).toBe(`gen-${ids}`);
    expect(fake.calls).toHaveLength(3);
    expect(fake.calls[1]!.batch).toEqual(fake.calls[0]!.batch);
    expect(fake.calls[2]!.batch).toEqual(fake.calls[0]!.batch);
    expect(fake.calls[0]!.batch.events[0]!.requestId).toBe(receipt.requestId);
    expect(receipt.batchId).toBe(fake.calls[0]!.batch.batchId);
    expect(t.stats()).toMatchObject({ retries: 2, sentBatches: 1, sentEvents: 1, failedBatches: 0, pending: 0 });
  });

  it('keeps a caller\'s own requestId', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake);
    const receipt = await t.record(event('frank', { requestId: 'svc-42' }));
    expect(receipt.requestId).toBe('svc-42');
    expect(fake.calls[0]!.batch.events[0]!.requestId).toBe('svc-42');
  });

  it('rejects every event of a batch with CostTrackerUnavailableError after maxSendAttempts, all with one batchId', async () => {
    const fake = new FakeTemporal();
    fake.failAlways = unavailable();
    const t = tracker(fake, { maxSendAttempts: 3, lingerMs: 60_000 });
    const a = t.record(event('gina', { requestId: 'g1' }));
    const b = t.record(event('gina', { requestId: 'g2' }));
    await expect(t.flush()).rejects.toBeInstanceOf(CostTrackerUnavailableError);
    for (const p of [a, b]) {
      const err = await p.then(
        () => expect.fail('expected a rejection'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CostTrackerUnavailableError);
      expect(err).toMatchObject({ code: 'unavailable', attempts: 3, cause: fake.failAlways });
    }
    expect(fake.calls).toHaveLength(3);
    expect(new Set(fake.calls.map((c) => c.batch.batchId)).size).toBe(1);
    expect(t.stats()).toMatchObject({ retries: 2, failedBatches: 1, sentBatches: 0, pending: 0, inFlightBatches: 0 });
  });

  it('does not retry an error a retry cannot fix', async () => {
    const fake = new FakeTemporal();
    fake.failures.push(invalidArgument());
    const t = tracker(fake);
    await expect(t.record(event('hank'))).rejects.toBeInstanceOf(CostTrackerSendError);
    expect(fake.calls).toHaveLength(1);
    expect(t.stats()).toMatchObject({ retries: 0, failedBatches: 1, pending: 0 });
  });

  it('classifies gRPC UNAVAILABLE/DEADLINE_EXCEEDED and connection errors as transient, the rest not', () => {
    expect(isTransientSendError(unavailable())).toBe(true);
    const deadline = Object.assign(new Error('4 DEADLINE_EXCEEDED'), { code: 4, details: 'deadline', metadata: {} });
    expect(isTransientSendError(new ServiceError('x', { cause: deadline }))).toBe(true);
    expect(isTransientSendError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isTransientSendError(invalidArgument())).toBe(false);
    expect(isTransientSendError(new TypeError('bug'))).toBe(false);
  });
});

describe('CostTracker validation', () => {
  it('rejects an invalid event with CostTrackerValidationError naming the field, and sends nothing', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake);
    const err = await t.record(event('ivy', { usage: { inputTokens: -1 } })).then(
      () => expect.fail('expected a rejection'),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CostTrackerValidationError);
    expect((err as CostTrackerValidationError).issues.map((i) => i.path)).toEqual(['usage.inputTokens']);
    await t.flush();
    expect(fake.calls).toHaveLength(0);
    expect(t.stats().pending).toBe(0);
  });

  it('rejects a user id that cannot name a budget scope', async () => {
    const t = tracker(new FakeTemporal());
    await expect(t.record(event('john doe'))).rejects.toMatchObject({ issues: [{ path: 'userId' }] });
  });

  it('recordMany is all or nothing: every bad event named [i].field, nothing queued', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake);
    const err = await t
      .recordMany([event('jo'), event('jo', { model: '' }), event('jo'), { ...event('jo'), usage: { inputTokens: 1, outputTokens: 1.5 } }])
      .then(
        () => expect.fail('expected a rejection'),
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(CostTrackerValidationError);
    expect((err as CostTrackerValidationError).issues.map((i) => i.path)).toEqual(['[1].model', '[3].usage.outputTokens']);
    await t.flush();
    expect(fake.calls).toHaveLength(0);
    expect(t.stats().pending).toBe(0);
  });

  it('recordMany resolves with every receipt, in order, once all batches are accepted', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake, { maxBatchSize: 4 });
    const events = Array.from({ length: 10 }, (_, i) => event(i % 2 ? 'kim' : 'lee', { requestId: `m${i}` }));
    const receipts: RecordReceipt[] = await t.recordMany(events);
    expect(receipts.map((r) => r.requestId)).toEqual(events.map((e) => e.requestId));
    expect(receipts.map((r) => r.scope)).toEqual(events.map((e) => `user:${e.userId}`));
    expect(fake.calls.flatMap((c) => c.batch.events.map((e) => e.requestId)).sort()).toEqual(events.map((e) => e.requestId).sort());
  });

  it('checks its options at construction, naming the option, the value and what it expected', () => {
    const fake = new FakeTemporal();
    expect(() => new CostTracker({ client: fake.client, taskQueue: 'q', lingerMs: -1 })).toThrow('CostTracker option lingerMs must be a whole number >= 0, got -1');
    expect(() => new CostTracker({ client: fake.client, taskQueue: 'q', maxBatchSize: 0 })).toThrow('CostTracker option maxBatchSize must be a whole number >= 1, got 0');
    expect(() => new CostTracker({ client: fake.client, taskQueue: '' })).toThrow('CostTracker option taskQueue must be a non-empty string, got ""');
    expect(() => new CostTracker({ client: {} as CostTrackerClient, taskQueue: 'q' })).toThrow(/option client must be a Temporal Client/);
  });
});

describe('CostTracker backpressure', () => {
  it('with maxPendingEvents 10, the 11th record waits until a batch is accepted', async () => {
    const fake = new FakeTemporal();
    const gate = deferred();
    fake.hold = gate.promise;
    const t = tracker(fake, { maxPendingEvents: 10 });
    const first = Array.from({ length: 10 }, (_, i) => t.record(event('max', { requestId: `p${i}` })));
    let eleventhQueued = false;
    const eleventh = t.record(event('max', { requestId: 'p10' })).then((r) => {
      eleventhQueued = true;
      return r;
    });
    await until(() => fake.calls.length === 1, 'the first batch to be sent');
    expect(fake.calls[0]!.batch.events).toHaveLength(10);
    // Several linger periods pass while the first batch is held: the 11th is neither queued nor sent.
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.calls).toHaveLength(1);
    expect(t.stats().pending).toBe(10);
    expect(eleventhQueued).toBe(false);

    gate.resolve();
    await Promise.all(first);
    expect((await eleventh).requestId).toBe('p10');
    expect(fake.calls.map((c) => c.batch.events.length)).toEqual([10, 1]);
    expect(t.stats().pending).toBe(0);
  });

  it('recordMany of more events than fit waits for room instead of failing', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake, { maxPendingEvents: 5, maxBatchSize: 2 });
    const receipts = await t.recordMany(Array.from({ length: 23 }, (_, i) => event('ned', { requestId: `n${i}` })));
    expect(receipts).toHaveLength(23);
    expect(fake.calls.reduce((n, c) => n + c.batch.events.length, 0)).toBe(23);
    expect(t.stats()).toMatchObject({ pending: 0, sentEvents: 23 });
  });
});

describe('CostTracker flush and close', () => {
  it('flush sends what is queued now and resolves once all of it is accepted', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake, { lingerMs: 60_000 });
    let accepted = 0;
    const pending = ['o1', 'o2', 'o3'].map((id, i) => t.record(event(i === 2 ? 'pat' : 'oli', { requestId: id })).then(() => accepted++));
    await until(() => t.stats().pending === 3, 'three events queued');
    expect(fake.calls).toHaveLength(0);
    await t.flush();
    expect(accepted).toBe(3);
    expect(fake.calls).toHaveLength(2);
    await Promise.all(pending);
  });

  it('flush rejects when a batch failed', async () => {
    const fake = new FakeTemporal();
    fake.failures.push(invalidArgument());
    const t = tracker(fake, { lingerMs: 60_000 });
    const p = t.record(event('quinn'));
    await until(() => t.stats().pending === 1, 'the event queued');
    await expect(t.flush()).rejects.toBeInstanceOf(CostTrackerSendError);
    await expect(p).rejects.toBeInstanceOf(CostTrackerSendError);
  });

  it('close flushes everything, leaves nothing pending, then refuses new events; closing twice is harmless', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake, { lingerMs: 60_000, maxPendingEvents: 3, maxBatchSize: 2 });
    const many = t.recordMany(Array.from({ length: 9 }, (_, i) => event('rae', { requestId: `c${i}` })));
    await until(() => t.stats().pending > 0, 'recordMany to start');
    await t.close();
    expect(await many).toHaveLength(9);
    expect(t.stats()).toMatchObject({ pending: 0, inFlightBatches: 0, sentEvents: 9 });
    await expect(t.record(event('rae'))).rejects.toBeInstanceOf(CostTrackerClosedError);
    await expect(t.recordMany([event('rae')])).rejects.toBeInstanceOf(CostTrackerClosedError);
    await expect(t.close()).resolves.toBeUndefined();
    expect(fake.calls.reduce((n, c) => n + c.batch.events.length, 0)).toBe(9);
  });
});

describe('CostTracker to the ingest shards (the default target)', () => {
  const ingestCalls = (fake: FakeTemporal) => fake.calls.map((c) => ({ ...c, batch: c.batch as unknown as IngestBatch }));

  it('sends each user to one shard, cross-user batches per shard, in the compact form; receipts name the user scope', async () => {
    const fake = new FakeTemporal();
    const t = tracker(fake, { target: 'ingest', ingestShards: 2 });
    const users = ['a', 'b', 'c', 'd', 'e', 'f'];
    const receipts = await t.recordMany(users.map((u) => event(u)));
    expect(receipts.map((r) => r.scope)).toEqual(users.map((u) => `user:${u}`));
    const calls = ingestCalls(fake);
    expect(calls.every((c) => c.workflowType === INGEST_WORKFLOW_TYPE && c.signal === ingestSignal)).toBe(true);
    for (const c of calls) {
      const shard = Number(c.workflowId.slice('ingest/'.length));
      expect(c.args).toEqual([{ shard }]);
      for (const e of decodeBatch(c.batch)) expect(shardOf((e as WireEvent).userId, 2)).toBe(shard);
    }
    expect(calls.reduce((n, c) => n + c.batch.events.length, 0)).toBe(users.length);
    expect(new Set(calls.map((c) => c.workflowId)).size).toBeLessThanOrEqual(2);
    const decoded = calls.flatMap((c) => decodeBatch(c.batch)) as WireEvent[];
    expect(decoded.find((e) => e.userId === 'a')).toEqual({
      requestId: receipts[0]!.requestId,
      occurredAt: '2026-03-01T11:59:00.000Z',
      provider: 'openai',
      model: 'gpt-4o-mini',
      userId: 'a',
      taskType: 'default',
      usage: { inputTokens: 1000, outputTokens: 100 },
    });
  });

  it('coalesces while a send to a shard is in flight: later events join one waiting batch, so signals per event fall', async () => {
    const fake = new FakeTemporal();
    const gate = deferred();
    fake.hold = gate.promise;
    const t = tracker(fake, { target: 'ingest', ingestShards: 1, lingerMs: 1 });
    const first = t.record(event('u0'));
    await new Promise((r) => setTimeout(r, 20));
    expect(fake.calls).toHaveLength(1);
    // While the first send is held, 50 events in 10 linger windows wait as ONE batch, not ten.
    const later: Promise<RecordReceipt>[] = [];
    for (let w = 0; w < 10; w++) {
      for (let i = 0; i < 5; i++) later.push(t.record(event(`u${w}-${i}`)));
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(fake.calls).toHaveLength(1);
    fake.hold = undefined;
    gate.resolve();
    await Promise.all([first, ...later]);
    expect(fake.calls).toHaveLength(2);
    expect((fake.calls[1]!.batch as unknown as IngestBatch).events).toHaveLength(50);
  });
});

describe('CostTracker never resolves an event it did not deliver', () => {
  it('under random send delays, transient failures, coalescing and backpressure, every resolved event was in an accepted signal', async () => {
    for (let trial = 0; trial < 5; trial++) {
      const delivered = new Set<string>();
      let calls = 0;
      const client = {
        workflow: {
          signalWithStart: async (_type: string, options: Record<string, unknown>) => {
            calls++;
            const batch = (options.signalArgs as unknown[])[0] as IngestBatch;
            const ids = decodeBatch(batch).map((e) => (e as WireEvent).requestId);
            await new Promise((r) => setTimeout(r, Math.random() * 15));
            if (Math.random() < 0.2) throw unavailable();
            for (const id of ids) delivered.add(id);
            return { workflowId: options.workflowId };
          },
        },
      } as unknown as CostTrackerClient;
      const t = tracker({ client } as unknown as FakeTemporal, { target: 'ingest', ingestShards: 3, lingerMs: 1, maxBatchSize: 7, maxPendingEvents: 40, maxSendAttempts: 50, retryBaseMs: 1, maxRetryDelayMs: 5 });
      const resolved: string[] = [];
      const all: Promise<void>[] = [];
      for (let i = 0; i < 400; i++) {
        all.push(t.record(event(`u${i % 13}`)).then((r) => void resolved.push(r.requestId)));
        if (i % 17 === 0) await new Promise((r) => setTimeout(r, Math.random() * 5));
      }
      await Promise.all(all);
      await t.close();
      expect(resolved).toHaveLength(400);
      const lost = resolved.filter((id) => !delivered.has(id));
      expect(lost, `trial ${trial}: ${calls} calls`).toEqual([]);
    }
  });
});
