// setupFiles entry of jest.nest12.config.js: fails every test file unless the @nestjs/* packages
// that lib/ and test/ load are NestJS 12. They are resolved from those folders through the same
// Jest resolver as the tests' own imports (resolving from this file would find compat/nest12's
// node_modules by plain Node lookup and prove nothing).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const FROM = [path.join(ROOT, 'lib'), path.join(ROOT, 'test')];

const EXPECTED = {
  '@nestjs/common': '12.',
  '@nestjs/core': '12.',
  '@nestjs/testing': '12.',
  '@nestjs/platform-express': '12.',
  '@nestjs/platform-fastify': '12.',
  '@nestjs/config': '12.',
  '@nestjs/event-emitter': '12.',
};

/** package.json of the package `entry` belongs to (the packages' "exports" hide ./package.json). */
function manifestOf(name, entry) {
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (manifest.name === name) return manifest;
    }
  }
  throw new Error(`No package.json named ${name} above ${entry}`);
}

for (const [name, prefix] of Object.entries(EXPECTED)) {
  for (const from of FROM) {
    const entry = require.resolve(name, { paths: [from] });
    const { version } = manifestOf(name, entry);
    if (!version.startsWith(prefix)) {
      throw new Error(
        `test:nest12 expected ${name}@${prefix}x from ${from} but resolved ${version} (${entry})`,
      );
    }
  }
}
