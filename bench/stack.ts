/**
 * The stack a Temporal benchmark runs on: a Temporal dev server, a fresh migrated database, Redis
 * under a key prefix of its own, a client with the search attributes registered, and a Cost Guard
 * worker in a child process (so its CPU and memory are its own). `stop()` tears all of it down.
 *
 * The worker is the product as it ships: `costguard start --no-api` from the compiled build (built
 * first, so the figures are never those of stale code), not the TypeScript sources through tsx.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Redis } from 'ioredis';
import pg from 'pg';
import { projectRoot } from '../src/lib/paths.js';
import { findTemporalCli } from '../src/lib/temporal-cli.js';
import { registerSearchAttributes } from '../src/temporal/search-attributes.js';
import { freshDatabase, stopChild, until } from './lib.js';

export interface BenchStack {
  address: string;
  db: { url: string };
  /** The benchmark's own pool (the worker has its own). */
  pool: pg.Pool;
  redis: Redis;
  redisPrefix: string;
  taskQueue: string;
  client: Client;
  worker: ChildProcess;
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
}

let built = false;

/** Compiles the project once per benchmark run (`npm run build`). */
function buildOnce(): void {
  if (built) return;
  process.stderr.write('bench: compiling the worker (npm run build)\n');
  execFileSync(process.execPath, [join(projectRoot(), 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: projectRoot(), stdio: 'inherit' });
  built = true;
}

export async function startBenchStack(opts: BenchStackOptions): Promise<BenchStack> {
  buildOnce();
  const tag = randomBytes(4).toString('hex');
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: findTemporalCli(process.env) }, ip: '127.0.0.1', extraArgs: ['--log-level', 'error'] },
  });
  const db = await freshDatabase(opts.baseUrl);
  const pool = new pg.Pool({ connectionString: db.url, max: opts.poolMax });
  pool.on('error', () => undefined);
  const redis = new Redis(opts.redisUrl);
  const redisPrefix = `costguard-${opts.name}:${tag}:`;
  const taskQueue = `${opts.name}-${tag}`;
  const connection = await Connection.connect({ address: env.address });
  const client = new Client({ connection });
  let worker: ChildProcess | undefined;
  const stop = async () => {
    await stopChild(worker);
    await connection.close();
    await env.teardown();
    const keys = await redis.keys(`${redisPrefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    await pool.end();
    await db.drop();
  };
  try {
    await registerSearchAttributes(client, 'default');
    // BENCH_PROFILE_DIR=dir writes the worker's CPU profiles there (node --cpu-prof).
    const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
    worker = spawn(process.execPath, [...profile, 'dist/src/cli/main.js', 'start', '--no-api'], {
      cwd: projectRoot(),
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        REDIS_URL: opts.redisUrl,
        REDIS_KEY_PREFIX: redisPrefix,
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_TASK_QUEUE: taskQueue,
        LOG_LEVEL: 'silent',
        METRICS_PORT: '0',
        ...opts.workerEnv,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    worker.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await until('the worker', async () => out.includes('Press Ctrl-C to stop.'), 120_000, 100);
  } catch (err) {
    await stop();
    throw err;
  }
  return { address: env.address, db, pool, redis, redisPrefix, taskQueue, client, worker, stop };
}
