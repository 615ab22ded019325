/**
 * The stack a Temporal benchmark runs on: a Temporal dev server (started here, so its pid is known
 * and its CPU can be read), a fresh migrated database, Redis under a key prefix of its own, a client
 * with the search attributes registered, and a Cost Guard worker in a child process (so its CPU and
 * memory are its own). `stop()` tears all of it down.
 *
 * The worker is the product as it ships: `costguard start --no-api` (or `costguard start`, worker and
 * API, for the `npm start` equivalent) from the compiled build (built first, so the figures are never
 * those of stale code), not the TypeScript sources through tsx.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import pg from 'pg';
import { type Config, loadConfig } from '../src/config/index.js';
import { projectRoot } from '../src/lib/paths.js';
import { findTemporalCli } from '../src/lib/temporal-cli.js';
import { registerSearchAttributes } from '../src/temporal/search-attributes.js';
import { freePort, freshDatabase, onInterrupt, sleep, stopChild, trackChild, until } from './lib.js';

export interface TemporalDevServer {
  address: string;
  pid: number;
  /** The server's Prometheus endpoint (`--metrics-port`). */
  metricsUrl: string;
  /** The command line it was started with (for the record). */
  args: string[];
  stop(): Promise<void>;
}

export interface DevServerOptions {
  /** SQLite file of the server's state; default: in memory (the dev server's default). */
  dbFile?: string;
  /** `--sqlite-pragma` values, e.g. `journal_mode=WAL`. */
  sqlitePragmas?: readonly string[];
  /** Serve the Web UI as `npm start` does (default: headless). */
  ui?: boolean;
  logLevel?: string;
}

/** Starts `temporal server start-dev` on free ports and waits until the default namespace answers. */
export async function startTemporalDevServer(opts: DevServerOptions = {}): Promise<TemporalDevServer> {
  const [port, metricsPort, httpPort, uiPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
    '--metrics-port',
    String(metricsPort),
    '--log-level',
    opts.logLevel ?? 'error',
    ...(opts.ui ? ['--ui-port', String(uiPort)] : ['--headless']),
    ...(opts.dbFile ? ['--db-filename', opts.dbFile] : []),
    ...(opts.sqlitePragmas ?? []).flatMap((p) => ['--sqlite-pragma', p]),
  ];
  const child = trackChild(spawn(findTemporalCli(process.env), args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 20_000) stderr += d.toString();
  });
  const address = `127.0.0.1:${port}`;
  const stop = () => stopChild(child, 15_000);
  try {
    await until(
      'the Temporal dev server',
      async () => {
        if (child.exitCode !== null) throw new Error(`the Temporal dev server exited (${child.exitCode}): ${stderr.slice(-2000)}`);
        try {
          const c = await Connection.connect({ address, connectTimeout: 1000 });
          try {
            await c.workflowService.describeNamespace({ namespace: 'default' });
            return true;
          } finally {
            await c.close();
          }
        } catch {
          return false;
        }
      },
      60_000,
      200,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, pid: child.pid!, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, args, stop };
}

export interface BenchStack {
  address: string;
  temporal: TemporalDevServer;
  db: { url: string };
  /** The benchmark's own pool (the worker has its own). */
  pool: pg.Pool;
  redis: Redis;
  redisPrefix: string;
  taskQueue: string;
  client: Client;
  worker: ChildProcess;
  /** What the worker printed on stdout (the start banner, and logs when LOG_LEVEL is set). */
  workerOutput: () => string;
  /** The configuration the worker runs with, loaded here from the same environment (readBudgetStatus needs it). */
  config: Config;
  stop(): Promise<void>;
}

export interface BenchStackOptions {
  baseUrl: string;
  redisUrl: string;
  /** Names the task queue and the Redis prefix, e.g. `bench-alerts`. */
  name: string;
  /** Connections of the benchmark's own pool. */
  poolMax: number;
  /** More environment for the worker (e.g. COSTGUARD_CONFIG). */
  workerEnv?: Record<string, string>;
  /** `costguard` arguments; default `start --no-api` (the worker alone). */
  workerArgs?: string[];
  /** The Temporal dev server's options (default: in memory, headless). */
  temporal?: DevServerOptions;
  /** Use this task queue instead of a tagged one (e.g. the default `costguard`). */
  taskQueue?: string;
}

let built = false;

/** Compiles the project once per benchmark run (`npm run build`). */
export function buildOnce(): void {
  if (built) return;
  process.stderr.write('bench: compiling the worker (npm run build)\n');
  execFileSync(process.execPath, [join(projectRoot(), 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: projectRoot(), stdio: 'inherit' });
  built = true;
}

export async function startBenchStack(opts: BenchStackOptions): Promise<BenchStack> {
  buildOnce();
  const tag = randomBytes(4).toString('hex');
  const temporal = await startTemporalDevServer(opts.temporal);
  const db = await freshDatabase(opts.baseUrl).catch(async (err: unknown) => {
    await temporal.stop();
    throw err;
  });
  const pool = new pg.Pool({ connectionString: db.url, max: opts.poolMax });
  pool.on('error', () => undefined);
  const redis = new Redis(opts.redisUrl);
  const redisPrefix = `costguard-${opts.name}:${tag}:`;
  const taskQueue = opts.taskQueue ?? `${opts.name}-${tag}`;
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection });
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    REDIS_URL: opts.redisUrl,
    REDIS_KEY_PREFIX: redisPrefix,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_TASK_QUEUE: taskQueue,
    LOG_LEVEL: 'silent',
    METRICS_PORT: '0',
    ...opts.workerEnv,
  };
  const config = loadConfig(env);
  let worker: ChildProcess | undefined;
  let stopped: Promise<void> | undefined;
  let out = '';
  let errTail = '';
  let stopping = false;
  const stop = () =>
    (stopped ??= (async () => {
      stopping = true;
      unregister();
      await stopChild(worker);
      await connection.close().catch(() => undefined);
      await temporal.stop();
      const keys = await redis.keys(`${redisPrefix}*`).catch(() => [] as string[]);
      if (keys.length > 0) await redis.del(...keys).catch(() => undefined);
      redis.disconnect();
      await pool.end().catch(() => undefined);
      await db.drop().catch(() => undefined);
    })());
  const unregister = onInterrupt(stop);
  try {
    await registerSearchAttributes(client, 'default');
    // BENCH_PROFILE_DIR=dir writes the worker's CPU profiles there (node --cpu-prof).
    const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
    worker = trackChild(
      spawn(process.execPath, [...profile, 'dist/src/cli/main.js', ...(opts.workerArgs ?? ['start', '--no-api'])], {
        cwd: projectRoot(),
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    worker.stdout!.on('data', (d: Buffer) => {
      if (out.length < 200_000) out += d.toString();
    });
    // The SDK's own INFO lines (worker state changes) are noise here: kept, and shown only if the worker fails.
    worker.stderr!.on('data', (d: Buffer) => {
      errTail = (errTail + d.toString()).slice(-20_000);
    });
    worker.once('exit', (code, signal) => {
      if (!stopping && (code !== 0 || signal)) process.stderr.write(`bench: the worker exited (${code ?? signal}) during the benchmark; its last output:\n${errTail}\n`);
    });
    await until(
      'the worker',
      async () => {
        if (worker!.exitCode !== null) throw new Error(`the worker exited (${worker!.exitCode}) before it was ready:\n${out.slice(-2000)}\n${errTail.slice(-4000)}`);
        return out.includes('Press Ctrl-C to stop.');
      },
      120_000,
      100,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  // Let the worker poll its task queues before the first signal arrives.
  await sleep(500);
  return { address: temporal.address, temporal, db, pool, redis, redisPrefix, taskQueue, client, worker, workerOutput: () => out, config, stop };
}
