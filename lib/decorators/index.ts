export * from './cacheable.decorator';
export * from './cache-put.decorator';
export * from './cache-evict.decorator';
export * from './cache-key.decorator';
export * from './cache-ttl.decorator';
export * from './cache-per-user.decorator';
export type { CacheOperationMetadata } from './cached-method';
