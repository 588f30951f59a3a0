// Import cycles, type-only imports included (`tsPreCompilationDeps`): eslint's import-x/no-cycle
// skips `import type`, and a type-only cycle still ties two modules together. Run by `npm run lint`.
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'no import cycles (docs/architecture.md#invariants)', from: {}, to: { circular: true } }
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|test|bench|scripts|docker)/' }
  }
}
