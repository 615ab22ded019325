import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/lib/paths.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

const run = promisify(execFile);
const BIN = join(projectRoot(), 'dist/src/cli/main.js');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `costguard` binary (npm test builds dist/ before vitest). */
async function costguard(args: string[], env: Record<string, string> = {}): Promise<Outcome> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build first`);
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('costguard price', () => {
  it('prints the exact breakdown as JSON, with the converted amount and the price source', async () => {
    const out = await costguard([
      'price', '--provider', 'openai', '--model', 'gpt-4o-2024-08-06',
      '--usage', '{"inputTokens":10000,"cacheReadTokens":4000,"outputTokens":500}',
      '--at', '2026-01-10T00:00:00Z', '--currency', 'EUR', '--json',
    ]);
    expect(out.code).toBe(0);
    const body = JSON.parse(out.stdout);
    // gpt-4o: input 2.5, cache read 1.25, output 10 per Mtok: 6000 x 2.5 + 4000 x 1.25 + 500 x 10 = 0.025 USD
    expect(body).toMatchObject({
      priced: true,
      totalUsd: '0.025',
      currency: 'EUR',
      amount: '0.023',
      breakdown: {
        input: { units: 6000, costUsd: '0.015' },
        cacheRead: { units: 4000, costUsd: '0.005' },
        output: { units: 500, costUsd: '0.005' },
      },
      price: { source: 'catalog', provider: 'openai', model: 'gpt-4o', catalogVersion: expect.stringMatching(/^genai-prices@/) },
    });
  });

  it('applies overrides from the config file in the original per-1K format', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cg-cli-'));
    const file = join(dir, 'costguard.yaml');
    writeFileSync(file, 'pricing:\n  overrides:\n    - { provider: openai, model: gpt-4, inputPer1k: "0.03", outputPer1k: "0.06" }\n');
    const out = await costguard(
      ['price', '--provider', 'openai', '--model', 'gpt-4', '--usage', '{"inputTokens":1000,"outputTokens":1000}', '--json'],
      { COSTGUARD_CONFIG: file },
    );
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ totalUsd: '0.09', price: { source: 'override' } });
  });

  it('reports an unknown model as unpriced with the reason', async () => {
    const out = await costguard(['price', '--provider', 'openai', '--model', 'gpt-99', '--usage', '{"inputTokens":5}', '--json']);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ priced: false, totalUsd: '0', unpricedReason: expect.stringContaining('gpt-99') });
  });

  it.each([
    [['--usage', '{"inputTokens":-5}'], '--usage.inputTokens'],
    [['--usage', '{"inputTokens":10,"cacheReadTokens":11}'], '--usage.cacheReadTokens'],
    [['--usage', 'not json'], '--usage: is not valid JSON'],
    [['--usage', '{"inputTokens":1}', '--currency', 'XYZ'], '--currency'],
    [['--usage', '{"inputTokens":1}', '--at', 'tomorrow'], '--at'],
  ])('exits 2 naming the bad input %j', async (args, fragment) => {
    const out = await costguard(['price', '--provider', 'openai', '--model', 'gpt-4o', ...args]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(fragment);
    expect(out.stdout).toBe('');
  });

  it('stops on a bad configuration value, naming key, value and expectation', async () => {
    const out = await costguard(['price', '--provider', 'openai', '--model', 'gpt-4o', '--usage', '{}'], { API_PORT: 'abc' });
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/API_PORT = "abc": expected a port number/);
  });
});

describe('costguard migrate', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ migrate: false });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('applies the migrations, then reports the schema up to date', async () => {
    const first = await costguard(['migrate', '--json'], { DATABASE_URL: db.url });
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({ applied: ['0001_usage_ledger', '0002_budget_configs', '0003_notification_deliveries', '0004_alerts', '0005_reports', '0006_rollup_day_index', '0007_dead_letters_and_estimates', '0008_cache_hits'] });
    const second = await costguard(['migrate'], { DATABASE_URL: db.url });
    expect(second).toMatchObject({ code: 0, stdout: 'database schema is up to date\n' });
  });
});
