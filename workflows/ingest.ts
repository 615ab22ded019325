/**
 * An ingest shard: `ingest/<n>`, one of `ingest.shards`. Services signal cross-user batches of usage
 * here (CostTracker, POST /v1/usage, with signal-with-start); a user's events always come to the
 * same shard. The shard flushes large batches through ONE local activity per flush (price, ledger
 * with exact rollups, Redis; src/db/ledger.ts INGEST_SQL), which also tells each user's budget
 * workflow of its spend, only when it moved materially (src/domain/materiality.ts).
 *
 * So Temporal work follows the flush rate (a few per second per shard, whatever the number of
 * users) and budget-relevant change, not raw traffic: a user whose spend never moves materially
 * costs the budget tier nothing.
 *
 * - The signal handler only checks a batch's shape and deduplicates it by batch id (it never
 *   throws); events are validated by the flush, where an invalid one is dead-lettered and its
 *   batch-mates are recorded.
 * - A flush takes the oldest pending batches (signal order), so a flush run again after a failed
 *   workflow task has the same events or more, never others; the activity reads back what an
 *   earlier attempt committed under the flush id.
 * - Continues as new when the server suggests it, only when nothing is pending (the carried state
 *   is a few kilobytes: counters, recent batch ids, alerts raised today).
 */
import { allHandlersFinished, condition, continueAsNew, log, proxyLocalActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { INGEST_RECENT_BATCH_IDS as RECENT_BATCH_IDS, type IngestBatch, ingestBatchProblem, type IngestCounters, type IngestStatus } from '../src/domain/ingest.js';
import { ScopeAlerts } from '../src/domain/scope-alerts.js';
import { type IngestWorkflowInput, ingestSignal, ingestStatusQuery } from '../src/messages.js';

const settingsReads = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '30s' },
});

// Flushes retry for as long as it takes (PostgreSQL or Temporal unreachable must not lose accepted
// usage); failures tied to one event never reach here: the activity dead-letters the event.
// A flush is retried a few times inside its local activity (a blip); past that (PostgreSQL down for
// longer) the workflow takes over: the flush's batches go back to the front, the workflow task
// completes, and the same flush is tried again after a durable timer (FLUSH_RETRY_*). So no
// workflow task is held open for the length of an outage (a local activity that outlives its
// workflow task is kept alive by task heartbeats, and under a long outage with signals arriving
// that path lost signals in our outage test), the history shows the outage, and signals keep
// being taken in between.
const flushes = proxyLocalActivities<Activities>({
  startToCloseTimeout: '60s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '2s', maximumAttempts: 4 },
});
const FLUSH_RETRY_FIRST_MS = 1000;
const FLUSH_RETRY_MAX_MS = 5000;

// Alerts for unpriced usage and dead letters: bounded, and never allowed to hold up a flush.
const alerting = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 5 },
});


const zeroCounters = (): IngestCounters => ({ batches: 0, duplicateBatches: 0, droppedBatches: 0, events: 0, counted: 0, duplicateEvents: 0, deadLettered: 0, flushes: 0, signalsSent: 0 });

export async function ingestWorkflow(input: IngestWorkflowInput): Promise<void> {
  const { shard } = input;
  const counters: IngestCounters = { ...zeroCounters(), ...input.carried?.counters };
  let flushSeq = input.carried?.flushSeq ?? 0;
  const recent: string[] = [...(input.carried?.recentBatchIds ?? [])];
  const recentSet = new Set(recent);
  const pending: IngestBatch[] = [];
  let pendingEvents = 0;
  let oldestAtMs = 0;
  let lastFlush: IngestStatus['lastFlush'] = null;
  const alerts = new ScopeAlerts(`ingest/${shard}`, { unpricedRaised: input.carried?.raised ?? [] });

  // Handlers are registered before the first await, so signals that start the workflow find them.
  setHandler(ingestSignal, (batch) => {
    const problem = ingestBatchProblem(batch);
    if (problem) {
      counters.droppedBatches++;
      log.warn('dropped a malformed ingest batch', { shard, batchId: (batch as { batchId?: unknown } | null)?.batchId, problem });
      return;
    }
    if (recentSet.has(batch.batchId)) {
      counters.duplicateBatches++;
      return;
    }
    recentSet.add(batch.batchId);
    recent.push(batch.batchId);
    if (recent.length > RECENT_BATCH_IDS) recentSet.delete(recent.shift()!);
    if (pending.length === 0) oldestAtMs = Date.now();
    pending.push(batch);
    pendingEvents += batch.events.length;
    counters.batches++;
    counters.events += batch.events.length;
  });
  setHandler(ingestStatusQuery, (): IngestStatus => ({ shard, pendingBatches: pending.length, pendingEvents, counters: { ...counters }, lastFlush }));

  const settings = await settingsReads.loadIngestSettings();
  const chainId = `${workflowInfo().workflowId}/${workflowInfo().firstExecutionRunId}`;
  /** A flush that failed: tried again under its id, after `delayMs`. */
  let retry: { flushId: string; delayMs: number } | undefined;

  /** The oldest pending batches, up to `maxFlushEvents` events (at least one batch). */
  const take = (): IngestBatch[] => {
    const out: IngestBatch[] = [];
    let n = 0;
    while (pending.length > 0 && (out.length === 0 || n + pending[0]!.events.length <= settings.maxFlushEvents)) {
      const b = pending.shift()!;
      n += b.events.length;
      out.push(b);
    }
    pendingEvents -= n;
    oldestAtMs = pending.length > 0 ? Date.now() : 0;
    return out;
  };

  const raiseAlerts = async (result: Awaited<ReturnType<Activities['ingestFlush']>>) => {
    if (!settings.alertsEnabled) return;
    const now = Date.now();
    for (const { condition: c, provider, models } of alerts.unpricedByProvider(result.unpriced, now, result.unpricedUnlisted)) {
      try {
        await alerting.raiseAlert({ condition: c, budgetWorkflowId: null });
        alerts.unpricedProviderRaised(provider, models, now);
      } catch (err) {
        log.error('could not raise an unpriced-usage alert; retrying with the next such event', { shard, error: String(err) });
      }
    }
    const dead = alerts.deadLetters(result.deadLettered, now);
    if (dead) {
      try {
        await alerting.raiseAlert({ condition: dead, budgetWorkflowId: null });
        alerts.deadLettersRaised(now);
      } catch (err) {
        log.error('could not raise the dead-letter alert; retrying with the next dead letter', { shard, error: String(err) });
      }
    }
  };

  for (;;) {
    if (pending.length === 0) {
      await condition(() => pending.length > 0 || workflowInfo().continueAsNewSuggested);
    } else if (pendingEvents < settings.flushEvents) {
      const wait = oldestAtMs + settings.lingerMs - Date.now();
      if (wait > 0) await condition(() => pendingEvents >= settings.flushEvents, wait);
    }

    while (pending.length > 0) {
      const batches = take();
      // A flush that failed is tried again under the same id (with these batches first), so what
      // an attempt committed is read back, never counted twice.
      const flushId = retry ? retry.flushId : `${chainId}/${++flushSeq}`;
      const started = Date.now();
      let result: Awaited<ReturnType<Activities['ingestFlush']>>;
      try {
        result = await flushes.ingestFlush({ flushId, shard, batches });
      } catch (err) {
        pending.unshift(...batches);
        pendingEvents += batches.reduce((n, b) => n + b.events.length, 0);
        oldestAtMs = oldestAtMs || Date.now();
        const delay = retry ? Math.min(retry.delayMs * 2, FLUSH_RETRY_MAX_MS) : FLUSH_RETRY_FIRST_MS;
        retry = { flushId, delayMs: delay };
        counters.flushRetries = (counters.flushRetries ?? 0) + 1;
        log.warn('flush failed; trying again after a pause (nothing is lost: the events wait here)', { shard, flushId, retryInMs: delay, error: String(err) });
        await sleep(delay);
        continue;
      }
      retry = undefined;
      counters.flushes++;
      counters.counted += result.counted;
      counters.duplicateEvents += result.duplicates;
      counters.deadLettered += result.deadLettered;
      counters.signalsSent += result.signals.step + result.signals.threshold + result.signals.forecast;
      lastFlush = { flushId, atMs: Date.now(), events: result.received, durationMs: Date.now() - started };
      if (result.deadLettered > 0) log.error('usage events were set aside as dead letters (costguard deadletter list)', { shard, flushId, count: result.deadLettered });
      await raiseAlerts(result);
      // Keep flushing only what is due; fresh batches wait for their linger (or a full flush).
      if (pendingEvents < settings.flushEvents && Date.now() < oldestAtMs + settings.lingerMs) break;
    }

    if (workflowInfo().continueAsNewSuggested && pending.length === 0 && !retry) {
      // Never from inside a handler: wait for running handlers, then go if nothing arrived meanwhile.
      await condition(allHandlersFinished);
      if (pending.length === 0) {
        await continueAsNew<typeof ingestWorkflow>({
          shard,
          carried: { flushSeq, recentBatchIds: recent.slice(-RECENT_BATCH_IDS), counters, raised: alerts.carry().unpricedRaised },
        });
      }
    }
  }
}

