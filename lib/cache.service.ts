import { Inject, Injectable, Logger } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import { CACHE_LOGGER_CONTEXT, CACHE_MODULE_OPTIONS } from './config/cache.constants';
import { CacheArgumentError, CacheKeyError } from './utils/cache.errors';
import { ttlProblem, type ResolvedCacheOptions } from './config/cache-options.resolver';
import { MemoryCacheAdapter } from './adapters/memory.adapter';
import { CacheAdapter } from './interfaces/cache-adapter.interface';
import { describeError, quote } from './utils/describe-value';
import { RateLimitedLogger } from './utils/rate-limited-logger';
import { toStorable } from './utils/serializable';

/** Options of {@link CacheService.wrap} beyond the TTL. */
export interface WrapOptions<T> {
  /** Seconds to keep the loaded value; defaults to the module's `ttl`. `0` never expires. */
  ttl?: number;
  /** When it returns `true` for the loaded value, the value is returned but not stored. */
  unless?: (value: T) => boolean;
}

/**
 * How {@link CacheService.wrap} answered: `hit` from the cache, `miss` by running the loader,
 * `shared` by joining a load another caller started, `disabled` by calling through.
 */
export type WrapStatus = 'hit' | 'miss' | 'shared' | 'disabled';

/**
 * Internal: `wrap` that also says how it answered (the decorators and the interceptor report
 * it as `X-Cache`). A symbol, so it stays off the public API.
 */
export const WRAP_WITH_STATUS: unique symbol = Symbol('cachekit:wrap-with-status');

/**
 * Internal: the cached value of a key when the backend answers synchronously (the built-in
 * memory adapter), else `undefined`. Lets a decorated method's hit skip the Promise chain.
 */
export const PEEK: unique symbol = Symbol('cachekit:peek');

/**
 * Internal: how many backend calls have failed so far. A decorated call that sees it move
 * while it waited knows the backend is down, and waits for it no more (see `cache-operations`).
 */
export const BACKEND_FAILURES: unique symbol = Symbol('cachekit:backend-failures');

/** How one {@link CacheService.wrap} call was answered, with the value. */
export interface WrapResult<T> {
  readonly value: T;
  readonly status: WrapStatus;
}

const RESOLVED: Promise<void> = Promise.resolve();

interface Flight {
  readonly promise: Promise<unknown>;
  /** Set when the key was written, deleted or cleared while the load ran: its result is stale. */
  superseded: boolean;
  /**
   * Set once the value is loaded and its write is pending: until then (`Date.now()` ms), callers
   * of the key get {@link stored} (as a hit) instead of reading a backend that may not have
   * stored it yet.
   */
  sharedUntil?: number;
  /** What is being written: the loaded value's JSON form, as a read will return it. */
  stored?: unknown;
}

/**
 * The cache API application code injects. Every method goes through the configured
 * {@link CacheAdapter}; TTLs are in seconds.
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
  private readonly log = new RateLimitedLogger(new Logger(CACHE_LOGGER_CONTEXT));
  private readonly flights = new Map<string, Flight>();
  /** Keys whose loader is running in the current async context (see `wrap`). */
  private readonly loading = new AsyncLocalStorage<ReadonlySet<string>>();
  /**
   * Loaders running now (superseded ones included). At 0 `loading` is switched off: while any
   * AsyncLocalStorage is on, Node 20 runs a hook on every Promise the process creates, which
   * would tax every request of an application that has ever had a cache miss.
   */
  private running = 0;
  /**
   * The built-in memory adapter, when it is the backend: read and written synchronously, so a
   * call costs one resolved Promise instead of a chain of them (bench/RESULTS.md).
   */
  private readonly local: MemoryCacheAdapter | undefined;
  /** @internal See {@link BACKEND_FAILURES}. */
  [BACKEND_FAILURES] = 0;

  constructor(
    @Inject(CacheAdapter) private readonly adapter: CacheAdapter,
    @Inject(CACHE_MODULE_OPTIONS) private readonly options: ResolvedCacheOptions,
  ) {
    // Exactly the built-in class: a subclass may override get/set, which the fast path skips.
    this.local =
      adapter instanceof MemoryCacheAdapter && adapter.constructor === MemoryCacheAdapter
        ? adapter
        : undefined;
  }

  /** `false` when caching is switched off (`enabled: false`). */
  get enabled(): boolean {
    return this.options.enabled;
  }

  /** The default TTL in seconds. */
  get defaultTtl(): number {
    return this.options.ttl;
  }

  /** The namespace every key of this application is written under. */
  get namespace(): string {
    return this.options.namespace;
  }

  /**
   * Resolves the cached value, or `undefined` on a miss. A cached `null`, `0`, `''` or
   * `false` is a hit and comes back as itself.
   */
  get<T = unknown>(key: string): Promise<T | undefined> {
    const invalid = keyError(key);
    if (invalid) return Promise.reject(invalid);
    if (!this.options.enabled) return Promise.resolve(undefined);
    if (this.local) return Promise.resolve(this.local.getSync<T>(key));
    return this.guarded('GET', key, () => this.adapter.get<T>(key), undefined);
  }

  /**
   * Stores `value` under `key` for `ttl` seconds (default: the module's `ttl`; `0` never
   * expires), as JSON data on every backend: a value JSON writes differently without losing
   * anything (a `Date`, a class instance, `-0`) is stored, and read back, in its JSON form.
   * Rejects with `CacheSerializationError`, naming the problem and where it is, when JSON would
   * lose part of the value (`undefined`, a function, a `BigInt`, a `Map`, a cycle, ...); the
   * previous entry is then untouched.
   */
  set(key: string, value: unknown, ttl?: number): Promise<void> {
    let seconds: number;
    let stored: unknown;
    try {
      assertKey(key);
      seconds = this.ttlOf(ttl);
      stored = toStorable(value, key);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    if (!this.options.enabled) return RESOLVED;
    this.supersede(key, true);
    if (this.local) {
      this.local.setSync(key, stored, seconds);
      return RESOLVED;
    }
    // `nothing`: an adapter may resolve with its client's acknowledgement ('OK'); set resolves
    // undefined, in the same step that catches a failure.
    return this.guarded(
      'SET',
      key,
      () => this.adapter.set(key, stored, seconds),
      undefined,
      nothing,
    );
  }

  /** Deletes `key`; resolves `true` if it existed. */
  async delete(key: string): Promise<boolean> {
    assertKey(key);
    if (!this.options.enabled) return false;
    this.supersede(key, true);
    try {
      return await this.adapter.delete(key);
    } catch (error) {
      this.backendFailed('DELETE', key, error);
      return false;
    }
  }

  /** Resolves `true` exactly when {@link get} would hit (an unexpired, readable entry). */
  async has(key: string): Promise<boolean> {
    assertKey(key);
    if (!this.options.enabled) return false;
    try {
      return await this.adapter.has(key);
    } catch (error) {
      this.backendFailed('HAS', key, error);
      return false;
    }
  }

  /** Deletes every entry of this application's namespace (never the whole Redis database). */
  async clear(): Promise<void> {
    if (!this.options.enabled) return;
    this.supersede('', false);
    try {
      await this.adapter.clear();
    } catch (error) {
      this.backendFailed('CLEAR', '*', error);
    }
  }

  /**
   * Deletes every entry whose key starts with `prefix` (taken literally: `*`, `?` and `[`
   * match only themselves); resolves how many were deleted.
   */
  async deleteByPrefix(prefix: string): Promise<number> {
    if (typeof prefix !== 'string') {
      throw new CacheKeyError(`deleteByPrefix needs a string prefix, got ${typeof prefix}.`);
    }
    if (!this.options.enabled) return 0;
    this.supersede(prefix, false);
    try {
      return await this.adapter.deleteByPrefix(prefix);
    } catch (error) {
      this.backendFailed('DELETE_BY_PREFIX', `${prefix}*`, error);
      return 0;
    }
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
  async invalidate(target: {
    keys?: readonly string[];
    prefixes?: readonly string[];
  }): Promise<number> {
    const keys = target.keys ?? [];
    const prefixes = target.prefixes ?? [];
    keys.forEach((key) => assertKey(key));
    for (const prefix of prefixes) {
      if (typeof prefix !== 'string') {
        throw new CacheKeyError(`invalidate needs string prefixes, got ${typeof prefix}.`);
      }
    }
    if (!this.options.enabled) return 0;
    for (const key of keys) this.supersede(key, true);
    for (const prefix of prefixes) this.supersede(prefix, false);
    // All at once: a backend that hangs costs one command timeout, not one per key.
    const counts = await Promise.all([
      ...keys.map((key) => attempt(() => this.adapter.delete(key)).then(Number)),
      ...prefixes.map((prefix) => attempt(() => this.adapter.deleteByPrefix(prefix))),
    ]);
    return counts.reduce((sum, count) => sum + count, 0);
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
   * a `set`, `delete` or `clear` of the key meanwhile wins over it. Later hits read the stored JSON form
   * (a `Date` comes back as its ISO string on every backend).
   *
   * @param ttl seconds, or {@link WrapOptions}; defaults to the module's `ttl`.
   */
  wrap<T>(key: string, loader: () => T | Promise<T>, ttl?: number | WrapOptions<T>): Promise<T> {
    return this[WRAP_WITH_STATUS](key, loader, ttl).then(valueOf);
  }

  /** @internal See {@link PEEK}. */
  [PEEK]<T>(key: string): T | undefined {
    return this.options.enabled ? this.local?.getSync<T>(key) : undefined;
  }

  /** @internal {@link wrap}, also resolving how it answered. */
  [WRAP_WITH_STATUS]<T>(
    key: string,
    loader: () => T | Promise<T>,
    ttl?: number | WrapOptions<T>,
    read = true,
  ): Promise<WrapResult<T>> {
    let options: WrapOptions<T>;
    let seconds: number;
    try {
      assertKey(key);
      options = typeof ttl === 'object' && ttl !== null ? ttl : { ttl };
      seconds = this.ttlOf(options.ttl);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    if (!this.options.enabled) return callThrough(loader, 'disabled');
    // A loader that wraps its own key again (two layers cached under one key, an interceptor
    // applied twice) would wait for itself: let the inner call through; the outer stores.
    if (this.loading.getStore()?.has(key)) {
      return callThrough(loader, 'miss');
    }
    const inFlight = this.joinable(key);
    if (inFlight) return joined(inFlight) as Promise<WrapResult<T>>;
    // `read` false: a decorated call whose earlier cache call failed loads without a read that
    // would wait for the same dead backend again.
    if (!read) return this.startLoad(key, loader, seconds, options.unless);
    if (this.local) {
      // Read and, on a miss, start the load with no await in between: no caller can slip in.
      const cached = this.local.getSync<T>(key);
      if (cached !== undefined) return Promise.resolve({ value: cached, status: 'hit' });
      return this.startLoad(key, loader, seconds, options.unless);
    }
    return this.get<T>(key).then((cached) => {
      if (cached !== undefined) return { value: cached, status: 'hit' as const };
      // A concurrent caller may have started the load while we awaited the read.
      const raced = this.joinable(key);
      if (raced) return joined(raced) as Promise<WrapResult<T>>;
      return this.startLoad(key, loader, seconds, options.unless);
    });
  }

  private startLoad<T>(
    key: string,
    loader: () => T | Promise<T>,
    ttl: number,
    unless: ((value: T) => boolean) | undefined,
  ): Promise<WrapResult<T>> {
    const flight: Flight = { promise: undefined as unknown as Promise<unknown>, superseded: false };
    // Registered before the loader starts: `load` runs the loader synchronously up to its first
    // await, and its `finally` must find this flight to remove it (a loader that throws at once
    // would otherwise leave a rejected flight behind for every later caller).
    this.flights.set(key, flight);
    const promise = this.load(key, loader, ttl, unless, flight);
    (flight as { promise: Promise<unknown> }).promise = promise;
    return promise.then(missed);
  }

  /**
   * Runs `operation` on the backend; a failure is logged and answered with `fallback`. One
   * `then` in all (each costs a turn of the microtask queue on every Redis call).
   */
  private guarded<R>(
    operation: string,
    key: string,
    call: () => Promise<R>,
    fallback: R,
    onValue?: (value: R) => R,
  ): Promise<R> {
    try {
      return call().then(onValue, (error: unknown) => {
        this.backendFailed(operation, key, error);
        return fallback;
      });
    } catch (error) {
      // An adapter that throws instead of rejecting.
      this.backendFailed(operation, key, error);
      return Promise.resolve(fallback);
    }
  }

  private async load<T>(
    key: string,
    loader: () => T | Promise<T>,
    ttl: number,
    unless: ((value: T) => boolean) | undefined,
    flight: Flight,
  ): Promise<T> {
    this.running++;
    let value: T;
    try {
      value = await this.loading.run(new Set(this.loading.getStore()).add(key), loader);
    } catch (error) {
      this.land(key, flight);
      throw error;
    } finally {
      if (--this.running === 0) this.loading.disable();
    }
    // Not awaited: the caller has its value; a hung backend must not hold it for a second
    // command timeout (issue 10). The write is issued now, before any caller resumes, so a
    // later command of theirs on the key reaches the backend after it.
    const writing = this.storeLoaded(key, value, ttl, unless, flight);
    if (writing) void writing.then(() => this.land(key, flight));
    else this.land(key, flight);
    return value;
  }

  /**
   * Stores what a loader returned, unless the load was superseded or `unless` vetoes it.
   * Resolves when a backend write settles (never rejects: failures are logged); `undefined`
   * when nothing is pending.
   */
  private storeLoaded<T>(
    key: string,
    value: T,
    ttl: number,
    unless: ((value: T) => boolean) | undefined,
    flight: Flight,
  ): Promise<void> | undefined {
    if (flight.superseded || value === undefined) return undefined;
    let stored: unknown;
    try {
      if (unless?.(value)) return undefined;
      stored = toStorable(value, key);
    } catch (error) {
      // The loader's value is still good: the caller gets it, uncached.
      this.log.warn(
        'value:not-stored',
        `Cache value for ${quote(key)} was not stored: ${describeError(error)}`,
      );
      return undefined;
    }
    if (this.local) {
      this.local.setSync(key, stored, ttl);
      return undefined;
    }
    flight.stored = stored;
    flight.sharedUntil = ttl > 0 ? Date.now() + ttl * 1000 : Infinity;
    return this.guarded('SET', key, () => this.adapter.set(key, stored, ttl), undefined, nothing);
  }

  /** The load of `key` a caller may join, dropping one whose shared window has passed. */
  private joinable(key: string): Flight | undefined {
    const flight = this.flights.get(key);
    if (flight?.sharedUntil !== undefined && Date.now() > flight.sharedUntil) {
      this.flights.delete(key);
      return undefined;
    }
    return flight;
  }

  /** Ends the load of `key`, unless a newer one has taken its place. */
  private land(key: string, flight: Flight): void {
    if (this.flights.get(key) === flight) this.flights.delete(key);
  }

  /** Marks loads of `key` (or of every key under it) as stale; new callers start afresh. */
  private supersede(key: string, exact: boolean): void {
    if (this.flights.size === 0) return;
    if (exact) {
      const flight = this.flights.get(key);
      if (flight) {
        flight.superseded = true;
        this.flights.delete(key);
      }
      return;
    }
    for (const [candidate, flight] of this.flights) {
      if (candidate.startsWith(key)) {
        flight.superseded = true;
        this.flights.delete(candidate);
      }
    }
  }

  private ttlOf(ttl: number | undefined): number {
    if (ttl === undefined) return this.options.ttl;
    const problem = ttlProblem(ttl);
    if (problem) throw new CacheArgumentError(`Invalid ttl ${String(ttl)}: expected ${problem}.`);
    return ttl;
  }

  private backendFailed(operation: string, key: string, error: unknown): void {
    this[BACKEND_FAILURES]++;
    const reason = error instanceof Error ? error.message : String(error);
    this.log.warn(
      `backend:${operation}`,
      `Cache ${operation} ${quote(key)} failed, calling through: ${reason}`,
    );
  }
}

function keyError(key: unknown): CacheKeyError | undefined {
  if (typeof key === 'string' && key.length > 0) return undefined;
  return new CacheKeyError(
    `Cache keys must be non-empty strings, got ${key === '' ? 'an empty string' : typeof key}.`,
  );
}

function assertKey(key: unknown): asserts key is string {
  const error = keyError(key);
  if (error) throw error;
}

function nothing(): undefined {
  return undefined;
}

function valueOf<T>(result: WrapResult<T>): T {
  return result.value;
}

function shared<T>(value: T): WrapResult<T> {
  return { value, status: 'shared' };
}

/**
 * Joins a load: `shared` while it runs (the loader's own value); once only its write is pending,
 * a `hit` on what is being stored, as a read of the backend will return it.
 */
function joined(flight: Flight): Promise<WrapResult<unknown>> {
  if (flight.sharedUntil === undefined) return flight.promise.then(shared);
  return Promise.resolve({ value: flight.stored, status: 'hit' });
}

function missed<T>(value: T): WrapResult<T> {
  return { value, status: 'miss' };
}

async function callThrough<T>(
  loader: () => T | Promise<T>,
  status: WrapStatus,
): Promise<WrapResult<T>> {
  return { value: await loader(), status };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** `call()`, with a synchronous throw (an adapter that throws instead of rejecting) as a rejection. */
function attempt<R>(call: () => Promise<R>): Promise<R> {
  try {
    return call();
  } catch (error) {
    return Promise.reject(asError(error));
  }
}
