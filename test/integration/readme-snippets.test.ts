/**
 * The README's drop-in examples run as printed: each fenced TypeScript block that starts with
 * `// <name>.ts: run from the repository root` is written to a file in the repository root and run
 * with tsx against a real stack, configured through the environment as `npm start` configures it
 * (a server on a free port, `PORT`). Scripts run to their end; servers get the request the README's
 * curl line sends, then Ctrl-C (SIGINT). What they print or answer and what reaches the ledger are checked.
 */
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/lib/paths.js';
import { eventually, type Stack, startStack } from './helpers/stack.js';
import { stackProcessEnv } from './helpers/worker-process.js';

const run = promisify(execFile);
let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

/** The README block that names itself `name`, as printed. */
function snippet(name: string): string {
  const readme = readFileSync(join(projectRoot(), 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const found = blocks.filter((b) => b.startsWith(`// ${name}: run from the repository root`));
  expect(found, `README block ${name}`).toHaveLength(1);
  return found[0]!;
}

async function runSnippet(name: string): Promise<string> {
  const file = join(projectRoot(), `.readme-${randomBytes(4).toString('hex')}-${name}`);
  writeFileSync(file, snippet(name));
  try {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', file], { cwd: projectRoot(), env: stackProcessEnv(stack), timeout: 60_000 });
    return stdout;
  } finally {
    rmSync(file, { force: true });
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a server example, runs `use(url)` against it, then stops it with SIGINT; resolves with use's result once it exited. */
async function withServer<T>(name: string, use: (url: string) => Promise<T>): Promise<T> {
  const file = join(projectRoot(), `.readme-${randomBytes(4).toString('hex')}-${name}`);
  writeFileSync(file, snippet(name));
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: projectRoot(), env: stackProcessEnv(stack, { PORT: String(port) }), stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(async () => out, (o) => o.includes(`listening on http://127.0.0.1:${port}`), 60_000, `${name} listening`);
    const result = await use(`http://127.0.0.1:${port}`);
    child.kill('SIGINT');
    expect(await exited).toBe(0); // its own SIGINT handler closed everything and it ended by itself
    return result;
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(file, { force: true });
  }
}

async function ledgerOf(userId: string, n: number): Promise<Array<{ kind: string; model: string }>> {
  return eventually(
    async () => (await stack.pool.query<{ kind: string; model: string }>('SELECT kind, model FROM usage_ledger WHERE user_id = $1 ORDER BY occurred_at', [userId])).rows,
    (r) => r.length >= n,
    30_000,
    `${n} ledger rows of ${userId}`,
  );
}

describe('README drop-in scripts', () => {
  it('drop-in.ts: three calls, three rows for alice', async () => {
    const out = await runSnippet('drop-in.ts');
    expect(out).toContain('chat: tok0000');
    expect(out).toContain('messages: {');
    const rows = await ledgerOf('alice', 3);
    expect(rows.map((r) => r.model).sort()).toEqual(['claude-3-5-sonnet-latest', 'gpt-4o-mini', 'gpt-4o-mini']);
  }, 90_000);

  it('server.ts (fastify): the curl of the README gets the request\'s totals in headers and body', async () => {
    const res = await withServer('server.ts', (url) =>
      fetch(`${url}/ask`, { method: 'POST', headers: { 'x-user-id': 'bob', 'content-type': 'application/json' }, body: JSON.stringify({ question: 'Why is the sky blue?' }) }),
    );
    expect(res.headers.get('x-costguard-calls')).toBe('1');
    expect(res.headers.get('x-costguard-cost-usd')).toBe('0.0000075');
    expect(await res.json()).toMatchObject({ llm: { calls: 1, estimatedCalls: 0, failedCalls: 0, tokens: { inputTokens: 30 }, costUsd: '0.0000075', unpricedCalls: 0, cacheHits: 0 } });
    await ledgerOf('bob', 1);
  }, 120_000);

  it('express-server.ts: the prompt guard row the README\'s psql line shows', async () => {
    const text = 'All work and no play. '.repeat(300);
    await withServer('express-server.ts', async (url) => {
      const res = await fetch(`${url}/summarise`, { method: 'POST', headers: { 'x-user-id': 'carol', 'content-type': 'application/json' }, body: JSON.stringify({ text }) });
      expect(res.status).toBe(200);
    });
    const rows = await eventually(
      async () =>
        (await stack.pool.query<{ task_type: string; input_tokens: number; guard: unknown }>("SELECT task_type, input_tokens::int, metadata->'promptGuard' AS guard FROM usage_ledger WHERE user_id = 'carol'")).rows,
      (r) => r.length === 1,
      30_000,
      'the row of carol',
    );
    expect(rows[0]).toEqual({ task_type: 'summarization', input_tokens: 2010, guard: { truncatedChars: 4611, maxTokensCappedTo: 1000, maxTokensCappedFrom: 4000 } });
  }, 120_000);

  it('cache.ts: one upstream call, then a hit recorded as cost avoided', async () => {
    const out = await runSnippet('cache.ts');
    expect(out).toContain('same answer: true | upstream calls: 1');
    const rows = await ledgerOf('dave', 2);
    expect(rows.map((r) => r.kind)).toEqual(['call', 'cache_hit']);
  }, 90_000);
});
