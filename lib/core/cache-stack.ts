import { CacheArgumentError, CacheKeyError } from '../utils/cache.errors';
import {
  invalidTtlMessage,
  jitteredTtl,
  jitterProblem,
  LOADER_TIMEOUT_FIELDS,
  loaderTimeoutsProblem,
  ttlProblem,
} from '../config/validators';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import type { CacheLoaderTimeouts } from '../interfaces/cache-module-options.interface';
import type { StoredWrite } from '../interfaces/stored-write';
import { describeError, describeValue, quote } from '../utils/describe-value';
import { toStorable } from '../utils/serializable';
import { isThenable } from '../utils/thenable';
import { asError } from '../utils/timeout';
import type { FailoverTier } from '../tiers/failover-tier';
import type { LocalTier } from '../tiers/local-tier';
import type { TwoTier } from '../tiers/two-tier';
import type { BusMessage, BusState } from '../bus/cache-bus';
import { ErrorPolicy } from './error-policy';
import { LoaderRunner } from './loader-runner';
import { SingleFlight, type Flight } from './single-flight';

/**
 * Options of {@link CacheService.wrap} beyond the TTL. An unknown field is refused
 * (`CacheArgumentError`).
 *
 * @example
 * ```ts
 * await cache.wrap(`user:${id}`, () => users.find(id), { ttl: 60, jitter: 0.1, timeouts: { hard: 2 } });
 * ```
 */
export interface WrapOptions<T> {
  /** Seconds to keep the loaded value; defaults to the module's `ttl`. `0` never expires. */
  ttl?: number;
  /**
   * Fraction of the TTL (0 to 1) added at random to the loaded value's TTL: it lives between
   * `ttl` and `ttl * (1 + jitter)` seconds.
   * @default the module's `jitter`
   */
  jitter?: number;
  /**
   * How long this caller waits for the loader: after `hard` seconds it rejects with
   * `CacheLoaderTimeoutError` while the loader goes on and is stored. Each field defaults to
   * the module's.
   * @default the module's `timeouts`
   */
  timeouts?: CacheLoaderTimeouts;
  /** When it returns `true` for the loaded value, the value is returned but not stored. */
  unless?: (value: T) => boolean;
}

/**
 * Options of {@link CacheService.set} beyond the TTL. An unknown field is refused
 * (`CacheArgumentError`).
 *
 * @example
 * ```ts
 * await cache.set('config', config, { ttl: 600, jitter: 0.2 }); // lives 600 to 720 s
 * ```
 */
export interface SetOptions {
  /** Seconds to keep the value; defaults to the module's `ttl`. `0` never expires. */
  ttl?: number;
  /**
   * Fraction of the TTL (0 to 1) added at random: the entry lives between `ttl` and
   * `ttl * (1 + jitter)` seconds.
   * @default the module's `jitter`
   */
  jitter?: number;
}

const WRAP_FIELDS: readonly string[] = ['ttl', 'jitter', 'timeouts', 'unless'];
const SET_FIELDS: readonly string[] = ['ttl', 'jitter'];

/**
 * How {@link CacheService.wrap} answered: `hit` from the cache, `miss` by running the loader,
 * `shared` by joining a load another caller started, `disabled` by calling through.
 */
export type WrapStatus = 'hit' | 'miss' | 'shared' | 'disabled';

/** How one wrap was answered, with the value. */
export interface WrapResult<T> {
  readonly value: T;
  readonly status: WrapStatus;
}

/** What the stack needs of the resolved module options. */
export interface CacheStackOptions {
  readonly enabled: boolean;
  /** Default TTL in seconds. */
  readonly ttl: number;
  readonly namespace: string;
  /** Fraction of the TTL added at random to each write (0 to 1). @defaultValue 0 */
  readonly jitter?: number;
  /** Default loader timeouts, in seconds. @defaultValue none */
  readonly timeouts?: Readonly<CacheLoaderTimeouts>;
}

/**
 * The tiers a stack owns, exactly one of the four shapes (built by `createCacheStack`):
 * the local tier alone (memory, or an adapter with a sync view), a plain remote store (Redis
 * without failover, or an adapter without a sync view: failures go through the stack's error
 * policy), the failover policy over the remote tier (timeout, breaker, journal, recovery)
 * and a local fallback, or two tiers (`l1`): an in-process L1 in front of the remote store or
 * the failover remote tier, kept coherent by the bus.
 */
export type CacheTiers =
  | {
      readonly local: LocalTier;
      readonly remote?: undefined;
      readonly failover?: undefined;
      readonly twoTier?: undefined;
    }
  | {
      readonly remote: CacheAdapter;
      /** The remote adapter's unchecked write of a value the stack has checked, if it has one. */
      readonly write?: StoredWrite;
      readonly local?: undefined;
      readonly failover?: undefined;
      readonly twoTier?: undefined;
    }
  | {
      readonly failover: FailoverTier;
      readonly local?: undefined;
      readonly remote?: undefined;
      readonly twoTier?: undefined;
    }
  | {
      readonly twoTier: TwoTier;
      /** The L1 is the stack's own (started and stopped with it), not a failover fallback. */
      readonly ownL1: boolean;
      readonly local?: undefined;
      readonly remote?: undefined;
      readonly failover?: undefined;
    };

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * The one core of an application's cache: every entry point (CacheService, the decorators, the
 * interceptor, `cacheResult`, the invalidation rules) goes through it. It validates keys, TTLs
 * and values, owns single-flight and supersession of loads in flight, runs loaders, applies the
 * error policy (a backend failure is logged and answered as a miss or a no-op, never thrown),
 * and reads the local tier synchronously when the adapter offers one.
 *
 * Not exported by the package: applications use {@link CacheService}. It appears in the
 * declarations only because the services and the interceptor built on it name it.
 */
export class CacheStack {
  /** Backend failures are logged and counted here. */
  private readonly errors = new ErrorPolicy();
  private readonly flights = new SingleFlight();
  private readonly loader = new LoaderRunner();
  /**
   * The in-process tier when it is the only one: read and written without a Promise, so a call
   * costs one resolved Promise instead of a chain of them (bench/RESULTS.md).
   */
  private readonly local: LocalTier | undefined;
  /** Two tiers (`l1`): the L1 is read synchronously first, the rest goes through {@link store}. */
  private readonly twoTier: TwoTier | undefined;
  /**
   * What every asynchronous call reaches: the local tier's store, the plain remote store, or the
   * failover policy over the remote tier and its fallback.
   */
  private readonly store: CacheAdapter;
  /** Writes a value this stack has checked (`toStorable`) to {@link store}. */
  private readonly write: StoredWrite;
  /** Writes a loader's value (two tiers: undone if another instance changed the key meanwhile). */
  private readonly writeLoaded: StoredWrite;
  /** The module's jitter (0 = none). */
  private readonly jitter: number;
  /** The module's hard loader timeout in seconds, if any (see `wrap`'s `moduleTimeouts`). */
  private readonly hard: number | undefined;

  constructor(
    /** The tiers this stack owns (their lifecycle stays with the adapters Nest provides). */
    readonly tiers: CacheTiers,
    private readonly options: CacheStackOptions,
  ) {
    this.local = tiers.local;
    const twoTier = tiers.twoTier;
    this.twoTier = twoTier;
    twoTier?.onRemoteChange((message) => this.remoteChange(message));
    this.store = twoTier ?? (tiers.local ? tiers.local.store : (tiers.remote ?? tiers.failover));
    const store = this.store;
    this.write = (tiers.remote && tiers.write) ?? ((key, value, ttl) => store.set(key, value, ttl));
    this.writeLoaded = twoTier
      ? (key, value, ttl) => twoTier.write(key, value, ttl, true)
      : this.write;
    this.jitter = options.jitter ?? 0;
    this.hard = options.timeouts?.hard;
  }

  /**
   * Starts what the stack owns beyond the adapter: with two tiers, the bus (and the L1 when it
   * is not a failover fallback). Called by Nest.
   */
  async onModuleInit(): Promise<void> {
    // Switched off (`enabled: false`): no call reaches the tiers, so no bus connection either.
    if (!this.options.enabled) return;
    await this.twoTier?.start(this.tiers.twoTier ? this.tiers.ownL1 : false);
  }

  /** Stops the bus (after a bounded flush) and the stack's own L1. Called by Nest. */
  async onApplicationShutdown(signal?: string): Promise<void> {
    await this.twoTier?.stop(this.tiers.twoTier ? this.tiers.ownL1 : false, signal);
  }

  /**
   * Whether the bus hears the other instances: `live`, `deaf` (the L1 is bypassed until it is
   * live again) or `off` (no bus: one tier, or `bus: false`).
   */
  get busState(): BusState {
    return this.twoTier ? this.twoTier.busState : 'off';
  }

  /** `false` when caching is switched off (`enabled: false`). */
  get enabled(): boolean {
    return this.options.enabled;
  }

  /** The default TTL in seconds. */
  get defaultTtl(): number {
    return this.options.ttl;
  }

  /** The namespace every key is written under. */
  get namespace(): string {
    return this.options.namespace;
  }

  /** Backend calls that have failed so far (see {@link ErrorPolicy.failures}). */
  get failures(): number {
    return this.errors.failures;
  }

  /** Loads in flight now. */
  get loadsInFlight(): number {
    return this.flights.size;
  }

  /** The cached value of `key`, or `undefined` on a miss. */
  get<T>(key: string): Promise<T | undefined> {
    const invalid = keyError(key);
    if (invalid) return Promise.reject(invalid);
    if (!this.options.enabled) return Promise.resolve(undefined);
    if (this.local) return Promise.resolve(this.local.get<T>(key));
    const near = this.twoTier?.peek<T>(key);
    if (near !== undefined) return Promise.resolve(near);
    return this.errors.guarded('GET', key, () => this.store.get<T>(key), undefined);
  }

  /**
   * The cached value of `key` when the local tier answers synchronously, else `undefined`: lets
   * a decorated method's hit skip the Promise chain.
   */
  peek<T>(key: string): T | undefined {
    if (!this.options.enabled) return undefined;
    return this.local ? this.local.get<T>(key) : this.twoTier?.peek<T>(key);
  }

  /**
   * Stores `value` (its JSON form) under `key` for `ttl` seconds, or the options' (jitter
   * applied); rejects on an invalid key, TTL, option or value.
   */
  set(key: string, value: unknown, ttl?: number | SetOptions): Promise<void> {
    let seconds: number;
    let stored: unknown;
    try {
      assertKey(key);
      seconds = this.writeTtlOf(ttl);
      stored = toStorable(value, key);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    if (!this.options.enabled) return RESOLVED;
    this.flights.supersede(key, true);
    if (this.local) {
      this.local.set(key, stored, seconds);
      return RESOLVED;
    }
    // `nothing`: an adapter may resolve with its client's acknowledgement ('OK'); set resolves
    // undefined, in the same step that catches a failure.
    return this.errors.guarded<unknown>(
      'SET',
      key,
      () => this.write(key, stored, seconds),
      undefined,
      nothing,
    ) as Promise<void>;
  }

  /** Deletes `key`; resolves `true` if it existed. */
  async delete(key: string): Promise<boolean> {
    assertKey(key);
    if (!this.options.enabled) return false;
    this.flights.supersede(key, true);
    try {
      return await this.store.delete(key);
    } catch (error) {
      this.errors.failed('DELETE', key, error);
      return false;
    }
  }

  /** `true` exactly when {@link get} would hit. */
  async has(key: string): Promise<boolean> {
    assertKey(key);
    if (!this.options.enabled) return false;
    try {
      return await this.store.has(key);
    } catch (error) {
      this.errors.failed('HAS', key, error);
      return false;
    }
  }

  /** Deletes every entry of the namespace. */
  async clear(): Promise<void> {
    if (!this.options.enabled) return;
    this.flights.supersede('', false);
    try {
      await this.store.clear();
    } catch (error) {
      this.errors.failed('CLEAR', '*', error);
    }
  }

  /** Deletes every entry whose key starts with `prefix` (literally); resolves how many. */
  async deleteByPrefix(prefix: string): Promise<number> {
    if (typeof prefix !== 'string') {
      throw new CacheKeyError(`deleteByPrefix needs a string prefix, got ${typeof prefix}.`);
    }
    if (!this.options.enabled) return 0;
    this.flights.supersede(prefix, false);
    try {
      return await this.store.deleteByPrefix(prefix);
    } catch (error) {
      this.errors.failed('DELETE_BY_PREFIX', `${prefix}*`, error);
      return 0;
    }
  }

  /**
   * Deletes `keys` and every entry under `prefixes`, superseding loads in flight for them, but
   * rejects when the backend fails (a durable invalidation job retries). Resolves the count.
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
    for (const key of keys) this.flights.supersede(key, true);
    for (const prefix of prefixes) this.flights.supersede(prefix, false);
    // All at once: a backend that hangs costs one command timeout, not one per key.
    const counts = await Promise.all([
      ...keys.map((key) => attempt(() => this.store.delete(key)).then(Number)),
      ...prefixes.map((prefix) => attempt(() => this.store.deleteByPrefix(prefix))),
    ]);
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /**
   * Get-or-load, resolving how it answered. Concurrent misses on one key share one loader call;
   * a write, delete or clear of the key while it runs keeps its result out of the cache. The
   * loaded value is resolved without waiting for its write, which goes on in the background;
   * until the write settles, new callers get what is being stored (a hit).
   *
   * @param read `false`: load without reading first (a decorated call whose earlier cache call
   *   failed does not wait for the same dead backend again).
   * @param moduleTimeouts `true` for the loaders the module's `timeouts` bound (`wrap`,
   *   `@Cacheable`, `cacheResult`); `CacheInterceptor` leaves it off: its load includes sending
   *   the response, which a slow client may stretch. Timeouts given in `ttl` always apply.
   */
  wrap<T>(
    key: string,
    loader: () => T | Promise<T>,
    ttl?: number | WrapOptions<T>,
    read = true,
    moduleTimeouts = false,
  ): Promise<WrapResult<T>> {
    let options: WrapOptions<T>;
    let seconds: number;
    try {
      assertKey(key);
      if (typeof ttl === 'object' && ttl !== null) {
        options = ttl;
        checkWrapOptions(options);
      } else {
        options = { ttl };
      }
      seconds = this.ttlOf(options.ttl);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    if (!this.options.enabled) return callThrough(loader, 'disabled');
    // A loader that wraps its own key again would wait for itself: let the inner call through;
    // the outer stores.
    if (this.loader.isLoading(key)) return callThrough(loader, 'miss');
    const hard = options.timeouts?.hard ?? (moduleTimeouts ? this.hard : undefined);
    const inFlight = this.flights.joinable(key);
    if (inFlight) return this.join(key, inFlight, hard);
    if (!read) return this.startLoad(key, loader, seconds, options, hard);
    if (this.local) {
      // Read and, on a miss, start the load with no await in between: no caller can slip in.
      const cached = this.local.get<T>(key);
      if (cached !== undefined) return Promise.resolve({ value: cached, status: 'hit' });
      return this.startLoad(key, loader, seconds, options, hard);
    }
    const near = this.twoTier?.peek<T>(key);
    if (near !== undefined) return Promise.resolve({ value: near, status: 'hit' });
    return this.errors
      .guarded('GET', key, () => this.store.get<T>(key), undefined)
      .then((cached) => {
        if (cached !== undefined) return { value: cached, status: 'hit' as const };
        // A concurrent caller may have started the load while we awaited the read.
        const raced = this.flights.joinable(key);
        if (raced) return this.join(key, raced, hard);
        return this.startLoad(key, loader, seconds, options, hard);
      });
  }

  /**
   * Joins a load: `shared` while it runs (the loader's own value, bounded by this caller's own
   * `timeouts.hard` from now); once only its write is pending, a `hit` on what is being stored,
   * as a read of the backend will return it.
   */
  private join<T>(key: string, flight: Flight, hard: number | undefined): Promise<WrapResult<T>> {
    if (flight.sharedUntil !== undefined) {
      return Promise.resolve({ value: flight.stored as T, status: 'hit' });
    }
    return this.loader.wait(key, flight.promise as Promise<T>, hard).then(shared);
  }

  private startLoad<T>(
    key: string,
    loader: () => T | Promise<T>,
    ttl: number,
    options: WrapOptions<T>,
    hard: number | undefined,
  ): Promise<WrapResult<T>> {
    const flight = this.flights.begin(key);
    const promise = this.load(key, loader, ttl, options, flight);
    (flight as { promise: Promise<unknown> }).promise = promise;
    // The flight is the load; only this caller's wait is bounded (the load goes on and stores).
    return this.loader.wait(key, promise, hard).then(missed);
  }

  private async load<T>(
    key: string,
    loader: () => T | Promise<T>,
    ttl: number,
    options: WrapOptions<T>,
    flight: Flight,
  ): Promise<T> {
    let value: T;
    try {
      value = await this.loader.call(key, loader);
    } catch (error) {
      this.flights.land(key, flight);
      throw error;
    } finally {
      this.loader.done();
    }
    // Not awaited: the caller has its value; a hung backend must not hold it for a second
    // command timeout (issue 10). The write is issued now, before any caller resumes, so a
    // later command of theirs on the key reaches the backend after it.
    // Jittered per write, not per wrap call: a hit costs no random number.
    const seconds = jitteredTtl(ttl, options.jitter ?? this.jitter);
    const writing = this.storeLoaded(key, value, seconds, options.unless, flight);
    if (writing) void writing.then(() => this.flights.land(key, flight));
    else this.flights.land(key, flight);
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
      const veto: unknown = unless?.(value);
      if (veto) {
        if (isThenable(veto)) {
          this.errors.warn(
            'value:unless-promise',
            `Cache value for ${quote(key)} was not stored: its unless returned a Promise ` +
              `(it must be synchronous)`,
          );
        }
        return undefined;
      }
      stored = toStorable(value, key);
    } catch (error) {
      // The loader's value is still good: the caller gets it, uncached.
      this.errors.warn(
        'value:not-stored',
        `Cache value for ${quote(key)} was not stored: ${describeError(error)}`,
      );
      return undefined;
    }
    if (this.local) {
      this.local.set(key, stored, ttl);
      return undefined;
    }
    flight.stored = stored;
    flight.sharedUntil = ttl > 0 ? Date.now() + ttl * 1000 : Infinity;
    return this.errors.guarded<unknown>(
      'SET',
      key,
      () => this.writeLoaded(key, stored, ttl),
      undefined,
      nothing,
    ) as Promise<void>;
  }

  /** Another instance changed these entries (or the bus had a gap): loads of them are stale. */
  private remoteChange(message: BusMessage): void {
    if (message.clear) {
      this.flights.supersede('', false);
      return;
    }
    message.keys?.forEach((key) => this.flights.supersede(key, true));
    message.prefixes?.forEach((prefix) => this.flights.supersede(prefix, false));
  }

  private ttlOf(ttl: number | undefined): number {
    if (ttl === undefined) return this.options.ttl;
    const problem = ttlProblem(ttl);
    if (problem) throw new CacheArgumentError(invalidTtlMessage(ttl, problem));
    return ttl;
  }

  /** The TTL a `set` writes with: its own or the module's, with the jitter applied. */
  private writeTtlOf(ttl: number | SetOptions | undefined): number {
    if (typeof ttl !== 'object' || ttl === null) return jitteredTtl(this.ttlOf(ttl), this.jitter);
    for (const name of Object.keys(ttl)) {
      if (!SET_FIELDS.includes(name)) {
        throw new CacheArgumentError(
          `Unknown set option "${name}". Known options: ${SET_FIELDS.join(', ')}.`,
        );
      }
    }
    const seconds = this.ttlOf(ttl.ttl);
    if (ttl.jitter === undefined) return jitteredTtl(seconds, this.jitter);
    checkJitter(ttl.jitter);
    return jitteredTtl(seconds, ttl.jitter);
  }
}

/** Throws `CacheArgumentError` on an unknown field, a jitter or timeouts out of bounds. */
function checkWrapOptions(options: object): void {
  for (const name of Object.keys(options)) {
    if (!WRAP_FIELDS.includes(name)) {
      throw new CacheArgumentError(
        `Unknown wrap option "${name}". Known options: ${WRAP_FIELDS.join(', ')}.`,
      );
    }
  }
  const { jitter, timeouts } = options as WrapOptions<unknown>;
  if (jitter !== undefined) checkJitter(jitter);
  if (timeouts === undefined) return;
  const problem = loaderTimeoutsProblem(timeouts);
  if (problem && 'unknown' in problem) {
    throw new CacheArgumentError(
      `Unknown wrap option "timeouts.${problem.unknown}". Known: ${LOADER_TIMEOUT_FIELDS.join(', ')}.`,
    );
  }
  if (problem) {
    throw new CacheArgumentError(
      `Invalid ${problem.field} ${describeValue(problem.value)}: expected ${problem.expected}.`,
    );
  }
}

function checkJitter(jitter: unknown): void {
  const problem = jitterProblem(jitter);
  if (problem)
    throw new CacheArgumentError(`Invalid jitter ${describeValue(jitter)}: expected ${problem}.`);
}

function keyError(key: unknown): CacheKeyError | undefined {
  if (typeof key === 'string' && key.length > 0) return undefined;
  return new CacheKeyError(
    `Cache keys must be non-empty strings, got ${key === '' ? 'an empty string' : typeof key}.`,
  );
}

/** Throws `CacheKeyError` unless `key` is a non-empty string. */
export function assertKey(key: unknown): asserts key is string {
  const error = keyError(key);
  if (error) throw error;
}

function nothing(): undefined {
  return undefined;
}

function shared<T>(value: T): WrapResult<T> {
  return { value, status: 'shared' };
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

/** `call()`, with a synchronous throw (an adapter that throws instead of rejecting) as a rejection. */
function attempt<R>(call: () => Promise<R>): Promise<R> {
  try {
    return call();
  } catch (error) {
    return Promise.reject(asError(error));
  }
}
