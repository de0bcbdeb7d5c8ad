/** @type {import('jest').Config} */
module.exports = {
  rootDir: '.',
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }],
    // devalue (serializer: 'rich') ships ES modules only: compiled to CommonJS for Jest.
    '^.+/node_modules/devalue/.+\\.js$': '<rootDir>/compat/nest12/esm-to-cjs.js',
  },
  transformIgnorePatterns: ['/node_modules/(?!devalue/)'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  maxWorkers: 2,
  testTimeout: 30000,
};
