export * from './adapters';
export { CacheModule } from './cache.module';
export { CacheService, type WrapOptions } from './cache.service';
export { CACHE_MODULE_OPTIONS } from './config/cache.constants';
export {
  CacheArgumentError,
  CacheConfigError,
  CacheConnectionError,
  CacheError,
  CacheKeyError,
  CacheSerializationError,
} from './utils/cache.errors';
export type { ResolvedCacheOptions } from './config/cache-options.resolver';
export * from './interfaces';
export * from './invalidation';
export * from './keys';
export * from './decorators';
export * from './interceptors';
export { CacheMetadataAccessor } from './discovery/cache-metadata.accessor';
export type { WrapStatus } from './cache.service';
export type { ParameterDefault, ParameterInfo } from './keys/parameter-names';
