import { FAILOVER_DEFAULTS } from '../config/defaults';
import type { CacheAdapter, CacheAdapterEntry } from '../interfaces/cache-adapter.interface';
import type { CacheFailoverOptions } from '../interfaces/cache-module-options.interface';
import type { CircuitState, CircuitStateChange } from './circuit-breaker';
import { FailoverTier } from './failover-tier';
import { RemoteTier } from './remote-tier';

/** Options of {@link FailoverCacheAdapter}: the same as the module's `failover: { ... }`. */
export type FailoverCacheAdapterOptions = CacheFailoverOptions;

/** Counters of a {@link FailoverCacheAdapter} since it was created. */
export interface FailoverStats {
  /** `get` calls answered by the primary. */
  primaryHits: number;
  /** `get` calls answered by the fallback (primary failed, skipped, or missed). */
  fallbackHits: number;
  /** `get` calls that found nothing in either tier. */
  misses: number;
  /** Primary calls that failed or timed out. */
  primaryFailures: number;
  /** Calls that did not go to the primary (circuit not closed, or key not yet reconciled). */
  primarySkipped: number;
  /** Keys and prefixes (a namespace clear counts one) applied to the primary on recovery. */
  reconciled: number;
  /** Keys and prefixes (a pending namespace clear counts one) waiting to be reconciled. */
  pendingReconciliation: number;
}

/**
 * Redis-primary, memory-fallback failover: the PyFly `CacheManager` semantics plus a circuit
 * breaker, fail-fast timeouts, self-recovery and protection against stale reads. A preset of
 * the cache's tiers: the remote tier (timeout, breaker, outage journal, recovery) over
 * `primary`, composed with `fallback` by the failover policy.
 *
 * - `get`: the primary answers; if it fails, a WARN is logged and the fallback answers; if the
 *   primary misses, the fallback is checked too. `has` works the same way.
 * - `set`: always written to the fallback (kept warm) and to the primary, whose failure is
 *   logged and swallowed. `delete` hits both and resolves `true` if either had the key;
 *   `clear` and `deleteByPrefix` hit both.
 * - Failures are logged at WARN through Nest's `Logger` in the seed's words ("Primary cache
 *   failed for GET 'user:123', falling back: ..."), at most once per operation every 10 s.
 * - Fail fast: a primary call that takes longer than `timeout` counts as failed and the
 *   fallback answers. After `failureThreshold` consecutive failures the circuit opens and the
 *   primary is not called at all; after `cooldown` seconds it is probed (`PING`) in the
 *   background, and when it answers, traffic returns to it by itself.
 * - No stale reads: every key written or deleted while the primary could not be trusted (the
 *   circuit was open, or the write failed or timed out, so the primary may or may not have
 *   applied it, maybe later) is remembered, and deleted from the primary before reads of it go
 *   back there. Until then it is served by the fallback only. More than `maxTrackedKeys`
 *   such keys, or a `clear()` during the outage, clears the primary's namespace instead.
 *   This relies on the primary applying one client's commands in order, as a single Redis
 *   connection does (commands a frozen Redis has buffered run before the recovery probe).
 *
 * The fallback is per process: in a fleet, an entry another instance deletes from Redis is
 * still served from this instance's fallback when Redis misses (as in the seed).
 *
 * Its state is observable through {@link FailoverCacheAdapter.state},
 * {@link FailoverCacheAdapter.onStateChange} and {@link FailoverCacheAdapter.stats}, and every
 * change is logged.
 *
 * @example
 * ```ts
 * CacheModule.forRoot({ provider: 'redis', redis: { url }, failover: true });
 * // or by hand:
 * const adapter = new FailoverCacheAdapter(
 *   new RedisCacheAdapter({ redis: { url } }),
 *   new MemoryCacheAdapter(),
 *   { failureThreshold: 3, cooldown: 10 },
 * );
 * adapter.onStateChange(({ from, to }) => metrics.gauge('cache.circuit', to));
 * ```
 */
export class FailoverCacheAdapter implements CacheAdapter {
  /** @internal The failover policy over the remote tier and the fallback. */
  readonly tier: FailoverTier;
  private readonly remote: RemoteTier;

  constructor(
    /** The authoritative, shared tier (typically {@link RedisCacheAdapter}). */
    readonly primary: CacheAdapter,
    /** The in-process tier that keeps serving when the primary cannot (typically memory). */
    readonly fallback: CacheAdapter,
    options: FailoverCacheAdapterOptions = {},
  ) {
    const settings = { ...FAILOVER_DEFAULTS, ...stripUndefined(options) };
    this.remote = new RemoteTier(primary, {
      failureThreshold: settings.failureThreshold,
      cooldownMs: settings.cooldown * 1000,
      timeoutMs: Math.round(settings.timeout * 1000),
      maxTrackedKeys: settings.maxTrackedKeys,
    });
    this.tier = new FailoverTier(this.remote, fallback);
  }

  /** The circuit state: `closed` (primary in use), `open` (skipped) or `half-open` (probing). */
  get state(): CircuitState {
    return this.remote.state;
  }

  /** A snapshot of the counters (calls per tier, failures, reconciled keys). */
  get stats(): FailoverStats {
    const { primaryHits, primaryFailures, primarySkipped, reconciled } = this.remote.counters;
    return {
      primaryHits,
      fallbackHits: this.tier.fallbackHits,
      misses: this.tier.misses,
      primaryFailures,
      primarySkipped,
      reconciled,
      pendingReconciliation: this.remote.pendingReconciliation,
    };
  }

  /**
   * Calls `listener` on every circuit state change (`closed` → `open` → `half-open` →
   * `closed`). Returns a function that removes the listener.
   */
  onStateChange(listener: (change: CircuitStateChange) => void): () => void {
    return this.remote.onStateChange(listener);
  }

  /** The primary's value; the fallback's when the primary fails, is skipped or misses. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    return this.tier.get<T>(key);
  }

  /** `true` if the primary has the key, else (or when it fails) if the fallback has it. */
  has(key: string): Promise<boolean> {
    return this.tier.has(key);
  }

  /** Writes the fallback, then the primary; a primary failure is logged, never thrown. */
  set(key: string, value: unknown, ttl: number): Promise<void> {
    return this.tier.set(key, value, ttl);
  }

  /**
   * The values of `keys`, in their order: one bulk read of the primary, then one of the fallback
   * for the keys the primary missed, skipped or failed to read. Never rejects for the primary.
   */
  getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    return this.tier.getMany<T>(keys);
  }

  /** Writes every entry to the fallback, then the primary; a primary failure is logged. */
  setMany(entries: readonly CacheAdapterEntry[]): Promise<void> {
    return this.tier.setMany(entries);
  }

  /** Deletes every key from both tiers; resolves the larger of the two counts. */
  deleteMany(keys: readonly string[]): Promise<number> {
    return this.tier.deleteMany(keys);
  }

  /** Deletes from both tiers; `true` if either had the key. */
  delete(key: string): Promise<boolean> {
    return this.tier.delete(key);
  }

  /** Clears both tiers (the primary's namespace only). */
  clear(): Promise<void> {
    return this.tier.clear();
  }

  /** Deletes from both tiers; resolves the larger of the two counts. */
  deleteByPrefix(prefix: string): Promise<number> {
    return this.tier.deleteByPrefix(prefix);
  }

  /** Checks the primary: `ping()` when it has one, else a `has` on a reserved key. */
  ping(): Promise<void> {
    return this.tier.ping();
  }

  /**
   * Starts both tiers. A primary that is unreachable does not fail startup (unless it throws
   * itself, as `RedisCacheAdapter` does with `strict: true`): the circuit opens at once, the
   * fallback serves, and the primary is probed every `cooldown` seconds.
   */
  onModuleInit(): Promise<void> {
    // Started once: a second call (the cache's stack waits on it) shares the first.
    return (this.starting ??= this.tier.onModuleInit());
  }

  private starting: Promise<void> | undefined;

  /** Stops the probe timer and both tiers (closing the Redis connection). */
  onApplicationShutdown(signal?: string): Promise<void> {
    this.starting = undefined;
    return this.tier.onApplicationShutdown(signal);
  }
}

function stripUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}
