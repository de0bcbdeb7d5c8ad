// Jest resolver for `npm run test:nest12` (see jest.nest12.config.js).
//
// Every `@nestjs/*` request - from lib/, test/ or from inside another package - resolves to the
// NestJS 12 copies installed in compat/nest12/node_modules, never to the NestJS 11 devDependencies
// at the root. A `@nestjs/*` package that is not installed here fails to resolve instead of
// silently falling back to a root copy. Packages that must exist once per process (rxjs,
// reflect-metadata) resolve to the root copy for everyone, including NestJS 12 itself, so the
// library and the framework share one Observable class and one metadata registry.
'use strict';
const path = require('node:path');

const COMPAT_DIR = __dirname;
const COMPAT_MODULES = path.join(COMPAT_DIR, 'node_modules') + path.sep;
const ROOT_DIR = path.join(__dirname, '..', '..');
const NEST = /^@nestjs\//;
const SHARED = /^(?:rxjs|reflect-metadata)(?:\/|$)/;

module.exports = (request, options) => {
  if (NEST.test(request)) {
    const resolved = options.defaultResolver(request, { ...options, basedir: COMPAT_DIR });
    if (!resolved.startsWith(COMPAT_MODULES)) {
      const error = new Error(
        `Cannot find module '${request}' in compat/nest12 (resolved to ${resolved}). ` +
          'Add it to compat/nest12/package.json so that it runs on NestJS 12.',
      );
      error.code = 'MODULE_NOT_FOUND';
      throw error;
    }
    return resolved;
  }
  if (SHARED.test(request)) {
    return options.defaultResolver(request, { ...options, basedir: ROOT_DIR });
  }
  return options.defaultResolver(request, options);
};
