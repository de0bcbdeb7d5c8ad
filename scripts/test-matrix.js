#!/usr/bin/env node
// `npm test`: the type check (scripts/typecheck.js), then the whole Jest suite against every
// supported NestJS major, one after the other (Nest 11 from the root node_modules, Nest 12 from
// compat/nest12 — see jest.nest12.config.js), then a plain CommonJS Jest run, then the ESM smoke
// check of the built package in a Nest 12 application.
// Extra arguments are passed to Jest in both runs: `npm test -- test/e2e/cache-module.spec.ts`.
'use strict';
const { spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const root = join(__dirname, '..');
const jest = join(root, 'node_modules', 'jest', 'bin', 'jest.js');
const args = process.argv.slice(2);
const step = (title, command, commandArgs) => {
  console.log(`\n== ${title}`);
  const { status } = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit' });
  if (status !== 0) {
    console.error(`\n${title}: failed (exit ${status}).`);
    process.exit(status ?? 1);
  }
};

// Each Jest run also writes its results as JSON, so the matrix can end with one plain total.
const results = mkdtempSync(join(tmpdir(), 'cachekit-test-'));
const totals = { passed: 0, failed: 0 };
const jestRun = (title, extra, file) => {
  const output = join(results, file);
  step(title, process.execPath, [jest, ...extra, '--json', `--outputFile=${output}`, ...args]);
  const summary = JSON.parse(readFileSync(output, 'utf8'));
  totals.passed += summary.numPassedTests;
  totals.failed += summary.numFailedTests;
};

step('Install NestJS 12 test dependencies', process.execPath, [
  join(__dirname, 'ensure-deps.js'),
  'compat/nest12',
]);
// Jest only transpiles the specs (isolatedModules: ts-jest's type checking was about half of the
// suite's CPU time, twice over); the types are checked here, once per NestJS major.
step('Type check on NestJS 11 and 12', process.execPath, [join(__dirname, 'typecheck.js')]);
jestRun('Test suite on NestJS 11', [], 'nest11.json');
jestRun('Test suite on NestJS 12', ['-c', 'jest.nest12.config.js'], 'nest12.json');
// An application's plain CommonJS Jest (no transform of ES-module-only packages): the library
// loads under it, and only `serializer: 'rich'` asks for the transform.
jestRun(
  'Plain CommonJS Jest',
  ['-c', 'test/plain-cjs/jest.config.js', '--passWithNoTests'],
  'plain-cjs.json',
);
step('ESM smoke check on NestJS 12', process.execPath, [
  join(root, 'compat', 'nest12', 'esm-smoke.mjs'),
]);
rmSync(results, { recursive: true, force: true });
console.log(`\n${totals.passed} passed, ${totals.failed} failed`);
