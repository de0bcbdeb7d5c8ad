// The public API of nestjs-cachekit (DESIGN.md), named one by one: no `export *`, no internals.
// A change here is a change of the surface; `npm run api` records it in
// etc/nestjs-cachekit.api.md, which CI checks.

// The module and its options
export { CacheModule } from './cache.module';
export { CACHE_MODULE_OPTIONS, getCacheToken } from './config/cache.constants';
export { InjectCache } from './decorators/inject-cache.decorator';
export type {
  CacheBusOptions,
  CacheFailoverOptions,
  CacheL1Options,
  CacheLoaderTimeouts,
  CacheLoadingOptions,
  CacheLockOptions,
  CacheMemoryOptions,
  CacheMeterProvider,
  CacheMetricsOptions,
  CacheModuleAsyncOptions,
  CacheModuleOptions,
  CacheNamedOptions,
  CacheOptionsFactory,
  CacheProvider,
  CacheRedisOptions,
} from './interfaces/cache-module-options.interface';
export type {
  CacheSerializer,
  CacheSerializerOption,
} from './interfaces/cache-serializer.interface';
export type { CacheInvalidationOptions } from './interfaces/cache-invalidation-options.interface';

// Migration from @nestjs/cache-manager
export { CACHE_MANAGER } from './config/cache.constants';
export type {
  CacheManagerModuleAsyncOptions,
  CacheManagerModuleOptions,
  CacheManagerOptionsFactory,
} from './compat/cache-manager-options';
export { Cache } from './compat/cache-manager.facade';
export type {
  CacheManagerCompatible,
  CacheManagerEntry,
  CacheManagerEvents,
  CacheManagerRawEntry,
  CacheManagerTtl,
  CacheManagerWrapOptions,
  CacheManagerWrapOptionsRaw,
} from './compat/cache-manager.facade';

// The service
export {
  CacheService,
  type BatchLoaded,
  type CacheManyEntry,
  type SetOptions,
  type WrapManyOptions,
  type WrapOptions,
  type WrapStatus,
} from './cache.service';

// Observability
export { CacheEvents } from './core/cache-events';
export type {
  CacheBusGapEvent,
  CacheBusMessageEvent,
  CacheBusStateEvent,
  CacheCircuitEvent,
  CacheClearEvent,
  CacheDeleteEvent,
  CacheErrorEvent,
  CacheEventBase,
  CacheEventListener,
  CacheEventMap,
  CacheEventName,
  CacheHitEvent,
  CacheLoaderDoneEvent,
  CacheLoaderErrorEvent,
  CacheLoaderTimeoutEvent,
  CacheLockWaitEvent,
  CacheMissEvent,
  CacheReadOperation,
  CacheSetEvent,
  CacheStaleEvent,
  CacheTierName,
} from './interfaces/cache-events.interface';
export type {
  CacheBusStats,
  CacheHealth,
  CacheL1Stats,
  CacheL2Stats,
  CacheLoaderStats,
  CacheLockStats,
  CacheStats,
  CacheTierStats,
} from './interfaces/cache-stats.interface';
export {
  CacheHealthIndicator,
  type CacheHealthCheckOptions,
  type CacheHealthDetails,
  type CacheHealthIndicatorResult,
  type CacheHealthStatus,
} from './diagnostics/cache-health.indicator';

// Errors
export {
  CacheArgumentError,
  CacheConfigError,
  CacheConnectionError,
  CacheError,
  CacheKeyError,
  CacheLoaderTimeoutError,
  CacheSerializationError,
} from './utils/cache.errors';

// Stores
export {
  CacheAdapter,
  type CacheAdapterEntry,
  type SyncCacheView,
} from './interfaces/cache-adapter.interface';
export { MemoryCacheAdapter, type MemoryCacheAdapterOptions } from './adapters/memory.adapter';
export { RedisCacheAdapter, type RedisCacheAdapterOptions } from './adapters/redis.adapter';
export {
  KeyvCacheAdapter,
  type CacheableStore,
  type KeyvCacheAdapterOptions,
  type KeyvStore,
  type KeyvStoreLike,
} from './adapters/keyv.adapter';
export { StoresCacheAdapter, type StoresCacheAdapterOptions } from './tiers/stores.adapter';
export {
  FailoverCacheAdapter,
  type FailoverCacheAdapterOptions,
  type FailoverStats,
} from './tiers/failover.adapter';
export type { CircuitState, CircuitStateChange } from './tiers/circuit-breaker';

// Declarative caching
export { Cacheable } from './decorators/cacheable.decorator';
export { CachePut } from './decorators/cache-put.decorator';
export { CacheEvict } from './decorators/cache-evict.decorator';
export type {
  CacheBatchOptions,
  CacheCondition,
  CacheEvictOptions,
  CachePutOptions,
  CacheTagsFunction,
  CacheTagsSpec,
  CacheUnless,
  CacheableOptions,
} from './interfaces/cache-operation-options.interface';
export type {
  CacheKeyFunction,
  CacheKeySource,
  CacheKeySpec,
} from './interfaces/cache-key.interface';

// HTTP response caching
export { CacheInterceptor } from './interceptors/cache.interceptor';
export { CacheStatusInterceptor } from './interceptors/cache-status.interceptor';
export { CacheKey } from './decorators/cache-key.decorator';
export { CacheTTL } from './decorators/cache-ttl.decorator';
export { CachePerUser } from './decorators/cache-per-user.decorator';
export type {
  CacheKeyFactory,
  CacheSafetyRules,
  CacheTtlFactory,
  CacheUserIdentifier,
} from './interfaces/cache-route.interface';

// Keys
export {
  KeyConstructor,
  type ArgFieldNames,
  type KeyConstructorDefinition,
  type KeyFieldValues,
  type KeyTarget,
} from './keys/key-constructor';
export {
  argField,
  constField,
  type ArgFieldOptions,
  type ArgKeyField,
  type ConstKeyField,
  type KeyField,
  type NamedArgFieldOptions,
} from './keys/key-constructor.fields';

// Cached functions and invalidation
export {
  cacheResult,
  type CacheResultOptions,
  type CachedFunction,
} from './invalidation/cached-function';
export { InvalidationRule } from './invalidation/invalidation-rule';
export type {
  FieldMapping,
  InvalidationDispatcherName,
  InvalidationEvent,
  InvalidationRuleOptions,
  InvalidationTag,
  PayloadField,
} from './interfaces/invalidation-rule.interface';
export type {
  InvalidationDispatcher,
  InvalidationDispatcherContext,
  InvalidationExecutor,
  InvalidationJob,
} from './interfaces/invalidation-dispatcher.interface';
export { InlineDispatcher } from './invalidation/dispatchers/inline.dispatcher';
export {
  DeferredDispatcher,
  type DeferredDispatcherOptions,
} from './invalidation/dispatchers/deferred.dispatcher';
export {
  BullMqDispatcher,
  type BullMqDispatcherOptions,
  type InvalidationJobRecord,
} from './invalidation/dispatchers/bullmq.dispatcher';
export { CacheInvalidator } from './invalidation/cache-invalidator.service';
export {
  TypeOrmInvalidationSubscriber,
  attachTypeOrmInvalidation,
  typeOrmInvalidationProvider,
  type TypeOrmDataSourceLike,
  type TypeOrmEntityEventLike,
  type TypeOrmEntityMetadataLike,
  type TypeOrmQueryRunnerLike,
  type TypeOrmTransactionEventLike,
} from './invalidation/typeorm-invalidation.subscriber';
