import type { CacheTierName } from './cache-events.interface';

/** Counters of one tier of a cache (see {@link CacheStats.tiers}). */
export interface CacheTierStats {
  /** Reads this tier answered (hits, and stale values it held). */
  readonly hits: number;
}

/** The in-process tier: the memory provider, the L1 of two tiers, or the failover fallback. */
export interface CacheL1Stats extends CacheTierStats {
  /** Entries held now (expired ones not yet swept included). */
  readonly entries: number;
  /**
   * Estimated bytes held: the JSON length of the entries' values and keys (as `maxSize`
   * counts them). Kept as entries come and go when a byte bound (`maxSize`) is set; measured
   * on each call otherwise (a walk of the entries).
   */
  readonly bytes: number;
  /** The entry bound (`maxEntries`). */
  readonly maxEntries: number;
  /** The byte bound (`maxSize`), if one is set. */
  readonly maxBytes: number | undefined;
}

/** The shared store (Redis, or an adapter of your own). */
export interface CacheL2Stats extends CacheTierStats {
  /**
   * The circuit breaker's state with failover (`closed`: in use; `open`: skipped, the L1 serves;
   * `half-open`: probing); `undefined` without failover (a failure is then answered per call).
   */
  readonly circuit: 'closed' | 'open' | 'half-open' | undefined;
  /** Keys written or deleted during an outage, waiting to be applied on recovery (failover). */
  readonly pendingReconciliation: number;
}

/** The bus of a two-tier cache. */
export interface CacheBusStats {
  /**
   * `live` (subscribed: the L1 is trusted), `deaf` (disconnected or stalled: the L1 is bypassed
   * until it hears again) or `off` (no bus: one tier, or `bus: false`).
   */
  readonly state: 'live' | 'deaf' | 'off';
  /** `state === 'live'`. */
  readonly connected: boolean;
  /** Messages sent to the other instances. */
  readonly published: number;
  /** Messages heard from the other instances. */
  readonly received: number;
  /** Times the bus heard again after being deaf (each drops the L1 entries written before). */
  readonly gaps: number;
  /** Messages waiting to be sent (held while the connection is down, bounded). */
  readonly buffered: number;
}

/** What the loaders did. */
export interface CacheLoaderStats {
  /** Loader calls (each runs once for all its concurrent callers). */
  readonly runs: number;
  /** Loader calls that threw or rejected. */
  readonly errors: number;
  /** Callers that stopped waiting after `timeouts.soft` or `timeouts.hard`. */
  readonly timeouts: number;
  /** Loads in flight now. */
  readonly inFlight: number;
  /** Total milliseconds the loaders that settled ran. */
  readonly totalMs: number;
}

/** What the fleet-wide lock (`lock`) did. */
export interface CacheLockStats {
  /** Loads that waited for the lock (one per load, however many instances took part). */
  readonly waits: number;
  /** Waits that took the lock (this instance ran the loader). */
  readonly acquired: number;
  /** Waits that found the value another instance stored. */
  readonly found: number;
  /** Waits that gave up after `lock.wait` (loaded without the lock). */
  readonly timeouts: number;
  /** Loads whose lock could not be asked for (Redis unreachable, circuit open). */
  readonly unavailable: number;
}

/**
 * Counters of one cache since the application started (`CacheService.stats()`), with the state
 * of its tiers now. The numbers a `/cache/stats` admin route shows.
 *
 * @example
 * ```ts
 * const { hits, misses } = cache.stats();
 * const hitRatio = hits / Math.max(1, hits + misses);
 * ```
 */
export interface CacheStats {
  /** The cache's name: `'default'` for the module's cache. */
  readonly name: string;
  /** The namespace its keys live under. */
  readonly namespace: string;
  /** Reads answered from the cache (`get`, `has`, get-or-load). */
  readonly hits: number;
  /** Reads not answered from the cache (a failed backend read included). */
  readonly misses: number;
  /** Get-or-loads answered with an expired value kept by `grace`. */
  readonly stale: number;
  /** Get-or-load callers that joined a load in flight (counted in `misses` too). */
  readonly shared: number;
  /** Entries written: `set`, `@CachePut`, and loaded values stored. */
  readonly sets: number;
  /** `delete`, `expire`, `deleteByPrefix`, `deleteByTag` and invalidation calls. */
  readonly deletes: number;
  /** `clear` calls. */
  readonly clears: number;
  /** Backend calls that failed (logged, answered as a miss or a no-op). */
  readonly errors: number;
  /** What the loaders did. */
  readonly loader: CacheLoaderStats;
  /** What the fleet-wide lock did. */
  readonly lock: CacheLockStats;
  /** Per tier; a tier the cache does not have is absent. */
  readonly tiers: {
    readonly l1?: CacheL1Stats;
    readonly l2?: CacheL2Stats;
  };
  /** The bus of two tiers (`state: 'off'` without one). */
  readonly bus: CacheBusStats;
}

/**
 * The health of a cache now (`CacheHealthIndicator`): `up`, `degraded` (serving, but from the
 * in-process fallback while Redis is down, or bypassing the L1 while the bus is deaf) or
 * `down` (its shared store is unreachable and nothing stands in for it).
 */
export interface CacheHealth {
  /** See above. */
  readonly status: 'up' | 'degraded' | 'down';
  /** Why it is not `up`, in words fit for a log line. */
  readonly reason?: string;
  /** The shared store's answer to a `PING` (absent for an in-process cache). */
  readonly l2?: {
    readonly status: 'up' | 'down';
    /** Milliseconds the ping took (absent when it failed). */
    readonly latencyMs?: number;
    readonly error?: string;
  };
  /** The circuit breaker's state, with failover. */
  readonly circuit?: 'closed' | 'open' | 'half-open';
  /** The bus's state, with two tiers. */
  readonly bus?: 'live' | 'deaf' | 'off';
  /** The in-process tier's size. */
  readonly l1?: { readonly entries: number; readonly bytes: number };
  /** Which tier answers reads now. */
  readonly serving: CacheTierName | 'l1+l2';
}
