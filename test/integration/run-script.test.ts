/**
 * `npm start` (scripts/run.sh) must leave nothing behind when it is stopped the ways a developer stops
 * it: Ctrl-C in a terminal (SIGINT to the whole foreground process group), also with the output piped
 * into `tee` (which dies on the same Ctrl-C, before our processes have written their last lines),
 * SIGTERM, SIGHUP (terminal closed), the pipe reader killed first, and SIGTERM to npm alone.
 *
 * Each case really starts the script in a fresh process group (detached: a new session, like a new
 * terminal), on ports of its own, with its data dir under a temporary folder and a database of its
 * own, so that a developer's `npm start` on the default ports is never touched. It waits for the
 * "Cost Guard is running." banner, records the processes the script started (the Temporal dev server
 * and `costguard start` among them), signals, and then waits, bounded, until no process of that group,
 * none of the recorded processes and no process carrying our unique data dir in its environment is
 * left. Nothing here asserts how long anything takes; the bound only turns a hang into a failure.
 * Only processes this file started are ever killed (the cleanup matches our unique data dir).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/lib/paths.js';

const ROOT = projectRoot();
const CLI_JS = join(ROOT, 'dist/src/cli/main.js');
const BASE_DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/costguard';
const BASE_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Upper bounds only (a hang fails the test instead of blocking the suite); never asserted as durations. */
const READY_BOUND_MS = 240_000;
/** run.sh waits up to 30 s for the app and 15 s for the Temporal server before SIGKILL. */
const GONE_BOUND_MS = 120_000;
const CASE_TIMEOUT_MS = READY_BOUND_MS + GONE_BOUND_MS + 30_000;

/** A process as recorded while the stack runs: pid plus start time, so a reused pid is not mistaken for it. */
interface Proc {
  pid: number;
  ppid: number;
  pgid: number;
  start: string;
  cmd: string;
}

function readProc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined; // exited, only waiting to be reaped
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { pid, ppid: Number(fields[1]), pgid: Number(fields[2]), start: fields[19] ?? '', cmd };
  } catch {
    return undefined; // gone
  }
}

function allProcs(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

function environHas(pid: number, needle: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(needle);
  } catch {
    return false;
  }
}

/** The process group `pgid`, every descendant of its members (whatever their group) and every process with `envMark` in its environment. */
function stackProcs(pgid: number, envMark: string): Proc[] {
  const procs = allProcs();
  const found = new Map<number, Proc>();
  for (const p of procs) if (p.pgid === pgid || environHas(p.pid, envMark)) found.set(p.pid, p);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!found.has(p.pid) && found.has(p.ppid)) {
        found.set(p.pid, p);
        grew = true;
      }
    }
  }
  return [...found.values()];
}

function stillAlive(recorded: Proc[], pgid: number, envMark: string): Proc[] {
  const alive = new Map<number, Proc>();
  for (const r of recorded) {
    const now = readProc(r.pid);
    if (now && now.start === r.start) alive.set(r.pid, now);
  }
  for (const p of stackProcs(pgid, envMark)) alive.set(p.pid, p);
  return [...alive.values()];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

const id = randomBytes(5).toString('hex');
const tmp = mkdtempSync(join(tmpdir(), 'cg-run-script-'));
const dataDir = join(tmp, 'data');
/** Everything run.sh starts inherits this exact environment entry: how we recognise our processes. */
const envMark = `COSTGUARD_DATA_DIR=${dataDir}`;
const dbName = `costguard_runscript_${id}`;
const redisPrefix = `cg-runscript-${id}:`;
let env: NodeJS.ProcessEnv;
let apiPort = 0;
let caseNo = 0;

interface Stack {
  child: ChildProcess;
  pgid: number;
  /** What reached the pipe reader (or the file, for the no-pipe case). */
  runLog: string;
  exited: Promise<void>;
}

/** Starts `pipeline` (a bash command line run from the repository root) in a new session and process group. */
async function start(pipeline: string): Promise<Stack> {
  caseNo += 1;
  const runLog = join(tmp, `run-${caseNo}.log`);
  const outerLog = openSync(join(tmp, `outer-${caseNo}.log`), 'a');
  // detached: setsid(), so the shell is the leader of a new process group as in a fresh terminal.
  // Node's spawn resets every signal to its default disposition in the child, as a terminal does.
  const child = spawn('bash', ['-c', pipeline], {
    cwd: ROOT,
    env: { ...env, RUN_LOG: runLog },
    detached: true,
    stdio: ['ignore', outerLog, outerLog],
  });
  closeSync(outerLog);
  const pgid = child.pid;
  if (pgid === undefined) throw new Error(`could not start: ${pipeline}`);
  let done = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => ((done = true), resolve())));
  const stack = { child, pgid, runLog, exited };
  const deadline = Date.now() + READY_BOUND_MS;
  for (;;) {
    const out = existsSync(runLog) ? readFileSync(runLog, 'utf8') : '';
    if (out.includes('Cost Guard is running.')) return stack;
    if (done) throw new Error(`${pipeline} exited before the ready banner:\n${out.slice(-4000)}`);
    if (Date.now() > deadline) throw new Error(`no ready banner from ${pipeline} within the bound:\n${out.slice(-4000)}`);
    await sleep(250);
  }
}

/** The processes of the running stack, checked to include the two that must not be orphaned. */
function record(stack: Stack): Proc[] {
  const procs = stackProcs(stack.pgid, envMark);
  const cmds = procs.map((p) => p.cmd);
  expect(cmds.some((c) => c.includes('server start-dev') && c.includes(dataDir)), cmds.join('\n')).toBe(true);
  expect(cmds.some((c) => c.includes('dist/src/cli/main.js start')), cmds.join('\n')).toBe(true);
  return procs;
}

/** Waits (bounded) until nothing of the stack is left; returns what is still alive at the bound. */
async function survivors(stack: Stack, recorded: Proc[]): Promise<Proc[]> {
  const deadline = Date.now() + GONE_BOUND_MS;
  for (;;) {
    const alive = stillAlive(recorded, stack.pgid, envMark);
    if (alive.length === 0 || Date.now() > deadline) return alive;
    await sleep(200);
  }
}

function describeProcs(procs: Proc[]): string {
  return procs.map((p) => `${p.pid} (pgid ${p.pgid}, ppid ${p.ppid}) ${p.cmd}`).join('\n');
}

function signalGroup(stack: Stack, signal: NodeJS.Signals): void {
  process.kill(-stack.pgid, signal);
}

async function expectNothingLeft(stack: Stack, recorded: Proc[]): Promise<void> {
  const alive = await survivors(stack, recorded);
  expect(describeProcs(alive), `still running after the signal (see ${tmp})`).toBe('');
  await stack.exited;
}

/** Last resort for a failed case: only processes carrying our unique data dir (ours by construction). */
function killOurLeftovers(): void {
  for (const p of allProcs()) {
    if (p.pid !== process.pid && environHas(p.pid, envMark)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** Reader process = the `tee` writing RUN_LOG, child of the shell that leads the group. */
function reader(stack: Stack, recorded: Proc[]): Proc {
  const tee = recorded.find((p) => p.ppid === stack.pgid && p.cmd.startsWith('tee '));
  if (!tee) throw new Error(`no tee reader among:\n${describeProcs(recorded)}`);
  return tee;
}

const PIPE_ALL = 'bash scripts/run.sh 2>&1 | tee -a "$RUN_LOG"';

describe('scripts/run.sh (npm start) leaves no process behind', () => {
  beforeAll(async () => {
    if (!existsSync(CLI_JS)) throw new Error(`${CLI_JS} is missing: run npm run build first (npm test does)`);
    const [api, temporal, ui] = [await freePort(), await freePort(), await freePort()];
    apiPort = api;
    env = {
      ...process.env,
      API_PORT: String(api),
      TEMPORAL_ADDRESS: `127.0.0.1:${temporal}`,
      TEMPORAL_UI_PORT: String(ui),
      COSTGUARD_DATA_DIR: dataDir,
      DATABASE_URL: withDatabase(BASE_DATABASE_URL, dbName),
      REDIS_URL: BASE_REDIS_URL,
      REDIS_KEY_PREFIX: redisPrefix,
      // npm test has just built dist/; a second tsc here would only cost time (and rewrite dist/).
      COSTGUARD_SKIP_BUILD: '1',
    };
    delete env.COSTGUARD_RUN_PDEATHSIG;
    delete env.API_KEYS; // the key file in our data dir, as a developer's first run
  });

  afterEach(() => killOurLeftovers());

  afterAll(async () => {
    killOurLeftovers();
    const admin = new pg.Client({ connectionString: withDatabase(BASE_DATABASE_URL, 'postgres') });
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    const redis = new Redis(BASE_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 500);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    } finally {
      redis.disconnect();
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  it(
    'npm start alone, Ctrl-C: the app is stopped (and has flushed) before the Temporal server, whose SQLite file is in WAL mode',
    async () => {
      const stack = await start('npm start >>"$RUN_LOG" 2>&1');
      const recorded = record(stack);
      signalGroup(stack, 'SIGINT');
      await expectNothingLeft(stack, recorded);
      const out = readFileSync(stack.runLog, 'utf8');
      const at = (s: string) => {
        const i = out.indexOf(s);
        expect(i, `"${s}" in the output:\n${out.slice(-3000)}`).toBeGreaterThanOrEqual(0);
        return i;
      };
      expect(at('SIGINT received')).toBeLessThan(at('stopping Cost Guard'));
      expect(at('stopping Cost Guard')).toBeLessThan(at('"msg":"stopped"'));
      expect(at('"msg":"stopped"')).toBeLessThan(at('stopping the Temporal dev server'));
      expect(out).not.toContain('did not stop within');
      // run.sh's default SQLite pragmas reached the server: bytes 18-19 of a SQLite file header are
      // its write/read format versions, 2 once the file is in WAL mode (1 with a rollback journal).
      const header = readFileSync(join(dataDir, 'temporal.sqlite')).subarray(0, 20);
      expect([header[18], header[19]]).toEqual([2, 2]);
    },
    CASE_TIMEOUT_MS,
  );

  it(
    'Ctrl-C with the output piped into tee, which dies on the same SIGINT',
    async () => {
      const stack = await start(PIPE_ALL);
      const recorded = record(stack);
      signalGroup(stack, 'SIGINT');
      await expectNothingLeft(stack, recorded);
    },
    CASE_TIMEOUT_MS,
  );

  it(
    'SIGTERM to the process group, output piped into tee',
    async () => {
      const stack = await start(PIPE_ALL);
      const recorded = record(stack);
      signalGroup(stack, 'SIGTERM');
      await expectNothingLeft(stack, recorded);
    },
    CASE_TIMEOUT_MS,
  );

  it(
    'SIGHUP to the process group (terminal closed), output piped into tee',
    async () => {
      const stack = await start(PIPE_ALL);
      const recorded = record(stack);
      signalGroup(stack, 'SIGHUP');
      await expectNothingLeft(stack, recorded);
    },
    CASE_TIMEOUT_MS,
  );

  it(
    'the pipe reader killed first: the stack keeps serving, then Ctrl-C stops all of it',
    async () => {
      const stack = await start(PIPE_ALL);
      const recorded = record(stack);
      process.kill(reader(stack, recorded).pid, 'SIGKILL');
      // Requests make the app log to its (now dead) stdout; it must keep answering.
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
        expect(res.status).toBe(200);
        await res.arrayBuffer();
        await sleep(200);
      }
      expect(stillAlive(recorded, stack.pgid, envMark).some((p) => p.cmd.includes('dist/src/cli/main.js start'))).toBe(true);
      signalGroup(stack, 'SIGINT');
      await expectNothingLeft(stack, recorded);
    },
    CASE_TIMEOUT_MS,
  );

  it(
    'SIGTERM to npm alone (its sh -c dies without passing it on), output piped into tee',
    async () => {
      const stack = await start('npm start 2>&1 | tee -a "$RUN_LOG"');
      const recorded = record(stack);
      const npm = recorded.find((p) => p.ppid === stack.pgid && /^npm start\b/.test(p.cmd));
      if (!npm) throw new Error(`no npm process among:\n${describeProcs(recorded)}`);
      process.kill(npm.pid, 'SIGTERM');
      await expectNothingLeft(stack, recorded);
    },
    CASE_TIMEOUT_MS,
  );
});
