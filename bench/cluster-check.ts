/**
 * The cluster check, against a running `npm run start:cluster` (scripts/cluster.sh up): USERS users
 * at RATE events/s for DURATION s, posted to every API replica in turn (every 200 ms what is due,
 * 100 events or more a request, at most 32 requests in flight); optionally SIGKILLs one worker
 * part-way through. Then:
 *   - every request was accepted (202), and the ledger holds every event of this run exactly once
 *   - ledger = rollups (system hour rollups; every user's day rollups, calls and cost)
 *   - the system budget workflow's day spend = the ledger; each user's live status = its ledger
 *   - the CPU seconds of each process (temporal-server, each worker, each API) during the load
 *
 *   npx tsx bench/cluster-check.ts [--users 1000] [--rate 500] [--duration 60] [--kill-worker-at 20]
 *
 * It reads the processes scripts/cluster.sh started from $COSTGUARD_CLUSTER_DIR/processes and the
 * connection settings from the environment (eval "$(bash scripts/cluster.sh env)", DATABASE_URL of the
 * cluster's app database, API_KEYS or .data/api-key). Exit 0 only when every check holds.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import pg from 'pg';
import { readBudgetStatus } from '../src/client/budgets.js';
import { loadConfig } from '../src/config/index.js';
import { normalizeAmount } from '../src/domain/money.js';
import type { Scope } from '../src/domain/budget.js';
import { budgetWorkflowId, statusQuery } from '../src/messages.js';
import { connectTemporalClient } from '../src/temporal/connection.js';
import { fmt, processCpuSec, sleep, until } from './lib.js';

const { values } = parseArgs({
  options: { users: { type: 'string', default: '1000' }, rate: { type: 'string', default: '500' }, duration: { type: 'string', default: '60' }, 'kill-worker-at': { type: 'string' } },
});
const users = Number(values.users);
const rate = Number(values.rate);
const durationSec = Number(values.duration);
const killAtSec = values['kill-worker-at'] === undefined ? undefined : Number(values['kill-worker-at']);

const clusterDir = process.env.COSTGUARD_CLUSTER_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/root', '.cache'), 'costguard', 'cluster');
const processes = readFileSync(join(clusterDir, 'processes'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => l.split(' '))
  .map(([name, pid, url]) => ({ name: name!, pid: Number(pid), url }));
const apis = processes.filter((p) => p.name.startsWith('api-'));
const workers = processes.filter((p) => p.name.startsWith('worker-'));
const config = loadConfig(process.env);
const apiKey = config.api.keys[0]?.key ?? readFileSync(join(config.dataDir, 'api-key'), 'utf8').trim();

function eventOf(tag: string, i: number, user: number): Record<string, unknown> {
  return { requestId: `${tag}-${i}`, provider: 'openai', model: 'gpt-4o-mini', userId: `check-${user}`, usage: { inputTokens: 200 + (i % 900), outputTokens: 50 + (i % 300) } };
}

async function main(): Promise<void> {
  const tag = `cc-${randomBytes(3).toString('hex')}`;
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 4 });
  const connection = await connectTemporalClient(config.temporal);
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const serverPid = Number(readFileSync(join(clusterDir, 'temporal-server.pid'), 'utf8'));
  const measured = [{ name: 'temporal-server', pid: serverPid }, ...processes];
  const cpuBefore = new Map(measured.map((p) => [p.name, processCpuSec(p.pid)]));
  const statuses = new Map<number, number>();
  const pending: Promise<void>[] = [];
  const total = rate * durationSec;
  const tickMs = 200;
  const perTick = Math.round((rate * tickMs) / 1000);
  let sent = 0;
  let request = 0;
  let killed: string | undefined;
  const t0 = Date.now();
  process.stderr.write(`cluster check ${tag}: ${fmt(users)} users, ${rate} events/s for ${durationSec} s over ${apis.length} APIs, ${workers.length} workers\n`);
  // A gateway's client: what is due by now (a late tick catches up), in requests of at most
  // BATCH_EVENTS events over any users, round-robin over the APIs, at most MAX_IN_FLIGHT at once
  // (beyond that, events wait and go in larger requests: backpressure, never a burst).
  const BATCH_EVENTS = 100;
  const MAX_IN_FLIGHT = 32;
  let inFlight = 0;
  let events = 0;
  const eventsPerStatus = new Map<number, number>();
  for (let tick = 0; sent < total; tick++) {
    const due = Math.min(total, Math.max(sent + perTick, Math.floor(((Date.now() - t0) / 1000) * rate)));
    while (sent < due && inFlight < MAX_IN_FLIGHT) {
      const batch: Record<string, unknown>[] = [];
      const size = Math.max(BATCH_EVENTS, Math.ceil((due - sent) / (MAX_IN_FLIGHT - inFlight)));
      for (; sent < due && batch.length < size; sent++) batch.push(eventOf(tag, sent, (sent * 7919) % users));
      const api = apis[request++ % apis.length]!;
      inFlight++;
      events += batch.length;
      const count = (status: number) => {
        inFlight--;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        eventsPerStatus.set(status, (eventsPerStatus.get(status) ?? 0) + batch.length);
      };
      pending.push(
        fetch(`${api.url}/v1/usage`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': apiKey }, body: JSON.stringify(batch) }).then(
          async (res) => {
            await res.arrayBuffer();
            count(res.status);
          },
          () => count(0),
        ),
      );
    }
    if (killAtSec !== undefined && !killed && Date.now() - t0 >= killAtSec * 1000 && workers[0]) {
      process.kill(workers[0].pid, 'SIGKILL');
      killed = workers[0].name;
      process.stderr.write(`  t=${((Date.now() - t0) / 1000).toFixed(1)} s: SIGKILL ${killed} (pid ${workers[0].pid})\n`);
    }
    if (tick % 25 === 0) process.stderr.write(`  t=${((Date.now() - t0) / 1000).toFixed(0)} s: ${fmt(sent)} events sent, ${inFlight} requests in flight\n`);
    const next = t0 + (tick + 1) * tickMs;
    await sleep(Math.max(0, next - Date.now()));
  }
  await Promise.all(pending);
  const loadSec = (Date.now() - t0) / 1000;
  const cpu = Object.fromEntries(measured.map((p) => [p.name, p.name === killed ? 'killed' : +(processCpuSec(p.pid) - cpuBefore.get(p.name)!).toFixed(1)]));
  process.stderr.write(`  load done in ${loadSec.toFixed(1)} s; responses ${JSON.stringify(Object.fromEntries(statuses))}; waiting for the ledger\n`);

  const inLedger = async () => Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM usage_ledger WHERE request_id LIKE $1', [`${tag}-%`])).rows[0]!.n);
  const drainStart = Date.now();
  await until('every accepted event in the ledger', async () => (await inLedger()) >= total, 300_000, 500).catch(() => undefined);
  const drainSec = (Date.now() - drainStart) / 1000;
  const ledgerRows = await inLedger();
  const ledger = (await pool.query<{ n: string; c: string }>('SELECT count(*) AS n, coalesce(sum(cost_usd), 0)::text AS c FROM usage_ledger')).rows[0]!;
  const rollup = (await pool.query<{ n: string; c: string }>(`SELECT coalesce(sum(calls), 0) AS n, coalesce(sum(cost_usd), 0)::text AS c FROM usage_rollup_totals WHERE scope = 'system' AND period_kind = 'hour'`)).rows[0]!;
  const userMismatches = Number(
    (
      await pool.query<{ m: string }>(`
        WITH l AS (SELECT 'user:' || user_id AS scope, count(*) AS n, sum(cost_usd) AS c FROM usage_ledger GROUP BY 1),
             r AS (SELECT scope, sum(calls) AS n, sum(cost_usd) AS c FROM usage_rollup_totals WHERE scope LIKE 'user:%' AND period_kind = 'day' GROUP BY 1)
        SELECT count(*) FILTER (WHERE l.n IS DISTINCT FROM r.n OR l.c IS DISTINCT FROM r.c) AS m FROM l FULL JOIN r USING (scope)`)
    ).rows[0]!.m,
  );
  const dayLedger = normalizeAmount((await pool.query<{ c: string }>(`SELECT coalesce(sum(cost_usd), 0)::text AS c FROM usage_ledger WHERE occurred_at >= date_trunc('day', now() AT TIME ZONE $1) AT TIME ZONE $1`, [config.timezone])).rows[0]!.c);
  let systemWorkflowUsd = '';
  await until(
    'the system budget workflow to equal the ledger',
    async () => {
      const s = await client.workflow.getHandle(budgetWorkflowId('system')).query(statusQuery).catch(() => null);
      systemWorkflowUsd = s?.budgets.find((b) => b.period === 'day')?.spentUsd ?? '';
      return systemWorkflowUsd === dayLedger;
    },
    60_000,
    500,
  ).catch(() => undefined);
  let liveMismatched = 0;
  const sample = Array.from({ length: 20 }, (_, k) => Math.floor((k * users) / 20));
  for (const u of sample) {
    const l = (await pool.query<{ c: string; n: string }>('SELECT coalesce(sum(cost_usd), 0)::text AS c, count(*) AS n FROM usage_ledger WHERE user_id = $1', [`check-${u}`])).rows[0]!;
    const s = await readBudgetStatus(client, pool, config, `user:check-${u}` as Scope);
    const day = s.live.budgets.find((b) => b.period === 'day');
    if (!day || day.spentUsd !== normalizeAmount(l.c) || day.totals.calls !== Number(l.n)) liveMismatched++;
  }
  const result = {
    tag,
    users,
    rate,
    durationSec,
    loadSec: +loadSec.toFixed(1),
    acceptedPerSec: +(total / loadSec).toFixed(1),
    responses: Object.fromEntries(statuses),
    eventsByStatus: Object.fromEntries(eventsPerStatus),
    events,
    killed: killed ?? null,
    ledgerRowsOfThisRun: ledgerRows,
    drainSec: +drainSec.toFixed(1),
    ledgerEqualsSystemRollups: normalizeAmount(ledger.c) === normalizeAmount(rollup.c) && ledger.n === rollup.n,
    usersWhoseRollupsDiffer: userMismatches,
    systemWorkflowEqualsLedger: systemWorkflowUsd === dayLedger,
    liveStatusMismatched: liveMismatched,
    cpuSecDuringLoad: cpu,
  };
  const ok = (statuses.get(202) ?? 0) === request && ledgerRows === total && result.ledgerEqualsSystemRollups && userMismatches === 0 && result.systemWorkflowEqualsLedger && liveMismatched === 0;
  process.stdout.write(`${JSON.stringify({ ...result, ok }, null, 2)}\n`);
  await connection.close();
  await pool.end();
  process.exit(ok ? 0 : 1);
}

await main();
