/**
 * Alert latency: from the `record()` of the event that crosses a budget threshold to the first
 * notification the local webhook receiver gets for that incident, idle and under background traffic
 * (by default 1,000 events/s over 10,000 other users), all through the ingest tier as it ships.
 *
 * Each sample is a fresh user with a $1 daily budget (warning at 80%) and a flat-priced model
 * (500 input tokens = $0.05): 15 events ($0.75) are recorded and counted first (in the ledger and in
 * the user's budget workflow), then the clock starts just before `record()` of the 16th ($0.80) and
 * stops when the receiver has the incident's `opened` warning. The whole path is the product's:
 * CostTracker -> ingest shard (linger, then one flush: price, ledger + rollups, the materiality test)
 * -> `totals` signal to the user's budget workflow -> threshold rule -> raiseAlert (local activity)
 * -> alert workflow -> recordIncident -> recordNotification -> deliverNotification -> a Standard
 * Webhooks signed POST, verified here. Histories give each sample's stages, to say where the time goes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import cliProgress from 'cli-progress';
import { Webhook } from 'standardwebhooks';
import { incidentIdFor } from '../activities/alerts.js';
import { CostTracker } from '../src/client/index.js';
import { alertWorkflowId, budgetWorkflowId, statusQuery } from '../src/messages.js';
import { fmt, machineCpuSec, processCpuSec, sleep, until } from './lib.js';
import { startBenchStack } from './stack.js';

export interface AlertBenchOptions {
  idleSamples: number;
  loadedSamples: number;
  /** Background traffic during the loaded samples, spread over `backgroundUsers` users (a CostTracker with its defaults). */
  backgroundEventsPerSec: number;
  backgroundUsers: number;
  /** Sampling stops after this long even if fewer samples were taken (a saturated system). */
  maxScenarioSec: number;
}

/** Medians of each stage of the path, in ms (from the client's clock and the workflow histories). */
export interface AlertStages {
  /** record() called -> Temporal accepted the signal to the ingest shard (record() resolved). */
  signalAccepted: number;
  /** -> the user's budget workflow got the `totals` signal: the shard's linger, its flush (price, ledger, rollups, Redis) and the signal. */
  totalsSignalled: number;
  /** -> the alert workflow started: the budget workflow's task for the signal ran the rules and raiseAlert's signal-with-start (a local activity). */
  alertStarted: number;
  /** -> the alert workflow recorded the incident and the notification and scheduled the webhook delivery. */
  deliveryScheduled: number;
  /** -> the receiver got the signed POST. */
  received: number;
}

export interface AlertScenarioResult {
  scenario: 'idle' | 'loaded';
  /** Samples planned and taken (fewer when the time budget ran out). */
  plannedSamples: number;
  samples: number;
  /** Samples whose first 15 events were not counted, or whose notification did not arrive, in time (not in the percentiles). */
  timedOut: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  minMs: number;
  meetsTarget: boolean;
  /** Medians of each stage. */
  stages: AlertStages | null;
  /** 95th percentiles of each stage (each stage on its own: they need not come from one sample). */
  stagesP95: AlertStages | null;
  /** Background events offered per second (0 when idle). */
  backgroundTargetEventsPerSec: number;
  /** Background events Temporal accepted per second (record() resolved), over the sampling window. */
  backgroundAcceptedEventsPerSec: number;
  /** Background events the ledger gained per second over the sampling window (processed end to end). */
  backgroundLedgerEventsPerSec: number;
  /** Background events accepted by Temporal but not yet in the ledger at the end of the window. */
  backgroundBacklog: number;
  durationSec: number;
  /** CPU use over the sampling window: the worker process (100 = one core) and the whole machine (100 = every core). */
  workerCpuPct: number;
  machineCpuPct: number;
}

export interface AlertBenchResult extends AlertBenchOptions {
  /** Linger of the tracker that records the crossing event. */
  probeLingerMs: number;
  /** The ingest shards' linger (ingest.lingerMs): a flush waits at most this long for more events. */
  ingestLingerMs: number;
  shards: number;
  targetP99Ms: number;
  scenarios: AlertScenarioResult[];
}

const TARGET_P99_MS = 1000;
const PROBE_LINGER_MS = 0;
const WARMUP_TIMEOUT_MS = 60_000;
const NOTIFICATION_TIMEOUT_MS = 60_000;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The first notification of an incident (sources `alert/<incident id>/...`), with its arrival time. */
interface Arrival {
  at: number;
  kind: string;
  level: string;
}

/**
 * A Standard Webhooks consumer: verifies each POST's signature with the reference library (401 if
 * bad, counted), notes when the first notification of each incident arrived, answers 204.
 */
async function startReceiver(secret: string) {
  const wh = new Webhook(secret);
  const first = new Map<string, Arrival>();
  const waiters = new Map<string, (a: Arrival) => void>();
  let rejected = 0;
  let received = 0;
  const header = (req: IncomingMessage, name: string) => {
    const v = req.headers[name];
    return (Array.isArray(v) ? v[0] : v) ?? '';
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      let payload: { sourceId?: unknown; kind?: unknown; level?: unknown };
      try {
        payload = wh.verify(Buffer.concat(chunks), {
          'webhook-id': header(req, 'webhook-id'),
          'webhook-timestamp': header(req, 'webhook-timestamp'),
          'webhook-signature': header(req, 'webhook-signature'),
        }) as typeof payload;
      } catch {
        rejected++;
        res.writeHead(401).end();
        return;
      }
      received++;
      res.writeHead(204).end();
      // `alert/<incident id>/<run>`: the incident is the first two parts.
      const source = String(payload.sourceId).split('/').slice(0, 2).join('/');
      if (first.has(source)) return;
      const arrival = { at, kind: String(payload.kind), level: String(payload.level) };
      first.set(source, arrival);
      waiters.get(source)?.(arrival);
      waiters.delete(source);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    stats: () => ({ received, rejected }),
    /** The first notification of `sourceId`, or null after `timeoutMs`. */
    firstOf(sourceId: string, timeoutMs: number): Promise<Arrival | null> {
      const known = first.get(sourceId);
      if (known) return Promise.resolve(known);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiters.delete(sourceId);
          resolve(null);
        }, timeoutMs);
        waiters.set(sourceId, (a) => {
          clearTimeout(timer);
          resolve(a);
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function configYaml(hookUrl: string, secret: string): string {
  return `channels:
  hook: { type: webhook, url: "${hookUrl}", secret: "${secret}" }
budgets:
  - { scope: system, period: day, amount: "100000000", thresholds: { warning: 0.8, critical: 0.95 } }
  - { scope: user, period: day, amount: "1", thresholds: { warning: 0.8, critical: 0.95 } }
pricing:
  overrides:
    # 500 input tokens = $0.05: the 16th event of a user crosses 80% of $1.
    - { provider: testco, model: flat-1, inputPer1k: "0.1", outputPer1k: "0" }
    # Background traffic: 500 input tokens = $0.0000005, far from any threshold.
    - { provider: testco, model: flat-bg, inputPer1k: "0.000001", outputPer1k: "0" }
alerts:
  routing: { info: [hook], warning: [hook], critical: [hook], emergency: [hook] }
  escalation: { delay: 1h }
  forecast: { enabled: false }
reports: { enabled: false }
`;
}

type HistoryEvent = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>[number];

const machineCpu = machineCpuSec;

/** The JSON value of a history event's first payload, or undefined. */
function firstPayload(payloads: { data?: Uint8Array | null }[] | null | undefined): unknown {
  const data = payloads?.[0]?.data;
  if (!data) return undefined;
  try {
    return JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** The first `totals` signal in a budget workflow's history that counts at least `calls` calls in one of its periods. */
function totalsSignalWith(events: readonly HistoryEvent[], calls: number): HistoryEvent | undefined {
  return events.find((e) => {
    const a = e.workflowExecutionSignaledEventAttributes;
    if (a?.signalName !== 'totals') return false;
    const update = firstPayload(a.input?.payloads) as { periods?: { totals?: { calls?: number } }[] } | undefined;
    return (update?.periods ?? []).some((p) => (p.totals?.calls ?? 0) >= calls);
  });
}

/** Milliseconds on the performance.now() scale of a history event's server time. */
function eventMs(ev: HistoryEvent): number {
  const t = ev.eventTime;
  return Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6 - performance.timeOrigin;
}

interface Sample {
  userId: string;
  t0: number;
  acceptedAt: number;
  /** Null when the notification (or the warm-up before the clock started) timed out. */
  arrival: Arrival | null;
}

/** The stages of one sample from its budget and alert workflow histories (null if a mark is missing). */
async function stagesOf(client: Client, s: Sample): Promise<AlertStages | null> {
  if (!s.arrival) return null;
  const incidentId = incidentIdFor(thresholdKey(s.userId, s.t0));
  const alert = await client.workflow.getHandle(alertWorkflowId(incidentId)).fetchHistory();
  const alertEvents = alert.events ?? [];
  const started = alertEvents.find((e) => e.workflowExecutionStartedEventAttributes);
  const delivery = alertEvents.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deliverNotification');
  const budget = await client.workflow.getHandle(budgetWorkflowId(`user:${s.userId}`)).fetchHistory();
  const totals = totalsSignalWith(budget.events ?? [], 16);
  if (!started || !delivery || !totals) return null;
  const marks = [s.t0, s.acceptedAt, eventMs(totals), eventMs(started), eventMs(delivery), s.arrival.at];
  return {
    signalAccepted: marks[1]! - marks[0]!,
    totalsSignalled: marks[2]! - marks[1]!,
    alertStarted: marks[3]! - marks[2]!,
    deliveryScheduled: marks[4]! - marks[3]!,
    received: marks[5]! - marks[4]!,
  };
}

/** One percentile of each stage over the samples. */
function stageStats(stages: readonly AlertStages[], p: number): AlertStages | null {
  if (stages.length === 0) return null;
  const at = (pick: (x: AlertStages) => number) => percentile([...stages.map(pick)].sort((a, b) => a - b), p);
  return {
    signalAccepted: at((x) => x.signalAccepted),
    totalsSignalled: at((x) => x.totalsSignalled),
    alertStarted: at((x) => x.alertStarted),
    deliveryScheduled: at((x) => x.deliveryScheduled),
    received: at((x) => x.received),
  };
}

/** The condition key of a user's daily threshold incident (UTC day of `atPerf`). */
function thresholdKey(userId: string, atPerf: number): string {
  const day = new Date(performance.timeOrigin + atPerf).toISOString().slice(0, 10);
  return `user:${userId}|day|day:${day}@UTC|threshold`;
}

/** Background traffic: `rate` events/s round-robin over `users` users until stopped. */
function startBackground(tracker: CostTracker, tag: string, rate: number, users: number) {
  let running = true;
  let sent = 0;
  let accepted = 0;
  let failed = 0;
  const t0 = performance.now();
  const loop = (async () => {
    const tickMs = 20;
    while (running) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate);
      while (sent < due) {
        const i = sent++;
        tracker
          .record({ requestId: `bg-${tag}-${i}`, provider: 'testco', model: 'flat-bg', userId: `bg-${tag}-${i % users}`, usage: { inputTokens: 500, outputTokens: 0 } })
          .then(
            () => void accepted++,
            () => void failed++,
          );
      }
      await sleep(tickMs);
    }
  })();
  return {
    counts: () => ({ sent, accepted, failed }),
    async stop() {
      running = false;
      await loop;
    },
  };
}

export async function runAlertBench(baseUrl: string, redisUrl: string, opts: AlertBenchOptions): Promise<AlertBenchResult> {
  const label = 'alert latency';
  process.stderr.write(`${label}: starting Temporal, database, webhook receiver and worker\n`);
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const receiver = await startReceiver(secret);
  const dir = mkdtempSync(join(tmpdir(), 'costguard-bench-alerts-'));
  const configFile = join(dir, 'costguard.yaml');
  writeFileSync(configFile, configYaml(receiver.url, secret));
  const stack = await startBenchStack({ baseUrl, redisUrl, name: 'bench-alerts', poolMax: 2, workerEnv: { COSTGUARD_CONFIG: configFile } }).catch(async (err: unknown) => {
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const { client, pool, taskQueue, worker } = stack;
  const tag = taskQueue.slice(-6);
  const shards = stack.config.ingest.shards;
  const probe = new CostTracker({ client, taskQueue, lingerMs: PROBE_LINGER_MS, ingestShards: shards });
  // A service's tracker: every default (target ingest, linger 200 ms, 500 events a batch).
  const background = new CostTracker({ client, taskQueue, ingestShards: shards });
  try {
    let sampleSeq = 0;
    const flat = (userId: string) => ({ requestId: `${userId}-${sampleSeq++}`, provider: 'testco', model: 'flat-1', userId, usage: { inputTokens: 500, outputTokens: 0 } });

    /**
     * One sample: 15 events counted (in the rollups, and in the user's budget workflow, which each of
     * them moved by a step: 5% of $1), then the clock runs from record() of the 16th to the webhook.
     */
    const measure = async (userId: string): Promise<Sample> => {
      await probe.recordMany(Array.from({ length: 15 }, () => flat(userId)));
      const handle = client.workflow.getHandle(budgetWorkflowId(`user:${userId}`));
      try {
        await until(`15 events counted for ${userId}`, async () => {
          try {
            const s = await handle.query(statusQuery);
            return s.budgets.some((b) => b.period === 'day' && b.totals.calls >= 15);
          } catch {
            return false; // not started yet (no material change so far) or still starting
          }
        }, WARMUP_TIMEOUT_MS, 50);
      } catch {
        return { userId, t0: Number.NaN, acceptedAt: Number.NaN, arrival: null };
      }
      const event = flat(userId);
      const t0 = performance.now();
      const accepted = probe.record(event).then(() => performance.now());
      const sourceId = `alert/${incidentIdFor(thresholdKey(userId, t0))}`;
      const arrival = await receiver.firstOf(sourceId, NOTIFICATION_TIMEOUT_MS);
      return { userId, t0, acceptedAt: await accepted, arrival };
    };

    const runScenario = async (scenario: 'idle' | 'loaded', samples: number): Promise<AlertScenarioResult> => {
      let load: ReturnType<typeof startBackground> | undefined;
      // Background events in the ledger: the rollups of their model (a few rows, written with the ledger rows).
      const ledgerRows = async () => Number((await pool.query(`SELECT coalesce(sum(calls), 0) AS n FROM usage_rollup_totals WHERE scope = 'system|model:flat-bg' AND period_kind = 'day'`)).rows[0].n);
      if (scenario === 'loaded') {
        process.stderr.write(`  ${label}: background ${fmt(opts.backgroundEventsPerSec)} events/s over ${opts.backgroundUsers} users; 5 s to settle\n`);
        load = startBackground(background, tag, opts.backgroundEventsPerSec, opts.backgroundUsers);
        await sleep(5000);
      }
      const bgStart = load?.counts();
      const ledgerStart = load ? await ledgerRows() : 0;
      const windowStart = performance.now();
      const cpuStart = { worker: processCpuSec(worker?.pid), machine: machineCpu() };
      const bar = new cliProgress.SingleBar(
        { stream: process.stderr, format: `  ${label}, ${scenario} [{bar}] {value}/{total} | last {last} ms | p50 {p50} ms | max {max} ms{bg}`, hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000 },
        cliProgress.Presets.shades_classic,
      );
      // The background's rates over the window so far, refreshed every 2 s on the progress line.
      let bg = '';
      const refresh = async () => {
        if (!load || !bgStart) return;
        const sec = (performance.now() - windowStart) / 1000;
        if (sec < 1) return;
        const inLedger = await ledgerRows();
        bg = ` | background ${fmt((load.counts().accepted - bgStart.accepted) / sec)} ev/s accepted, ${fmt((inLedger - ledgerStart) / sec)} ev/s into the ledger`;
      };
      const refresher = load
        ? setInterval(() => {
            void refresh().then(() => bar.update({ bg }), () => undefined);
          }, 2000)
        : undefined;
      bar.start(samples, 0, { last: '-', p50: '-', max: '-', bg });
      const done: Sample[] = [];
      const latencies: number[] = [];
      for (let i = 0; i < samples && performance.now() - windowStart < opts.maxScenarioSec * 1000; i++) {
        const s = await measure(`alert-${tag}-${scenario}-${i}`);
        done.push(s);
        if (s.arrival) latencies.push(s.arrival.at - s.t0);
        else if (latencies.length === 0 && done.length >= 3) process.stderr.write(`\n  ${label}: ${done.length} samples and no notification yet\n`);
        const sorted = [...latencies].sort((a, b) => a - b);
        bar.update(i + 1, { last: s.arrival ? fmt(s.arrival.at - s.t0) : 'timeout', p50: fmt(percentile(sorted, 50)), max: fmt(sorted.at(-1) ?? Number.NaN), bg });
      }
      clearInterval(refresher);
      bar.stop();
      const windowSec = (performance.now() - windowStart) / 1000;
      const machineEnd = machineCpu();
      const workerCpuPct = ((processCpuSec(worker?.pid) - cpuStart.worker) / windowSec) * 100;
      const machineCpuPct = ((machineEnd.busy - cpuStart.machine.busy) / (machineEnd.total - cpuStart.machine.total)) * 100;
      let acceptedRate = 0;
      let ledgerRate = 0;
      let backlog = 0;
      if (load && bgStart) {
        const accepted = load.counts().accepted;
        const inLedger = await ledgerRows();
        acceptedRate = (accepted - bgStart.accepted) / windowSec;
        ledgerRate = (inLedger - ledgerStart) / windowSec;
        backlog = accepted - inLedger;
        await load.stop();
        const { failed } = load.counts();
        if (failed > 0) process.stderr.write(`  ${label}: ${fmt(failed)} background record() calls failed\n`);
      }
      const wrong = done.filter((s) => s.arrival && (s.arrival.kind !== 'opened' || s.arrival.level !== 'warning'));
      if (wrong.length > 0) process.stderr.write(`  ${label}: ${wrong.length} first notification(s) were not an opened warning: ${JSON.stringify(wrong.map((s) => s.arrival))}\n`);
      const stages = (await Promise.all(done.map((s) => stagesOf(client, s).catch(() => null)))).filter((x): x is AlertStages => x !== null);
      const sorted = [...latencies].sort((a, b) => a - b);
      return {
        scenario,
        plannedSamples: samples,
        samples: done.length,
        timedOut: done.length - latencies.length,
        p50Ms: percentile(sorted, 50),
        p95Ms: percentile(sorted, 95),
        p99Ms: percentile(sorted, 99),
        maxMs: sorted.at(-1) ?? Number.NaN,
        minMs: sorted[0] ?? Number.NaN,
        meetsTarget: latencies.length === done.length && done.length > 0 && percentile(sorted, 99) < TARGET_P99_MS,
        stages: stageStats(stages, 50),
        stagesP95: stageStats(stages, 95),
        backgroundTargetEventsPerSec: load ? opts.backgroundEventsPerSec : 0,
        backgroundAcceptedEventsPerSec: acceptedRate,
        backgroundLedgerEventsPerSec: ledgerRate,
        backgroundBacklog: backlog,
        durationSec: windowSec,
        workerCpuPct,
        machineCpuPct,
      };
    };

    const scenarios = [await runScenario('idle', opts.idleSamples), await runScenario('loaded', opts.loadedSamples)];
    const r = receiver.stats();
    if (r.rejected > 0) process.stderr.write(`  ${label}: the receiver refused ${r.rejected} request(s) with a bad signature\n`);
    return { ...opts, probeLingerMs: PROBE_LINGER_MS, ingestLingerMs: stack.config.ingest.lingerMs, shards, targetP99Ms: TARGET_P99_MS, scenarios };
  } finally {
    // Whatever the background tracker still holds is of no interest once the figures are taken.
    await Promise.race([Promise.allSettled([probe.close(), background.close()]), sleep(30_000)]);
    await stack.stop();
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The BENCHMARKS.md section (also printed alone by `bench/run.ts --only-alerts`). */
export function alertMarkdown(r: AlertBenchResult, chart?: string): string {
  const row = (s: AlertScenarioResult) =>
    `| ${s.scenario === 'idle' ? 'idle' : `${fmt(s.backgroundTargetEventsPerSec)} events/s background over ${fmt(r.backgroundUsers)} users`} | ${s.samples}${s.samples < s.plannedSamples ? ` of ${s.plannedSamples} (time budget)` : ''}${s.timedOut ? `, ${s.timedOut} timed out` : ''} | ${fmt(s.p50Ms)} ms | ${fmt(s.p95Ms)} ms | **${fmt(s.p99Ms)} ms** | ${fmt(s.maxMs)} ms | ${s.meetsTarget ? 'met' : '**missed**'} | ${s.scenario === 'idle' ? '-' : `${fmt(s.backgroundAcceptedEventsPerSec)} accepted by Temporal, ${fmt(s.backgroundLedgerEventsPerSec)} into the ledger (backlog at the end: ${fmt(s.backgroundBacklog)} events)`} | ${fmt(s.workerCpuPct)}% / ${fmt(s.machineCpuPct)}% |`;
  const stageRow = (s: AlertScenarioResult) =>
    ([['p50', s.stages], ['p95', s.stagesP95]] as const)
      .map(([p, st]) =>
        st
          ? `| ${s.scenario}, ${p} | ${fmt(st.signalAccepted)} | ${fmt(st.totalsSignalled)} | ${fmt(st.alertStarted)} | ${fmt(st.deliveryScheduled)} | ${fmt(st.received)} |`
          : `| ${s.scenario}, ${p} | - | - | - | - | - |`,
      )
      .join('\n');
  const loaded = r.scenarios.find((s) => s.scenario === 'loaded');
  const idle = r.scenarios.find((s) => s.scenario === 'idle');
  const slowest = (s: AlertScenarioResult | undefined) => {
    if (!s?.stages) return null;
    const names: Record<keyof AlertStages, string> = {
      signalAccepted: 'the signal to the ingest shard',
      totalsSignalled: `the ingest shard's linger (${fmt(r.ingestLingerMs)} ms) and flush (price, ledger and rollups, Redis, the materiality test) up to the \`totals\` signal`,
      alertStarted: 'the budget workflow\'s task for the `totals` signal (rules and raiseAlert, a local activity)',
      deliveryScheduled: 'the alert workflow\'s first workflow task, which records the incident and claims the notification (two local activities)',
      received: 'the delivery activity and its HTTP POST',
    };
    const [k] = (Object.entries(s.stages) as [keyof AlertStages, number][]).sort((a, b) => b[1] - a[1])[0]!;
    return names[k];
  };
  return `## Alert latency (target: p99 under 1 s with 1,000 events/s of background traffic over 10,000 users)
${chart ? `\n![alert latency](${chart})\n` : ''}
From \`record()\` of the event that crosses a user's 80% threshold to the first notification (the
incident's \`opened\` warning) received by a local Standard Webhooks receiver that verifies the
signature. One fresh user per sample: 15 events ($0.75 of a $1 daily budget, each a step of 5%)
recorded and counted first, then the clock runs from the call to \`record()\` of the 16th. Samples are
sequential. Everything goes through the ingest tier: the tracker recording the crossing event uses
linger ${r.probeLingerMs} ms (the default, 200 ms, would add up to 200 ms); the ${r.shards} ingest shards flush after at most
${fmt(r.ingestLingerMs)} ms (\`ingest.lingerMs\`, the default). The background traffic is a second tracker with every
default sending ${fmt(r.backgroundEventsPerSec)} events/s over ${fmt(r.backgroundUsers)} other users to the same worker, priced so they never move
a budget materially (so they reach no budget workflow). Same stack as the ingestion scenarios:
Temporal dev server, one worker in a child process, PostgreSQL and Redis, on 2 cores.

| scenario | samples | p50 | p95 | p99 | max | p99 < 1 s | background rate (events/s) | CPU: worker / machine |
|---|---:|---:|---:|---:|---:|---|---|---:|
${r.scenarios.map(row).join('\n')}

Where the time goes (median and 95th percentile of each stage, in ms; stage ends from the client's clock and the workflows' histories):

| scenario | record() -> accepted by the shard | -> \`totals\` signal in the budget workflow | -> alert workflow started | -> delivery scheduled | -> webhook received |
|---|---:|---:|---:|---:|---:|
${r.scenarios.map(stageRow).join('\n')}

${
    idle?.stages && loaded?.stages && slowest(idle) === slowest(loaded)
      ? `Idle and under load alike, the largest share is ${slowest(idle)}`
      : `${idle?.stages ? `Idle, the largest share is ${slowest(idle)}` : 'Idle: no stage breakdown'}${loaded?.stages ? `; under load, ${slowest(loaded)}` : ''}`
  }.
${
    loaded && loaded.backgroundLedgerEventsPerSec < 0.95 * loaded.backgroundAcceptedEventsPerSec
      ? `The background traffic was not sustained over the sampling window: the ledger took ${fmt(loaded.backgroundLedgerEventsPerSec)} events/s
of the ${fmt(loaded.backgroundAcceptedEventsPerSec)} accepted, so the backlog grew (${fmt(loaded.backgroundBacklog)} events at the end) and later samples waited longer.
`
      : ''
  }CPU is the whole machine's (the Temporal dev server, PostgreSQL and any other work on it included); the worker's
100% is one core. With ${r.scenarios.map((s) => s.samples).join(' and ')} samples, p99 is close to the maximum.
`;
}
