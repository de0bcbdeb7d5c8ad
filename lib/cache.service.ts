import { Injectable } from '@nestjs/common';
import {
  CacheStack,
  type CacheManyEntry,
  type WrapManyOptions,
  type SetOptions,
  type WrapOptions,
  type WrapResult,
  type WrapStatus,
} from './core/cache-stack';
import type { CacheEvents } from './core/cache-events';
import type { BatchLoaded } from './core/load-batch';
import type { CacheStats } from './interfaces/cache-stats.interface';

export type { BatchLoaded, CacheManyEntry, SetOptions, WrapManyOptions, WrapOptions, WrapStatus };

/**
 * The cache API application code injects: a facade, without state, over the application's
 * cache stack. TTLs are in seconds.
 *
 * A cache outage never fails the caller: backend errors are logged (rate-limited) and
 * `get`/`has` answer as a miss, writes and deletes do nothing, `wrap` calls the loader.
 * Programming errors (an empty key, a value that is not JSON-compatible) do throw.
 *
 * @example
 * ```ts
 * constructor(private readonly cache: CacheService) {}
 * const user = await this.cache.wrap(`user:${id}`, () => this.users.find(id), 60);
 * ```
 */
@Injectable()
export class CacheService {
  /** @internal Nest builds the service over the application's cache stack. */
  constructor(private readonly stack: CacheStack) {}

  /**
   * The cache's typed events: `hit`, `miss`, `stale`, `set`, `delete`, `clear`, `error`,
   * `loader.done`, `loader.error`, `loader.timeout`, `circuit`, `bus.message`, `bus.gap`,
   * `bus.state` and `lock.wait` (see {@link CacheEventMap}). With `@nestjs/event-emitter` set up,
   * each is also emitted there as `cachekit.<name>`.
   *
   * @example
   * ```ts
   * cache.events.on('loader.error', ({ key, error }) => this.logger.error(`load of ${key}`, error));
   * ```
   */
  get events(): CacheEvents {
    return this.stack.events;
  }

  /**
   * Counters since the application started (hits, misses, stale answers, writes, deletes,
   * backend errors, loader runs, lock waits), per tier, with the state of the tiers now (L1
   * entries and bytes, circuit, bus): what a `/cache/stats` admin route shows.
   *
   * @example
   * ```ts
   * @Get('cache/stats') stats() { return this.cache.stats(); }
   * ```
   */
  stats(): CacheStats {
    return this.stack.stats();
  }

  /** `false` when caching is switched off (`enabled: false`). */
  get enabled(): boolean {
    return this.stack.enabled;
  }

  /** The default TTL in seconds. */
  get defaultTtl(): number {
    return this.stack.defaultTtl;
  }

  /** The namespace every key of this application is written under. */
  get namespace(): string {
    return this.stack.namespace;
  }

  /**
   * Resolves the cached value, or `undefined` on a miss. A cached `null`, `0`, `''` or
   * `false` is a hit and comes back as itself.
   */
  get<T = unknown>(key: string): Promise<T | undefined> {
    return this.stack.get<T>(key);
  }

  /**
   * Stores `value` under `key` for `ttl` seconds (default: the module's `ttl`; `0` never
   * expires), as JSON data on every backend: a value JSON writes differently without losing
   * anything (a `Date`, a class instance, `-0`) is stored, and read back, in its JSON form.
   * Rejects with `CacheSerializationError`, naming the problem and where it is, when JSON would
   * lose part of the value (`undefined`, a function, a `BigInt`, a `Map`, a cycle, ...); the
   * previous entry is then untouched.
   *
   * With a `jitter` (the module's, or {@link SetOptions}), the entry lives a random part of
   * `ttl * jitter` longer.
   *
   * @param ttl seconds, or {@link SetOptions} (`{ ttl, jitter }`); defaults to the module's.
   *
   * @example
   * ```ts
   * await cache.set('config', config, 600);
   * await cache.set('config', config, { ttl: 600, jitter: 0.2 }); // expires 600 to 720 s from now
   * ```
   */
  set(key: string, value: unknown, ttl?: number | `${number}` | SetOptions): Promise<void> {
    return this.stack.set(key, value, ttl);
  }

  /** Deletes `key`; resolves `true` if it existed. */
  delete(key: string): Promise<boolean> {
    return this.stack.delete(key);
  }

  /**
   * Marks `key` stale without deleting it: `get` and `has` miss from now on and the next
   * `wrap` (or `@Cacheable` call) runs its loader, but while the entry's `grace` lasts, callers
   * of a loader that fails or passes a timeout still get the old value (`stale`). An entry
   * written without grace is deleted. Resolves `true` if the key had an entry. Every instance
   * sees it (with `l1`, the change is published on the bus).
   *
   * @example
   * ```ts
   * await cache.expire(`product:${id}`); // reload on next read; keep serving the old one if that fails
   * ```
   */
  expire(key: string): Promise<boolean> {
    return this.stack.expire(key);
  }

  /**
   * Invalidates every entry carrying one of `tags` (given to `set`, `wrap`, `@Cacheable`,
   * `@CachePut` or `cacheResult`), on every instance. The cost does not depend on how many
   * entries carry the tags: their invalidation time is recorded and an entry created before it
   * no longer answers (lazy invalidation); an entry written afterwards is served. Loads in
   * flight whose value carries one of the tags are not stored. A backend failure is logged,
   * never thrown.
   *
   * @example
   * ```ts
   * await cache.set(`product:${id}`, product, { ttl: 600, tags: [`product:${id}`, 'products'] });
   * await cache.deleteByTag(`product:${id}`); // every entry about product 42, wherever its key
   * ```
   */
  deleteByTag(tags: string | readonly string[]): Promise<void> {
    return this.stack.deleteByTag(tags);
  }

  /** Resolves `true` exactly when {@link get} would hit (an unexpired, readable entry). */
  has(key: string): Promise<boolean> {
    return this.stack.has(key);
  }

  /** Deletes every entry of this application's namespace (never the whole Redis database). */
  clear(): Promise<void> {
    return this.stack.clear();
  }

  /**
   * Deletes every entry whose key starts with `prefix` (taken literally: `*`, `?` and `[`
   * match only themselves); resolves how many were deleted.
   */
  deleteByPrefix(prefix: string): Promise<number> {
    return this.stack.deleteByPrefix(prefix);
  }

  /**
   * Deletes `keys` and every entry under `prefixes` (taken literally, like
   * {@link deleteByPrefix}), superseding loads in flight for them as {@link delete} does — but
   * rejects when the backend fails instead of logging, so a caller that can retry (a durable
   * invalidation job) knows to. Resolves how many entries were deleted.
   *
   * @example
   * ```ts
   * await cache.invalidate({ keys: ['users:userId=42:v=1'], prefixes: ['orders:tenantId=7:'] });
   * ```
   */
  invalidate(target: { keys?: readonly string[]; prefixes?: readonly string[] }): Promise<number> {
    return this.stack.invalidate(target);
  }

  /**
   * Get-or-load: resolves the cached value of `key`, or runs `loader`, resolves its result and
   * stores it. Concurrent misses on one key share a single `loader` call. If the loader
   * throws, every waiter rejects with its error and nothing is cached. If the key is written,
   * deleted or cleared while the loader runs, its (now stale) result is returned to the
   * waiters but not stored.
   *
   * The loaded value is resolved as the loader returned it, without waiting for the cache
   * write, which goes on in the background (a failure, or a value that cannot be cached, is
   * logged). Until the write settles, new callers of the key get what is being stored (a hit);
   * a `set`, `delete` or `clear` of the key meanwhile wins over it. Later hits read the stored
   * JSON form (a `Date` comes back as its ISO string on every backend).
   *
   * With `timeouts.hard` (the module's, or {@link WrapOptions}), a caller still waiting for the
   * loader after that many seconds rejects with `CacheLoaderTimeoutError`; the loader goes on
   * and its value is stored when it resolves. A caller that joins a load already running is
   * bounded from its own call. With a `jitter`, the loaded value lives a random part of
   * `ttl * jitter` longer.
   *
   * With `grace`, an expired entry is kept that much longer: when the loader throws, or
   * `timeouts.soft` / `timeouts.hard` pass while it runs, callers get the expired value instead
   * (logged; the loader is retried after `graceBackoff`). With `refreshAhead`, a hit past that
   * fraction of the TTL refreshes the entry in the background. With `lock`, one instance of the
   * fleet runs the loader of a cold key and the others wait (up to `lock.wait`) for its value.
   * See README "When the loader fails".
   *
   * @param ttl seconds, or {@link WrapOptions}; defaults to the module's `ttl`.
   *
   * @example
   * ```ts
   * const user = await cache.wrap(`user:${id}`, () => users.find(id), {
   *   ttl: 60,
   *   jitter: 0.1,             // expires 60 to 66 s after the load
   *   timeouts: { hard: 2 },   // CacheLoaderTimeoutError after 2 s; the load still lands
   * });
   * ```
   */
  wrap<T>(
    key: string,
    loader: () => T | Promise<T>,
    ttl?: number | `${number}` | WrapOptions<T>,
  ): Promise<T> {
    return this.stack.wrap(key, loader, ttl, true, true).then(valueOf);
  }

  /**
   * The cached values of `keys`, in their order (`undefined`: a miss): one read for all of them
   * (Redis: one `MGET`; Cluster: one per hash slot, one pipeline per node; the L1 answering
   * first when it is on). A backend failure, even of part of the keys (a Cluster node down),
   * answers those keys as misses (logged).
   *
   * @example
   * ```ts
   * const [a, b] = await cache.getMany<User>(['user:1', 'user:2']);
   * ```
   */
  getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    return this.stack.getMany<T>(keys);
  }

  /**
   * Stores every entry (each with its own `ttl`, `tags`, `grace`, `jitter`, as {@link set}) in
   * one write (Redis: one pipeline per node). Every entry is checked first: an invalid key, TTL
   * or value rejects the call and nothing is written. A backend failure is logged, not thrown.
   *
   * @example
   * ```ts
   * await cache.setMany(users.map((user) => ({ key: `user:${user.id}`, value: user, ttl: 60 })));
   * ```
   */
  setMany(entries: readonly CacheManyEntry[]): Promise<void> {
    return this.stack.setMany(entries);
  }

  /**
   * Deletes `keys` in one call (Redis: one `UNLINK`; Cluster: one per hash slot, one pipeline
   * per node), on every instance's L1 too; resolves how many existed.
   */
  deleteMany(keys: readonly string[]): Promise<number> {
    return this.stack.deleteMany(keys);
  }

  /**
   * Get-or-load for many keys with **one** loader call: the keys are read at once (as
   * {@link getMany}), those another caller is loading join that load, and `loadMissing` is called
   * once with the keys left (each once). It resolves their values in the order it was given them
   * (an array; `undefined` for a key without a value), or a `Map` / an object by key; each value
   * is stored under its own key. Resolves the values in the order of `keys`. A key the loader
   * leaves out is `undefined` there and is **not cached** (the next call asks the loader for it
   * again). Every key is answered as {@link wrap} answers it: `grace`, `timeouts`, `lock`,
   * `refreshAhead`, `unless` and `tags` (the same for every key, or a function of the key) apply.
   *
   * @example
   * ```ts
   * const users = await cache.wrapMany(
   *   ids.map((id) => `user:${id}`),
   *   async (missing) => {
   *     const rows = await db.users.findByIds(missing.map((key) => key.slice(5)));
   *     return new Map(rows.map((row) => [`user:${row.id}`, row]));
   *   },
   *   { ttl: 60 },
   * );
   * ```
   */
  wrapMany<T>(
    keys: readonly string[],
    loadMissing: (keys: string[]) => BatchLoaded<T> | Promise<BatchLoaded<T>>,
    ttl?: number | `${number}` | WrapManyOptions<T>,
  ): Promise<Array<T | undefined>> {
    return this.stack.wrapMany(keys, loadMissing, ttl);
  }
}

function valueOf<T>(result: WrapResult<T>): T {
  return result.value;
}
