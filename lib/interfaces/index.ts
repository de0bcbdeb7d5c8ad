export * from './cache-adapter.interface';
export * from './cache-module-options.interface';
