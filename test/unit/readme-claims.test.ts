/**
 * What README.md and docs/*.md name exists (scripts/check-readme.ts): paths, npm scripts,
 * `costguard` commands and flags, metrics, environment variables, the listed search attributes and
 * activity dependencies; and nothing in the repository cites a file outside it. The second block
 * shows the check failing on each kind of wrong claim, with the line.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/lib/paths.js';
import { type CodeFacts, checkCommand, checkDocument, checkReadme, outsideCitations, readCodeFacts } from '../../scripts/check-readme.js';

const root = projectRoot();
let facts: CodeFacts;
beforeAll(async () => {
  facts = await readCodeFacts(root);
});

describe('the docs', () => {
  it('name only paths, scripts, commands, flags, metrics and variables that exist; nothing cites outside the repository', async () => {
    const problems = await checkReadme(root);
    expect(problems.map((p) => `${p.file}:${p.line}: \`${p.claim}\`: ${p.problem}`)).toEqual([]);
  });

  it('are checked against the real command tree, registry and package.json', () => {
    expect(facts.commands.get('report daily')).toEqual(new Set(['--date', '--tz', '--generate', '--json', '--help']));
    expect(facts.metrics).toContain('llm_token_usage_bucket');
    expect(facts.scripts).toContain('bench');
    expect([...facts.searchAttributes]).toContain('CostOpenIncidents');
    expect(facts.activityDeps).toContain('pool');
  });
});

describe('the check fails on a wrong claim, naming it and its line', () => {
  const doc = [
    '# A wrong README', // 1
    'See `src/nowhere.ts` and `deploy/grafana/dashboards/costguard.json`.', // 2
    '```sh', // 3
    'npm run nope', // 4
    'costguard report weekly', // 5
    'costguard report daily --date 2026-03-01 --colour', // 6
    '```', // 7
    'Graph `llm_made_up_total{provider}` beside `llm_api_calls_total`.', // 8
    'Set `COSTGUARD_NOT_A_VARIABLE` or `DATABASE_URL`.', // 9
    '- search attributes `CostScopeKind`, `CostScopeId`, `CostDailySpendUsd`, `CostAlertLevel`,', // 10
    '  `CostMadeUp`', // 11
    '', // 12
    '`createActivities({ pool, redis })`; every command has `--json`.', // 13
    'Files: `test/unit/readme-*.test.ts`, `test/unit/nothing-*.test.ts`.', // 14
  ].join('\n');

  it('finds each one', () => {
    const problems = checkDocument(root, 'WRONG.md', doc, facts).map((p) => [p.line, p.claim, p.problem]);
    expect(problems).toEqual(
      expect.arrayContaining([
        [2, 'src/nowhere.ts', 'no such file or folder: src/nowhere.ts'],
        [4, 'npm run nope', 'package.json has no script "nope"'],
        [5, 'costguard report weekly', 'no command "report weekly"'],
        [6, 'costguard report daily --date 2026-03-01 --colour', '"costguard report daily" has no option --colour'],
        [8, 'llm_made_up_total{provider}', 'no metric llm_made_up_total in the registry createMetrics builds'],
        [9, 'COSTGUARD_NOT_A_VARIABLE', 'COSTGUARD_NOT_A_VARIABLE is read nowhere in the code, scripts or deployment files'],
        [11, 'CostMadeUp', 'no search attribute CostMadeUp'],
        [13, 'createActivities({ pool, redis })', expect.stringMatching(/^ActivityDeps \(activities\/index\.ts\) is \{ pool, redis, /)],
        [13, 'every command has --json', 'without --json: start'],
        [14, 'test/unit/nothing-*.test.ts', 'no such file or folder: test/unit/nothing-*.test.ts'],
      ]),
    );
    expect(problems).toContainEqual([
      10,
      'CostScopeKind, CostScopeId, CostDailySpendUsd, CostAlertLevel, CostMadeUp',
      'the list of search attributes leaves out CostDailyUsagePct, CostMonthlySpendUsd, CostOpenIncidents',
    ]);
    // ...and only those: what exists passes.
    expect(problems).toHaveLength(11);
  });

  it('finds numbers that disagree with their one source in the code, and stale patched() ids', () => {
    const wrong = [
      '# Numbers', // 1
      'Batches of `maxBatchSize` 400, at most `maxPendingEvents` (50,000) queued; `lingerMs` 200.', // 2
      'Labels: `metrics.maxLabelValues` (300), top `metrics.topUsers` (10); `maxBatchBytes` 256 KiB.', // 3
      'The budget poll `budgetWorkflow.ledgerPollMs` (5 s); `maxFlushEvents` 7 (budget workflow and ingest differ: ambiguous).', // 4
      'Each ingest workflow remembers the last 2,000 batch ids; a budget workflow, for its own batches, the last 2,000.', // 5
      'The workflow remembers the last 4,096 across continue-as-new.', // 6
      'Changes are behind `patched()` (`alerts-v1`, `made-up-v2`); see `patched(\'gone-v1\')`.', // 7
      '```yaml', // 8
      'maxBatchSize: 1   # an example, not a claim', // 9
      '```', // 10
    ].join('\n');
    const problems = checkDocument(root, 'NUMBERS.md', wrong, facts).map((p) => [p.line, p.problem]);
    expect(problems).toEqual(
      expect.arrayContaining([
        [2, 'maxBatchSize is 500 in the code'],
        [3, 'metrics.maxLabelValues is 200 in the code'],
        [3, 'maxBatchBytes is 393216 in the code'],
        [4, 'budgetWorkflow.ledgerPollMs is 2000 in the code'],
        [5, 'INGEST_RECENT_BATCH_IDS (src/domain/ingest.ts) is 4096'],
        [6, expect.stringMatching(/^the batch ids kept differ by workflow/)],
        [7, expect.stringMatching(/^no workflow calls patched\(\) with made-up-v2/)],
        [7, expect.stringMatching(/^the list of patched\(\) ids leaves out .*local-activities-v1/)],
        [7, "no workflow calls patched('gone-v1')"],
      ]),
    );
    // ...and nothing else: the right numbers (50,000, 10, 200, the budget workflow's 2,000), an ambiguous name (`maxFlushEvents`) and fenced examples pass.
    expect(problems, JSON.stringify(problems)).toHaveLength(9);
  });

  it('reads alternatives and arguments in commands', () => {
    expect(checkCommand(['report', 'daily|monthly', '[--tz', 'ZONE]', '[--json]'], facts.commands)).toEqual([]);
    expect(checkCommand(['alerts', 'ack', 'inc-1', '--by', 'me'], facts.commands)).toEqual([]);
    expect(checkCommand(['report', 'daily|weekly'], facts.commands)).toEqual(['no command "report weekly"']);
    expect(checkCommand(['reports', 'daily'], facts.commands)).toEqual(['no command "reports"']);
    expect(checkCommand(['start', '--json'], facts.commands)).toEqual(['"costguard start" has no option --json']);
  });

  it('finds a citation of a file outside the repository', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cg-cite-'));
    writeFileSync(join(dir, 'a.ts'), `// fine\n// as ${'DESIGN'}.md says\n`);
    writeFileSync(join(dir, 'b.md'), `see [it](${['..', 'shared'].join('/')}/x.md)\n`);
    expect(outsideCitations(dir, ['a.ts', 'b.md'])).toEqual([
      { file: 'a.ts', line: 2, cited: `${'DESIGN'}.md` },
      { file: 'b.md', line: 1, cited: ['..', 'shared'].join('/') },
    ]);
  });
});
