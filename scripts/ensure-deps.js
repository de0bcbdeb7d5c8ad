#!/usr/bin/env node
// Usage: node scripts/ensure-deps.js [folder]   (default: the repository root)
// Installs a folder's dependencies when its node_modules is missing or older than its
// package-lock.json, so `npm start` and `npm test` work on a fresh clone with no separate
// install step (compat/nest12 has its own package.json and lock file).
//
// `npm ci` first. Some registries (mirrors) lack a few platform-specific optional packages
// (e.g. @msgpackr-extract/*-darwin-arm64 at the locked version), which makes `npm ci` refuse
// the lock file as "out of sync" on every platform; `npm install` then installs from the same
// lock file, skipping only those optional packages, and leaves the lock file unchanged.
'use strict';
const { spawnSync } = require('node:child_process');
const { statSync } = require('node:fs');
const { join, relative } = require('node:path');

const root = join(__dirname, '..');
const dir = join(root, process.argv[2] ?? '.');
const name = relative(root, dir) || 'the project';
const mtime = (file) => {
  try {
    return statSync(join(dir, file)).mtimeMs;
  } catch {
    return 0;
  }
};

if (mtime('package-lock.json') === 0) {
  console.error(`${name}: package-lock.json is missing.`);
  process.exit(1);
}
const installed = mtime('node_modules/.package-lock.json');
if (installed !== 0 && installed >= mtime('package-lock.json')) process.exit(0);

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (args) =>
  spawnSync(npm, [...args, '--no-audit', '--no-fund'], { cwd: dir, stdio: 'inherit' }).status;

console.log(`Installing dependencies of ${name} (npm ci)...`);
if (run(['ci']) === 0) process.exit(0);
console.log('npm ci refused the lock file; installing from it with npm install instead...');
process.exit(run(['install']) ?? 1);
