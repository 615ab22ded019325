/**
 * `npm run bench`: runs the benchmarks and writes their figures to BENCHMARKS.md (with the
 * command, the machine, the date and each target met or missed) and bench/results/latest.json,
 * plus SVG charts. Progress goes to stderr.
 *
 *   npm run bench                 # everything, full size (about 20 minutes)
 *   npm run bench -- --quick      # smaller runs (a smoke test of the benchmark itself)
 *   npx tsx bench/run.ts --only-ingest [--quick]
 *                                 # only the ingestion scenarios and the direct path: prints, writes nothing
 *   npx tsx bench/run.ts --only-alerts [--quick]
 *                                 # only the alert latency benchmark: prints its section; full size, it
 *                                 # also replaces its own section of BENCHMARKS.md, latest.json and chart
 *   npx tsx bench/run.ts --only-simulate [--quick]
 *                                 # only npm start + costguard simulate: prints, writes nothing
 *   npx tsx bench/run.ts --only-preflight [--quick]
 *                                 # only the pre-flight check latency (bench/preflight.ts): prints its
 *                                 # section; full size, it also replaces (or adds) its section of BENCHMARKS.md
 *   --no-wrappers                 # skip the SDK wrapper overhead section (bench/wrappers.ts)
 *   --no-cache                    # skip the response cache hit latency section (bench/cache.ts)
 *   npx tsx bench/run.ts --only-cache      # only bench/cache.ts: prints, and replaces (or adds) its section
 *   npx tsx bench/run.ts --only-wrappers   # only bench/wrappers.ts: the same
 *   --no-otlp                     # skip the OTLP receiver section (bench/otlp.ts)
 *   npx tsx bench/run.ts --only-otlp       # only bench/otlp.ts: prints, and replaces (or adds) its section
 *
 * BENCHMARKS.md keeps everything below its notes marker (the hand-written reading of the figures).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../src/lib/paths.js';
import { type AlertBenchOptions, type AlertBenchResult, alertMarkdown, runAlertBench } from './alerts.js';
import { barChart } from './chart.js';
import { type DirectResult, type IngestResult, type IngestScenario, runDirectBench, runIngestBench } from './ingest.js';
import { type LedgerBenchResult, runIngestFlushBench, runLedgerBench } from './ledger.js';
import { fmt, loadAverages, machine, trackChild } from './lib.js';
import { type PreflightBenchResult, preflightMarkdown, runPreflightBench } from './preflight.js';
import { type PricingBenchResult, runPricingBench } from './pricing.js';
import { SIMULATE_TARGET_SHARE, type SimulateBenchResult, runSimulateBench } from './simulate.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/costguard';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const root = projectRoot();
const started = performance.now();

/** Progress on stderr, with the time since the start. */
function step(message: string): void {
  const s = Math.round((performance.now() - started) / 1000);
  process.stderr.write(`[bench ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s] ${message}\n`);
}

// ---------------------------------------------------------------------------------------------
// Sizes and targets

/** The issue's scenarios: about the same offered load (10,000 events/s), spread over ever more users. */
const INGEST_SCENARIOS: IngestScenario[] = [
  { users: 200, ratePerUser: 50, durationSec: quick ? 5 : 20, halfDurationSec: quick ? 5 : 15 },
  { users: 2000, ratePerUser: 5, durationSec: quick ? 5 : 20, halfDurationSec: quick ? 5 : 15 },
  { users: 20000, ratePerUser: 0.5, durationSec: quick ? 5 : 20, halfDurationSec: quick ? 5 : 15 },
];
const DIRECT_EVENTS = quick ? 10_000 : 50_000;
/**
 * "Whatever the step": the 200- and 2,000-user scenarios again with a step of 1% of the smallest
 * budget instead of 5% (at 200 users a user has about 80 events in a flush, so it can signal at most
 * once per 80 events whatever the step; at 2,000 users, once per 8).
 */
const STEP_SWEEP: IngestScenario[] = [
  { users: 200, ratePerUser: 50, durationSec: quick ? 5 : 20, halfDurationSec: quick ? 5 : 10, stepFraction: 0.01 },
  { users: 2000, ratePerUser: 5, durationSec: quick ? 5 : 20, halfDurationSec: quick ? 5 : 10, stepFraction: 0.01 },
];

const alertOptions: AlertBenchOptions = {
  idleSamples: quick ? 10 : 50,
  loadedSamples: quick ? 10 : 50,
  backgroundEventsPerSec: 1000,
  backgroundUsers: 10_000,
  maxScenarioSec: quick ? 120 : 480,
};

const SIMULATE = { users: 1000, rate: 500, durationSec: quick ? 15 : 60 };
const PREFLIGHT = { ratePerSec: 2000, durationSec: quick ? 5 : 30, users: 100, teams: 10 };
const PREFLIGHT_HEADING = '## Pre-flight checks';
const WRAPPER_ARGS = quick ? ['--calls', '50', '--rounds', '3'] : [];

const TARGETS = {
  /** Sustained events/s at 20,000 users, as a share of the figure at 200 users. */
  manyUsersShare: 0.8,
  /** Sustained events/s over the direct path's, at every user count. */
  overDirect: 2,
  workflowTasksPer1000: 10,
  exactStatusP99Ms: 5000,
  alertP99Ms: 1000,
  simulateShare: SIMULATE_TARGET_SHARE,
  stretchEventsPerSec: 10_000,
};

// ---------------------------------------------------------------------------------------------
// Runs

async function runIngest(): Promise<{ ingest: IngestResult[]; direct: DirectResult[]; sweep: IngestResult[] }> {
  const ingest: IngestResult[] = [];
  const direct: DirectResult[] = [];
  const sweep: IngestResult[] = [];
  for (const scenario of INGEST_SCENARIOS) {
    step(`ingest tier: ${fmt(scenario.users)} users x ${scenario.ratePerUser}/s`);
    ingest.push(await runIngestBench(databaseUrl, redisUrl, scenario));
    step(`direct path: ${fmt(scenario.users)} users`);
    direct.push(await runDirectBench(databaseUrl, redisUrl, DIRECT_EVENTS, scenario.users));
  }
  for (const scenario of STEP_SWEEP) {
    step(`ingest tier: ${fmt(scenario.users)} users x ${scenario.ratePerUser}/s, step ${(scenario.stepFraction ?? 0) * 100}%`);
    sweep.push(await runIngestBench(databaseUrl, redisUrl, scenario));
  }
  return { ingest, direct, sweep };
}

interface WrapperResult {
  command: string;
  output: string;
  ok: boolean;
}

/** bench/cache.ts in a child process of its own: cache hit latency against a plain Redis GET, same run. */
async function runCache(): Promise<WrapperResult> {
  const child = trackChild(spawn(process.execPath, ['--import', 'tsx', 'bench/cache.ts'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, REDIS_URL: redisUrl } }));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { command: 'npx tsx bench/cache.ts', output: out.trim(), ok: code === 0 };
}

/** bench/otlp.ts in a child process of its own (the API and its load generator in one process). */
async function runOtlp(): Promise<WrapperResult> {
  const child = trackChild(spawn(process.execPath, ['--import', 'tsx', 'bench/otlp.ts'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { command: 'npx tsx bench/otlp.ts', output: out.trim(), ok: code === 0 };
}

const OTLP_HEADING = '## OTLP receiver throughput';
function otlpMarkdown(o: WrapperResult): string {
  return `${OTLP_HEADING} (target: spans/s through POST /v1/traces at least 0.8x events/s through POST /v1/usage)\n\n\`${o.command}\`:\n\n${o.ok ? o.output : `The run failed:\n\n\`\`\`\n${o.output.slice(-3000)}\n\`\`\``}\n`;
}

/** bench/wrappers.ts in a child process of its own (it starts the protocol server in another). */
async function runWrappers(): Promise<WrapperResult> {
  const args = ['--import', 'tsx', 'bench/wrappers.ts', ...WRAPPER_ARGS];
  const child = trackChild(spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  return { command: `npx tsx bench/wrappers.ts${WRAPPER_ARGS.length ? ` ${WRAPPER_ARGS.join(' ')}` : ''}`, output: out.trim(), ok: code === 0 };
}

// ---------------------------------------------------------------------------------------------
// Markdown

const ms = (x: number) => (Number.isFinite(x) ? `${fmt(x)} ms` : '-');
const usd = (x: number) => `$${x.toFixed(x !== 0 && Math.abs(x) < 0.01 ? 5 : 3)}`;
const met = (ok: boolean) => (ok ? 'met' : '**missed**');
const ratio = (x: number) => `${x.toFixed(2)}x`;
const scenarioName = (r: IngestScenario) => `${fmt(r.users)} users x ${r.ratePerUser}/s`;

function checks(ingest: IngestResult[], direct: DirectResult[]) {
  const base = ingest.find((r) => r.users === 200);
  const many = ingest.find((r) => r.users === 20000);
  return ingest.map((r, i) => {
    const d = direct[i]!;
    return {
      r,
      d,
      overDirect: r.saturation.sustainedEventsPerSec / d.eventsPerSec,
      ofBase: base ? r.saturation.sustainedEventsPerSec / base.saturation.sustainedEventsPerSec : Number.NaN,
      manyUsersOk: r !== many || !base || r.saturation.sustainedEventsPerSec >= TARGETS.manyUsersShare * base.saturation.sustainedEventsPerSec,
      directOk: r.saturation.sustainedEventsPerSec >= TARGETS.overDirect * d.eventsPerSec,
      tasksOk: r.workflowTasks.per1000 <= TARGETS.workflowTasksPer1000,
      statusOk: r.half.exactStatusSamples > 0 && r.half.exactStatusUnseen === 0 && r.half.exactStatusP99Ms < TARGETS.exactStatusP99Ms,
      lagOk: r.lag.maxUsd < r.stepUsd,
    };
  });
}

function scenarioTable(c: ReturnType<typeof checks>[number], base: IngestResult | undefined): string {
  const { r, d } = c;
  const cpu = r.cpuUsPerEvent;
  const rows: string[][] = [
    ['offered (saturation phase)', `${fmt(r.saturation.offeredEventsPerSec)} events/s for ${r.durationSec} s (${fmt(r.saturation.events)} events)`, '', ''],
    [
      '**sustained** (first record() to the last event in the ledger)',
      `**${fmt(r.saturation.sustainedEventsPerSec)} events/s** (drain after the last accepted: ${r.saturation.drainSeconds.toFixed(1)} s)`,
      `>= ${TARGETS.overDirect}x the direct path${r.users === 20000 && base ? `; >= ${TARGETS.manyUsersShare * 100}% of 200 users (${fmt(TARGETS.manyUsersShare * base.saturation.sustainedEventsPerSec)})` : ''}; stretch ${fmt(TARGETS.stretchEventsPerSec)}`,
      `${ratio(c.overDirect)} the direct path: ${met(c.directOk)}${r.users === 20000 && base ? `; ${(c.ofBase * 100).toFixed(0)}% of 200 users: ${met(c.manyUsersOk)}` : ''}; stretch: ${met(r.saturation.sustainedEventsPerSec >= TARGETS.stretchEventsPerSec)}`,
    ],
    ['direct path, same users (INSERT + ZADD per event, 16 in flight)', `${fmt(d.eventsPerSec)} events/s`, '', ''],
    [
      'signals per 1,000 events',
      `${r.signals.per1000.toFixed(1)} (ingest ${r.signals.ingestPer1000.toFixed(1)}, ${fmt(r.signals.eventsPerIngestSignal)} events a signal, ${fmt(r.signals.flushes)} flushes of ${fmt(r.signals.eventsPerFlush)} events; budget \`totals\` ${r.signals.totalsPer1000.toFixed(1)}${r.signals.totalsFromShardCounters === r.signals.totals ? '' : `; shards counted ${fmt(r.signals.totalsFromShardCounters)}`})`,
      '',
      '',
    ],
    [
      'workflow tasks per 1,000 events',
      `**${r.workflowTasks.per1000.toFixed(1)}** (ingest shards ${r.workflowTasks.ingestPer1000.toFixed(1)} over ${r.history.runs.ingest} runs; budget workflows ${r.workflowTasks.budgetPer1000.toFixed(1)} over ${fmt(r.history.runs.userBudget)} user + ${r.history.runs.aggregateBudget} system; alerts ${r.workflowTasks.otherPer1000.toFixed(1)}; ${r.history.failedOrTimedOutTasks} failed or timed out)`,
      `<= ${TARGETS.workflowTasksPer1000}`,
      met(c.tasksOk),
    ],
    ['record() -> accepted, p50 / p99, saturation', `${ms(r.saturation.acceptedP50Ms)} / ${ms(r.saturation.acceptedP99Ms)}`, '', ''],
    ['record() -> accepted, p50 / p99, half saturation', `${ms(r.half.acceptedP50Ms)} / ${ms(r.half.acceptedP99Ms)} (${fmt(r.half.offeredEventsPerSec)} events/s offered, ${fmt(r.half.sustainedEventsPerSec)} sustained)`, '', ''],
    [
      'exact status (record() resolved -> counted in `readBudgetStatus().live`), p50 / p99, half saturation',
      `${ms(r.half.exactStatusP50Ms)} / **${ms(r.half.exactStatusP99Ms)}** (${fmt(r.half.exactStatusSamples)} events of ${r.half.watchedUsers} watched users, ${fmt(r.half.statusReads)} reads${r.half.statusReadP50Ms !== undefined ? `; one read took ${ms(r.half.statusReadP50Ms)} / ${ms(r.half.statusReadP99Ms)} p50 / p99, and to the start of the read that saw the event: ${ms(r.half.exactStatusToReadStartP50Ms)} / ${ms(r.half.exactStatusToReadStartP99Ms)}` : ''}${r.half.exactStatusUnseen ? `, **${r.half.exactStatusUnseen} never seen**` : ''}${r.half.statusReadErrors ? `; ${fmt(r.half.statusReadErrors)} reads failed (after up to ${ms(r.half.failedReadMaxMs)}), read again: "${r.half.statusReadError}"` : ''})`,
      `p99 < ${fmt(TARGETS.exactStatusP99Ms)} ms`,
      met(c.statusOk),
    ],
    [
      'budget workflow day spend behind the ledger, every flush complete: max / p99',
      r.lag.usersWithWorkflow === 0
        ? `no user budget workflow (no user's spend moved by a step of ${usd(r.stepUsd)})`
        : `${usd(r.lag.maxUsd)} / ${usd(r.lag.p99Usd)} over ${fmt(r.lag.usersWithWorkflow)} workflows (${fmt(r.lag.withinStep)} within the step${r.lag.ahead ? `, ${r.lag.ahead} ahead of the ledger` : ''}); during the half-saturation load, live - workflow at most ${usd(r.half.lagDuringLoadMaxUsd)}`,
      `< the step, ${usd(r.stepUsd)} (${(r.stepFraction * 100).toFixed(0)}% of $${(r.stepUsd / r.stepFraction).toFixed(0)})`,
      met(c.lagOk),
    ],
    [
      'status reads refused after the load (a budget workflow still starting), retried',
      r.refusedAfterLoad.count === 0 ? 'none' : `${fmt(r.refusedAfterLoad.count)} refusals, answered after at most ${ms(r.refusedAfterLoad.maxWaitMs)}: "${r.refusedAfterLoad.example}"`,
      '',
      '',
    ],
    ['Temporal server CPU per event', `${fmt(r.temporalCpuUsPerEvent)} us`, '', ''],
    ['history bytes per event (all workflows)', `${fmt(r.historyBytesPerEvent)} B (ingest shards ${fmt(r.history.bytes.ingest / r.saturation.events)} B)`, '', ''],
    [
      'CPU per event by process, saturation phase',
      `worker ${fmt(cpu.worker)} us, Temporal ${fmt(cpu.temporal)}, PostgreSQL ${fmt(cpu.postgres)}, Redis ${fmt(cpu.redis)}, load generator ${fmt(cpu.bench)}, other processes ${fmt(cpu.other)}; machine ${(r.cpu.machineBusyShare * 100).toFixed(0)}% busy over ${r.cpu.windowSec.toFixed(1)} s`,
      '',
      '',
    ],
    ['worker peak RSS', `${fmt(r.workerPeakRssMiB)} MiB`, '', ''],
    [
      'signal JSON bytes per event (one 500-event signal to a shard)',
      `${fmt(r.signalBytes.objectBytesPerEvent)} B as objects \`{batchId, events}\` -> ${fmt(r.signalBytes.compactBytesPerEvent)} B compact (${((r.signalBytes.compactBytesPerEvent / r.signalBytes.objectBytesPerEvent) * 100).toFixed(0)}%; ${r.signalBytes.users} users in it)`,
      '',
      '',
    ],
    [
      'exact: ledger = rollups (system, every user) = live status (sample) = system workflow',
      `${r.exact.ok ? 'yes' : '**NO**'} (${fmt(r.exact.ledgerCount)} rows; users ${fmt(r.exact.usersChecked - r.exact.usersMismatched)}/${fmt(r.exact.usersChecked)}; live ${r.exact.liveChecked - r.exact.liveMismatched}/${r.exact.liveChecked}; system rollups ${r.exact.ledgerEqualsSystemRollups ? 'equal' : 'DIFFER'}; system workflow ${r.exact.systemWorkflowEqualsLedger ? 'equal' : 'DIFFERS'})`,
      'exact',
      met(r.exact.ok),
    ],
  ];
  return `### ${scenarioName(r)} (${fmt(r.users * r.ratePerUser)} events/s offered)

| measure | value | target | |
|---|---|---|---|
${rows.map((x) => `| ${x.join(' | ')} |`).join('\n')}
`;
}

function ingestMarkdown(ingest: IngestResult[], direct: DirectResult[]): string {
  const cs = checks(ingest, direct);
  const base = ingest.find((r) => r.users === 200);
  const first = ingest[0]!;
  const summary = cs
    .map(
      ({ r, d, overDirect }) =>
        `| ${scenarioName(r)} | ${fmt(r.saturation.offeredEventsPerSec)} | **${fmt(r.saturation.sustainedEventsPerSec)}** | ${fmt(d.eventsPerSec)} (${ratio(overDirect)}) | ${r.signals.per1000.toFixed(1)} | ${r.workflowTasks.per1000.toFixed(1)} | ${ms(r.saturation.acceptedP50Ms)} / ${ms(r.saturation.acceptedP99Ms)} | ${ms(r.half.exactStatusP50Ms)} / ${ms(r.half.exactStatusP99Ms)} | ${r.lag.usersWithWorkflow ? `${usd(r.lag.maxUsd)} / ${usd(r.stepUsd)}` : '- (none)'} | ${fmt(r.temporalCpuUsPerEvent)} | ${fmt(r.historyBytesPerEvent)} | ${fmt(r.workerPeakRssMiB)} MiB | ${r.exact.ok ? 'yes' : '**NO**'} |`,
    )
    .join('\n');
  const cpuRows = ingest
    .map((r) => {
      const c = r.cpuUsPerEvent;
      const stack = c.worker + c.temporal + c.postgres + c.redis;
      return `| ${scenarioName(r)} | ${fmt(c.worker)} | ${fmt(c.temporal)} | ${fmt(c.postgres)} | ${fmt(c.redis)} | ${fmt(c.bench)} | ${fmt(c.other)} | ${fmt(stack + c.bench)} | ${fmt(2e6 / (stack + c.bench))} | ${fmt(2e6 / stack)} |`;
    })
    .join('\n');
  return `## Ingestion through the ingest tier (targets: see each scenario)

Synthetic users record usage through \`CostTracker\` with every default (target \`ingest\`: compact
cross-user batches to the ${first.shards} shards \`ingest/<n>\`, linger 200 ms, up to 500 events a signal, one send in
flight per shard with coalescing); one worker as it ships (\`costguard start --no-api\`, compiled, in a
child process) flushes them; a Temporal dev server (SQLite in memory) started per scenario; PostgreSQL
and Redis shared. Everything, the load generator included, runs on this machine's 2 cores. Each event
costs ${usd(first.meanEventCostUsd)} on average (four models in turn, 500 to 4,500 input tokens); the default budgets apply (a user:
$10 a day, so a step is ${usd(first.stepUsd)}; the system: $100 a day, $2,000 a month).

Each scenario: (1) **saturation**: ${fmt(first.users * first.ratePerUser)} events/s offered for ${first.durationSec} s; *sustained* is the
accepted events over the time from the first \`record()\` to the last event in the ledger; signals,
workflow tasks (WorkflowTaskCompleted in every history, continue-as-new runs included), history bytes
(the encoded histories) and the CPU of each process (/proc/<pid>/stat) are over this phase only.
(2) **half saturation**: half the sustained rate for ${first.halfDurationSec} s; *exact status* is from \`record()\` resolving
to the event counted in \`readBudgetStatus(...).live\` (what GET /v1/budgets/:scope answers), at most
5 users read every 500 ms (so the figure includes up to 500 ms of sampling delay). (3) **checks**: the
ledger against the rollups (system and every user), the live status of 20 users, the system budget
workflow, and every user budget workflow's day spend against the ledger (the lag, vs the step).

| scenario | offered ev/s | **sustained ev/s** | direct path ev/s (ratio) | signals / 1k ev | workflow tasks / 1k ev | accepted p50 / p99 (saturation) | exact status p50 / p99 (half) | workflow lag max / step | Temporal CPU us/ev | history B/ev | worker peak RSS | exact |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
${summary}

![sustained events/s](bench/results/throughput.svg)

${cs.map((c) => scenarioTable(c, base)).join('\n')}
### CPU per event, by process (saturation phase)

Microseconds of CPU per event over the saturation window (first \`record()\` to every flush done).
PostgreSQL counts every postgres process on the machine; "other" is the machine's busy time not
accounted to these processes (other work on the machine, the kernel). The last two columns are the
ceilings these costs imply on 2 cores: with the load generator, and for the stack alone.

| scenario | worker | Temporal server | PostgreSQL | Redis | load generator | other | total (without other) | ceiling, 2 cores | ceiling without the load generator |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${cpuRows}
`;
}

function sweepMarkdown(ingest: IngestResult[], sweep: IngestResult[]): string {
  const rows = [...ingest.filter((r) => sweep.some((w) => w.users === r.users)), ...sweep]
    .map(
      (r) =>
        `| ${scenarioName(r)} | ${(r.stepFraction * 100).toFixed(0)}% (${usd(r.stepUsd)}) | ${fmt(r.saturation.sustainedEventsPerSec)} | ${r.signals.ingestPer1000.toFixed(1)} | ${r.signals.totalsPer1000.toFixed(1)} | ${r.workflowTasks.ingestPer1000.toFixed(1)} | **${r.workflowTasks.per1000.toFixed(1)}** (budget ${r.workflowTasks.budgetPer1000.toFixed(1)}) | ${fmt(r.history.runs.userBudget)} | ${ms(r.half.exactStatusP99Ms)} | ${r.lag.usersWithWorkflow ? `${usd(r.lag.maxUsd)}` : '-'} | ${r.exact.ok ? 'yes' : '**NO**'} |`,
    )
    .join('\n');
  return `### Workflow tasks and the step ("whatever the step")

The ingest shards' tasks follow the flush rate whatever the step; the budget workflows' follow the
material changes: a \`totals\` signal per user at most once per flush, and only when the user's day spend crosses
a multiple of the step (or a threshold or forecast boundary). So budget signals per 1,000 events are about
1,000 x min(1 / (a user's events per flush), mean event cost / step): with a smaller step, or dearer
events, more of them. The scenarios again with a step of 1% of the smallest budget:

| scenario | step | sustained ev/s | ingest signals / 1k | \`totals\` signals / 1k | ingest tasks / 1k | **workflow tasks / 1k** | user budget workflows | exact status p99 (half) | lag max | exact |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
${rows}
`;
}

function ledgerMarkdown(ledger: LedgerBenchResult[]): string {
  const classic = ledger.filter((l) => l.shape !== 'ingest');
  const flushes = ledger.filter((l) => l.shape === 'ingest');
  return `## Ledger inserts (target: at least 20,000 events/s)

\`persistBatch\`: one transaction per batch (batch claim, multi-row \`unnest\` insert with
\`ON CONFLICT DO NOTHING\`, hour/day/month rollups in the same statement, batch result stored),
${classic[0]?.concurrency ?? 4} batches in flight, into a fresh database. \`per-user\` batches hold one user's events (as budget workflows
flushed them before the ingest tier); \`mixed\` batches hold events of up to 200 users each.
\`ingest\`: the ingest shards' own flush statement (\`INGEST_SQL\` through \`persistFlushIsolating\`: ledger,
rollups under the shard's rows, and each touched user's exact day and month totals returned), flushes of
${fmt(flushes[0]?.batchSize ?? 2000)} events (\`ingest.flushEvents\`) over N users, one flush in flight per shard (${flushes[0]?.concurrency ?? 4}): PostgreSQL's part
of the ingest tier alone, without Temporal or the worker. Events are spread over one hour of traffic.

| statement | batch | users | events | events/s | rollups = ledger |
|---|---:|---:|---:|---:|---|
${ledger.map((l) => `| ${l.shape === 'ingest' ? 'ingest flush' : `persistBatch, ${l.shape}`} | ${fmt(l.batchSize)} | ${fmt(l.users)} | ${fmt(l.events)} | ${fmt(l.eventsPerSec)} | ${l.ledgerMatchesRollups ? 'yes' : '**NO**'} |`).join('\n')}
`;
}

function pricingMarkdown(pricing: PricingBenchResult): string {
  return `## Pricing (target: exact pricing at least 10x calcPrice's events/s)

${fmt(pricing.events)} synthetic events across ${pricing.models} catalog models (random token counts, 30% with
cache reads, 20% with cache writes, 20% with reasoning), priced by our exact engine (integer arithmetic
in 10^-24 USD, decimal strings out) and by \`calcPrice\` from \`@pydantic/genai-prices\` (floats), same events,
same run.

| engine | events/s |
|---|---:|
| Cost Guard \`PricingEngine.price\` (exact) | ${fmt(pricing.engineEventsPerSec)} |
| genai-prices \`calcPrice\` | ${fmt(pricing.calcPriceEventsPerSec)} |
| **ratio** | **${pricing.ratio.toFixed(1)}x** (${met(pricing.ratio >= 10)}) |

Results compared event by event: ${pricing.disagreements} disagreements beyond float error
(relative 1e-9); ${pricing.unpriced} unpriced.
`;
}

function simulateMarkdown(s: SimulateBenchResult): string {
  return `## npm start + costguard simulate (target: at least ${TARGETS.simulateShare * 100}% of the offered rate accepted)

The \`npm start\` stack, built the way scripts/run.sh builds it: a Temporal dev server with its state in a
SQLite file (SQLite pragmas from ${s.pragmaSource}: ${s.sqlitePragmas.length ? s.sqlitePragmas.map((p) => `\`${p}\``).join(', ') : 'none, SQLite\'s own defaults'}), the Web UI on, and
\`costguard start\` (worker and API in one process, LOG_LEVEL info, task queue \`costguard\`), then
\`${s.command}\` beside it (its own CostTracker, the defaults).

| offered | planned | accepted | failed | elapsed | **accepted rate** | share of offered | ledger complete after | worker peak RSS | target |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
| ${fmt(s.rate)} events/s, ${fmt(s.users)} users, ${s.durationSec} s | ${fmt(s.planned)} | ${fmt(s.accepted)} | ${fmt(s.failed)} | ${s.elapsedSec.toFixed(1)} s | **${s.acceptedEventsPerSec.toFixed(1)} events/s** | ${(s.acceptedRateShare * 100).toFixed(1)}% | ${s.ledgerDrainSec.toFixed(1)} s (${fmt(s.ledgerEvents)} rows) | ${fmt(s.workerPeakRssMiB)} MiB | ${met(s.meetsTarget)} |

CPU over the run (simulate start to the ledger complete, ${s.cpu.windowSec.toFixed(0)} s): worker + API ${(s.cpu.worker / s.cpu.windowSec * 100).toFixed(0)}% of a core, Temporal server
${(s.cpu.temporal / s.cpu.windowSec * 100).toFixed(0)}%, PostgreSQL ${(s.cpu.postgres / s.cpu.windowSec * 100).toFixed(0)}%, \`costguard simulate\` ${(s.simulateCpuSec / s.cpu.windowSec * 100).toFixed(0)}%; the machine ${(s.cpu.machineBusyShare * 100).toFixed(0)}% busy.${s.firstError ? ` First error: ${s.firstError}.` : ''}
At this rate (${fmt(s.rate / s.shards)} events/s per shard), workflow tasks per 1,000 events: **${s.workflowTasksPer1000.toFixed(1)}** (ingest shards ${fmt(s.history.workflowTasks.ingest)}, budget workflows ${fmt(s.history.workflowTasks.userBudget + s.history.workflowTasks.aggregateBudget)}, alerts ${fmt(s.history.workflowTasks.alert)}, other ${fmt(s.history.workflowTasks.other)}; ${s.history.failedOrTimedOutTasks} failed or timed out); signals per 1,000 events: ${s.signalsPer1000.toFixed(1)} (${fmt(s.history.signals.ingest)} ingest, ${fmt(s.history.signals.totals)} \`totals\`).
`;
}

function wrappersMarkdown(w: WrapperResult): string {
  return `## SDK wrapper overhead (target: under 5% of a 1 ms round trip, i.e. 50 us a call)

\`${w.command}\` (bench/wrappers.ts): the same SDK calls against the local protocol server, bare and
wrapped (\`wrapOpenAI\` / \`wrapAnthropic\` recording through a CostTracker whose Temporal client accepts at once),
interleaved round by round; its output as printed:

${w.ok ? w.output : `The run failed:\n\n\`\`\`\n${w.output.slice(-3000)}\n\`\`\``}
`;
}

function targetsMarkdown(ingest: IngestResult[], direct: DirectResult[], alerts: AlertBenchResult | null, sim: SimulateBenchResult | null, sweep: IngestResult[] = []): string {
  const rows: string[] = [];
  if (ingest.length > 0) {
    const cs = checks(ingest, direct);
    const base = ingest.find((r) => r.users === 200);
    const many = cs.find((c) => c.r.users === 20000);
    if (base && many) rows.push(`| sustained events/s at 20,000 users >= 80% of 200 users | ${fmt(many.r.saturation.sustainedEventsPerSec)} vs ${fmt(base.saturation.sustainedEventsPerSec)}: ${(many.ofBase * 100).toFixed(0)}% | ${met(many.manyUsersOk)} |`);
    rows.push(`| >= 2x the direct path at every user count | ${cs.map((c) => `${fmt(c.r.users)} users: ${ratio(c.overDirect)}`).join('; ')} | ${met(cs.every((c) => c.directOk))} |`);
    const sweepTasks = sweep.map((r) => `${fmt(r.users)} users, step ${(r.stepFraction * 100).toFixed(0)}%: ${r.workflowTasks.per1000.toFixed(1)}`);
    const sweepOk = sweep.every((r) => r.workflowTasks.per1000 <= TARGETS.workflowTasksPer1000);
    rows.push(
      `| <= 10 workflow tasks per 1,000 events at every user count, whatever the step | step 5%: ${cs.map((c) => `${fmt(c.r.users)}: ${c.r.workflowTasks.per1000.toFixed(1)}`).join('; ')}${sweepTasks.length ? `; ${sweepTasks.join('; ')}` : ''} | ${met(cs.every((c) => c.tasksOk) && sweepOk)} |`,
    );
    rows.push(`| exact status p99 < 5 s at half of saturation | ${cs.map((c) => `${fmt(c.r.users)}: ${ms(c.r.half.exactStatusP99Ms)}`).join('; ')} | ${met(cs.every((c) => c.statusOk))} |`);
    rows.push(`| budget workflow totals never behind the ledger by the step once a flush completes | ${cs.map((c) => `${fmt(c.r.users)}: ${c.r.lag.usersWithWorkflow ? `max ${usd(c.r.lag.maxUsd)} of ${usd(c.r.stepUsd)} (${fmt(c.r.lag.usersWithWorkflow)} workflows)` : 'no workflow'}`).join('; ')} | ${met(cs.every((c) => c.lagOk))} |`);
    rows.push(`| exact totals (ledger = rollups = live status) | ${cs.map((c) => `${fmt(c.r.users)}: ${c.r.exact.ok ? 'yes' : 'NO'}`).join('; ')} | ${met(cs.every((c) => c.r.exact.ok))} |`);
  }
  if (alerts) {
    const loaded = alerts.scenarios.find((s) => s.scenario === 'loaded');
    if (loaded) rows.push(`| alert latency p99 < 1 s, 1,000 events/s background over ${fmt(alerts.backgroundUsers)} users | p99 ${ms(loaded.p99Ms)} (${loaded.samples} samples${loaded.timedOut ? `, ${loaded.timedOut} timed out` : ''}) | ${met(loaded.meetsTarget)} |`);
  }
  if (sim) rows.push(`| npm start + simulate 1,000 users at 500/s: >= 98% accepted | ${sim.acceptedEventsPerSec.toFixed(1)} events/s accepted, ${(sim.acceptedRateShare * 100).toFixed(1)}% | ${met(sim.meetsTarget)} |`);
  if (ingest.length > 0) {
    const best = Math.max(...ingest.map((r) => r.saturation.sustainedEventsPerSec));
    rows.push(`| stretch: 10,000 events/s sustained | best ${fmt(best)} events/s | ${met(best >= TARGETS.stretchEventsPerSec)} |`);
  }
  return `## Targets (the ingestion issue)

| target | measured | |
|---|---|---|
${rows.join('\n')}
`;
}

function throughputChart(ingest: IngestResult[], direct: DirectResult[]): string {
  return barChart(
    'Sustained events/s: ingest tier vs the direct path (higher is better)',
    ingest.flatMap((r, i) => [
      { label: `${scenarioName(r)}`, value: r.saturation.sustainedEventsPerSec, color: '#3b82f6' },
      { label: `${fmt(r.users)} users, direct`, value: direct[i]!.eventsPerSec, color: '#9ca3af' },
    ]),
    [
      { label: 'ingest tier (CostTracker -> shards)', color: '#3b82f6' },
      { label: 'direct path (INSERT + ZADD per event)', color: '#9ca3af' },
    ],
  );
}

/** The alert-latency chart (written by a full run and by --only-alerts). */
function writeAlertChart(alerts: AlertBenchResult): void {
  writeFileSync(
    join(root, 'bench/results/alert-latency.svg'),
    barChart(
      'Alert latency, record() to webhook, ms (lower is better)',
      alerts.scenarios.flatMap((s) => [
        { label: `${s.scenario}, p50`, value: s.p50Ms },
        { label: `${s.scenario}, p99`, value: s.p99Ms },
      ]),
    ),
  );
}

const NOTES = '<!-- notes: kept when npm run bench rewrites this file -->';
const ALERT_HEADING = '## Alert latency';
const date = () => new Date().toISOString().slice(0, 16).replace('T', ' ');

// ---------------------------------------------------------------------------------------------
// Modes

if (argv.includes('--only-ingest')) {
  // For trying a change to the ingestion path: the figures, printed; BENCHMARKS.md is left alone.
  const { ingest, direct, sweep } = await runIngest();
  process.stdout.write(`${JSON.stringify({ ingest, direct, sweep }, null, 2)}\n\n${targetsMarkdown(ingest, direct, null, null, sweep)}\n${ingestMarkdown(ingest, direct)}\n${sweepMarkdown(ingest, sweep)}`);
  process.exit(0);
}

if (argv.includes('--only-simulate')) {
  const sim = await runSimulateBench(databaseUrl, redisUrl, SIMULATE);
  process.stdout.write(`${JSON.stringify(sim, null, 2)}\n\n${simulateMarkdown(sim)}`);
  process.exit(0);
}

if (argv.includes('--only-alerts')) {
  // Re-runs just this benchmark. Full size, it replaces its own section of BENCHMARKS.md (the one
  // just above the next section or the notes), its entry in latest.json and its chart; --quick only prints.
  const alerts = await runAlertBench(databaseUrl, redisUrl, alertOptions);
  const section = `${alertMarkdown(alerts, 'bench/results/alert-latency.svg')}\n_This section was re-run alone on ${date()} UTC with \`npx tsx bench/run.ts --only-alerts\`._\n`;
  process.stdout.write(section);
  const mdPath = join(root, 'BENCHMARKS.md');
  const current = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '';
  if (!quick && current.includes(ALERT_HEADING) && current.includes(NOTES)) {
    const start = current.indexOf(ALERT_HEADING);
    const nextHeading = current.indexOf('\n## ', start + ALERT_HEADING.length);
    const end = nextHeading !== -1 && nextHeading < current.indexOf(NOTES) ? nextHeading + 1 : current.indexOf(NOTES);
    writeFileSync(mdPath, `${current.slice(0, start)}${section}\n${current.slice(end)}`);
    const jsonPath = join(root, 'bench/results/latest.json');
    const latest = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(jsonPath, `${JSON.stringify({ ...latest, alerts, alertsDate: date() }, null, 2)}\n`);
    writeAlertChart(alerts);
  }
  process.exit(0);
}

/** Replaces a section of BENCHMARKS.md (from its heading to the next section or the notes), or adds it just above the notes. */
function replaceSection(heading: string, section: string): void {
  const mdPath = join(root, 'BENCHMARKS.md');
  const current = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '';
  if (!current.includes(NOTES)) return;
  const notesAt = current.indexOf(NOTES);
  const start = current.includes(heading) ? current.indexOf(heading) : notesAt;
  const nextHeading = current.indexOf('\n## ', start + 1);
  const end = start === notesAt ? notesAt : nextHeading !== -1 && nextHeading < notesAt ? nextHeading + 1 : notesAt;
  writeFileSync(mdPath, `${current.slice(0, start)}${section}\n${current.slice(end)}`);
}

function mergeLatest(entries: Record<string, unknown>): void {
  const jsonPath = join(root, 'bench/results/latest.json');
  const latest = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(jsonPath, `${JSON.stringify({ ...latest, ...entries }, null, 2)}\n`);
}

const CACHE_HEADING = '## Response cache hit latency';

if (argv.includes('--only-preflight')) {
  const r = await runPreflightBench(databaseUrl, redisUrl, PREFLIGHT, step);
  const section = `${preflightMarkdown(r, `npx tsx bench/run.ts --only-preflight${quick ? ' --quick' : ''}`)}\n_This section was run alone on ${date()} UTC (machine: ${machine()}; load averages ${loadAverages().join(', ')})._\n`;
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n\n${section}`);
  if (!quick) {
    replaceSection(PREFLIGHT_HEADING, section);
    mergeLatest({ preflight: r, preflightDate: date() });
  }
  process.exit(0);
}

if (argv.includes('--only-wrappers')) {
  const w = await runWrappers();
  const section = `${wrappersMarkdown(w)}\n_This section was run alone on ${date()} UTC (machine: ${machine()}; load averages ${loadAverages().join(', ')})._\n`;
  process.stdout.write(section);
  if (!quick && w.ok) {
    replaceSection('## SDK wrapper overhead', section);
    mergeLatest({ wrappers: w, wrappersDate: date() });
  }
  process.exit(0);
}

if (argv.includes('--only-otlp')) {
  const o = await runOtlp();
  const section = `${otlpMarkdown(o)}\n_This section was run alone on ${date()} UTC (machine: ${machine()}; load averages ${loadAverages().join(', ')})._\n`;
  process.stdout.write(section);
  if (!quick && o.ok) {
    replaceSection(OTLP_HEADING, section);
    mergeLatest({ otlp: o, otlpDate: date() });
  }
  process.exit(0);
}

if (argv.includes('--only-cache')) {
  const c = await runCache();
  const section = `${CACHE_HEADING} (target: p99 under 2x a Redis GET)\n\n\`${c.command}\`:\n\n${c.ok ? c.output : `The run failed:\n\n\`\`\`\n${c.output.slice(-3000)}\n\`\`\``}\n\n_This section was run alone on ${date()} UTC (machine: ${machine()}; load averages ${loadAverages().join(', ')})._\n`;
  process.stdout.write(section);
  if (!quick && c.ok) {
    replaceSection(CACHE_HEADING, section);
    mergeLatest({ cache: c, cacheDate: date() });
  }
  process.exit(0);
}

// The full run.
const loadBefore = loadAverages();
step(`start (load averages ${loadBefore.join(' ')})`);
step('pricing');
const pricing = runPricingBench(quick ? 100_000 : 1_000_000);
step('ledger inserts');
const ledger: LedgerBenchResult[] = [
  await runLedgerBench(databaseUrl, 100, quick ? 20_000 : 100_000, 'per-user'),
  await runLedgerBench(databaseUrl, 1000, quick ? 50_000 : 200_000, 'per-user'),
  await runLedgerBench(databaseUrl, 100, quick ? 20_000 : 100_000, 'mixed'),
  await runLedgerBench(databaseUrl, 1000, quick ? 50_000 : 200_000, 'mixed'),
];
for (const users of [200, 2000, 20000]) ledger.push(await runIngestFlushBench(databaseUrl, users, quick ? 40_000 : 200_000));
const { ingest, direct, sweep } = argv.includes('--no-ingest') ? { ingest: [] as IngestResult[], direct: [] as DirectResult[], sweep: [] as IngestResult[] } : await runIngest();
step('alert latency');
const alerts = await runAlertBench(databaseUrl, redisUrl, alertOptions);
step('npm start + costguard simulate');
const sim = await runSimulateBench(databaseUrl, redisUrl, SIMULATE);
step('pre-flight checks');
const preflight: PreflightBenchResult = await runPreflightBench(databaseUrl, redisUrl, PREFLIGHT, step);
let wrappers: WrapperResult | null = null;
if (!argv.includes('--no-wrappers')) {
  step('SDK wrapper overhead (bench/wrappers.ts)');
  wrappers = await runWrappers();
}
let cache: WrapperResult | null = null;
if (!argv.includes('--no-cache')) {
  step('response cache hit latency (bench/cache.ts)');
  cache = await runCache();
}
let otlp: WrapperResult | null = null;
if (!argv.includes('--no-otlp')) {
  step('OTLP receiver throughput (bench/otlp.ts)');
  otlp = await runOtlp();
}
const loadAfter = loadAverages();
const finished = date();
const minutes = (performance.now() - started) / 60_000;
step(`done in ${minutes.toFixed(1)} min (load averages ${loadAfter.join(' ')})`);

const results = { date: finished, machine: machine(), quick, command: `npm run bench${quick ? ' -- --quick' : ''}`, minutes, loadBefore, loadAfter, targets: TARGETS, pricing, ledger, ingest, direct, stepSweep: sweep, alerts, simulate: sim, preflight, wrappers, cache, otlp };
writeFileSync(join(root, 'bench/results/latest.json'), `${JSON.stringify(results, null, 2)}\n`);
if (ingest.length > 0) writeFileSync(join(root, 'bench/results/throughput.svg'), throughputChart(ingest, direct));
writeAlertChart(alerts);

const md = `# Benchmarks

Produced by \`npm run bench${quick ? ' -- --quick' : ''}\` on ${finished} UTC (${minutes.toFixed(0)} minutes${quick ? '; --quick: smaller runs, a smoke test of the benchmark, not figures to quote' : ''}).
Machine: ${results.machine}; PostgreSQL, Redis, the Temporal dev server, the worker and the load generator all on it.
Load averages (1, 5, 15 min) at the start: ${loadBefore.join(', ')}; at the end: ${loadAfter.join(', ')}.
Durations are never asserted in tests; what matters here are the figures measured in one run, side by side.

${targetsMarkdown(ingest, direct, alerts, sim, sweep)}
${ingest.length > 0 ? `${ingestMarkdown(ingest, direct)}\n${sweep.length > 0 ? `${sweepMarkdown(ingest, sweep)}\n` : ''}` : ''}${alertMarkdown(alerts, 'bench/results/alert-latency.svg')}
${simulateMarkdown(sim)}
${preflightMarkdown(preflight, `npm run bench${quick ? ' -- --quick' : ''}`)}
${pricingMarkdown(pricing)}
${ledgerMarkdown(ledger)}${wrappers ? `\n${wrappersMarkdown(wrappers)}` : ''}${
  cache
    ? `\n${CACHE_HEADING} (target: p99 under 2x a Redis GET)\n\n\`${cache.command}\`:\n\n${cache.ok ? cache.output : `The run failed:\n\n\`\`\`\n${cache.output.slice(-3000)}\n\`\`\``}\n`
    : ''
}${otlp ? `\n${otlpMarkdown(otlp)}` : ''}`;
// Hand-written analysis below the NOTES marker survives regeneration.
const previous = existsSync(join(root, 'BENCHMARKS.md')) ? readFileSync(join(root, 'BENCHMARKS.md'), 'utf8') : '';
const notes = previous.includes(NOTES) ? previous.slice(previous.indexOf(NOTES)) : `${NOTES}\n`;
writeFileSync(join(root, 'BENCHMARKS.md'), `${md}\n${notes}`);
process.stdout.write(md);
process.exit(0);
