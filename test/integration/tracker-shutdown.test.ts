/**
 * A script stopped the way `tsx` stops it on Ctrl-C (the signal, then SIGKILL about 60 ms later when
 * the child has not exited) keeps its last recorded call: the tracker sends what it holds at the
 * signal instead of after its linger. Real processes, real Temporal and PostgreSQL; the script's
 * wrapped OpenAI SDK calls the local LLM server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/lib/paths.js';
import { type LlmServer, startLlmServer } from './helpers/llm-servers.js';
import { eventually, type Stack, startStack } from './helpers/stack.js';
import { stackProcessEnv } from './helpers/worker-process.js';

let stack: Stack;
let srv: LlmServer;

beforeAll(async () => {
  [stack, srv] = await Promise.all([startStack({ configYaml: 'ingest: { shards: 2, lingerMs: 30 }\n' }), startLlmServer()]);
}, 120_000);

afterAll(async () => {
  await srv?.close();
  await stack?.stop();
});

const CALLS = 3;

async function ledgerCalls(userId: string): Promise<number> {
  const r = await stack.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM usage_ledger WHERE user_id = $1', [userId]);
  return Number(r.rows[0]!.n);
}

/** Runs the script until its calls are done, signals it, SIGKILLs it 60 ms later; resolves with how it ended. */
async function runAndStop(userId: string, signal: 'SIGINT' | 'SIGTERM'): Promise<{ code: number | null; signal: string | null }> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/tracker-signal-process.ts'], {
    cwd: projectRoot(),
    env: stackProcessEnv(stack, { COSTGUARD_CONFIG: stack.config.configFile ?? '', OPENAI_BASE_URL: srv.openaiBaseURL, USER_ID: userId, CALLS: String(CALLS) }),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // A user's script runs at normal priority; the test runner may be niced (a shared machine), and a
  // niced child on a busy machine can wait longer than 60 ms for the CPU to see its signal at all.
  try {
    setPriority(child.pid!, 0);
  } catch {
    // not allowed to raise it back: the trial runs niced
  }
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig })));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await eventually(async () => out, (o) => o.includes('calls done'), 60_000, 'script calls done');
  child.kill(signal);
  const killer = setTimeout(() => child.kill('SIGKILL'), 60);
  const end = await exited;
  clearTimeout(killer);
  return end;
}

describe('CostTracker on SIGINT / SIGTERM', () => {
  it('the last call is in the ledger in every one of 10 trials (signal, then SIGKILL 60 ms later)', async () => {
    const users: string[] = [];
    for (let trial = 0; trial < 10; trial++) {
      const user = `sig-${trial}-${Date.now()}`;
      users.push(user);
      const end = await runAndStop(user, trial % 2 === 0 ? 'SIGINT' : 'SIGTERM');
      // Ended by the signal itself (re-raised after the flush) or by the SIGKILL: never by an exit of its own.
      expect(end.code).toBeNull();
    }
    for (const user of users) {
      await eventually(() => ledgerCalls(user), (n) => n === CALLS, 30_000, `${CALLS} ledger rows of ${user}`);
    }
  }, 240_000);
});
