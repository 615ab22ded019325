/**
 * dependency-cruiser: no import cycle in the repository, type-only imports included (ESLint's
 * import-x/no-cycle skips those, yet a type cycle still means two modules own one concern).
 * Run by `npm run lint` (`npm run lint:cycles` alone) and scripts/test.sh.
 */
export default {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles (type-only ones too) are forbidden: move the shared shape to the module both depend on.',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|coverage|\\.data)/' },
    // Count `import type` too: TypeScript's own view, before type imports are erased.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
