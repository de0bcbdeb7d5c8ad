import type { RedisOptions } from 'ioredis';
import type {
  CacheBusOptions,
  CacheFailoverOptions,
  CacheL1Options,
  CacheProvider,
} from '../interfaces/cache-module-options.interface';

// Every default of the library, once (issue 11: "one of each"). The TSDoc `@default` of an
// option states the same value; the resolver, the adapters, the tiers and the dispatchers read
// it from here.

/**
 * Defaults of the module options (DESIGN "Configuration"); explicit options and environment
 * variables win over them.
 * @internal
 */
export const MODULE_DEFAULTS: {
  readonly enabled: boolean;
  readonly provider: CacheProvider;
  readonly ttl: number;
  readonly namespace: string;
  readonly failover: false;
  readonly l1: boolean;
  readonly strict: boolean;
  readonly jitter: number;
  readonly redisUrl: string;
  readonly serializer: 'json';
} = Object.freeze({
  enabled: true,
  provider: 'memory',
  /** Seconds; `0` = never expires. */
  ttl: 300,
  namespace: 'cache',
  failover: false,
  /** `true` (or `CACHE_L1=true`) uses {@link L1_DEFAULTS}; the bus then defaults to on. */
  l1: false,
  strict: false,
  /** Fraction of the TTL added at random to each write; `0` = every entry lives its TTL. */
  jitter: 0,
  /** Used with `provider: 'redis'` when neither `redis` nor `CACHE_REDIS_URL` names a server. */
  redisUrl: 'redis://127.0.0.1:6379',
  /** Values are stored as JSON; `'rich'` or your own `CacheSerializer` on request. */
  serializer: 'json',
});

/**
 * Defaults of the memory store (`memory: { ... }`, `new MemoryCacheAdapter()`).
 * @internal
 */
export const MEMORY_DEFAULTS = Object.freeze({
  maxEntries: 10_000,
  /** Seconds between sweeps of expired entries; `0` = no sweep. */
  sweepInterval: 60,
  // No `maxSize`: without it no entry is measured (the memory `set` path stays as fast).
});

/**
 * The defaults of `CacheL1Options`, used by `l1: true`.
 * @internal
 */
export const L1_DEFAULTS: Readonly<Required<CacheL1Options>> = Object.freeze({
  maxEntries: 10_000,
  /** Bytes (64 MiB), as `estimateSize` counts them. */
  maxSize: 67_108_864,
  /** Seconds; an L1 entry lives the shorter of this and the entry's own remaining TTL. */
  ttl: 60,
});

/**
 * The defaults of `CacheBusOptions`, used by `bus: true` and when `l1` is on and `bus` is not
 * given.
 * @internal
 */
export const BUS_DEFAULTS: Readonly<Required<CacheBusOptions>> = Object.freeze({
  /** Seconds between PINGs on the subscriber connection; `0` = no heartbeat. */
  heartbeat: 1,
  maxBuffered: 1000,
});

/**
 * The defaults of `CacheFailoverOptions`, used by `failover: true` and by a
 * `FailoverCacheAdapter` built without options.
 * @internal
 */
export const FAILOVER_DEFAULTS: Readonly<Required<CacheFailoverOptions>> = Object.freeze({
  failureThreshold: 5,
  /** Seconds. */
  cooldown: 5,
  /** Seconds; `0` = no timeout. */
  timeout: 0.5,
  maxTrackedKeys: 10_000,
});

/**
 * Prefixes (and namespace clears) an outage journal keeps before it falls back to "clear
 * everything on recovery".
 * @internal
 */
export const OUTAGE_JOURNAL_MAX_PREFIXES = 100;

/**
 * ioredis options of every client the cache opens itself. Fail fast: a cache call must never
 * wait for a reconnect (ioredis defaults queue commands while offline and retry each up to 20
 * times; see ioredis "Offline Queue"). User options are spread over these.
 * @internal
 */
export const REDIS_FAIL_FAST: Readonly<RedisOptions> = Object.freeze({
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 1000,
  connectTimeout: 2000,
  // ioredis keeps a timer this long after disconnect(); short, so shutdown is prompt.
  disconnectTimeout: 200,
  retryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
});

/** Host and port ioredis uses when none is given. @internal */
export const REDIS_DEFAULT_HOST = '127.0.0.1';
/** @internal */
export const REDIS_DEFAULT_PORT = 6379;

/**
 * Defaults of `DeferredDispatcher` (the built-in `'deferred'` dispatcher).
 * @internal
 */
export const DEFERRED_DISPATCHER_DEFAULTS = Object.freeze({
  concurrency: 1,
  maxQueue: 10_000,
});

/**
 * Defaults of `BullMqDispatcher`. Times in milliseconds.
 * @internal
 */
export const BULLMQ_DISPATCHER_DEFAULTS = Object.freeze({
  /** Followed by `.<namespace>` once the application starts the dispatcher. */
  queueName: 'cachekit-invalidation',
  /** BullMQ's own default key prefix: its keys are `bull:<queue>:...`. */
  prefix: 'bull',
  attempts: 8,
  backoff: 500,
  concurrency: 1,
  keepCompleted: 1000,
  maxBuffered: 10_000,
  /**
   * Used when the dispatcher is started without an application (the module passes the cache's
   * own per-call timeout instead): the fail-fast client's `commandTimeout`, so a `publish` waits
   * no longer than a cache call.
   */
  addTimeout: REDIS_FAIL_FAST.commandTimeout as number,
  /**
   * A job of another namespace (a queue shared by applications) is put back for a worker of its
   * own: after `handBackDelay` ms times the number of hand-backs so far, at most
   * `handBackMaxDelay`, and at most `maxHandBacks` times (about 3 minutes) before it is kept in
   * the failed set.
   */
  handBackDelay: 100,
  handBackMaxDelay: 2000,
  maxHandBacks: 100,
  /** Between two attempts to re-send jobs buffered while Redis refused them. */
  retryInterval: 1000,
  /** How long `close()` waits for the worker and the queue before forcing them. */
  closeTimeout: 5000,
  /** Reconnect back-off of the dispatcher's own connections. */
  retryStrategy: (attempt: number) => Math.min(attempt * 500, 5000),
});

/**
 * Defaults of the loading options (`grace`, `graceBackoff`, `lock: true`), in seconds.
 * @internal
 */
export const LOADING_DEFAULTS = Object.freeze({
  /** An expired entry is gone (no stale value to serve). */
  grace: 0,
  /** After a failed refresh served a stale value, the loader is retried this much later. */
  graceBackoff: 10,
  /** What `lock: true` means. */
  lock: Object.freeze({ ttl: 10, wait: 10 }),
});
