/**
 * Checks that what README.md and docs/*.md name exists, so the docs cannot drift from the code
 * unnoticed: repository paths, `npm` scripts, `costguard` commands and their flags (read from the
 * commander program itself, nothing run), Prometheus metric names (from a real registry),
 * environment variables (read somewhere in the code, scripts or deployment files), the search
 * attributes and `createActivities` dependencies listed, the claim that every command has
 * `--json`, the `patched()` ids named (and the list of them), and numbers that have one source in
 * the code: a default or limit written as `` `name` (N) `` or `` `name` N `` (the config defaults,
 * the CostTracker options, the API's limits, the summary window, the retention minimums) and the
 * batch ids a workflow remembers. It also checks that no file of the repository cites a file
 * outside it.
 *
 *   npx tsx scripts/check-readme.ts      # prints each problem with its file and line; exit 1 if any
 *
 * test/unit/readme-claims.test.ts runs the same checks.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { BODY_LIMIT_BYTES, MAX_HEADER_BYTES, MAX_URL_LENGTH } from '../src/api/server.js';
import { COST_TRACKER_DEFAULTS } from '../src/client/cost-tracker.js';
import { DEFAULTS } from '../src/config/defaults.js';
import { loadConfig } from '../src/config/index.js';
import { RECENT_BATCH_IDS } from '../src/domain/budget-state.js';
import { INGEST_RECENT_BATCH_IDS } from '../src/domain/ingest.js';
import { RETENTION_MIN_DAYS } from '../src/domain/retention.js';
import { SUMMARY_DEFAULT_HOURS, SUMMARY_MAX_HOURS } from '../src/domain/summary.js';
import { projectRoot } from '../src/lib/paths.js';
import { createMetrics } from '../src/metrics/index.js';

/** One claim of the docs that does not hold. */
export interface ClaimProblem {
  /** The document, relative to the repository root. */
  file: string;
  line: number;
  /** What the document says (the code span or command). */
  claim: string;
  problem: string;
}

/** One piece of code the docs show: an inline code span or a line of a fenced block. */
interface CodeSpan {
  file: string;
  line: number;
  text: string;
  fenced: boolean;
}

/** Top-level folders whose paths the docs may name. */
const PATH_ROOTS = ['src', 'config', 'migrations', 'deploy', 'bench', 'test', 'scripts', 'activities', 'workflows', 'docs', '.ci'];
/** Top-level files the docs may name. */
const ROOT_FILES = /^(package(-lock)?\.json|tsconfig(\.build)?\.json|docker-compose\.yml|Dockerfile|README\.md|BENCHMARKS\.md|eslint\.config\.js|vitest\.config\.ts)$/;
const PATH_RE = new RegExp(`^(?:\\./)?(?:(?:${PATH_ROOTS.map((r) => r.replace('.', '\\.')).join('|')})/[\\w.@/*-]*|[\\w.-]+\\.(?:json|yml|md|js|ts)|Dockerfile)$`);
/** Metric families this project exports (the prefixes); other snake_case words are tables, columns or keys. */
const METRIC_RE = /^(?:llm_|costguard_|budget_usage_|process_|nodejs_)[a-z0-9_]*[a-z0-9]$/;
/**
 * Words with a metric prefix that are not metrics here: the original specification's name of the
 * cost counter (shown beside what is exported), and the original's `llm_response` task type.
 */
const NOT_EXPORTED_METRIC_WORDS = new Set(['llm_total_cost_usd', 'llm_response']);
/** A command line as the docs show one: an optional prompt and variable assignments, then the program. */
const COMMAND_START = /^(?:\$\s+)?(?:[A-Z_]+=\S*\s+)*/;
const ENV_RE = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;
/** npm's own commands (not package.json scripts). */
const NPM_BUILTINS = new Set(['install', 'i', 'ci', 'link', 'exec', 'view', 'run', 'uninstall', 'update', 'pack', 'publish']);

/** The code spans of a Markdown text, each with its line (inline spans and every line of fenced blocks). */
export function codeSpans(file: string, text: string): CodeSpan[] {
  const spans: CodeSpan[] = [];
  let fence: string | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const marker = /^\s*(```|~~~)/.exec(raw);
    if (marker) {
      fence = fence === null ? marker[1]! : null;
      return;
    }
    if (fence !== null) {
      spans.push({ file, line, text: raw, fenced: true });
      return;
    }
    for (const m of raw.matchAll(/`([^`]+)`/g)) spans.push({ file, line, text: m[1]!, fenced: false });
    // Relative Markdown links are paths too.
    for (const m of raw.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) if (!/^[a-z]+:/.test(m[1]!)) spans.push({ file, line, text: m[1]!, fenced: false });
  });
  return spans;
}

/** Whether a repository path exists; a `*` in its last part matches any characters (at least one file must). */
function pathExists(root: string, path: string): boolean {
  if (!path.includes('*')) return existsSync(join(root, path));
  const slash = path.lastIndexOf('/', path.indexOf('*'));
  const dir = path.slice(0, slash);
  const rest = path.slice(slash + 1).replace(/\/$/, '');
  if (rest === '*' || rest === '') return existsSync(join(root, dir));
  const pattern = new RegExp(`^${rest.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
  return existsSync(join(root, dir)) && readdirSync(join(root, dir)).some((f) => pattern.test(f));
}

/** Every command of the program by its path (`report daily`), with its long options. */
export function commandTree(program: Command): Map<string, Set<string>> {
  const tree = new Map<string, Set<string>>();
  const walk = (cmd: Command, path: string[]) => {
    for (const sub of cmd.commands) {
      const here = [...path, sub.name()];
      tree.set(here.join(' '), new Set([...sub.options.map((o) => o.long).filter((l): l is string => Boolean(l)), '--help']));
      walk(sub, here);
    }
  };
  walk(program, []);
  return tree;
}

/** Leaf commands (those that run something) without a `--json` option. */
export function commandsWithoutJson(tree: Map<string, Set<string>>): string[] {
  const leaves = [...tree.keys()].filter((path) => ![...tree.keys()].some((other) => other.startsWith(`${path} `)));
  return leaves.filter((path) => !tree.get(path)!.has('--json'));
}

/**
 * The problems of one `costguard ...` command line: each subcommand must exist (alternatives such
 * as `daily|monthly` each), and each `--flag` must be an option of the command it follows.
 */
export function checkCommand(words: readonly string[], tree: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  let paths = [''];
  let i = 0;
  for (; i < words.length; i++) {
    const alternatives = words[i]!.replace(/^[[(]|[\])]$/g, '').split('|');
    if (!alternatives.every((w) => /^[a-z][a-z-]*$/.test(w))) break;
    const next = paths.flatMap((p) => alternatives.map((a) => (p ? `${p} ${a}` : a)));
    if (!next.every((p) => tree.has(p))) {
      // After a command with subcommands the word must be one; after any other it is an argument.
      const group = paths[0] === '' || paths.some((p) => [...tree.keys()].some((k) => k.startsWith(`${p} `)));
      if (!group) break;
      problems.push(`no command "${next.filter((p) => !tree.has(p)).join('", "')}"`);
      return problems;
    }
    paths = next;
  }
  if (paths[0] === '') return problems;
  for (const word of words.slice(i)) {
    for (const flag of word.match(/--[a-z][a-z-]*/g) ?? []) {
      for (const p of paths) if (!tree.get(p)!.has(flag)) problems.push(`"costguard ${p}" has no option ${flag}`);
    }
  }
  return problems;
}

/** The words of a command line, up to a comment, a pipe, a redirection or the next command. */
function commandWords(rest: string): string[] {
  const words: string[] = [];
  for (const w of rest.trim().split(/\s+/)) {
    if (w === '#' || w === '|' || w === '&&' || w === ';' || w.startsWith('>') || w === '\\') break;
    if (w) words.push(w.replace(/[,;:.]+$/, ''));
  }
  return words;
}

function listFiles(root: string): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  return out.split('\n').filter((f) => f && !f.startsWith('node_modules/') && !f.startsWith('dist/') && existsSync(join(root, f)));
}

/** The files outside the repository that nothing in it may cite (spelled so this file does not cite them). */
const OUTSIDE_FILES = ['DESIGN', 'TEMPORAL'].map((n) => `${n}.md`).concat([['..', 'shared'].join('/')]);

/** Files of the repository that cite a file outside it, with the line. */
export function outsideCitations(root: string, files = listFiles(root)): { file: string; line: number; cited: string }[] {
  const found: { file: string; line: number; cited: string }[] = [];
  for (const file of files) {
    if (/\.(png|jpg|ico|gz|zip|db|sqlite)$/.test(file)) continue;
    const lines = readFileSync(join(root, file), 'utf8').split('\n');
    lines.forEach((l, i) => {
      for (const cited of OUTSIDE_FILES) if (l.includes(cited)) found.push({ file, line: i + 1, cited });
    });
  }
  return found;
}

/**
 * Every number of a nested defaults object under each dotted name that ends its path
 * (`metrics.maxLabelValues`, `maxLabelValues`); a name given two different values is ambiguous and
 * left out (see `numbers` below).
 */
function collectNumbers(into: Map<string, Set<number>>, value: unknown, path: string[] = []): void {
  if (typeof value === 'number') {
    for (let i = 0; i < path.length; i++) {
      const name = path.slice(i).join('.');
      into.set(name, (into.get(name) ?? new Set()).add(value));
    }
    return;
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) for (const [k, v] of Object.entries(value)) collectNumbers(into, v, [...path, k]);
}

/** The numbers the docs may state, by the name they give them, each from its one source in the code. */
function codeNumbers(): Map<string, number> {
  const all = new Map<string, Set<number>>();
  collectNumbers(all, DEFAULTS);
  collectNumbers(all, { api: loadConfig({}).api, retention: { minLedgerDays: RETENTION_MIN_DAYS.ledger, minDeliveryDays: RETENTION_MIN_DAYS.deliveries } });
  const tracker = new Map<string, Set<number>>();
  collectNumbers(tracker, COST_TRACKER_DEFAULTS);
  // The CostTracker's options are named bare in the docs; they win over config keys of the same name.
  for (const [k, v] of tracker) all.set(k, v);
  const out = new Map<string, number>();
  for (const [k, v] of all) if (v.size === 1) out.set(k, [...v][0]!);
  out.set('hours', SUMMARY_DEFAULT_HOURS);
  return out;
}

/** Numbers stated in prose rather than after a name: the pattern (its group 1 the number) and the value in the code. */
function phraseNumbers(): { re: RegExp; value: number; source: string }[] {
  return [
    { re: /ingest (?:shard|workflow)s? remembers? the last ([\d,]+) batch ids/i, value: INGEST_RECENT_BATCH_IDS, source: 'INGEST_RECENT_BATCH_IDS (src/domain/ingest.ts)' },
    { re: /budget workflow(?:,[^,]*,)? (?:remembers )?the last ([\d,]+)/i, value: RECENT_BATCH_IDS, source: 'RECENT_BATCH_IDS (src/domain/budget-state.ts)' },
    // Which workflow: the ingest and budget workflows keep different numbers.
    { re: /(?<!(?:ingest|budget) workflows? )remembers the last ([\d,]+)/i, value: Number.NaN, source: 'the batch ids kept differ by workflow (ingest or budget): name it, and' },
    { re: /a JSON body of at most ([\d,]+) MiB/i, value: BODY_LIMIT_BYTES / 1_048_576, source: 'BODY_LIMIT_BYTES (src/api/server.ts)' },
    { re: /a URL of\s+at most ([\d,]+) characters/i, value: MAX_URL_LENGTH, source: 'MAX_URL_LENGTH (src/api/server.ts)' },
    { re: /request line and headers within ([\d,]+) KiB/i, value: MAX_HEADER_BYTES / 1024, source: 'MAX_HEADER_BYTES (src/api/server.ts)' },
    { re: /\(N from 1 to ([\d,]+)/i, value: SUMMARY_MAX_HOURS, source: 'SUMMARY_MAX_HOURS (src/domain/summary.ts)' },
  ];
}

/** A number as the docs write it (`50,000`, `5_000`, `0.2`), converted by its unit to the code's (ms, bytes, fractions). */
export function docNumber(text: string, unit: string | undefined, name: string): number | null {
  const n = Number(text.replace(/[,_]/g, ''));
  if (!Number.isFinite(n)) return null;
  const u = (unit ?? '').toLowerCase();
  if (u === '') return n;
  if (/ms$/i.test(name)) {
    const factor: Record<string, number> = { ms: 1, s: 1000, seconds: 1000, min: 60_000, minutes: 60_000, h: 3_600_000, hours: 3_600_000 };
    return factor[u] === undefined ? null : n * factor[u]!;
  }
  if (/bytes$/i.test(name)) return u === 'kib' ? n * 1024 : u === 'mib' ? n * 1_048_576 : null;
  if (u === '%') return n / 100;
  return null;
}

/** The facts the docs are checked against, read from the code. */
export interface CodeFacts {
  commands: Map<string, Set<string>>;
  scripts: Set<string>;
  metrics: Set<string>;
  /** The text of the code, scripts and deployment files (environment variables are looked up in it). */
  sources: string;
  searchAttributes: Set<string>;
  activityDeps: string[];
  shellFunctions: Set<string>;
  /** Numbers with one source in the code, by the name the docs give them. */
  numbers: Map<string, number>;
  /** The ids workflow code passes to `patched()`. */
  patchIds: Set<string>;
}

export async function readCodeFacts(root: string): Promise<CodeFacts> {
  const { program } = (await import('../src/cli/main.js')) as { program: Command };
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const registry = createMetrics({ config: loadConfig({}) }).registry;
  const metrics = new Set<string>();
  for (const m of registry.getMetricsAsArray()) {
    metrics.add(m.name);
    if ((m as unknown as { type: string }).type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) metrics.add(m.name + s);
  }
  // The code, scripts and deployment files, without this check and its test (which name made-up things).
  const own = new Set(['scripts/check-readme.ts', 'test/unit/readme-claims.test.ts']);
  const files = listFiles(root).filter((f) => !f.endsWith('.md') && !own.has(f) && /^(src|scripts|bench|test|activities|workflows|config|deploy|docker-compose\.yml|Dockerfile|\.ci)/.test(f));
  const texts = files.map((f) => readFileSync(join(root, f), 'utf8'));
  const sources = texts.join('\n');
  const searchAttributes = new Set([...sources.matchAll(/defineSearchAttributeKey\(\s*'(\w+)'/g)].map((m) => m[1]!));
  const depsBody = /interface ActivityDeps \{([\s\S]*?)\n\}/.exec(readFileSync(join(root, 'activities/index.ts'), 'utf8'))?.[1] ?? '';
  const activityDeps = [...depsBody.matchAll(/^\s{2}(\w+)\??:/gm)].map((m) => m[1]!);
  const shellFunctions = new Set([...sources.matchAll(/^(\w+)\(\)\s*\{/gm)].map((m) => m[1]!));
  const workflowText = files.filter((f) => f.startsWith('workflows/')).map((f) => readFileSync(join(root, f), 'utf8')).join('\n');
  const patchIds = new Set([...workflowText.matchAll(/\bpatched\(\s*'([^']+)'/g)].map((m) => m[1]!));
  return { commands: commandTree(program), scripts: new Set(Object.keys(pkg.scripts)), metrics, sources, searchAttributes, activityDeps, shellFunctions, numbers: codeNumbers(), patchIds };
}

/** The problems of one document, checked against the facts. */
export function checkDocument(root: string, file: string, text: string, facts: CodeFacts): ClaimProblem[] {
  const problems: ClaimProblem[] = [];
  const problem = (s: { line: number }, claim: string, what: string) => problems.push({ file, line: s.line, claim, problem: what });
  for (const span of codeSpans(file, text)) {
    const t = span.text.trim();
    // Repository paths: as a code span of their own, or as a word of a command.
    const words = span.fenced || /\s/.test(t) ? t.split(/\s+/) : [t];
    for (const raw of words) {
      const w = raw.replace(/^["'(]+|["'),;:]+$/g, '').replace(/:\d+$/, '');
      if (!PATH_RE.test(w) || w.includes('<') || /^\.\.?\//.test(w.replace(/^\.\//, '../'))) continue;
      if (!PATH_ROOTS.some((r) => w.startsWith(`${r}/`) || w.startsWith(`./${r}/`)) && !ROOT_FILES.test(w)) continue;
      const path = w.replace(/^\.\//, '').replace(/\{.*$/, '');
      if (!pathExists(root, path)) problem(span, w, `no such file or folder: ${path}`);
    }
    const command = t.replace(COMMAND_START, '');
    // npm scripts.
    const npm = /^npm (run )?([a-z][\w:-]*)/.exec(command);
    if (npm && !(npm[1] === undefined && NPM_BUILTINS.has(npm[2]!)) && !facts.scripts.has(npm[2]!)) {
      problem(span, npm[0], `package.json has no script "${npm[2]!}"`);
    }
    // costguard commands (also as `node dist/src/cli/main.js`).
    const cli = /^(?:costguard|node dist\/src\/cli\/main\.js)\s+([a-z].*)$/.exec(command);
    if (cli) for (const what of checkCommand(commandWords(cli[1]!), facts.commands)) problem(span, command, what);
    if (span.fenced) continue;
    // Metric names.
    const metric = /^([a-z][a-z0-9_]*)(?:\{[^}]*\})?$/.exec(t)?.[1];
    if (metric && METRIC_RE.test(metric) && !NOT_EXPORTED_METRIC_WORDS.has(metric) && !facts.shellFunctions.has(metric) && !facts.metrics.has(metric)) {
      problem(span, t, `no metric ${metric} in the registry createMetrics builds`);
    }
    // Environment variables (`X`, `X=value`, `X:Y`).
    for (const name of t.split(/[:=]/)[0] === t ? [t] : t.replace(/=.*$/, '').split(':')) {
      if (ENV_RE.test(name) && !new RegExp(`\\b${name}\\b`).test(facts.sources)) problem(span, t, `${name} is read nowhere in the code, scripts or deployment files`);
    }
  }
  problems.push(...checkListings(file, text, facts), ...checkNumbers(file, text, facts));
  return problems;
}

/**
 * Numbers the docs state for a name with one source in the code: `` `name` (N) ``, `` `name` N ``,
 * `` `name`: N `` (a unit after N converts: 15 min for a ...Ms name, 384 KiB for ...Bytes, 80% for
 * a fraction), and the prose numbers of phraseNumbers(). Fenced blocks are examples, not claims.
 */
function checkNumbers(file: string, text: string, facts: CodeFacts): ClaimProblem[] {
  const problems: ClaimProblem[] = [];
  let fenced = false;
  const phrases = phraseNumbers();
  text.split('\n').forEach((line, i) => {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) return;
    // `name` (N unit) closed right after, or `name` N / `name`: N / `name` = N (an HTTP status in "(408, ...)" is no value).
    for (const m of line.matchAll(/`([a-zA-Z][\w.]*)`\s*(?:\(`?(?=[\d,_.]+`?\s*(?:ms|s|seconds|min|minutes|h|hours|KiB|MiB|%)?\))|:\s*|=\s*)?`?(\d[\d,_]*(?:\.\d+)?)(?!\.\d)`?\s*(ms|s|seconds|min|minutes|h|hours|KiB|MiB|%)?(?![\w.-])/g)) {
      const name = m[1]!;
      const want = facts.numbers.get(name);
      if (want === undefined) continue;
      const got = docNumber(m[2]!, m[3], name);
      if (got !== null && got !== want) problems.push({ file, line: i + 1, claim: m[0], problem: `${name} is ${want} in the code` });
    }
    for (const p of phrases) {
      const m = p.re.exec(line);
      if (m && Number(m[1]!.replace(/,/g, '')) !== p.value) problems.push({ file, line: i + 1, claim: m[0], problem: Number.isNaN(p.value) ? `${p.source} check its number` : `${p.source} is ${p.value}` });
    }
  });
  // `patched('id')` must name an id the workflows use; a list of them after "behind `patched()`" must be complete.
  for (const m of text.matchAll(/patched\('([^']+)'\)/g)) {
    if (!facts.patchIds.has(m[1]!)) problems.push({ file, line: text.slice(0, m.index).split('\n').length, claim: m[0], problem: `no workflow calls patched('${m[1]!}')` });
  }
  for (const m of text.matchAll(/behind `patched\(\)` \(([^)]*)\)/g)) {
    const named = [...m[1]!.matchAll(/`([\w.-]+)`/g)].map((x) => x[1]!);
    const line = text.slice(0, m.index).split('\n').length;
    const unknown = named.filter((n) => !facts.patchIds.has(n));
    const missing = [...facts.patchIds].filter((n) => !named.includes(n));
    if (unknown.length) problems.push({ file, line, claim: named.join(', '), problem: `no workflow calls patched() with ${unknown.join(', ')}` });
    if (missing.length) problems.push({ file, line, claim: named.join(', '), problem: `the list of patched() ids leaves out ${missing.join(', ')}` });
  }
  return problems;
}

/** Claims that are lists: the search attributes, createActivities' dependencies, `--json` everywhere. */
function checkListings(file: string, text: string, facts: CodeFacts): ClaimProblem[] {
  const problems: ClaimProblem[] = [];
  const lines = text.split('\n');
  const lineOf = (index: number) => text.slice(0, index).split('\n').length;
  // A paragraph or list item that lists search attributes must list every one there is.
  const blocks = text.split(/\n(?=\s*\n|- |\d+\. )/);
  let offset = 0;
  for (const block of blocks) {
    const start = text.indexOf(block, offset);
    offset = start + block.length;
    if (!/search attributes/.test(block)) continue;
    const named = [...block.matchAll(/`(Cost[A-Z]\w*)`/g)].map((m) => m[1]!).filter((n) => !/^Cost(Tracker|Guard|Context|Optimizer)/.test(n));
    for (const n of named) if (!facts.searchAttributes.has(n)) problems.push({ file, line: lineOf(start + block.indexOf(n)), claim: n, problem: `no search attribute ${n}` });
    if (named.length >= 4) {
      // Cost Guard's own attributes (Temporal's, such as TemporalScheduledStartTime, are not listed).
      const missing = [...facts.searchAttributes].filter((a) => a.startsWith('Cost') && !named.includes(a));
      if (missing.length > 0) problems.push({ file, line: lineOf(start + block.indexOf(named[0]!)), claim: named.join(', '), problem: `the list of search attributes leaves out ${missing.join(', ')}` });
    }
  }
  for (const m of text.matchAll(/createActivities\(\{([^}]*)\}\)/g)) {
    const keys = m[1]!.split(',').map((k) => k.trim()).filter(Boolean);
    const want = facts.activityDeps;
    if (keys.join(',') !== want.join(',')) {
      problems.push({ file, line: lineOf(m.index), claim: m[0], problem: `ActivityDeps (activities/index.ts) is { ${want.join(', ')} }` });
    }
  }
  lines.forEach((l, i) => {
    if (/every command (?:has|takes) `?--json/i.test(l)) {
      const without = commandsWithoutJson(facts.commands);
      if (without.length > 0) problems.push({ file, line: i + 1, claim: 'every command has --json', problem: `without --json: ${without.join(', ')}` });
    }
  });
  return problems;
}

/** Every problem of README.md and docs/*.md, and every citation of a file outside the repository. */
export async function checkReadme(root = projectRoot()): Promise<ClaimProblem[]> {
  const facts = await readCodeFacts(root);
  const docs = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const problems = docs.flatMap((file) => checkDocument(root, file, readFileSync(join(root, file), 'utf8'), facts));
  for (const c of outsideCitations(root)) problems.push({ file: c.file, line: c.line, claim: c.cited, problem: 'cites a file outside the repository' });
  return problems;
}

const entry = process.argv[1];
if (entry && existsSync(entry) && realpathSync(entry) === fileURLToPath(import.meta.url)) {
  const problems = await checkReadme();
  for (const p of problems) process.stdout.write(`${p.file}:${p.line}: \`${p.claim}\`: ${p.problem}\n`);
  process.stdout.write(problems.length === 0 ? 'every path, command, metric and variable the docs name exists\n' : `${problems.length} problem(s)\n`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
