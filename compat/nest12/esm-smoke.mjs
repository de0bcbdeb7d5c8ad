// ESM smoke check for `npm run test:nest12`: does the built package (dist/, CommonJS) work when an
// ES-module NestJS 12 application imports it with `import { CacheModule } from 'nestjs-cachekit'`?
//
// It "installs" the package the way npm would: package.json copied, and the `npm run build`
// compilation (tsconfig.build.json) emitted, into compat/nest12/node_modules/nestjs-cachekit, so
// that dist/ resolves @nestjs/* to the NestJS 12 copies next to it (a link to the repository would
// resolve them from the root, i.e. NestJS 11). The repository's own dist/ is left alone. Then it
// imports esm-smoke-app.mjs, whose static named imports go through Node's ESM loader and
// cjs-module-lexer.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const target = join(here, 'node_modules', 'nestjs-cachekit');
rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
writeFileSync(join(target, 'package.json'), readFileSync(join(root, 'package.json')));
const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
const build = spawnSync(
  process.execPath,
  [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', join(target, 'dist')],
  { stdio: 'inherit' },
);
if (build.status !== 0) {
  console.error('esm-smoke: the build failed');
  process.exit(build.status ?? 1);
}

await import('./esm-smoke-app.mjs');
