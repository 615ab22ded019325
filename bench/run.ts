/**
 * `npm run bench`: runs the benchmarks and writes their figures to BENCHMARKS.md (with the
 * command, the machine and the date) and bench/results/latest.json, plus an SVG chart.
 *
 *   npm run bench                 # everything, full size
 *   npm run bench -- --quick      # smaller runs (a smoke test of the benchmark itself)
 *   npx tsx bench/run.ts --only-alerts [--quick]
 *                                 # only the alert latency benchmark: prints its section, writes no file
 *                                 # with --quick (full size, it replaces its own section)
 *   npx tsx bench/run.ts --only-ingest [--quick]
 *                                 # only the ingestion scenarios and the direct path: prints, writes nothing
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../src/lib/paths.js';
import { type AlertBenchOptions, alertMarkdown, runAlertBench } from './alerts.js';
import { runDirectBench, runIngestBench } from './ingest.js';
import { runLedgerBench } from './ledger.js';
import { fmt, machine } from './lib.js';
import { runPricingBench } from './pricing.js';
import { barChart } from './chart.js';

const quick = process.argv.includes('--quick');
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/costguard';
const root = projectRoot();
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const alertOptions: AlertBenchOptions = {
  idleSamples: quick ? 10 : 50,
  loadedSamples: quick ? 10 : 50,
  backgroundEventsPerSec: 1000,
  backgroundUsers: 100,
  backgroundLingerMs: 2000,
  maxScenarioSec: quick ? 120 : 480,
};
/** The alert-latency chart (written by a full run and by --only-alerts). */
function writeAlertChart(alerts: Awaited<ReturnType<typeof runAlertBench>>): void {
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

const ingestScenarios = [
  { users: 200, ratePerUser: 50, durationSec: quick ? 10 : 20, lingerMs: 2000 },
  { users: 2000, ratePerUser: 2, durationSec: quick ? 10 : 20, lingerMs: 2000 },
];

if (process.argv.includes('--only-ingest')) {
  // For trying a change to the ingestion path: the figures, printed; BENCHMARKS.md is left alone.
  for (const scenario of ingestScenarios) process.stdout.write(`${JSON.stringify(await runIngestBench(databaseUrl, redisUrl, scenario), null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(await runDirectBench(databaseUrl, redisUrl, quick ? 20_000 : 50_000), null, 2)}\n`);
  process.exit(0);
}

if (process.argv.includes('--only-alerts')) {
  // Re-runs just this benchmark. Full size, it replaces its own section of BENCHMARKS.md (the one
  // just above the notes), its entry in latest.json and its chart; --quick only prints.
  const alerts = await runAlertBench(databaseUrl, redisUrl, alertOptions);
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const section = `${alertMarkdown(alerts, 'bench/results/alert-latency.svg')}\n_This section was re-run alone on ${date} UTC with \`npx tsx bench/run.ts --only-alerts\`._\n`;
  process.stdout.write(section);
  const mdPath = join(root, 'BENCHMARKS.md');
  const current = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '';
  if (!quick && current.includes(ALERT_HEADING) && current.includes(NOTES)) {
    const start = current.indexOf(ALERT_HEADING);
    writeFileSync(mdPath, `${current.slice(0, start)}${section}\n${current.slice(current.indexOf(NOTES))}`);
    const jsonPath = join(root, 'bench/results/latest.json');
    const latest = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(jsonPath, `${JSON.stringify({ ...latest, alerts, alertsDate: date }, null, 2)}\n`);
    writeAlertChart(alerts);
  }
  process.exit(0);
}

const pricing = runPricingBench(quick ? 100_000 : 1_000_000);
const ledger = [
  await runLedgerBench(databaseUrl, 100, quick ? 20_000 : 100_000, 'per-user'),
  await runLedgerBench(databaseUrl, 1000, quick ? 50_000 : 200_000, 'per-user'),
  await runLedgerBench(databaseUrl, 100, quick ? 20_000 : 100_000, 'mixed'),
  await runLedgerBench(databaseUrl, 1000, quick ? 50_000 : 200_000, 'mixed'),
];

const skipIngest = process.argv.includes('--no-ingest');
const ingest = skipIngest
  ? []
  : [await runIngestBench(databaseUrl, redisUrl, ingestScenarios[0]!), await runIngestBench(databaseUrl, redisUrl, ingestScenarios[1]!)];
const direct = skipIngest ? null : await runDirectBench(databaseUrl, redisUrl, quick ? 20_000 : 50_000);
const alerts = await runAlertBench(databaseUrl, redisUrl, alertOptions);

const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
const results = { date, machine: machine(), quick, pricing, ledger, ingest, direct, alerts };
writeFileSync(join(root, 'bench/results/latest.json'), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(
  join(root, 'bench/results/throughput.svg'),
  barChart('Events per second (higher is better)', [
    { label: 'exact pricing (ours)', value: pricing.engineEventsPerSec },
    { label: 'genai-prices calcPrice', value: pricing.calcPriceEventsPerSec },
    ...ledger.map((l) => ({ label: `ledger, ${l.shape} batch ${l.batchSize}`, value: l.eventsPerSec })),
    ...ingest.map((r) => ({ label: `Temporal, ${r.users} users x ${r.ratePerUser}/s`, value: r.sustainedEventsPerSec })),
    ...(direct ? [{ label: 'direct INSERT + ZADD', value: direct.eventsPerSec }] : []),
  ]),
);
writeAlertChart(alerts);

const md = `# Benchmarks

Produced by \`npm run bench${quick ? ' -- --quick' : ''}\` on ${date} UTC.
Machine: ${results.machine}; PostgreSQL on the same machine.
Durations are never asserted in tests; what matters here are the ratios measured in one run.

![throughput](bench/results/throughput.svg)

## Pricing (target: exact pricing at least 10x calcPrice's events/s)

${fmt(pricing.events)} synthetic events across ${pricing.models} catalog models (random token counts, 30% with
cache reads, 20% with cache writes, 20% with reasoning), priced by our exact engine (integer arithmetic
in 10^-24 USD, decimal strings out) and by \`calcPrice\` from \`@pydantic/genai-prices\` (floats), same events,
same run.

| engine | events/s |
|---|---:|
| Cost Guard \`PricingEngine.price\` (exact) | ${fmt(pricing.engineEventsPerSec)} |
| genai-prices \`calcPrice\` | ${fmt(pricing.calcPriceEventsPerSec)} |
| **ratio** | **${pricing.ratio.toFixed(1)}x** |

Results compared event by event: ${pricing.disagreements} disagreements beyond float error
(relative 1e-9); ${pricing.unpriced} unpriced.

## Ledger inserts (target: at least 20,000 events/s)

\`persistBatch\`: one transaction per batch (batch claim, multi-row \`unnest\` insert with
\`ON CONFLICT DO NOTHING\`, hour/day/month rollups for system and user scopes in the same statement,
batch result stored), ${ledger[0]!.concurrency} batches in flight, into a fresh database.

\`per-user\` batches hold one user's events, as the budget workflows flush them (one workflow per user);
\`mixed\` batches hold events of up to 200 users each (many more rollup rows per event: the worst case).
Events are spread over one hour of live traffic.

| batch | size | events | events/s | rollups = ledger |
|---|---:|---:|---:|---|
${ledger.map((l) => `| ${l.shape} | ${fmt(l.batchSize)} | ${fmt(l.events)} | ${fmt(l.eventsPerSec)} | ${l.ledgerMatchesRollups ? 'yes' : '**NO**'} |`).join('\n')}
${ingest.length === 0 ? '' : `
## Ingestion through Temporal (target: at least 10,000 events/s sustained with exact totals)

Synthetic users send usage through \`CostTracker\` (linger ${ingest[0]!.lingerMs} ms, batches of up to 1,000) to their
budget workflows on a Temporal dev server (SQLite in memory), run by one worker in a child process (\`costguard start --no-api\`, compiled);
PostgreSQL, Redis, the server, the worker and the load generator all share this machine's 2 cores.
"Sustained" is events / (first record() to the last event in the ledger). "Reflected" is from
record() to the event being counted in its budget workflow's \`status\` (10 sampled users, queried every 500 ms).

| scenario | events | offered ev/s | **sustained ev/s** | signals / 1k ev | workflow tasks / 1k ev | activities / 1k ev | accepted p50 / p99 | reflected p50 / p99 | peak signals/s, busiest workflow | worker peak RSS | exact (ledger = rollups = system = every user) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
${ingest.map((r) => `| ${fmt(r.users)} users x ${r.ratePerUser}/s, ${r.durationSec} s | ${fmt(r.events)} | ${fmt(r.offeredEventsPerSec)} | **${fmt(r.sustainedEventsPerSec)}** | ${r.signalsPer1000.toFixed(1)} | ${r.workflowTasksPer1000.toFixed(1)} | ${r.activitiesPer1000.toFixed(1)} | ${fmt(r.acceptedP50Ms)} / ${fmt(r.acceptedP99Ms)} ms | ${fmt(r.reflectedP50Ms)} / ${fmt(r.reflectedP99Ms)} ms | ${r.peakSignalsPerSecBusiestWorkflow} | ${fmt(r.workerPeakRssMiB)} MiB | ${r.exact.ledgerEqualsRollups && r.exact.systemEqualsLedger && r.exact.usersEqualLedger ? 'yes' : '**NO**'} (${fmt(r.exact.ledgerCount)} rows) |`).join('\n')}

The original design's direct path, measured in the same run: one INSERT into the ledger plus one
Redis ZADD per event, ${direct!.concurrency} in flight, no Temporal, no batching, no dedup beyond the key:
**${fmt(direct!.eventsPerSec)} events/s**.
`}
${alertMarkdown(alerts, 'bench/results/alert-latency.svg')}`;
// Hand-written analysis below the NOTES marker survives regeneration.
const previous = existsSync(join(root, 'BENCHMARKS.md')) ? readFileSync(join(root, 'BENCHMARKS.md'), 'utf8') : '';
const notes = previous.includes(NOTES) ? previous.slice(previous.indexOf(NOTES)) : `${NOTES}\n`;
writeFileSync(join(root, 'BENCHMARKS.md'), `${md}\n${notes}`);
process.stdout.write(md);
