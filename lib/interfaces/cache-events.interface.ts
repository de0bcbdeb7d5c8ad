// The typed events of a cache (`CacheService.events`), and what each one carries. Forwarded to
// `@nestjs/event-emitter` as `cachekit.<name>` when it is set up (see CacheEventName).

/**
 * Which tier held a value: `l1`, the in-process memory (the memory provider, the L1 of two
 * tiers, or the failover fallback while Redis is down — one memory copy), or `l2`, the shared
 * store (Redis, or an adapter of your own).
 */
export type CacheTierName = 'l1' | 'l2';

/** The read that hit or missed: `get`, `has`, or a get-or-load (`wrap`, `@Cacheable`, the
 * interceptor, `cacheResult`). */
export type CacheReadOperation = 'get' | 'has' | 'wrap';

/** What every event carries. */
export interface CacheEventBase {
  /** The cache's name: `'default'` for the module's cache. */
  readonly cache: string;
}

/** A read answered from the cache (`hit`). */
export interface CacheHitEvent extends CacheEventBase {
  /** The key, as the caller gave it (without the namespace). */
  readonly key: string;
  /** The read: `get`, `has`, or `wrap` for every get-or-load. */
  readonly operation: CacheReadOperation;
  /** The tier that held the value. */
  readonly tier: CacheTierName;
}

/**
 * A read the cache could not answer (`miss`): nothing stored, an expired or invalidated entry,
 * or a backend that failed (also reported as `error`). For a get-or-load, the loader runs next
 * (or a load in flight is joined: `shared`).
 */
export interface CacheMissEvent extends CacheEventBase {
  /** The key, as the caller gave it (without the namespace). */
  readonly key: string;
  /** The read: `get`, `has`, or `wrap` for every get-or-load. */
  readonly operation: CacheReadOperation;
  /** `true` when the caller joined a load another caller had started instead of running one. */
  readonly shared: boolean;
}

/**
 * A get-or-load answered with an expired value kept by `grace` (`stale`): its loader failed
 * (`error`), was slower than a timeout (`timeout`), or failed recently and is backing off
 * (`backoff`).
 */
export interface CacheStaleEvent extends CacheEventBase {
  /** The key, as the caller gave it (without the namespace). */
  readonly key: string;
  /** The tier that held the value. */
  readonly tier: CacheTierName;
  /** Why the stale value answered. */
  readonly reason: 'error' | 'timeout' | 'backoff';
}

/** An entry written (`set`): by `set` / `@CachePut` (`source: 'set'`) or a loader's value. */
export interface CacheSetEvent extends CacheEventBase {
  /** The key, as the caller gave it (without the namespace). */
  readonly key: string;
  /** Seconds the entry lives (its grace included); `0` never expires. */
  readonly ttl: number;
  /** `set` (`set`, `@CachePut`) or `load` (a loader's value). */
  readonly source: 'set' | 'load';
}

/**
 * Entries removed (`delete`) by `delete`, `expire`, `deleteByPrefix`, `deleteByTag` or an
 * invalidation (rules, `@CacheEvict`, `invalidate`). Only what the call named is listed.
 */
export interface CacheDeleteEvent extends CacheEventBase {
  /** The call that removed them. */
  readonly operation: 'delete' | 'expire' | 'deleteByPrefix' | 'deleteByTag' | 'invalidate';
  /** Keys named. */
  readonly keys: readonly string[];
  /** Prefixes named (every key starting with one). */
  readonly prefixes: readonly string[];
  /** Tags named. */
  readonly tags: readonly string[];
}

/** The namespace was cleared (`clear`). */
export type CacheClearEvent = CacheEventBase;

/**
 * A backend call failed (`error`): logged (rate-limited) and answered as a miss or a no-op —
 * the caller never sees it.
 */
export interface CacheErrorEvent extends CacheEventBase {
  /** The backend operation, as in the log line: `GET`, `SET`, `DELETE`, `LOCK`, ... */
  readonly operation: string;
  /** The key, prefix (`prefix*`) or `*` for the namespace. */
  readonly key: string;
  /** The backend's error. */
  readonly error: Error;
}

/** A loader resolved (`loader.done`). */
export interface CacheLoaderDoneEvent extends CacheEventBase {
  /** The key, as the caller gave it (without the namespace). */
  readonly key: string;
  /** How long the loader ran, in milliseconds. */
  readonly durationMs: number;
  /** `true` for a background refresh (`refreshAhead`), which no caller waited for. */
  readonly background: boolean;
  /**
   * A batch loader (`wrapMany`, `@Cacheable({ batch })`) runs once for several keys: they are
   * all here, and {@link key} is the first.
   */
  readonly keys?: readonly string[];
}

/** A loader threw or rejected (`loader.error`). */
export interface CacheLoaderErrorEvent extends CacheEventBase {
  /** The key, as the caller gave it (without the namespace). */
  readonly key: string;
  /** Milliseconds. */
  readonly durationMs: number;
  /** What the loader threw or rejected with. */
  readonly error: unknown;
  /** `true` when its callers were answered with a stale value instead (`grace`). */
  readonly stale: boolean;
  /** `true` for a background refresh (`refreshAhead`), which no caller waited for. */
  readonly background: boolean;
  /** A batch loader's keys (see {@link CacheLoaderDoneEvent.keys}); {@link key} is the first. */
  readonly keys?: readonly string[];
}

/**
 * A caller stopped waiting for a loader (`loader.timeout`): `soft` (a stale value answered) or
 * `hard` (a stale value, or `CacheLoaderTimeoutError`). The loader goes on; its value is stored.
 */
export interface CacheLoaderTimeoutEvent extends CacheEventBase {
  /** The key, as the caller gave it (without the namespace). */
  readonly key: string;
  /** Which timeout passed. */
  readonly timeout: 'soft' | 'hard';
  /** The timeout that passed, in seconds. */
  readonly seconds: number;
  /** `true` when the caller was answered with a stale value. */
  readonly stale: boolean;
}

/** The shared store's circuit breaker changed state (`circuit`; failover only). */
export interface CacheCircuitEvent extends CacheEventBase {
  /** The state before the change. */
  readonly from: 'closed' | 'open' | 'half-open';
  /** The state after the change. */
  readonly to: 'closed' | 'open' | 'half-open';
  /** Why, in words fit for a log line. */
  readonly reason: string;
}

/**
 * A bus message (`bus.message`): sent to the other instances (`direction: 'out'`) or heard from
 * one (`'in'`), naming what changed.
 */
export interface CacheBusMessageEvent extends CacheEventBase {
  /** `out`: sent to the other instances; `in`: heard from one. */
  readonly direction: 'in' | 'out';
  /** Keys named. */
  readonly keys: readonly string[];
  /** Prefixes named (every key starting with one). */
  readonly prefixes: readonly string[];
  /** Tags named. */
  readonly tags: readonly string[];
  /** The whole namespace was cleared. */
  readonly clear: boolean;
}

/**
 * The bus heard again after a gap (`bus.gap`): messages may have been lost while it was deaf,
 * so every L1 entry written before it was dropped.
 */
export interface CacheBusGapEvent extends CacheEventBase {
  /** How long the bus was deaf, in milliseconds. */
  readonly durationMs: number;
}

/** The bus connected (`live`) or stopped hearing the other instances (`deaf`) (`bus.state`). */
export interface CacheBusStateEvent extends CacheEventBase {
  /** The bus's state now. */
  readonly state: 'live' | 'deaf';
  /** Why, in words fit for a log line. */
  readonly reason: string;
}

/**
 * A caller of a `lock: true` load waited for the fleet-wide lock (`lock.wait`): it `acquired`
 * it (and ran the loader), `found` the value another instance stored, gave up after
 * `lock.wait` (`timeout`: it loads without the lock), or the lock could not be asked for
 * (`unavailable`: Redis unreachable or circuit open; it loads without the lock).
 */
export interface CacheLockWaitEvent extends CacheEventBase {
  /** The key, as the caller gave it (without the namespace). */
  readonly key: string;
  /** How long the load waited, in milliseconds. */
  readonly waitedMs: number;
  /** How the wait ended. */
  readonly outcome: 'acquired' | 'found' | 'timeout' | 'unavailable';
}

/**
 * Every event of a cache, by name. Subscribe with `cache.events.on(name, listener)`; with
 * `@nestjs/event-emitter` set up, each is also emitted as `cachekit.<name>`
 * (`@OnEvent('cachekit.loader.error')`).
 */
export interface CacheEventMap {
  /** See {@link CacheHitEvent}. */
  hit: CacheHitEvent;
  /** See {@link CacheMissEvent}. */
  miss: CacheMissEvent;
  /** See {@link CacheStaleEvent}. */
  stale: CacheStaleEvent;
  /** See {@link CacheSetEvent}. */
  set: CacheSetEvent;
  /** See {@link CacheDeleteEvent}. */
  delete: CacheDeleteEvent;
  /** See {@link CacheClearEvent}. */
  clear: CacheClearEvent;
  /** See {@link CacheErrorEvent}. */
  error: CacheErrorEvent;
  /** See {@link CacheLoaderDoneEvent}. */
  'loader.done': CacheLoaderDoneEvent;
  /** See {@link CacheLoaderErrorEvent}. */
  'loader.error': CacheLoaderErrorEvent;
  /** See {@link CacheLoaderTimeoutEvent}. */
  'loader.timeout': CacheLoaderTimeoutEvent;
  /** See {@link CacheCircuitEvent}. */
  circuit: CacheCircuitEvent;
  /** See {@link CacheBusMessageEvent}. */
  'bus.message': CacheBusMessageEvent;
  /** See {@link CacheBusGapEvent}. */
  'bus.gap': CacheBusGapEvent;
  /** See {@link CacheBusStateEvent}. */
  'bus.state': CacheBusStateEvent;
  /** See {@link CacheLockWaitEvent}. */
  'lock.wait': CacheLockWaitEvent;
}

/** The name of a cache event (a key of {@link CacheEventMap}). */
export type CacheEventName = keyof CacheEventMap;

/**
 * A listener of the event `E`. It may be async: a rejection is logged like a throw, and never
 * reaches the cache's caller (the cache does not wait for it).
 */
export type CacheEventListener<E extends CacheEventName> = (event: CacheEventMap[E]) => unknown;
