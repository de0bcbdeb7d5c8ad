// Jest transformer for `npm run test:nest12` (see jest.nest12.config.js).
//
// NestJS 12 ships ES modules only, while this project's Jest runs in CommonJS mode (Node 20 has no
// synchronous ESM evaluation inside Jest's VM). This compiles the ES modules of the packages in
// compat/nest12/node_modules to CommonJS with the TypeScript compiler the project already has:
// `import`/`export` become require()/exports, `import()` becomes a Promise of require(), and
// `import.meta.url|dirname|filename` become their CommonJS equivalents. Files of CommonJS packages
// pass through untouched.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const SELF = fs.readFileSync(__filename);
const packageTypeCache = new Map();

/** The "type" of the package.json nearest to `dir`. */
function packageType(dir) {
  if (packageTypeCache.has(dir)) return packageTypeCache.get(dir);
  let type;
  const file = path.join(dir, 'package.json');
  if (fs.existsSync(file)) {
    type = JSON.parse(fs.readFileSync(file, 'utf8')).type ?? 'commonjs';
  } else {
    const parent = path.dirname(dir);
    type = parent === dir ? 'commonjs' : packageType(parent);
  }
  packageTypeCache.set(dir, type);
  return type;
}

function isEsm(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  return packageType(path.dirname(file)) === 'module';
}

function replaceImportMeta(source, file) {
  const code = source
    // `const require = createRequire(import.meta.url)` (terminus 12's HealthCheck decorator)
    // would redeclare the CommonJS wrapper's own `require`, which already resolves from here.
    .replace(/^const require = createRequire\(import\.meta\.url\);$/m, '')
    .replace(
      /\bimport\.meta\.resolve\b/g,
      '((specifier) => require("node:url").pathToFileURL(require.resolve(specifier)).href)',
    )
    .replace(/\bimport\.meta\.url\b/g, 'require("node:url").pathToFileURL(__filename).href')
    .replace(/\bimport\.meta\.dirname\b/g, '__dirname')
    .replace(/\bimport\.meta\.filename\b/g, '__filename');
  if (/\bimport\.meta\b/.test(code)) {
    throw new Error(`${file}: unsupported use of import.meta left after the ESM-to-CJS transform`);
  }
  return code;
}

module.exports = {
  getCacheKey(source, file) {
    return crypto
      .createHash('sha256')
      .update(SELF)
      .update(ts.version)
      .update(file)
      .update(source)
      .digest('hex');
  },
  process(source, file) {
    if (!isEsm(file)) return { code: source };
    const { outputText, sourceMapText } = ts.transpileModule(replaceImportMeta(source, file), {
      fileName: file,
      compilerOptions: {
        allowJs: true,
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ESNext,
        esModuleInterop: true,
        sourceMap: true,
      },
    });
    return { code: outputText, map: sourceMapText };
  },
};
