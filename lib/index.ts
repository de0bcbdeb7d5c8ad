export * from './adapters';
export { CacheModule } from './cache.module';
export { CacheService, type WrapOptions } from './cache.service';
export { CACHE_MODULE_OPTIONS } from './cache.constants';
export {
  CacheArgumentError,
  CacheConfigError,
  CacheConnectionError,
  CacheError,
  CacheKeyError,
  CacheSerializationError,
} from './cache.errors';
export type { ResolvedCacheOptions } from './cache-options.resolver';
export * from './interfaces';
