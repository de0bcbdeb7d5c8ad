#!/usr/bin/env node
// `npm run typecheck`: the library, the tests and the sample app against NestJS 11's types
// (tsconfig.check.json) and NestJS 12's (compat/nest12/tsconfig.json), both at once. `npm test`
// runs it first: Jest only transpiles the specs (isolatedModules in tsconfig.json).
'use strict';
const { spawn } = require('node:child_process');
const { join } = require('node:path');

const root = join(__dirname, '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const projects = ['tsconfig.check.json', join('compat', 'nest12', 'tsconfig.json')];

const check = (project) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [tsc, '--noEmit', '-p', project], {
      cwd: root,
      stdio: 'inherit',
    });
    child.on('error', (error) => {
      console.error(`tsc -p ${project}: ${error.message}`);
      resolve(1);
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });

Promise.all(projects.map(check)).then((codes) => {
  codes.forEach((code, i) => {
    if (code !== 0) console.error(`Type check failed: ${projects[i]} (exit ${code}).`);
  });
  process.exit(codes.some((code) => code !== 0) ? 1 : 0);
});
