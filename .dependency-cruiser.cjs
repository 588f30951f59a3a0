// Import cycles, type-only imports included (`tsPreCompilationDeps`): eslint's import-x/no-cycle
// skips `import type`, and a type-only cycle still ties two modules together. Run by `npm run lint`.
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'no import cycles (docs/architecture.md#invariants)', from: {}, to: { circular: true } },
    {
      name: 'product-not-to-packages',
      severity: 'error',
      comment: 'the gateway never imports the demo, the bench or the scripts (docs/decisions/0009-packages.md)',
      from: { path: '^(src|plugins|routes|bin)/|^index\\.ts$' },
      to: { path: '^(demo|bench|scripts)/' }
    }
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules)/|^test/' }
  }
}
