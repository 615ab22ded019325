/**
 * The README's drop-in scripts run as printed: each fenced TypeScript block that starts with
 * `// <name>.ts: run from the repository root` and runs to its end (not a server) is written to a
 * file in the repository root and run with tsx against a real stack, configured through the
 * environment as `npm start` configures it. What it prints and what reaches the ledger are checked.
 */
import { execFile } from 'node:child_process';
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

  it('cache.ts: one upstream call, then a hit recorded as cost avoided', async () => {
    const out = await runSnippet('cache.ts');
    expect(out).toContain('same answer: true | upstream calls: 1');
    const rows = await ledgerOf('dave', 2);
    expect(rows.map((r) => r.kind)).toEqual(['call', 'cache_hit']);
  }, 90_000);
});
