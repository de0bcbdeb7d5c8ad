import type {
  ModuleMetadata,
  InjectionToken,
  OptionalFactoryDependency,
  Type,
} from '@nestjs/common';
import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { CacheAdapter } from './cache-adapter.interface';
import type { CacheInvalidationOptions } from './cache-invalidation-options.interface';

/** Which built-in backend stores the entries. */
export type CacheProvider = 'memory' | 'redis';

/**
 * How to reach Redis. One of: a URL (plus any ioredis options), plain ioredis options,
 * a cluster (`{ cluster: nodes }`), a Sentinel group (`{ sentinels, name }`), or an
 * existing ioredis `client` that the application owns (it is never closed by this module).
 *
 * Unless you set them, the module chooses fail-fast client settings: no offline queue,
 * one retry per request, `commandTimeout` 1000 ms, `connectTimeout` 2000 ms.
 *
 * @example
 * ```ts
 * { url: 'rediss://:secret@cache.internal:6380/2' }
 * { cluster: [{ host: '127.0.0.1', port: 7000 }] }
 * { sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'mymaster' }
 * ```
 */
export type CacheRedisOptions =
  | (RedisOptions & { url?: string })
  | { cluster: ClusterNode[]; clusterOptions?: ClusterOptions }
  | { client: Redis | Cluster };

/** Bounds and housekeeping of the in-process memory adapter. */
export interface CacheMemoryOptions {
  /**
   * Most entries kept; the least recently used entry is evicted beyond it.
   * @default 10000
   */
  maxEntries?: number;
  /**
   * Seconds between sweeps that drop expired entries (expired entries are also dropped
   * lazily on read). `0` disables the sweep.
   * @default 60
   */
  sweepInterval?: number;
}

/**
 * Tuning of the failover layer (`failover: { ... }`). Every field is optional.
 *
 * @example
 * ```ts
 * CacheModule.forRoot({
 *   provider: 'redis',
 *   redis: { url: 'redis://cache:6379' },
 *   failover: { failureThreshold: 3, cooldown: 10 },
 * });
 * ```
 */
export interface CacheFailoverOptions {
  /**
   * Consecutive primary (Redis) failures that open the circuit: from then on the primary is
   * skipped and every call is served by the in-memory fallback, at no cost per call.
   * @default 5
   */
  failureThreshold?: number;
  /**
   * Seconds the circuit stays open before the primary is probed again (fractions allowed).
   * @default 5
   */
  cooldown?: number;
  /**
   * Seconds a single primary call may take before it counts as failed and the fallback
   * answers instead (fractions allowed; `0` disables this guard and relies on the client's
   * own timeouts). Not applied to `clear` and `deleteByPrefix`, which scan.
   * @default 0.5
   */
  timeout?: number;
  /**
   * Most keys remembered as written or deleted while the primary could not be trusted; they
   * are deleted from the primary before reads return to it. Beyond this bound the whole
   * namespace is cleared on recovery instead.
   * @default 10000
   */
  maxTrackedKeys?: number;
}

/**
 * Options of {@link CacheModule.forRoot}. Every option may be omitted; explicit options win
 * over environment variables (`CACHE_ENABLED`, `CACHE_PROVIDER`, `CACHE_TTL`,
 * `CACHE_NAMESPACE`, `CACHE_REDIS_URL`), which win over the defaults.
 */
export interface CacheModuleOptions {
  /**
   * Register the module globally, so feature modules need not import it.
   * @default false
   */
  isGlobal?: boolean;
  /**
   * `false` turns caching off: reads miss, writes do nothing, decorators call straight through.
   * Environment: `CACHE_ENABLED`.
   * @default true
   */
  enabled?: boolean;
  /**
   * The built-in backend. Environment: `CACHE_PROVIDER`.
   * @default 'memory'
   */
  provider?: CacheProvider;
  /**
   * Default time-to-live in **seconds** (fractions allowed); `0` never expires. A numeric
   * string (`'60'`, as a config file or `ConfigService` gives it) is read as its number.
   * Environment: `CACHE_TTL`.
   * @default 300
   */
  ttl?: number | `${number}`;
  /**
   * Prefix of every key this application writes (`namespace:key` in Redis); `clear()`
   * touches only this namespace. Environment: `CACHE_NAMESPACE`.
   * @default 'cache'
   */
  namespace?: string;
  /** How to reach Redis when `provider` is `'redis'`. Environment: `CACHE_REDIS_URL`. */
  redis?: CacheRedisOptions;
  /**
   * With `provider: 'redis'`: Redis as primary with an in-memory fallback that keeps the
   * application serving while Redis is unreachable (see `FailoverCacheAdapter`). `true` uses
   * the defaults of {@link CacheFailoverOptions}; an object tunes the circuit breaker.
   * @default false
   */
  failover?: boolean | CacheFailoverOptions;
  /** Bounds of the memory adapter (also used as the failover fallback). */
  memory?: CacheMemoryOptions;
  /**
   * With `provider: 'redis'`: fail startup with {@link CacheConnectionError} when Redis cannot
   * be reached, instead of booting with a warning and calling through.
   * @default false
   */
  strict?: boolean;
  /** A custom backend used instead of the built-in ones. */
  adapter?: CacheAdapter;
  /**
   * Where invalidation rules run: extra dispatchers by name (`'inline'` and `'deferred'` are
   * built in) and whether `@nestjs/event-emitter` events fire rules.
   */
  invalidation?: CacheInvalidationOptions;
}

/** Implemented by a class passed to `forRootAsync({ useClass })` or `useExisting`. */
export interface CacheOptionsFactory {
  /** Returns the module options (may be async). */
  createCacheOptions(): Promise<CacheModuleOptions> | CacheModuleOptions;
}

/**
 * Options of {@link CacheModule.forRootAsync}: provide the module options from a factory,
 * a class or an existing provider.
 *
 * @example
 * ```ts
 * CacheModule.forRootAsync({
 *   imports: [ConfigModule],
 *   inject: [ConfigService],
 *   useFactory: (config: ConfigService) => ({ ttl: config.get('CACHE_TTL') }),
 * })
 * ```
 */
export interface CacheModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Register the module globally. @default false */
  isGlobal?: boolean;
  /** A factory returning the options; its arguments come from `inject`. */
  useFactory?: (
    ...args: never[]
  ) => Promise<Omit<CacheModuleOptions, 'isGlobal'>> | Omit<CacheModuleOptions, 'isGlobal'>;
  /** Providers whose instances are passed to `useFactory`. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  /** A class implementing {@link CacheOptionsFactory}, instantiated by the module. */
  useClass?: Type<CacheOptionsFactory>;
  /** An existing provider implementing {@link CacheOptionsFactory}. */
  useExisting?: Type<CacheOptionsFactory>;
  /** Extra providers made available to the factory. */
  extraProviders?: ModuleMetadata['providers'];
}
