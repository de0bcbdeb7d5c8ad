export * from './cache-adapter.interface';
export * from './cache-module-options.interface';
export * from './cache-key.interface';
export * from './cache-operation-options.interface';
