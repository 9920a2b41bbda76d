/**
 * The import-boundary lint (`npm run lint:boundaries`, part of `npm run lint`).
 * Layers come from scripts/layers.cjs (ground < core < doors < root < clients):
 * a file never imports a higher layer, and no import circle exists anywhere in
 * src/. Tests (*.test.ts) may import across layers. test/lint/boundaries.test.ts
 * runs this config on a fixture of bad imports and expects each rule to fire.
 */
const fs = require('node:fs');
const path = require('node:path');
const { LAYERS, pathsOf } = require('./scripts/layers.cjs');

const upward = LAYERS.slice(0, -1).map((layer, index) => ({
  name: `${layer.name}-imports-no-higher-layer`,
  comment: `${layer.name} (${layer.folders.join(', ')}) must not import ${LAYERS.slice(index + 1).map((l) => l.name).join(', ')}`,
  severity: 'error',
  from: { path: pathsOf(layer.name), pathNot: '\\.test\\.ts$' },
  to: { path: pathsOf(...LAYERS.slice(index + 1).map((l) => l.name)) },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'no-circular',
      comment: 'No import circle, type-only imports included: a circle hides which side owns the rule',
      severity: 'error',
      from: { path: '^src/', pathNot: '\\.test\\.ts$' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['^src/db/generated/', '\\.test\\.ts$'] },
    // Type-only imports count: a door's types in the core are a dependency all the same.
    tsPreCompilationDeps: true,
    ...(fs.existsSync(path.resolve('tsconfig.json')) ? { tsConfig: { fileName: 'tsconfig.json' } } : {}),
    enhancedResolveOptions: { extensions: ['.ts', '.tsx', '.js', '.json'] },
  },
};
