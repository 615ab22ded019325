/**
 * `costguard simulate`: sends synthetic LLM usage through a CostTracker, as a service would, at a
 * steady rate across N users, and reports what was accepted and what it should cost. The expected
 * cost is computed here with the same pricing engine the worker uses, so it can be compared with
 * the ledger and the budget workflows afterwards.
 */
import { seededRandom } from '../lib/random.js';
import cliProgress from 'cli-progress';
import { CostTracker } from '../client/cost-tracker.js';
import { connectTemporal } from '../client/connect.js';
import type { Config } from '../config/index.js';
import { type CostGuardError, UnavailableError, ValidationError, type FieldIssue } from '../domain/errors.js';
import { Dec, formatMoney, normalizeAmount, parseAmount } from '../domain/money.js';
import type { PricingEngine } from '../domain/pricing.js';
import type { UsageEventInput } from '../domain/usage.js';
import { createLogger } from '../lib/logger.js';
import { createPricingEngine } from '../pricing/index.js';

export interface SimulateOptions {
  users: string;
  rate: string;
  duration: string;
  seed?: string;
}

export interface SimulationPlan {
  users: number;
  /** Events per second, in total across all users. */
  rate: number;
  durationMs: number;
  seed: number;
}

export interface SimulationProgress {
  planned: number;
  sent: number;
  accepted: number;
  failed: number;
  elapsedMs: number;
}

export interface SimulationSummary extends SimulationProgress {
  users: number;
  rate: number;
  durationMs: number;
  seed: number;
  /** Accepted events per second of wall time. */
  eventsPerSecond: number;
  /** Exact cost of the accepted events, priced here with the pricing engine. */
  expectedCostUsd: string;
  unpricedEvents: number;
  byProvider: Record<string, { events: number; costUsd: string }>;
  interrupted: boolean;
  firstError: string | null;
}

/** A small, realistic mix across providers (weights are relative frequencies). */
export const SIMULATED_MODELS = [
  { provider: 'openai', model: 'gpt-4o-mini', weight: 30 },
  { provider: 'openai', model: 'gpt-4o', weight: 15 },
  { provider: 'openai', model: 'gpt-4.1-mini', weight: 10 },
  { provider: 'anthropic', model: 'claude-3-5-haiku-20241022', weight: 12 },
  { provider: 'anthropic', model: 'claude-sonnet-4-20250514', weight: 10 },
  { provider: 'google', model: 'gemini-2.0-flash', weight: 15 },
  { provider: 'google', model: 'gemini-2.5-pro', weight: 8 },
] as const;

const TASK_TYPES = ['chat', 'summarise', 'classify', 'code', 'extract'] as const;
const MAX_USERS = 100_000;
const MAX_RATE = 100_000;
const MAX_DURATION_MS = 24 * 3_600_000;
/** Events handed to the tracker but not yet accepted, past which the simulator stops generating. */
const MAX_OUTSTANDING = 50_000;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `30s`, `2m`, `1h`, `500ms`, or a plain number of seconds; NaN otherwise. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  return m ? Number(m[1]) * UNIT_MS[m[2] ?? 's']! : Number.NaN;
}

export function parseSimulateOptions(opts: SimulateOptions, defaultSeed: number): SimulationPlan {
  const issues: FieldIssue[] = [];
  const users = Number(opts.users);
  if (!/^\d+$/.test(opts.users.trim()) || users < 1 || users > MAX_USERS) {
    issues.push({ path: '--users', message: `must be a whole number from 1 to ${MAX_USERS}, got ${JSON.stringify(opts.users)}` });
  }
  const rate = Number(opts.rate);
  if (!/^\d+(\.\d+)?$/.test(opts.rate.trim()) || !(rate > 0) || rate > MAX_RATE) {
    issues.push({ path: '--rate', message: `must be a number of events per second above 0 and at most ${MAX_RATE}, got ${JSON.stringify(opts.rate)}` });
  }
  const durationMs = parseDuration(opts.duration);
  if (!(durationMs > 0) || durationMs > MAX_DURATION_MS) {
    issues.push({ path: '--duration', message: `must be a duration such as 30s, 2m or 1h (at most 24h), got ${JSON.stringify(opts.duration)}` });
  }
  let seed = defaultSeed;
  if (opts.seed !== undefined) {
    seed = Number(opts.seed);
    if (!/^\d+$/.test(opts.seed.trim()) || !Number.isSafeInteger(seed)) issues.push({ path: '--seed', message: `must be a whole number, got ${JSON.stringify(opts.seed)}` });
  }
  if (issues.length > 0) throw new ValidationError(issues, 'invalid simulate options');
  return { users, rate, durationMs, seed };
}

/** Synthetic calls: users `sim-user-1..N`, the model mix above, skewed token counts, some prompt-cache hits. */

export function syntheticUsage(plan: Pick<SimulationPlan, 'users' | 'seed'>): (occurredAt: string) => UsageEventInput {
  const random = seededRandom(plan.seed);
  const totalWeight = SIMULATED_MODELS.reduce((n, m) => n + m.weight, 0);
  return (occurredAt) => {
    let pick = random() * totalWeight;
    const model = SIMULATED_MODELS.find((m) => (pick -= m.weight) < 0) ?? SIMULATED_MODELS[0];
    const inputTokens = 100 + Math.floor(random() ** 2 * 6000);
    const cached = model.provider !== 'google' && random() < 0.3 ? Math.floor(inputTokens * random() * 0.8) : 0;
    return {
      provider: model.provider,
      model: model.model,
      userId: `sim-user-${1 + Math.floor(random() * plan.users)}`,
      taskType: TASK_TYPES[Math.floor(random() * TASK_TYPES.length)]!,
      occurredAt,
      usage: { inputTokens, cacheReadTokens: cached, outputTokens: 20 + Math.floor(random() ** 2 * 1200) },
      tags: { source: 'costguard-simulate' },
    };
  };
}

export interface SimulationDeps {
  tracker: Pick<CostTracker, 'record' | 'flush'>;
  pricing: PricingEngine;
  clock?: () => number;
  /** Aborting stops generating; what was sent is still flushed and counted. */
  signal?: AbortSignal;
  onProgress?: (p: SimulationProgress) => void;
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Sends `rate` events per second for `durationMs` (or until aborted), then waits for every send to settle. */
export async function runSimulation(deps: SimulationDeps, plan: SimulationPlan): Promise<SimulationSummary> {
  const clock = deps.clock ?? Date.now;
  const next = syntheticUsage(plan);
  const planned = Math.max(1, Math.round((plan.rate * plan.durationMs) / 1000));
  const tickMs = Math.min(100, Math.max(10, Math.floor(1000 / plan.rate)));
  const outstanding = new Set<Promise<void>>();
  const byProvider = new Map<string, { events: number; cost: Dec }>();
  let total = new Dec(0);
  let unpricedEvents = 0;
  let sent = 0;
  let accepted = 0;
  let failed = 0;
  let firstError: string | null = null;
  const start = clock();
  const progress = (): SimulationProgress => ({ planned, sent, accepted, failed, elapsedMs: clock() - start });

  const send = () => {
    const now = clock();
    const event = next(new Date(now).toISOString());
    const price = deps.pricing.price({
      provider: event.provider,
      model: event.model,
      occurredAtMs: now,
      usage: { inputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, cacheWrite1hTokens: 0, outputTokens: 0, reasoningTokens: 0, ...event.usage },
    });
    sent++;
    const p: Promise<void> = deps.tracker.record(event).then(
      () => {
        accepted++;
        const cost = parseAmount(price.costUsd);
        total = total.plus(cost);
        if (!price.priced) unpricedEvents++;
        const entry = byProvider.get(event.provider) ?? { events: 0, cost: new Dec(0) };
        entry.events++;
        entry.cost = entry.cost.plus(cost);
        byProvider.set(event.provider, entry);
      },
      (err: unknown) => {
        failed++;
        firstError ??= err instanceof Error ? err.message : String(err);
      },
    );
    outstanding.add(p);
    void p.finally(() => outstanding.delete(p));
  };

  while (sent < planned && !deps.signal?.aborted) {
    // Catch up to the schedule (the first event goes at once), within the outstanding bound.
    const due = Math.min(planned, Math.floor((plan.rate * (clock() - start)) / 1000) + 1);
    while (sent < due && outstanding.size < MAX_OUTSTANDING) send();
    deps.onProgress?.(progress());
    if (sent < planned) await pause(tickMs, deps.signal);
  }
  await deps.tracker.flush().catch(() => undefined); // failures are counted per event above
  await Promise.allSettled([...outstanding]);
  const end = progress();
  deps.onProgress?.(end);
  return {
    ...end,
    users: plan.users,
    rate: plan.rate,
    durationMs: plan.durationMs,
    seed: plan.seed,
    eventsPerSecond: end.elapsedMs > 0 ? Math.round((accepted / end.elapsedMs) * 10_000) / 10 : accepted,
    expectedCostUsd: normalizeAmount(total),
    unpricedEvents,
    byProvider: Object.fromEntries([...byProvider].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, { events: v.events, costUsd: normalizeAmount(v.cost) }])),
    interrupted: Boolean(deps.signal?.aborted) && sent < planned,
    firstError,
  };
}

/** A progress bar on a terminal; on a pipe or file, a plain line every few seconds. */
interface ProgressReporter {
  update(p: SimulationProgress): void;
  /** Ends the display for good (later updates are ignored) and prints `message` on a line of its own. */
  stop(message?: string): void;
}

function progressReporter(stream: NodeJS.WriteStream): ProgressReporter {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: 'simulate [{bar}] {percentage}% | {value}/{total} sent | {accepted} accepted | {failed} failed | {eps} ev/s',
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    let stopped = false;
    return {
      update(p) {
        if (stopped) return;
        const payload = { accepted: p.accepted, failed: p.failed, eps: p.elapsedMs > 0 ? ((p.accepted * 1000) / p.elapsedMs).toFixed(1) : '0.0' };
        if (!started) {
          bar.start(p.planned, p.sent, payload);
          started = true;
        } else {
          bar.update(p.sent, payload);
        }
      },
      stop(message) {
        if (!stopped && started) bar.stop();
        stopped = true;
        if (message) stream.write(`${message}\n`);
      },
    };
  }
  let lastAt = Number.NEGATIVE_INFINITY;
  let last = '';
  return {
    update(p) {
      const done = p.sent === p.planned && p.accepted + p.failed === p.sent;
      if (p.elapsedMs - lastAt < 5_000 && !done) return;
      const line = `simulate: ${Math.floor((p.sent / p.planned) * 100)}% ${p.sent}/${p.planned} sent, ${p.accepted} accepted, ${p.failed} failed`;
      if (line === last) return;
      lastAt = p.elapsedMs;
      last = line;
      stream.write(`${line}, ${(p.elapsedMs / 1000).toFixed(1)} s\n`);
    },
    stop(message) {
      if (message) stream.write(`${message}\n`);
    },
  };
}

/** The command: connect, simulate with a progress display on stderr, stop early on Ctrl-C (flushing what was sent). */
export async function runSimulateCommand(config: Config, opts: SimulateOptions): Promise<SimulationSummary> {
  const plan = parseSimulateOptions(opts, Date.now() % 2_147_483_647);
  const { client, connection } = await connectTemporal(config);
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, undefined, config.logFormat);
  const tracker = new CostTracker({ client, taskQueue: config.temporal.taskQueue, ingestShards: config.ingest.shards, logger });
  const controller = new AbortController();
  const reporter = progressReporter(process.stderr);
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130); // a second Ctrl-C: stop now
    reporter.stop('stopping: waiting for the events already sent to be accepted (Ctrl-C again to quit at once)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    return await runSimulation({ tracker, pricing: createPricingEngine(config), signal: controller.signal, onProgress: (p) => reporter.update(p) }, plan);
  } finally {
    reporter.stop();
    process.off('SIGINT', onSigint);
    await tracker.close().catch(() => undefined);
    await connection.close();
  }
}

/** Non-null when the run should end with a non-zero exit: some events were not accepted. */
export function simulationError(summary: SimulationSummary): CostGuardError | null {
  if (summary.failed === 0) return null;
  return new UnavailableError(`${summary.failed} of ${summary.sent} events were not accepted: ${summary.firstError ?? 'unknown error'}`);
}

export function renderSimulationText(s: SimulationSummary): string {
  const providers = Object.entries(s.byProvider)
    .map(([p, v]) => `${p} ${v.events} (${formatMoney(v.costUsd)})`)
    .join(', ');
  return [
    `Simulated LLM usage for ${s.users} user(s) at ${s.rate} events/s${s.interrupted ? ' (interrupted)' : ''}, seed ${s.seed}`,
    `  sent:          ${s.sent} of ${s.planned} planned`,
    `  accepted:      ${s.accepted}`,
    `  failed:        ${s.failed}${s.firstError ? ` (first error: ${s.firstError})` : ''}`,
    `  elapsed:       ${(s.elapsedMs / 1000).toFixed(1)} s, ${s.eventsPerSecond} events/s accepted`,
    `  expected cost: ${formatMoney(s.expectedCostUsd)} (exact: ${s.expectedCostUsd} USD)${s.unpricedEvents ? `, ${s.unpricedEvents} unpriced` : ''}`,
    ...(providers ? [`  by provider:   ${providers}`] : []),
  ].join('\n');
}
