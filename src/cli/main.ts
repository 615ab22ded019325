#!/usr/bin/env node
/**
 * `costguard`: the command line. Every command but `start` takes --json for machine output and exits non-zero
 * on error: 2 bad input, 3 not found, 4 conflict, 5 unavailable, 1 anything else.
 */
import { existsSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { ConfigError, type Config, loadConfig } from '../config/index.js';
import { CostGuardError, ValidationError } from '../domain/errors.js';
import { migrate } from '../db/migrate.js';
import { createLogger } from '../lib/logger.js';
import { renderPriceText, runPriceCommand } from './price.js';

const EXIT = { validation: 2, not_found: 3, conflict: 4, unavailable: 5 } as const;

function config(): Config {
  return loadConfig(process.env);
}

function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
}

function handleError(err: unknown, json: boolean): never {
  let code = 1;
  let body: Record<string, unknown>;
  if (err instanceof ConfigError) {
    code = EXIT.validation;
    body = { error: 'config', message: err.message };
  } else if (err instanceof ValidationError) {
    code = EXIT.validation;
    body = { error: 'validation', message: err.message, issues: err.issues };
  } else if (err instanceof CostGuardError) {
    code = EXIT[err.code];
    body = { error: err.code, message: err.message };
  } else {
    body = { error: 'internal', message: err instanceof Error ? err.message : String(err) };
  }
  if (json) process.stderr.write(`${JSON.stringify(body)}\n`);
  else process.stderr.write(`costguard: ${String(body.message)}\n`);
  process.exit(code);
}

/** The command tree; exported so the README check can list commands and options without running one. */
export const program = new Command()
  .name('costguard')
  .description('Cost Guard: exact LLM cost metering, durable budgets and alerts')
  .showHelpAfterError();

program
  .command('price')
  .description('price one LLM call and print the cost breakdown')
  .requiredOption('--provider <id>', 'provider id, e.g. openai, anthropic, google')
  .requiredOption('--model <id>', 'model id as the provider reports it, e.g. gpt-4o-2024-08-06')
  .requiredOption('--usage <json>', 'token usage as JSON, e.g. \'{"inputTokens":1000,"outputTokens":200}\'')
  .addOption(
    new Option('--usage-format <format>', 'shape of --usage: Cost Guard fields, or the provider\'s own usage object')
      .choices(['costguard', 'openai', 'anthropic'])
      .default('costguard'),
  )
  .option('--at <iso-time>', 'when the call happened (prices change over time); default now')
  .option('--currency <code>', 'also convert to USD, EUR, GBP, JPY or CNY', 'USD')
  .option('--json', 'machine-readable output')
  .action((opts: { provider: string; model: string; usage: string; usageFormat: 'costguard'; at?: string; currency: string; json?: boolean }) => {
    try {
      const out = runPriceCommand(config(), opts, Date.now());
      print(Boolean(opts.json), out, renderPriceText(out));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

program
  .command('migrate')
  .description('apply database migrations (idempotent; waits for a concurrent run)')
  .option('--json', 'machine-readable output')
  .action(async (opts: { json?: boolean }) => {
    try {
      const cfg = config();
      const logger = createLogger(cfg.logLevel, undefined, cfg.logFormat);
      const { applied } = await migrate(cfg.databaseUrl, logger);
      print(Boolean(opts.json), { applied }, applied.length ? `applied: ${applied.join(', ')}` : 'database schema is up to date');
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

program
  .command('start')
  .description('run the worker and the HTTP API until SIGINT/SIGTERM')
  .option('--no-api', 'run the worker only (Prometheus metrics on METRICS_HOST:METRICS_PORT)')
  .option('--no-worker', 'run the API only (another process runs the worker on the same task queue)')
  .action(async (opts: { api: boolean; worker: boolean }) => {
    try {
      const { startAll } = await import('./start.js');
      await startAll(config(), { api: opts.api, worker: opts.worker });
    } catch (err) {
      handleError(err, false);
    }
  });

program
  .command('status')
  .description('show the live state of a scope\'s budgets (default scope: system)')
  .option('--user <id>', 'a user\'s budgets (scope user:<id>)')
  .option('--scope <scope>', 'a scope: system, user:<id>, team:<id> or project:<id>')
  .option('--json', 'machine-readable output (the status object)')
  .action(async (opts: { user?: string; scope?: string; json?: boolean }) => {
    try {
      const { renderStatusText, runStatusCommand } = await import('./status.js');
      const status = await runStatusCommand(config(), opts);
      print(Boolean(opts.json), status, renderStatusText(status));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

program
  .command('summary')
  .description("a scope's cost over the last N hours: totals, by provider and model, task type and hour (default scope: system)")
  .option('--user <id>', "a user's cost (scope user:<id>)")
  .option('--scope <scope>', 'a scope: system, user:<id>, team:<id> or project:<id>')
  .option('--hours <n>', 'the window, 1 to 168 hours', '24')
  .option('--json', 'machine-readable output (the summary object, exact decimal strings)')
  .action(async (opts: { user?: string; scope?: string; hours?: string; json?: boolean }) => {
    try {
      const { renderSummaryText, runSummaryCommand } = await import('./summary.js');
      const summary = await runSummaryCommand(config(), opts, Date.now());
      print(Boolean(opts.json), summary, renderSummaryText(summary));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

program
  .command('prune')
  .description('delete ledger rows and delivery log rows older than the configured retention (off by default)')
  .option('--dry-run', 'count what would be deleted, delete nothing')
  .option('--json', 'machine-readable output (cutoffs and rows per table)')
  .action(async (opts: { dryRun?: boolean; json?: boolean }) => {
    try {
      const { renderPruneText, runPruneCommand } = await import('./prune.js');
      const result = await runPruneCommand(config(), opts, Date.now());
      print(Boolean(opts.json), result, renderPruneText(result));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

program
  .command('simulate')
  .description('send synthetic LLM usage through the client library, with progress on stderr (Ctrl-C stops early and flushes)')
  .requiredOption('--users <n>', 'number of users, sim-user-1 .. sim-user-<n>')
  .requiredOption('--rate <events-per-second>', 'events per second in total across all users')
  .requiredOption('--duration <duration>', 'how long, e.g. 30s, 2m, 1h')
  .option('--seed <n>', 'seed of the synthetic usage (default: from the clock; printed in the summary)')
  .option('--json', 'machine-readable summary')
  .action(async (opts: { users: string; rate: string; duration: string; seed?: string; json?: boolean }) => {
    try {
      const { renderSimulationText, runSimulateCommand, simulationError } = await import('./simulate.js');
      const summary = await runSimulateCommand(config(), opts);
      print(Boolean(opts.json), summary, renderSimulationText(summary));
      const failure = simulationError(summary);
      if (failure) handleError(failure, Boolean(opts.json));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

const alerts = program.command('alerts').description('incidents: list, show, acknowledge');

alerts
  .command('list')
  .description('open incidents, most severe first (with --all, recently resolved ones too)')
  .option('--all', 'include resolved incidents')
  .option('--scope <scope>', 'only incidents of this scope')
  .option('--limit <n>', 'at most this many (1-1000)', '100')
  .option('--json', 'machine-readable output')
  .action(async (opts: { all?: boolean; scope?: string; limit?: string; json?: boolean }) => {
    try {
      const { renderAlertsList, runAlertsList } = await import('./alerts.js');
      const rows = await runAlertsList(config(), opts);
      print(Boolean(opts.json), { incidents: rows }, renderAlertsList(rows));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

alerts
  .command('show <id>')
  .description('one incident with its history')
  .option('--json', 'machine-readable output')
  .action(async (id: string, opts: { json?: boolean }) => {
    try {
      const { renderIncident, runAlertsShow } = await import('./alerts.js');
      const incident = await runAlertsShow(config(), id);
      print(Boolean(opts.json), incident, renderIncident(incident));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

alerts
  .command('ack <id>')
  .description('acknowledge an incident: you take responsibility and escalation stops')
  .option('--by <name>', 'who takes responsibility (default: your user name)')
  .option('--note <text>', 'a note for the others')
  .option('--json', 'machine-readable output')
  .action(async (id: string, opts: { by?: string; note?: string; json?: boolean }) => {
    try {
      const { renderAck, runAlertsAck } = await import('./alerts.js');
      const state = await runAlertsAck(config(), id, opts);
      print(Boolean(opts.json), state, renderAck(state));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });
const deadletter = program.command('deadletter').description('usage events set aside because they failed for a reason of their own: list, replay');

deadletter
  .command('list')
  .description('dead letters waiting for a replay, oldest first (with --all, replayed ones too)')
  .option('--all', 'include dead letters already replayed')
  .option('--limit <n>', 'at most this many (1-10000)', '100')
  .option('--json', 'machine-readable output')
  .action(async (opts: { all?: boolean; limit?: string; json?: boolean }) => {
    try {
      const { renderDeadLetters, runDeadLetterList } = await import('./deadletter.js');
      const rows = await runDeadLetterList(config(), opts);
      print(Boolean(opts.json), { deadLetters: rows }, renderDeadLetters(rows));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

deadletter
  .command('replay [ids...]')
  .description('send dead letters again through normal ingestion (after a fix); still-invalid ones stay waiting')
  .option('--all', 'every waiting dead letter')
  .option('--json', 'machine-readable output')
  .action(async (ids: string[], opts: { all?: boolean; json?: boolean }) => {
    try {
      const { renderReplay, runDeadLetterReplay } = await import('./deadletter.js');
      const summary = await runDeadLetterReplay(config(), ids, opts);
      print(Boolean(opts.json), summary, renderReplay(summary));
    } catch (err) {
      handleError(err, Boolean(opts.json));
    }
  });

const report = program.command('report').description('print a cost report (stored), or generate it now for any past period with --generate');

for (const kind of ['daily', 'monthly'] as const) {
  const flag = kind === 'daily' ? '--date <YYYY-MM-DD>' : '--month <YYYY-MM>';
  report
    .command(kind)
    .description(`the ${kind} report (default: the last complete ${kind === 'daily' ? 'day' : 'month'})`)
    .option(flag, kind === 'daily' ? 'the day to report on' : 'the month to report on')
    .option('--tz <zone>', 'IANA time zone of the period (default: reports.timezone, else timezone)')
    .option('--generate', 'generate (or regenerate) and store it now from the ledger, without delivering it')
    .option('--json', 'machine-readable output (the report object)')
    .action(async (opts: { date?: string; month?: string; tz?: string; generate?: boolean; json?: boolean }) => {
      try {
        const { renderReportText, runReportCommand } = await import('./report.js');
        const result = await runReportCommand(config(), kind, { period: opts.date ?? opts.month, tz: opts.tz, generate: opts.generate }, Date.now());
        print(Boolean(opts.json), result.report, renderReportText(result));
      } catch (err) {
        handleError(err, Boolean(opts.json));
      }
    });
}

// Parse only as the entry point (`costguard`, a symlink to it, or this file run directly), not when imported.
const entry = process.argv[1];
if (entry && existsSync(entry) && realpathSync(entry) === fileURLToPath(import.meta.url)) {
  await program.parseAsync(process.argv).catch((err: unknown) => handleError(err, false));
}

