/**
 * `npm start` + `costguard simulate`: the stack `npm start` (scripts/run.sh) brings up, built here
 * the same way (a Temporal dev server with its state in a SQLite file, the Web UI on, and the
 * `--sqlite-pragma` values scripts/run.sh would pass: TEMPORAL_SQLITE_PRAGMAS, else its default,
 * read from the script at run time; `costguard start`, worker and API in one process, at LOG_LEVEL
 * info; the default task queue), then
 *
 *   node dist/src/cli/main.js simulate --users 1000 --rate 500 --duration 60s --json
 *
 * as a developer would run it beside. Target: at least 98% of the offered rate accepted. Also how
 * long the ledger took to hold every accepted event once the simulation ended.
 *
 * scripts/run.sh itself is not run (its setup steps and ports are a developer's, and another change
 * to it may be under way): only its dev server flags are taken from it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../src/lib/paths.js';
import { type CpuUse, cpuDelta, fmt, freePort, peakRssMiB, processCpuSec, readCpu, trackChild, until } from './lib.js';
import { type HistoryStats, historyStats } from './ingest.js';
import { startBenchStack } from './stack.js';

export interface SimulateBenchOptions {
  users: number;
  rate: number;
  durationSec: number;
}

export interface SimulateBenchResult extends SimulateBenchOptions {
  /** The `--sqlite-pragma` values scripts/run.sh would pass (empty: none, SQLite's defaults), and where they came from. */
  sqlitePragmas: string[];
  pragmaSource: string;
  temporalArgs: string[];
  command: string;
  planned: number;
  sent: number;
  accepted: number;
  failed: number;
  elapsedSec: number;
  /** Accepted events per second of the simulation's wall time (its own `eventsPerSecond`). */
  acceptedEventsPerSec: number;
  /** acceptedEventsPerSec / rate. */
  acceptedRateShare: number;
  /** accepted / planned. */
  acceptedShare: number;
  firstError: string | null;
  /** From the simulation's end to the ledger holding every accepted event. */
  ledgerDrainSec: number;
  ledgerEvents: number;
  cpu: CpuUse;
  /** Every history on the server after the run: workflow tasks and signals at this (low) rate. */
  history: HistoryStats;
  shards: number;
  workflowTasksPer1000: number;
  signalsPer1000: number;
  /** CPU seconds of the `costguard simulate` process itself (in `cpu.other`). */
  simulateCpuSec: number;
  workerPeakRssMiB: number;
  meetsTarget: boolean;
}

export const SIMULATE_TARGET_SHARE = 0.98;

/**
 * The `--sqlite-pragma` values scripts/run.sh would give the dev server here: TEMPORAL_SQLITE_PRAGMAS
 * from the environment when set (run.sh takes them from there), else the script's own default for it,
 * else any literal `--sqlite-pragma X` in the script (comments ignored).
 */
export function runShSqlitePragmas(root = projectRoot(), env: Record<string, string | undefined> = process.env): { pragmas: string[]; source: string } {
  const split = (v: string) => v.split(/\s+/).filter(Boolean);
  if (env.TEMPORAL_SQLITE_PRAGMAS !== undefined) return { pragmas: split(env.TEMPORAL_SQLITE_PRAGMAS), source: 'TEMPORAL_SQLITE_PRAGMAS in the environment, as scripts/run.sh reads it' };
  let text: string;
  try {
    text = readFileSync(join(root, 'scripts/run.sh'), 'utf8');
  } catch {
    return { pragmas: [], source: 'scripts/run.sh not found' };
  }
  const code = text
    .split('\n')
    .filter((l) => !l.trim().startsWith('#'))
    .map((l) => l.replace(/\s#.*$/, ''))
    .join('\n');
  const byDefault = /TEMPORAL_SQLITE_PRAGMAS="?\$\{TEMPORAL_SQLITE_PRAGMAS:?-([^}]*)\}/.exec(code);
  if (byDefault) return { pragmas: split(byDefault[1]!.replace(/["']/g, '')), source: "scripts/run.sh's default for TEMPORAL_SQLITE_PRAGMAS" };
  const literal = [...code.matchAll(/--sqlite-pragma[=\s]+["']?([A-Za-z_]+=[A-Za-z0-9_-]+)["']?/g)].map((m) => m[1]!);
  return { pragmas: literal, source: 'the --sqlite-pragma flags in scripts/run.sh' };
}

export async function runSimulateBench(baseUrl: string, redisUrl: string, opts: SimulateBenchOptions): Promise<SimulateBenchResult> {
  const label = `npm start + simulate ${fmt(opts.users)} users at ${fmt(opts.rate)}/s for ${opts.durationSec} s`;
  const { pragmas: sqlitePragmas, source: pragmaSource } = runShSqlitePragmas();
  process.stderr.write(`${label}: starting the npm start stack (SQLite file; pragmas from ${pragmaSource}: ${sqlitePragmas.join(' ') || 'none'})\n`);
  const dir = mkdtempSync(join(tmpdir(), 'costguard-bench-simulate-'));
  const apiPort = await freePort();
  const workerEnv = { API_HOST: '127.0.0.1', API_PORT: String(apiPort), COSTGUARD_DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'info' };
  const stack = await startBenchStack({
    baseUrl,
    redisUrl,
    name: 'bench-simulate',
    poolMax: 2,
    workerArgs: ['start'],
    workerEnv,
    taskQueue: 'costguard',
    temporal: { dbFile: join(dir, 'temporal.sqlite'), sqlitePragmas, ui: true, logLevel: 'warn' },
  }).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const args = ['simulate', '--users', String(opts.users), '--rate', String(opts.rate), '--duration', `${opts.durationSec}s`, '--json'];
  try {
    const env = {
      ...process.env,
      DATABASE_URL: stack.db.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: stack.redisPrefix,
      TEMPORAL_ADDRESS: stack.address,
      TEMPORAL_TASK_QUEUE: stack.taskQueue,
      COSTGUARD_DATA_DIR: workerEnv.COSTGUARD_DATA_DIR,
    };
    const cpuStart = readCpu({ worker: stack.worker.pid, temporal: stack.temporal.pid });
    const child = trackChild(spawn(process.execPath, ['dist/src/cli/main.js', ...args], { cwd: projectRoot(), env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    // Its CPU, read until it exits (the last reading is within 250 ms of its end).
    let simulateCpuSec = 0;
    const cpuTimer = setInterval(() => {
      const v = processCpuSec(child.pid);
      if (Number.isFinite(v)) simulateCpuSec = v;
    }, 250);
    child.stderr!.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim()) process.stderr.write(`  ${line.trim()}\n`);
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    clearInterval(cpuTimer);
    const simEnd = performance.now();
    let summary: { planned: number; sent: number; accepted: number; failed: number; elapsedMs: number; eventsPerSecond: number; firstError: string | null };
    try {
      summary = JSON.parse(stdout) as typeof summary;
    } catch {
      throw new Error(`costguard simulate exited ${code} without a JSON summary: ${stdout.slice(0, 2000)}`);
    }
    const inLedger = async () => Number((await stack.pool.query(`SELECT coalesce(sum(calls), 0) AS n FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'hour'`)).rows[0].n);
    await until('the ledger to hold every accepted event', async () => (await inLedger()) >= summary.accepted, 300_000, 200).catch(() => undefined);
    const drained = performance.now();
    const cpu = cpuDelta(cpuStart, readCpu({ worker: stack.worker.pid, temporal: stack.temporal.pid }));
    const ledgerEvents = Number((await stack.pool.query('SELECT count(*) AS n FROM usage_ledger')).rows[0].n);
    const history = await historyStats(stack.client);
    const tasks = Object.values(history.workflowTasks).reduce((a, b) => a + b, 0);
    const acceptedRateShare = summary.eventsPerSecond / opts.rate;
    return {
      ...opts,
      sqlitePragmas,
      pragmaSource,
      temporalArgs: stack.temporal.args,
      command: `node dist/src/cli/main.js ${args.join(' ')}`,
      planned: summary.planned,
      sent: summary.sent,
      accepted: summary.accepted,
      failed: summary.failed,
      elapsedSec: summary.elapsedMs / 1000,
      acceptedEventsPerSec: summary.eventsPerSecond,
      acceptedRateShare,
      acceptedShare: summary.accepted / summary.planned,
      firstError: summary.firstError,
      ledgerDrainSec: (drained - simEnd) / 1000,
      ledgerEvents,
      cpu,
      history,
      shards: stack.config.ingest.shards,
      workflowTasksPer1000: (tasks / Math.max(1, ledgerEvents)) * 1000,
      signalsPer1000: ((history.signals.ingest + history.signals.totals) / Math.max(1, ledgerEvents)) * 1000,
      simulateCpuSec,
      workerPeakRssMiB: peakRssMiB(stack.worker.pid),
      meetsTarget: acceptedRateShare >= SIMULATE_TARGET_SHARE && summary.failed === 0,
    };
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
