/**
 * A CommonJS Jest as an application's own test setup has it: ts-jest, and nothing transformed
 * in node_modules (no rule for ES-module-only packages such as devalue). The library must load
 * and work under it; only `serializer: 'rich'` may need the transform (a clear startup error).
 * @type {import('jest').Config}
 */
module.exports = {
  rootDir: '../..',
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/plain-cjs/*.cjs-spec.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
  moduleFileExtensions: ['ts', 'js', 'json'],
};
