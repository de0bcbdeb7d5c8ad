// Runs the same spec files as jest.config.js against NestJS 12 (`npm run test:nest12`).
// NestJS 12 is installed in compat/nest12 (its own package.json and lock file); every @nestjs/*
// import resolves there (compat/nest12/jest-resolver.js) and its ES modules are compiled to
// CommonJS on the fly (compat/nest12/esm-to-cjs.js). compat/nest12/assert-nest12.js fails the run
// if any @nestjs/* package would load from the NestJS 11 devDependencies.
const base = require('./jest.config.js');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  displayName: 'nest12',
  resolver: '<rootDir>/compat/nest12/jest-resolver.js',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/compat/nest12/tsconfig.json' }],
    '^.+/compat/nest12/node_modules/.+\\.m?js$': '<rootDir>/compat/nest12/esm-to-cjs.js',
    '^.+/node_modules/devalue/.+\\.js$': '<rootDir>/compat/nest12/esm-to-cjs.js',
  },
  transformIgnorePatterns: ['^<rootDir>/node_modules/(?!devalue/)'],
  setupFiles: [...(base.setupFiles ?? []), '<rootDir>/compat/nest12/assert-nest12.js'],
};
