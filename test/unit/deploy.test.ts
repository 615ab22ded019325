/**
 * The deployment files: the Grafana dashboard refers only to metrics Cost Guard exports (the list
 * comes from a real registry, not from this test), the compose file passes `docker-compose config`
 * with every service the stack needs, and Prometheus' configuration passes `promtool check config`
 * and scrapes the services compose defines.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/index.js';
import { projectRoot } from '../../src/lib/paths.js';
import { createMetrics } from '../../src/metrics/index.js';
import { promtoolPath } from '../prom-text.js';

const root = projectRoot();
const read = (path: string) => readFileSync(join(root, path), 'utf8');

interface Panel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string }[];
}
const dashboard = JSON.parse(read('deploy/grafana/dashboards/costguard.json')) as { uid: string; panels: Panel[] };
const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan',
]);

/**
 * The metric names a PromQL expression selects: identifiers left once strings, label matchers,
 * grouping clauses, range selectors and Grafana variables are removed, that are not functions
 * (followed by "(") or keywords.
 */
function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names: string[] = [];
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?/g)) {
    if (m[1] || PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

/** Every series name the registry exports (a histogram `h` as h_bucket, h_sum and h_count). */
function exportedSeriesNames(): Set<string> {
  const metrics = createMetrics({ config: loadConfig({}) });
  const names = new Set<string>();
  for (const m of metrics.registry.getMetricsAsArray()) {
    const type = (m as unknown as { type: string }).type;
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m.name + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(m.name + suffix);
    else names.add(m.name);
  }
  return names;
}

/** The recording rules that copy an exported series under another name (deploy/prometheus/rules.yml). */
function recordedAliases(): Map<string, string> {
  const rules = parseYaml(read('deploy/prometheus/rules.yml')) as { groups: { rules: { record: string; expr: string }[] }[] };
  return new Map(rules.groups.flatMap((g) => g.rules.filter((r) => /^[a-z_]+$/.test(r.expr)).map((r) => [r.record, r.expr] as const)));
}

/**
 * Each series name Prometheus holds with the labels it carries: the exported ones (a histogram's
 * series also carry `le`) and their recorded copies.
 */
function exportedLabels(): Map<string, Set<string>> {
  const metrics = createMetrics({ config: loadConfig({}) });
  const labels = new Map<string, Set<string>>();
  for (const m of metrics.registry.getMetricsAsArray()) {
    const own = (m as unknown as { labelNames?: string[] }).labelNames ?? [];
    const type = (m as unknown as { type: string }).type;
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) labels.set(m.name + suffix, new Set(suffix === '_bucket' ? [...own, 'le'] : own));
    else labels.set(m.name, new Set(own));
  }
  for (const [alias, source] of recordedAliases()) labels.set(alias, labels.get(source)!);
  return labels;
}

/**
 * The labels an expression filters or groups by that none of its metrics carries: a query on a
 * label the registry does not export matches nothing, silently (as `budget_type="daily"` did).
 */
function unknownLabels(expr: string, exported: Map<string, Set<string>>): string[] {
  const carried = new Set(promqlMetricNames(expr).flatMap((n) => [...(exported.get(n) ?? [])]));
  const used = [
    ...[...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!)),
    ...[...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim()).filter(Boolean)),
  ];
  return used.filter((l) => !carried.has(l));
}

/** The original specification's queries, as written: they must select series Cost Guard exports. */
const ORIGINAL_QUERIES = [
  'budget_usage_ratio{budget_type="daily"}',
  'budget_usage_ratio{budget_type="monthly"}',
  'sum by (task_type) (rate(llm_total_cost_usd[5m]))',
  'sum by (task_type) (rate(llm_cost_usd_total[5m]))',
  'sum by (status) (rate(llm_api_calls_total[5m]))',
  'histogram_quantile(0.95, sum by (le, model) (rate(llm_token_usage_bucket[5m])))',
  // The original dashboard's four queries.
  'rate(llm_total_cost_usd[1h])',
  "budget_usage_ratio{budget_type='daily'}",
  'sum by (provider) (rate(llm_total_cost_usd[1h]))',
  'sum(rate(llm_total_cost_usd[1h])) by (provider)',
];

describe('the Grafana dashboard', () => {
  it('extracts metric names from PromQL (the check below relies on it)', () => {
    expect(promqlMetricNames('histogram_quantile(0.95, sum by (le, kind) (rate(llm_token_usage_bucket{provider="a b"}[$__rate_interval])))')).toEqual([
      'llm_token_usage_bucket',
    ]);
    expect(promqlMetricNames('sum(rate(a_total[5m])) * 3600 / on (x) group_left b_total > 0')).toEqual(['a_total', 'b_total']);
  });

  it('queries only metrics Cost Guard exports', () => {
    const exported = exportedSeriesNames();
    const used = new Set(exprs.flatMap(promqlMetricNames));
    expect(exprs.length).toBeGreaterThan(10);
    expect([...used].filter((n) => !exported.has(n))).toEqual([]);
    // The dashboard's reason to exist: cost, budgets, alerts and ingestion health are all on it.
    for (const name of [
      'llm_cost_usd_total', 'llm_cost_per_hour_usd', 'budget_usage_ratio', 'llm_api_calls_total', 'llm_token_usage_bucket',
      'costguard_top_user_cost_usd', 'costguard_alert_notifications_total', 'costguard_ingestion_lag_seconds_bucket',
      'costguard_flush_batch_events_bucket', 'costguard_flush_duration_seconds_bucket', 'costguard_unpriced_events_total',
    ]) {
      expect(used, name).toContain(name);
    }
  });

  it('filters and groups only by labels its metrics carry, and so do the original queries', () => {
    const exported = exportedLabels();
    expect(unknownLabels('sum by (le, kind) (rate(llm_token_usage_bucket{flavour="x"}[5m]))', exported)).toEqual(['flavour']);
    for (const expr of [...exprs, ...ORIGINAL_QUERIES]) expect(unknownLabels(expr, exported), expr).toEqual([]);
    expect(ORIGINAL_QUERIES.flatMap(promqlMetricNames).filter((n) => !exported.has(n))).toEqual([]);
    expect(exported.get('llm_cost_usd_total')).toEqual(new Set(['provider', 'model', 'task_type']));
    expect(exported.get('llm_api_calls_total')).toEqual(new Set(['provider', 'model', 'task_type', 'status']));
    expect(exported.get('llm_token_usage_bucket')).toEqual(new Set(['provider', 'model', 'kind', 'le']));
    // The daily budget gauge reads the original budget_type value; cost by task type is on the dashboard.
    expect(dashboard.panels.find((p) => p.title === 'Daily budget (system)')?.targets?.[0]?.expr).toContain('budget_type="daily"');
    expect(exprs.some((e) => /by \(task_type\)/.test(e))).toBe(true);
  });

  it('has the original four panels, and uses the provisioned data source', () => {
    const titles = dashboard.panels.map((p) => p.title);
    for (const t of ['Cost rate (USD per hour)', 'Daily budget (system)', 'Cost by provider', 'Cost trend (USD per hour, by provider)', 'Budget usage per scope', 'Alert notifications by outcome']) {
      expect(titles).toContain(t);
    }
    // The original's four panels, each of the type it names.
    const typeOf = (title: string) => dashboard.panels.find((p) => p.title === title)?.type;
    expect(['Cost rate (USD per hour)', 'Daily budget (system)', 'Cost by provider', 'Cost trend (USD per hour, by provider)'].map(typeOf)).toEqual([
      'stat', 'gauge', 'piechart', 'timeseries',
    ]);
    const datasources = parseYaml(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { uid: string; url: string }[] };
    const uids = new Set(dashboard.panels.filter((p) => p.type !== 'row').map((p) => p.datasource?.uid));
    expect([...uids]).toEqual([datasources.datasources[0]!.uid]);
    expect(datasources.datasources[0]!.url).toBe('http://prometheus:9090');
  });
});

const dockerCompose = (() => {
  const r = spawnSync('sh', ['-c', 'command -v docker-compose'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
})();

function composeConfig(env: Record<string, string>) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'COSTGUARD_API_KEYS'));
  return spawnSync(dockerCompose!, ['-f', join(root, 'docker-compose.yml'), 'config'], { encoding: 'utf8', env: { ...clean, ...env } });
}

describe('docker-compose.yml', () => {
  it('passes docker-compose config, with every service of the stack', (ctx) => {
    if (!dockerCompose) {
      console.warn('docker-compose not installed (Debian package "docker-compose"; scripts/setup.sh installs it as root): skipping docker-compose config');
      return ctx.skip();
    }
    const r = composeConfig({ COSTGUARD_API_KEYS: 'cg_compose_test_key_0123456789' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const config = parseYaml(r.stdout) as { services: Record<string, { command?: string[]; image?: string; build?: unknown }> };
    expect(Object.keys(config.services).sort()).toEqual(
      ['api', 'grafana', 'migrate', 'postgres', 'prometheus', 'redis', 'temporal', 'temporal-db', 'temporal-ui', 'worker'],
    );
    expect(config.services.worker!.command).toEqual(['start', '--no-api']);
    expect(config.services.api!.command).toEqual(['start', '--no-worker']);
    // Images are pinned to exact versions: no "latest", no bare major ("postgres:16"); PostgreSQL's own are major.minor.
    for (const [name, s] of Object.entries(config.services)) if (s.image) expect(s.image, name).toMatch(/^postgres:\d+\.\d+$|:v?\d+\.\d+\.\d+$/);
  });

  it('refuses to run without an API key', (ctx) => {
    if (!dockerCompose) return ctx.skip();
    const r = composeConfig({});
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('set COSTGUARD_API_KEYS');
  });
});

describe('the Prometheus configuration', () => {
  const prometheusYml = read('deploy/prometheus/prometheus.yml');

  /** What compose's Prometheus entrypoint writes as the scrape key for API_KEYS (its script up to the exec). */
  function scrapeKeyFor(apiKeys: string): { status: number | null; key: string; stderr: string } {
    const compose = parseYaml(read('docker-compose.yml')) as { services: { prometheus: { command: string[] } } };
    const dir = mkdtempSync(join(tmpdir(), 'cg-prom-key-'));
    const file = join(dir, 'api-key');
    const script = compose.services.prometheus.command[0]!.replaceAll('$$', '$').replace(/exec \/bin\/prometheus[\s\S]*$/, 'true').replaceAll('/prometheus/api-key', file);
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH, API_KEYS: apiKeys } });
    let key = '';
    try {
      key = readFileSync(file, 'utf8');
    } catch {
      // not written
    }
    return { status: r.status, key, stderr: r.stderr };
  }

  it('scrapes the API with the bare key of the first read or admin key (a "<scope>:" prefix is not part of the bearer token)', () => {
    expect(scrapeKeyFor('ingest:cg_ingest_key_0123456789, read:cg_read_key_0123456789,admin:cg_admin_key_0123456789')).toMatchObject({ status: 0, key: 'cg_read_key_0123456789' });
    expect(scrapeKeyFor('admin:cg_admin_key_0123456789')).toMatchObject({ status: 0, key: 'cg_admin_key_0123456789' });
    expect(scrapeKeyFor('cg_plain_admin_key_0123456789,read:cg_read_key_0123456789')).toMatchObject({ status: 0, key: 'cg_plain_admin_key_0123456789' });
    const none = scrapeKeyFor('ingest:cg_ingest_key_0123456789');
    expect(none.status).not.toBe(0);
    expect(none.stderr).toContain('no read or admin key for /metrics');
  });

  it('loads the recording rules that keep the original name of the cost counter, and compose mounts them', () => {
    expect((parseYaml(prometheusYml) as { rule_files: string[] }).rule_files).toEqual(['rules.yml']);
    expect(recordedAliases()).toEqual(new Map([['llm_total_cost_usd', 'llm_cost_usd_total']]));
    expect(read('docker-compose.yml')).toContain('./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro');
  });

  it('passes promtool check rules', (ctx) => {
    const promtool = promtoolPath();
    if (!promtool) {
      console.warn('promtool not installed: skipping promtool check rules');
      return ctx.skip();
    }
    const r = spawnSync(promtool, ['check', 'rules', join(root, 'deploy/prometheus/rules.yml')], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toContain('SUCCESS: 1 rules found');
    expect(r.status).toBe(0);
  });

  it('scrapes the worker listener and the API with its key', () => {
    const cfg = parseYaml(prometheusYml) as { scrape_configs: { job_name: string; static_configs: { targets: string[] }[]; authorization?: unknown }[] };
    const job = (n: string) => cfg.scrape_configs.find((j) => j.job_name === n);
    expect(job('costguard-worker')?.static_configs[0]?.targets).toEqual(['worker:9464']);
    expect(job('costguard-api')?.static_configs[0]?.targets).toEqual(['api:8080']);
    expect(job('costguard-api')?.authorization).toEqual({ type: 'Bearer', credentials_file: '/prometheus/api-key' });
  });

  it('passes promtool check config', (ctx) => {
    const promtool = promtoolPath();
    if (!promtool) {
      console.warn('promtool not installed: skipping promtool check config');
      return ctx.skip();
    }
    // The key file exists only inside the container: point the check at a stand-in.
    const dir = mkdtempSync(join(tmpdir(), 'cg-prom-'));
    writeFileSync(join(dir, 'api-key'), 'cg_compose_test_key_0123456789');
    const file = join(dir, 'prometheus.yml');
    writeFileSync(file, prometheusYml.replace('credentials_file: /prometheus/api-key', `credentials_file: ${join(dir, 'api-key')}`));
    writeFileSync(join(dir, 'rules.yml'), read('deploy/prometheus/rules.yml'));
    const r = spawnSync(promtool, ['check', 'config', file], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });
});
