import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';
import pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import type { MatchLogic, RawProvider } from '../src/domain/catalog.js';

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} x ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, ${process.platform}`;
}

/** A model id the match logic accepts, when one is easy to build (equals / starts_with / or of them). */
export function exampleModelId(logic: MatchLogic): string | undefined {
  if ('equals' in logic) return logic.equals;
  if ('starts_with' in logic) return logic.starts_with;
  if ('or' in logic) {
    for (const part of logic.or) {
      const id = exampleModelId(part);
      if (id) return id;
    }
  }
  if ('and' in logic) return logic.and.map(exampleModelId).find((id) => id !== undefined);
  return undefined;
}

export interface CatalogSample {
  provider: string;
  model: string;
}

/** (provider, model id) pairs across the whole catalog, one per model with an easy example id. */
export function catalogSamples(providers: readonly RawProvider[]): CatalogSample[] {
  const out: CatalogSample[] = [];
  for (const p of providers) {
    for (const m of p.models) {
      const id = exampleModelId(m.match);
      if (id) out.push({ provider: p.id, model: id });
    }
  }
  return out;
}

/** A deterministic PRNG (the simulator's mulberry32) so every run prices the same events. */
export { seededRandom as rng } from '../src/lib/random.js';

/** One-line progress on stderr (overwritten in place on a terminal). */
export function progress(label: string, done: number, total: number): void {
  const pct = Math.floor((done / total) * 100);
  const width = 30;
  const filled = Math.round((pct / 100) * width);
  const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% (${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')})`;
  if (process.stderr.isTTY) process.stderr.write(`\r${line}${done >= total ? '\n' : ''}`);
  else if (done >= total || pct % 25 === 0) process.stderr.write(`${line}\n`);
}

export function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A migrated database of its own for one benchmark run; `drop()` removes it. */
export async function freshDatabase(baseUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `costguard_bench_${randomBytes(4).toString('hex')}`;
  const admin = new URL(baseUrl);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  await migrate(url.toString());
  return {
    url: url.toString(),
    drop: async () => {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/**
 * Stops a benchmark's worker process: SIGTERM (it drains), then SIGKILL after `graceMs`, so a worker
 * still retrying work against a server that is being torn down never outlives its benchmark.
 */
export async function stopChild(child: ChildProcess | undefined, graceMs = 10_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `everyMs` until it holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number, everyMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Processes, CPU and memory (Linux /proc), shared by the Temporal benchmarks.

/** Child processes the benchmarks started: killed (SIGKILL) if this process exits without stopping them. */
const children = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registers a child so that it never outlives the benchmark, even when the benchmark fails. */
export function trackChild(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
  }
  return child;
}

/** Async clean-ups (stacks to stop) to run on Ctrl-C before exiting. */
const cleanups = new Set<() => Promise<void>>();
let interruptHookInstalled = false;

/** Runs `fn` on SIGINT/SIGTERM (bounded to 30 s in all) before the process exits; returns the unregister function. */
export function onInterrupt(fn: () => Promise<void>): () => void {
  cleanups.add(fn);
  if (!interruptHookInstalled) {
    interruptHookInstalled = true;
    const handler = (signal: NodeJS.Signals) => {
      process.stderr.write(`\nbench: ${signal}: stopping what the benchmark started\n`);
      const all = Promise.allSettled([...cleanups].map((c) => c()));
      void Promise.race([all, sleep(30_000)]).finally(() => process.exit(130));
    };
    process.once('SIGINT', handler);
    process.once('SIGTERM', handler);
  }
  return () => cleanups.delete(fn);
}

/** CPU seconds used so far by a process (utime + stime from /proc/<pid>/stat), or NaN. */
export function processCpuSec(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN;
  }
}

/** Pids of the processes whose command name (comm) is `name`. */
export function pidsNamed(name: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

/** The machine's busy and total CPU seconds so far (from /proc/stat; busy excludes idle and iowait). */
export function machineCpuSec(): { busy: number; total: number } {
  try {
    const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
    const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: (total - ticks[3]! - ticks[4]!) / 100, total: total / 100 };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

/** Peak resident set size of a process so far (VmHWM), in MiB, or NaN. */
export function peakRssMiB(pid: number | undefined): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds per component of the stack, read at one moment; `cpuDelta` turns two readings into use over a window. */
export interface CpuReading {
  atMs: number;
  worker: number;
  temporal: number;
  /** Every PostgreSQL process on the machine (the server is shared: other databases' work counts too). */
  postgres: number;
  redis: number;
  /** This process (the load generator and the benchmark's own queries). */
  bench: number;
  machineBusy: number;
  machineTotal: number;
  /** Per-pid readings of the PostgreSQL processes, to count only what each did within the window. */
  postgresPids: Map<number, number>;
}

export function readCpu(pids: { worker?: number; temporal?: number }): CpuReading {
  const postgresPids = new Map<number, number>();
  for (const pid of pidsNamed('postgres')) postgresPids.set(pid, processCpuSec(pid));
  const own = process.cpuUsage();
  const m = machineCpuSec();
  return {
    atMs: performance.now(),
    worker: processCpuSec(pids.worker),
    temporal: processCpuSec(pids.temporal),
    postgres: [...postgresPids.values()].reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0),
    redis: pidsNamed('redis-server').reduce((a, pid) => a + processCpuSec(pid), 0),
    bench: (own.user + own.system) / 1e6,
    machineBusy: m.busy,
    machineTotal: m.total,
    postgresPids,
  };
}

/** CPU seconds each component used between two readings (PostgreSQL: backends started within the window count from zero). */
export interface CpuUse {
  windowSec: number;
  worker: number;
  temporal: number;
  postgres: number;
  redis: number;
  bench: number;
  /** Everything else the machine did (other processes: other engineers' test suites, the OS). */
  other: number;
  machineBusy: number;
  /** Share of the machine's CPU time that was busy over the window (1 = every core busy). */
  machineBusyShare: number;
}

export function cpuDelta(a: CpuReading, b: CpuReading): CpuUse {
  let postgres = 0;
  for (const [pid, end] of b.postgresPids) if (Number.isFinite(end)) postgres += end - (a.postgresPids.get(pid) ?? 0);
  const worker = b.worker - a.worker;
  const temporal = b.temporal - a.temporal;
  const redis = b.redis - a.redis;
  const bench = b.bench - a.bench;
  const machineBusy = b.machineBusy - a.machineBusy;
  return {
    windowSec: (b.atMs - a.atMs) / 1000,
    worker,
    temporal,
    postgres,
    redis,
    bench,
    other: Math.max(0, machineBusy - worker - temporal - postgres - redis - bench),
    machineBusy,
    machineBusyShare: machineBusy / (b.machineTotal - a.machineTotal),
  };
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * The p-th percentile (nearest rank) of ascending numbers, p in percent from 1 to 100 (99 for the
 * p99, 99.9 for the p99.9); NaN when empty. A fraction such as 0.99 is refused: it would silently
 * give about the 1st percentile.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 1 && p <= 100)) throw new RangeError(`percentile takes p in percent from 1 to 100 (99 for the p99), got ${p}`);
  if (sorted.length === 0) return Number.NaN;
  // Rounded before ceil: 99.9 / 100 * 1000 is 999.0000000000001 in binary floating point.
  const rank = Math.ceil(Number(((p / 100) * sorted.length).toFixed(9)));
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Ascending copy of `xs` as a typed array. */
export function sorted(xs: ArrayLike<number>): Float64Array {
  return Float64Array.from(xs as ArrayLike<number>).sort();
}

/** The 1, 5 and 15 minute load averages (for the record: was the machine quiet?). */
export function loadAverages(): number[] {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {
    return [];
  }
}
