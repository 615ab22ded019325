/**
 * A Cost Guard worker in a child process of its own (test/fixtures/worker-process.ts), on the
 * stack's database, Redis prefix, Temporal server and task queue, so a test can SIGKILL it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { projectRoot } from '../../../src/lib/paths.js';
import { type Stack, eventually } from './stack.js';

/** The environment of a child process on the stack's database, Redis prefix, Temporal server and task queue. */
export function stackProcessEnv(stack: Stack, env: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: stack.config.databaseUrl,
    REDIS_URL: stack.config.redis.url,
    REDIS_KEY_PREFIX: stack.config.redis.keyPrefix,
    TEMPORAL_ADDRESS: stack.config.temporal.address,
    TEMPORAL_NAMESPACE: stack.config.temporal.namespace,
    TEMPORAL_TASK_QUEUE: stack.taskQueue,
    LOG_LEVEL: 'silent',
    ...env,
  };
}

export async function spawnWorkerProcess(stack: Stack, env: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/worker-process.ts'], {
    cwd: projectRoot(),
    env: stackProcessEnv(stack, env),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await eventually(async () => out, (o) => o.includes('worker ready'), 60_000, 'worker process ready');
  return child;
}

/** Scopes (each user, and the system) whose day rollups differ from the sum of their ledger rows: none, when exact. */
export async function rollupMismatches(stack: Stack): Promise<unknown[]> {
  const { rows } = await stack.pool.query(`
    SELECT l.scope, l.cost, coalesce(r.cost, 0) AS rollup FROM
      (SELECT 'user:' || user_id AS scope, sum(cost_usd) AS cost FROM usage_ledger GROUP BY 1
       UNION ALL SELECT 'system', sum(cost_usd) FROM usage_ledger) l
    LEFT JOIN (SELECT scope, sum(cost_usd) AS cost FROM usage_rollups WHERE period_kind = 'day' GROUP BY 1) r USING (scope)
    WHERE l.cost <> coalesce(r.cost, 0)`);
  return rows;
}
