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
