// The dependency rule of ARCHITECTURE.md, checked by `npm run lint`: a folder may import from
// its own layer and the layers below it, never from a layer above.
const layers = [
  ['interfaces'],
  ['utils'],
  ['config'],
  ['adapters', 'keys'],
  ['tiers', 'bus', 'locks'],
  ['core'],
  ['diagnostics'],
  ['runtime'],
  ['interceptors', 'invalidation'],
  ['decorators'],
  ['discovery', 'compat', 'cache.service.ts'],
  ['cache.module.ts'],
  ['index.ts'],
];
const pathOf = (name) =>
  name.endsWith('.ts') ? `^lib/${name.replace(/\./g, '\\.')}$` : `^lib/${name}/`;
const forbidden = layers.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer.join('-').replace(/\.ts/g, '')}`,
  comment: `${layer.join(', ')} may not import from a layer above it (ARCHITECTURE.md).`,
  severity: 'error',
  from: { path: layer.map(pathOf) },
  to: {
    path: layers
      .slice(i + 1)
      .flat()
      .map(pathOf),
  },
}));
module.exports = {
  forbidden: [
    ...forbidden,
    {
      name: 'core-without-nest',
      comment:
        'The cache stack and its tiers know nothing of Nest but its Logger (@nestjs/common).',
      severity: 'error',
      from: { path: '^lib/(core|tiers|adapters|keys|bus|locks|utils|config|interfaces)/' },
      to: { path: '@nestjs/(?!common)' },
    },
    {
      name: 'no-circular',
      comment: 'Import cycles hide the layering.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
