import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
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
