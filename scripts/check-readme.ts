/**
 * Checks that what README.md and docs/*.md name exists, so the docs cannot drift from the code
 * unnoticed: repository paths, `npm` scripts, `costguard` commands and their flags (read from the
 * commander program itself, nothing run), Prometheus metric names (from a real registry),
 * environment variables (read somewhere in the code, scripts or deployment files), the search
 * attributes and `createActivities` dependencies listed, and the claim that every command has
 * `--json`. It also checks that no file of the repository cites a file outside it.
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
import { loadConfig } from '../src/config/index.js';
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
  return { commands: commandTree(program), scripts: new Set(Object.keys(pkg.scripts)), metrics, sources, searchAttributes, activityDeps, shellFunctions };
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
  problems.push(...checkListings(file, text, facts));
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
