// Flat config. Type-aware rules (no-floating-promises) need the TypeScript project service.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

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
    // Pure code: the domain (unit-tested in milliseconds, bundled into workflows) and the messages.
    files: ['src/domain/**/*.ts', 'src/messages.ts'],
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
