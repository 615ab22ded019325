// Flat config. Type-aware rules (no-floating-promises) need the TypeScript project service.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';

// Workflow code runs in Temporal's deterministic sandbox: no Node builtins, no I/O clients, no
// non-deterministic libraries. Activities and src/ do the I/O; workflows only orchestrate.
const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]);
const ioPackages = [
  'pg', 'pg-*', 'ioredis', 'prom-client', 'pino', 'pino-*', 'fastify', 'fastify-*', '@fastify/*',
  'nodemailer', 'undici', 'axios', 'node-fetch', 'commander', 'yaml',
  '@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing',
];

function pureImports(extraPatterns = []) {
  return {
    paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow and domain code must be deterministic: no Node builtins.' })),
    patterns: [{ group: ioPackages, message: 'Workflow and domain code must not do I/O: call an activity instead.' }, ...extraPatterns],
  };
}

// I/O has one room per concern: PostgreSQL in src/db/, Redis in src/redis/. Everything else gets
// their functions (or, for dependency injection, only the client types); the entry points that
// build the clients (the CLI, the worker), the tests, the benchmarks and the scripts may import the
// packages' values.
const ioRooms = ['src/db/**', 'src/redis/**'];
const clientWiring = ['src/cli/**', 'src/worker/**', 'scripts/**', 'test/**', 'bench/**'];
const ioImports = {
  patterns: [{
    group: ['pg', 'pg-*', 'ioredis'],
    allowTypeImports: true,
    message: 'PostgreSQL is used in src/db/ and Redis in src/redis/ only (and by the entry points that build the clients): call a function from there. Type-only imports are fine.',
  }],
};
const SQL = '/\\b(SELECT|INSERT INTO|UPDATE [a-z_]+ SET|DELETE FROM|WITH [a-z_]+ AS)\\b/';
const sqlOutsideDb = [
  { selector: `Literal[value=${SQL}]`, message: 'SQL lives in src/db/: add a function there that takes a pool and returns typed rows.' },
  { selector: `TemplateElement[value.raw=${SQL}]`, message: 'SQL lives in src/db/: add a function there that takes a pool and returns typed rows.' },
  { selector: "CallExpression > MemberExpression.callee[property.name=/^(query|connect)$/]:matches([object.name='pool'], [object.property.name='pool'])", message: 'Queries run in src/db/: add a function there that takes the pool.' },
];
const redisOutsideRedis = [
  { selector: "CallExpression > MemberExpression.callee:matches([object.name='redis'], [object.property.name='redis'])", message: 'Redis commands live in src/redis/: add a function there that takes the client.' },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.data/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
    },
  },
  {
    // No import cycles anywhere, type-only imports included: a cycle means two modules own one
    // concern, and the order a cycle evaluates in decides which side sees `undefined`. The resolver
    // maps the NodeNext `./x.js` specifiers to the `./x.ts` sources.
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.json'], extensionAlias: { '.js': ['.ts', '.js'] } })],
    },
    rules: { 'import-x/no-cycle': 'error' },
  },
  {
    files: ['**/*.ts'],
    ignores: [...ioRooms, ...clientWiring],
    rules: { 'no-restricted-imports': ['error', ioImports] },
  },
  {
    files: ['src/**/*.ts', 'activities/**/*.ts', 'workflows/**/*.ts'],
    ignores: [...ioRooms, ...clientWiring],
    rules: { 'no-restricted-syntax': ['error', ...sqlOutsideDb, ...redisOutsideRedis] },
  },
  { files: ['src/db/**/*.ts'], rules: { 'no-restricted-syntax': ['error', ...redisOutsideRedis] } },
  { files: ['src/redis/**/*.ts'], rules: { 'no-restricted-syntax': ['error', ...sqlOutsideDb] } },
  {
    // Pure code: the domain (unit-tested in milliseconds, bundled into workflows) and the messages.
    // The domain owns the shapes; the messages name them on the wire, so the dependency runs one way.
    files: ['src/domain/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', pureImports([
      { regex: '(^|/)messages\\.js$',
        message: 'The domain does not import the messages: define the shape in src/domain/ and let src/messages.ts import it.' },
    ])] },
  },
  {
    files: ['src/messages.ts'],
    rules: { 'no-restricted-imports': ['error', pureImports()] },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', pureImports([
        { regex: '^(\\.\\./)+activities/', allowTypeImports: true,
          message: 'Workflows import only types from activities/.' },
        { regex: '^(\\.\\./)+src/(?!domain/|messages\\.js$)',
          message: 'Workflows may import only pure helpers from src/domain/ and the message definitions.' },
      ])],
      'no-restricted-globals': ['error',
        { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'setInterval', message: 'Use sleep() in a loop.' },
        { name: 'process', message: 'No process access in workflows: pass config as workflow input.' },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
