import type {
  ModuleMetadata,
  InjectionToken,
  OptionalFactoryDependency,
  Type,
} from '@nestjs/common';
import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { CacheAdapter } from './cache-adapter.interface';
import type { CacheInvalidationOptions } from './cache-invalidation-options.interface';
import type { CacheSerializerOption } from './cache-serializer.interface';

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
  /**
   * Most bytes kept, as estimated from the stored JSON form of each entry (its key's length
   * plus the length of its value's JSON text, in UTF-16 code units: exact for ASCII data).
   * The least recently used entries are evicted to stay under it, and a single entry larger
   * than the bound is not stored (the key's previous entry is dropped). Unset: entries are
   * not measured and only `maxEntries` bounds the store.
   * @default undefined (no byte bound)
   */
  maxSize?: number;
}

/**
 * The in-process first tier in front of Redis (`l1: { ... }`; `l1: true` uses the defaults).
 * Reads are answered from it; misses go to Redis and fill it; every write reaches Redis first,
 * then it, and is published on the bus so other instances drop the key from theirs.
 *
 * @example
 * ```ts
 * CacheModule.forRoot({
 *   provider: 'redis',
 *   redis: { url: 'redis://cache:6379' },
 *   l1: { maxEntries: 50_000, maxSize: 128 * 1024 * 1024, ttl: 30 },
 * });
 * ```
 */
export interface CacheL1Options {
  /**
   * Most entries kept; the least recently used is evicted beyond it.
   * @default 10000
   */
  maxEntries?: number;
  /**
   * Most bytes kept, as estimated from the stored JSON form (key length plus the length of the
   * value's JSON text). The least recently used entries are evicted to stay under it; a value
   * larger than the bound is served from Redis only. Heap use is a multiple of this figure.
   * @default 67108864 (64 MiB)
   */
  maxSize?: number;
  /**
   * Seconds an entry may live in L1 (fractions allowed): the shorter of this and the entry's
   * own remaining TTL. It bounds how long an instance can serve a value whose invalidation it
   * missed; `0` ("never expires") is refused, since L1 must be bounded.
   * @default 60
   */
  ttl?: number;
}

/**
 * The bus that keeps the L1 tiers of several instances coherent: Redis pub/sub on its own
 * connection, one channel per namespace (`bus: { ... }`; `bus: true` uses the defaults).
 *
 * @example
 * ```ts
 * CacheModule.forRoot({ provider: 'redis', l1: true, bus: { heartbeat: 2 } });
 * ```
 */
export interface CacheBusOptions {
  /**
   * Seconds between PINGs on the subscriber connection (fractions allowed). A PING not
   * answered within `heartbeat` seconds counts as a gap: L1 is not read until the subscription
   * is back, and then it is dropped whole. `0` disables the heartbeat (a dropped connection is
   * still detected, a stalled one is not).
   * @default 1
   */
  heartbeat?: number;
  /**
   * Messages kept for retry while publishing fails; beyond it they are coalesced into one
   * "clear all".
   * @default 1000
   */
  maxBuffered?: number;
}

/**
 * How long a caller waits for a loader — the function of `wrap`, a `@Cacheable` method, a
 * `cacheResult` function — in seconds (fractions allowed, above 0, at most 2147483.647, a
 * timer's limit). Given to the module, it is the default of every load; `wrap`, `@Cacheable`
 * and `cacheResult` may give their own, field by field.
 *
 * @example
 * ```ts
 * CacheModule.forRoot({ grace: 3600, timeouts: { soft: 0.2, hard: 5 } });
 * await cache.wrap('report', () => buildReport(), { timeouts: { hard: 2 } });
 * ```
 */
export interface CacheLoaderTimeouts {
  /**
   * Seconds after which a caller that has a stale value at hand (an expired entry still within
   * its `grace`) gets that value (status `stale`) instead of waiting on; the loader goes on in
   * the background and its value is stored when it resolves. Without a stale value it has no
   * effect.
   * @default none
   */
  soft?: number;
  /**
   * Seconds after which a caller still waiting for the loader rejects with
   * `CacheLoaderTimeoutError` — or, with a stale value at hand, gets that value. The loader is
   * not cancelled: it goes on, and its value is stored when it resolves (unless the key was
   * written, deleted or cleared meanwhile), so a later call hits. Each caller is bounded from
   * the moment it started waiting: one that joins a load already running gets its own `hard`
   * seconds. A load still running 10 × `hard` after it started is no longer joined: the next
   * caller starts a new one (a loader that hangs does not hold its key for good; the old load
   * is still stored if it resolves).
   * @default none (a caller waits as long as the loader runs)
   */
  hard?: number;
}

/**
 * The distributed lock of a load (`lock: { ... }`, or `lock: true` for the defaults): with a
 * shared store (Redis, Cluster, Sentinel), one instance of the fleet runs the loader of a cold
 * key while the others wait for its value. Seconds, above 0 and at most 2147483.647.
 *
 * @example
 * ```ts
 * CacheModule.forRoot({ provider: 'redis', lock: { ttl: 30, wait: 10 } });
 * ```
 */
export interface CacheLockOptions {
  /**
   * How long the lock lives: if its holder dies mid-load, another instance takes over once it
   * has expired. Set it above the loader's usual duration.
   * @default 10
   */
  ttl?: number;
  /**
   * The longest a caller waits for the lock holder's value; after it, it runs the loader
   * itself. The wait is also bounded by the caller's `timeouts.hard`.
   * @default 10
   */
  wait?: number;
}

/**
 * How loads behave when the loader is slow or failing, and across a fleet: the options the
 * module, `wrap`, `@Cacheable` and `cacheResult` share. What one call gives overrides the
 * module's, field by field. See README "When the loader fails".
 *
 * @example
 * ```ts
 * CacheModule.forRoot({ ttl: 60, grace: 3600, timeouts: { soft: 0.5 }, refreshAhead: 0.8 });
 * ```
 */
export interface CacheLoadingOptions {
  /**
   * Fraction of the TTL (0 to 1) added at random to each entry's TTL when it is written, so
   * entries written together (a warm-up, a burst of misses) do not all expire, and reload,
   * together: with `ttl: 100` and `jitter: 0.2`, each entry lives between 100 and 120 seconds.
   * A TTL of `0` (never expires) stays `0`.
   * @default 0
   */
  jitter?: number;
  /** Loader timeouts: see {@link CacheLoaderTimeouts}. @default none */
  timeouts?: CacheLoaderTimeouts;
  /**
   * Seconds an entry is kept after it expires, as a stale value: when the loader that should
   * refresh it throws or times out, callers get the stale value (status `stale`,
   * `X-Cache: STALE`) instead of the error, and the loader is tried again after
   * {@link graceBackoff}, not on every call. `get` and `has` never see a stale entry. Applies to
   * entries written with a TTL (not `0`).
   * @default 0 (an expired entry is gone)
   */
  grace?: number;
  /**
   * Seconds during which, after a loader failed and a stale value was served, callers of that
   * key get the stale value without running the loader again (per process).
   * @default 10
   */
  graceBackoff?: number;
  /**
   * Fraction of the TTL (above 0, below 1) after which a hit starts one background refresh of
   * the entry (single-flight: one per key at a time); the caller gets the cached value at once
   * and never waits for the refresh.
   * @default none
   */
  refreshAhead?: number;
  /**
   * One loader across the fleet: `true` (the defaults of {@link CacheLockOptions}) or the lock's
   * timings. Needs a shared store; with the memory provider, single-flight in the process is
   * already the whole story. When Redis is down or the failover circuit is open, the lock
   * fails open: each process loads once.
   * @default false
   */
  lock?: boolean | CacheLockOptions;
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
 * `CACHE_NAMESPACE`, `CACHE_REDIS_URL`, `CACHE_L1`), which win over the defaults.
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
   * With `provider: 'redis'` (or a custom `adapter`): an in-process first tier in front of it,
   * kept coherent across instances by the {@link CacheModuleOptions.bus | bus}. `true` uses the
   * defaults of {@link CacheL1Options}. Environment: `CACHE_L1` (`true`/`false`).
   * @default false
   */
  l1?: boolean | CacheL1Options;
  /**
   * With `l1`: how instances tell each other which keys changed (Redis pub/sub). On by default
   * when `l1` is on; `false` for a single instance, where no other L1 can go stale. `true`
   * uses the defaults of {@link CacheBusOptions}.
   * @default true when `l1` is on, else false
   */
  bus?: boolean | CacheBusOptions;
  /**
   * With `provider: 'redis'`: fail startup with {@link CacheConnectionError} when Redis cannot
   * be reached, instead of booting with a warning and calling through.
   * @default false
   */
  strict?: boolean;
  /**
   * Fraction of the TTL (0 to 1) added at random to each entry's TTL when it is written, so
   * entries written together (a warm-up, a burst of misses) do not all expire, and reload,
   * together: with `ttl: 100` and `jitter: 0.2`, each entry lives between 100 and 120 seconds.
   * Applies to `set`, to loaded values (`wrap`, `@Cacheable`, `cacheResult`) and `@CachePut`,
   * unless they give their own. A TTL of `0` (never expires) stays `0`.
   * @default 0
   */
  jitter?: number;
  /**
   * Default loader timeouts of every load of `wrap`, `@Cacheable` and `cacheResult` (not of the
   * handlers `CacheInterceptor` caches: their load includes sending the response): see
   * {@link CacheLoaderTimeouts}.
   * @default none
   */
  timeouts?: CacheLoaderTimeouts;
  /**
   * Default grace of every entry (`set`, `@CachePut`, loads, cached responses): see
   * {@link CacheLoadingOptions.grace}.
   * @default 0
   */
  grace?: number;
  /** See {@link CacheLoadingOptions.graceBackoff}. @default 10 */
  graceBackoff?: number;
  /** Default refresh-ahead of every load: see {@link CacheLoadingOptions.refreshAhead}. @default none */
  refreshAhead?: number;
  /** Default lock of every load: see {@link CacheLoadingOptions.lock}. @default false */
  lock?: boolean | CacheLockOptions;
  /** A custom backend used instead of the built-in ones. */
  adapter?: CacheAdapter;
  /**
   * Where invalidation rules run: extra dispatchers by name (`'inline'` and `'deferred'` are
   * built in) and whether `@nestjs/event-emitter` events fire rules.
   */
  invalidation?: CacheInvalidationOptions;
  /**
   * OpenTelemetry metrics through `@opentelemetry/api` (an optional peer: install it, and an
   * SDK with an exporter, to use this): `cache.requests`, `cache.loader.duration`,
   * `cache.l1.entries`, `cache.l1.size`, `cache.circuit.state` and more (README "Metrics").
   * `true` records on the global meter provider; `{ meterProvider }` on the one given. Startup
   * fails with `CacheConfigError` when `@opentelemetry/api` cannot be loaded.
   * @default false
   */
  metrics?: boolean | CacheMetricsOptions;
  /**
   * Whether the cache's events (`CacheService.events`) are also emitted on `@nestjs/event-emitter`
   * as `cachekit.<name>` when the application sets it up (`EventEmitterModule.forRoot()`).
   * @default true
   */
  eventEmitter?: boolean;
  /**
   * How values are stored in Redis (and so what every tier returns):
   *
   * - `'json'`: JSON text, readable with `redis-cli`. A `Date` comes back as its ISO string, a
   *   class instance as a plain object; `Map`, `Set`, `BigInt`, `NaN`, typed arrays and the
   *   like are rejected with `CacheSerializationError`.
   * - `'rich'`: `Date`, `Map`, `Set`, `BigInt`, `Buffer` and typed arrays, `undefined` in
   *   objects, `-0`, `NaN`, `±Infinity`, `RegExp`, `URL` and circular references come back as
   *   they were (devalue's JSON-based format; see "Rich values" in the README).
   * - a `CacheSerializer` of your own: its text is stored; memory and the L1 keep
   *   `deserialize(serialize(value))`, so every tier returns what Redis would.
   *
   * One serializer cannot tell another's entries apart from its own (JSON reads the rich text
   * as an array, for one): change it together with the `namespace`.
   * @default 'json'
   */
  serializer?: CacheSerializerOption;
  /**
   * Named caches beside the module's own (`'default'`): each its own stack (store, namespace,
   * TTL, `l1`, failover, events, stats, metrics), configured with any per-cache option and
   * inheriting, for what it leaves out, the root options (`adapter` excepted; a cache that
   * switches to `provider: 'memory'` does not inherit `redis`, `failover`, `l1`, `bus` or
   * `strict`). Its namespace defaults to `<root namespace>.<name>`, which never overlaps another
   * one; two caches of one store with the same namespace fail startup. Caches whose Redis
   * settings are the same share one connection. Inject one with `@InjectCache('sessions')`; send
   * a decorator or `cacheResult` to one with `cache: 'sessions'`. Names: 1 to 64 letters,
   * digits, `_` or `-`, not `default`.
   *
   * @example
   * ```ts
   * CacheModule.forRoot({
   *   provider: 'redis',
   *   redis: { url: 'redis://cache:6379' },
   *   caches: { sessions: { ttl: 1800, l1: true }, catalog: { ttl: 86400, grace: 3600 } },
   * });
   * ```
   * @default {} (the default cache only)
   */
  caches?: Record<string, CacheNamedOptions>;
}

/**
 * The options of one named cache (`caches: { name: { ... } }`): every per-cache option of
 * {@link CacheModuleOptions}. The module-wide ones (`isGlobal`, `caches`, `invalidation`,
 * `metrics`, `eventEmitter`) are set at the root and apply to every cache.
 */
export type CacheNamedOptions = Omit<
  CacheModuleOptions,
  'isGlobal' | 'caches' | 'invalidation' | 'metrics' | 'eventEmitter'
>;

/** The OpenTelemetry meter provider of `metrics: { meterProvider }` (structurally typed). */
export interface CacheMeterProvider {
  /** Returns the meter the cache creates its instruments on (`nestjs-cachekit`). */
  getMeter(name: string, version?: string, options?: object): unknown;
}

/** `metrics: { ... }`: where the cache's OpenTelemetry instruments are created. */
export interface CacheMetricsOptions {
  /**
   * The meter provider to create the instruments on (an SDK `MeterProvider`).
   * @default the global one (`metrics.getMeterProvider()` of `@opentelemetry/api`)
   */
  meterProvider?: CacheMeterProvider;
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
  /**
   * Names of the named caches injected with `@InjectCache(name)`. Not needed when the classes
   * using `@InjectCache` are loaded before `forRootAsync` is called (the usual case: their
   * imports come first); list them when that is not so. A name the factory's `caches` lacks
   * fails startup.
   * @default the names `@InjectCache` was given so far
   */
  cacheNames?: readonly string[];
}
