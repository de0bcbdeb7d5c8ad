import { EventEmitter } from 'node:events';
import type { CacheStack, WrapStatus } from '../core/cache-stack';
import { CacheArgumentError } from '../utils/cache.errors';
import { MAX_TTL, parseTtl, ttlProblem } from '../config/validators';
import { describeValue } from '../utils/describe-value';

/**
 * A TTL in milliseconds, or a function of the value that gives one (`wrap`'s form).
 * `0` never expires; `undefined` is the module's default TTL.
 */
export type CacheManagerTtl<T> = number | ((value: T) => number);

/**
 * The options form of {@link CacheManagerCompatible.wrap}, as cache-manager 7's `WrapOptions`.
 */
export interface CacheManagerWrapOptions<T> {
  /** Milliseconds to keep the loaded value, or a function of it. @default the module's TTL */
  ttl?: CacheManagerTtl<T>;
  /**
   * Milliseconds: a hit whose remaining TTL is below it returns the cached value and refreshes
   * it in the background (once per key at a time). `0` never refreshes.
   * @default the `refreshThreshold` the compatible object was built with, if any
   */
  refreshThreshold?: CacheManagerTtl<T>;
}

/** {@link CacheManagerWrapOptions} with `raw: true`: `wrap` resolves the entry with its expiry. */
export interface CacheManagerWrapOptionsRaw<T> extends CacheManagerWrapOptions<T> {
  /** Resolve `{ value, expires }` instead of the value. */
  raw: true;
}

/** What a raw `wrap` resolves: the value and its absolute expiry in ms (none: never expires). */
export interface CacheManagerRawEntry<T> {
  /** The cached or loaded value. */
  value?: T;
  /** When the entry expires, in ms since the epoch; `undefined` when it never does. */
  expires?: number;
}

/** One entry of {@link CacheManagerCompatible.mset}: its `ttl` in milliseconds. */
export interface CacheManagerEntry<T> {
  /** The key. */
  key: string;
  /** The value (stored in its JSON form, like every value of this cache). */
  value: T;
  /** Milliseconds; the module's default TTL when absent (resolved in the returned list). */
  ttl?: number;
}

/**
 * The events of a {@link CacheManagerCompatible} object and their payloads, as cache-manager 7
 * emits them (its `Events` type). Like cache-manager, the object also emits `mdel` (`{ keys }`)
 * and `ttl` (`{ key, value: { value, expires } }` when found) without declaring them.
 * Listeners run synchronously after the operation.
 */
export interface CacheManagerEvents {
  /** A `get` hit (`store` is always `'primary'`: the cache is one store), or its error. */
  get: <T>(data: { key: string; value?: T; store?: string; error?: unknown }) => void;
  /** An `mget`: its keys and values, in order (`values`, as cache-manager emits it). */
  mget: <T>(data: { keys: string[]; values?: Array<T | undefined>; error?: unknown }) => void;
  /**
   * A `set` (and the write of a `wrap` miss): emitted twice when it succeeds, as cache-manager
   * does with one store (with `store: 'primary'`, then without); once with `error` when it fails.
   */
  set: <T>(data: { key: string; value: T; store?: string; error?: unknown }) => void;
  /** An `mset`: the list as stored (each `ttl` resolved). */
  mset: <T>(data: { list: Array<CacheManagerEntry<T>>; error?: unknown }) => void;
  /** A `del`. */
  del: (data: { key: string; error?: unknown }) => void;
  /** A `clear`: no payload, or its error. */
  clear: (error?: unknown) => void;
  /**
   * A background refresh started by `wrap`'s `refreshThreshold`: the new value once loaded; the
   * cached value and the `error` when the loader failed (the cached value stays).
   */
  refresh: <T>(data: { key: string; value: T; error?: unknown }) => void;
}

/**
 * The object the `CACHE_MANAGER` token injects: cache-manager 7's `Cache`, structurally (TTLs
 * in **milliseconds**), over the same cache as `CacheService` and the decorators — a value one
 * of them stores, the others read.
 *
 * Differences with cache-manager, all from this cache's rules: values are stored in their JSON
 * form (a `Date` comes back as a string; a value JSON cannot hold is refused with
 * `CacheSerializationError`); an invalid key or TTL (negative, `NaN`) rejects with
 * `CacheArgumentError`; a backend failure is logged and answered as a miss or a no-op, never
 * thrown; `disconnect` closes nothing (the module closes its connections at shutdown); `clear`
 * deletes the module's namespace, whoever wrote it.
 *
 * @typeParam Store - the type of {@link stores}' elements (`Keyv` when the module was built
 *   from Keyv stores).
 *
 * @example
 * ```ts
 * constructor(@Inject(CACHE_MANAGER) private readonly cache: CacheManagerCompatible) {}
 *
 * await this.cache.set('user:1', user, 60_000); // one minute
 * const rates = await this.cache.wrap('rates', () => this.fetchRates(), 60_000, 10_000);
 * ```
 */
export interface CacheManagerCompatible<Store = unknown> {
  /** The cached value of `key`, or `undefined` on a miss. */
  get: <T>(key: string) => Promise<T | undefined>;
  /** The cached values of `keys`, in order (`undefined` for each miss). */
  mget: <T>(keys: string[]) => Promise<Array<T | undefined>>;
  /**
   * When `key` expires, in milliseconds since the epoch; `undefined` on a miss or when the entry
   * never expires.
   */
  ttl: (key: string) => Promise<number | undefined>;
  /** Stores `value` for `ttl` milliseconds (default: the module's TTL; `0`: never expires); resolves `value`. */
  set: <T>(key: string, value: T, ttl?: number) => Promise<T>;
  /** Stores each entry (its `ttl` in ms); resolves the list with each `ttl` resolved. */
  mset: <T>(list: Array<CacheManagerEntry<T>>) => Promise<Array<CacheManagerEntry<T>>>;
  /** Deletes `key`; resolves `true` (whether or not it existed, as cache-manager). */
  del: (key: string) => Promise<boolean>;
  /** Deletes `keys`; resolves `true`. */
  mdel: (keys: string[]) => Promise<boolean>;
  /** Deletes every entry of the module's namespace; resolves `true`. */
  clear: () => Promise<boolean>;
  /** Adds a listener; returns the emitter (as cache-manager). */
  on: <E extends keyof CacheManagerEvents>(
    event: E,
    listener: CacheManagerEvents[E],
  ) => EventEmitter;
  /** Removes a listener; returns the emitter. */
  off: <E extends keyof CacheManagerEvents>(
    event: E,
    listener: CacheManagerEvents[E],
  ) => EventEmitter;
  /** Resolves `undefined` and closes nothing: the module closes its connections at shutdown. */
  disconnect: () => Promise<undefined>;
  /** This object's id (given, or random). */
  cacheId: () => string;
  /** The Keyv stores the module was built from (`register({ stores })`), else empty. */
  stores: Store[];
  /**
   * The cached value of `key`, or `fnc`'s, stored for `ttl` ms (one load per key at a time);
   * a hit whose remaining TTL is below `refreshThreshold` ms is refreshed in the background.
   */
  wrap<T>(
    key: string,
    fnc: () => T | Promise<T>,
    ttl?: CacheManagerTtl<T>,
    refreshThreshold?: CacheManagerTtl<T>,
  ): Promise<T>;
  /** {@link wrap} with its options as an object. */
  wrap<T>(key: string, fnc: () => T | Promise<T>, options: CacheManagerWrapOptions<T>): Promise<T>;
  /** {@link wrap}, resolving the entry with its expiry. */
  wrap<T>(
    key: string,
    fnc: () => T | Promise<T>,
    options: CacheManagerWrapOptionsRaw<T>,
  ): Promise<CacheManagerRawEntry<T> | undefined>;
}

/**
 * What the compatible object needs of its cache: the stack's calls (and its entries' expiry).
 * @internal
 */
export type CacheManagerBackend = Pick<
  CacheStack,
  'get' | 'set' | 'delete' | 'clear' | 'wrap' | 'defaultTtl' | 'expiresAt'
>;

/** Options of {@link createCacheManager}. @internal */
export interface CacheManagerFacadeOptions<Store = unknown> {
  /** Exposed as `stores` (the Keyv instances given to `register`). @default [] */
  stores?: Store[];
  /** Default `refreshThreshold` of `wrap`, in ms (cache-manager's module option). @default none */
  refreshThreshold?: number;
  /** `cacheId()`. @default a random id */
  cacheId?: string;
}

/** `store` label of the one store, in `get`/`set` events (cache-manager's first store's). */
const PRIMARY = 'primary';

/**
 * `refreshAhead` fractions for a threshold the stack's open interval (0, 1) cannot hold: the
 * smallest refreshes on every hit (a threshold of at least the TTL), the largest sets the
 * refresh point on the expiry itself, which a hit never reaches fresh (a threshold of 0).
 */
const REFRESH_ALWAYS = Number.EPSILON;
const REFRESH_NEVER = 1 - Number.EPSILON;

/**
 * Builds the cache-manager-compatible object over `stack` (what `CACHE_MANAGER` injects). It
 * holds no entries: every call goes to the stack, so `CacheService`, the decorators and this
 * object see one set of entries.
 *
 * How cache-manager's units map onto the stack: a TTL in ms becomes `ms / 1000` seconds
 * (fractions kept); `undefined` is the module's TTL; `0` never expires. `refreshThreshold`
 * (refresh when the remaining TTL drops below it) becomes the stack's `refreshAhead`
 * fraction `1 - threshold / ttl`, which puts the refresh point exactly `threshold` ms before
 * the expiry; a threshold of at least the TTL refreshes on every hit, `0` never. When `ttl` or
 * `refreshThreshold` is a function of the value, the load runs through the stack (joining any
 * load of the key in flight) and is stored with the TTL the function gives; the refresh is
 * decided on each hit from the entry's remaining TTL. A `wrap` without a threshold (and no
 * `refreshThreshold` given here) follows the module's `refreshAhead`, as `CacheService.wrap`.
 *
 * @internal
 */
export function createCacheManager<Store = unknown>(
  stack: CacheManagerBackend,
  options: CacheManagerFacadeOptions<Store> = {},
): CacheManagerCompatible<Store> {
  return new CacheManagerFacade(stack, options);
}

/**
 * {@link CacheManagerCompatible} over a cache stack: see {@link createCacheManager}.
 * @internal
 */
export class CacheManagerFacade<Store = unknown> implements CacheManagerCompatible<Store> {
  /** @inheritDoc CacheManagerCompatible.stores */
  readonly stores: Store[];
  private readonly emitter = new EventEmitter();
  private readonly id: string;
  private readonly refreshThreshold: number | undefined;
  /** `wrap`s by value-dependent TTL in flight, by key (cache-manager coalesces them). */
  private readonly flights = new Map<string, Promise<unknown>>();
  /** Background refreshes of value-dependent `wrap`s in flight, by key. */
  private readonly refreshing = new Set<string>();

  /** @param stack the application's cache stack. */
  constructor(
    private readonly stack: CacheManagerBackend,
    options: CacheManagerFacadeOptions<Store> = {},
  ) {
    this.stores = options.stores ?? [];
    this.id = options.cacheId ?? Math.random().toString(36).slice(2);
    this.refreshThreshold =
      options.refreshThreshold === undefined
        ? undefined
        : thresholdOf(options.refreshThreshold, 'refreshThreshold');
    // Listeners are the application's: no limit warning at the eleventh.
    this.emitter.setMaxListeners(0);
    // Methods are used detached (`const { get } = cache`), as cache-manager's closures allow.
    const methods = this as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const name of METHODS) {
      Object.defineProperty(this, name, { value: methods[name].bind(this), enumerable: false });
    }
  }

  /** @inheritDoc CacheManagerCompatible.get */
  async get<T>(key: string): Promise<T | undefined> {
    let value: T | undefined;
    try {
      value = await this.stack.get<T>(key);
    } catch (error) {
      this.emitter.emit('get', { key, error, store: PRIMARY });
      throw error;
    }
    if (value !== undefined) this.emitter.emit('get', { key, value, store: PRIMARY });
    return value;
  }

  /** @inheritDoc CacheManagerCompatible.mget */
  async mget<T>(keys: string[]): Promise<Array<T | undefined>> {
    let values: Array<T | undefined>;
    try {
      values = await Promise.all(keys.map((key) => this.stack.get<T>(key)));
    } catch (error) {
      this.emitter.emit('mget', { keys, error });
      throw error;
    }
    this.emitter.emit('mget', { keys, values });
    return values;
  }

  /** @inheritDoc CacheManagerCompatible.ttl */
  async ttl(key: string): Promise<number | undefined> {
    let expires: number | undefined;
    try {
      expires = expiryOf(await this.stack.expiresAt(key));
    } catch (error) {
      this.emitter.emit('ttl', { key, error });
      throw error;
    }
    if (expires !== undefined && this.emitter.listenerCount('ttl') > 0) {
      this.emitter.emit('ttl', { key, value: { value: await this.stack.get(key), expires } });
    }
    return expires;
  }

  /** @inheritDoc CacheManagerCompatible.set */
  async set<T>(key: string, value: T, ttl?: number): Promise<T> {
    try {
      await this.stack.set(key, value, secondsOf(ttl, 'ttl'));
    } catch (error) {
      this.emitter.emit('set', { key, value, error });
      throw error;
    }
    this.emitter.emit('set', { key, value, store: PRIMARY });
    this.emitter.emit('set', { key, value });
    return value;
  }

  /** @inheritDoc CacheManagerCompatible.mset */
  async mset<T>(list: Array<CacheManagerEntry<T>>): Promise<Array<CacheManagerEntry<T>>> {
    const resolved = list.map(({ key, value, ttl }) => ({
      key,
      value,
      ttl: ttl ?? this.stack.defaultTtl * 1000,
    }));
    try {
      await Promise.all(
        resolved.map(({ key, value, ttl }) => this.stack.set(key, value, secondsOf(ttl, 'ttl'))),
      );
    } catch (error) {
      this.emitter.emit('mset', { list: resolved, error });
      throw error;
    }
    this.emitter.emit('mset', { list: resolved });
    return resolved;
  }

  /** @inheritDoc CacheManagerCompatible.del */
  async del(key: string): Promise<boolean> {
    try {
      await this.stack.delete(key);
    } catch (error) {
      this.emitter.emit('del', { key, error });
      throw error;
    }
    this.emitter.emit('del', { key });
    return true;
  }

  /** @inheritDoc CacheManagerCompatible.mdel */
  async mdel(keys: string[]): Promise<boolean> {
    try {
      await Promise.all(keys.map((key) => this.stack.delete(key)));
    } catch (error) {
      this.emitter.emit('mdel', { keys, error });
      throw error;
    }
    this.emitter.emit('mdel', { keys });
    return true;
  }

  /** @inheritDoc CacheManagerCompatible.clear */
  async clear(): Promise<boolean> {
    try {
      await this.stack.clear();
    } catch (error) {
      this.emitter.emit('clear', error);
      throw error;
    }
    this.emitter.emit('clear');
    return true;
  }

  /** @inheritDoc CacheManagerCompatible.on */
  on<E extends keyof CacheManagerEvents>(event: E, listener: CacheManagerEvents[E]): EventEmitter {
    return this.emitter.addListener(event, listener);
  }

  /** @inheritDoc CacheManagerCompatible.off */
  off<E extends keyof CacheManagerEvents>(event: E, listener: CacheManagerEvents[E]): EventEmitter {
    return this.emitter.removeListener(event, listener);
  }

  /**
   * Resolves `undefined` and closes nothing: the connections are the module's, closed at the
   * application's shutdown (after the HTTP server has drained); closing them here would break
   * `CacheService` and the decorators under the running application.
   */
  disconnect(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  /** @inheritDoc CacheManagerCompatible.cacheId */
  cacheId(): string {
    return this.id;
  }

  /** @inheritDoc CacheManagerCompatible.wrap */
  wrap<T>(
    key: string,
    fnc: () => T | Promise<T>,
    ttl?: CacheManagerTtl<T>,
    refreshThreshold?: CacheManagerTtl<T>,
  ): Promise<T>;
  wrap<T>(key: string, fnc: () => T | Promise<T>, options: CacheManagerWrapOptions<T>): Promise<T>;
  wrap<T>(
    key: string,
    fnc: () => T | Promise<T>,
    options: CacheManagerWrapOptionsRaw<T>,
  ): Promise<CacheManagerRawEntry<T> | undefined>;
  async wrap<T>(
    key: string,
    fnc: () => T | Promise<T>,
    ttlOrOptions?: CacheManagerTtl<T> | CacheManagerWrapOptions<T> | CacheManagerWrapOptionsRaw<T>,
    refreshThresholdParameter?: CacheManagerTtl<T>,
  ): Promise<T | CacheManagerRawEntry<T> | undefined> {
    const { ttl, refreshThreshold, raw } = isOptions(ttlOrOptions)
      ? { raw: false, ...ttlOrOptions }
      : { ttl: ttlOrOptions, refreshThreshold: refreshThresholdParameter, raw: false };
    if (typeof fnc !== 'function') {
      throw new CacheArgumentError(
        `wrap needs a function to load the value, got ${describeValue(fnc)}.`,
      );
    }
    const threshold = refreshThreshold ?? this.refreshThreshold;
    const byValue = typeof ttl === 'function' || typeof threshold === 'function';
    const { value, loaded } = byValue
      ? await this.wrapByValue(key, fnc, ttl, threshold)
      : await this.wrapFixed(key, fnc, ttl, threshold);
    if (raw !== true) return value;
    if (loaded !== undefined) {
      return { value, expires: loaded === 0 ? undefined : Date.now() + loaded };
    }
    return { value, expires: expiryOf(await this.stack.expiresAt(key)) };
  }

  /**
   * `wrap` with a fixed TTL and threshold: the stack's own `wrap` (its single-flight, lock and
   * refresh-ahead); `loaded` is the TTL in ms the value was stored with, on a miss.
   */
  private async wrapFixed<T>(
    key: string,
    fnc: () => T | Promise<T>,
    ttl: number | undefined,
    threshold: number | undefined,
  ): Promise<{ value: T; loaded?: number }> {
    const seconds = secondsOf(ttl, 'ttl');
    const lifetime = seconds ?? this.stack.defaultTtl;
    const refreshAhead =
      threshold === undefined
        ? undefined
        : refreshAheadOf(thresholdOf(threshold, 'refreshThreshold'), lifetime);
    // The stack calls the loader on a miss, and after answering a hit past its refresh point
    // (in the background): a call once the hit is known is a refresh.
    const answer: { status?: WrapStatus; value?: T } = {};
    let call: { result: T | Promise<T> } | { error: unknown } | undefined;
    const loader = (): T | Promise<T> => {
      try {
        const result = fnc();
        call = { result };
        if (answer.status === 'hit') this.refreshed(key, call, answer.value as T);
        return result;
      } catch (error) {
        call = { error };
        if (answer.status === 'hit') this.refreshed(key, call, answer.value as T);
        throw error;
      }
    };
    const { value, status } = await this.stack.wrap(
      key,
      loader,
      refreshAhead === undefined ? { ttl: seconds } : { ttl: seconds, refreshAhead },
      true,
      true,
    );
    answer.status = status;
    answer.value = value;
    if (status === 'hit' && call !== undefined) this.refreshed(key, call, value);
    if (status !== 'miss') return { value };
    this.emitter.emit('set', { key, value, store: PRIMARY });
    this.emitter.emit('set', { key, value });
    return { value, loaded: lifetime * 1000 };
  }

  /** Emits `refresh` when a background load of `key` settles. */
  private refreshed<T>(
    key: string,
    call: { result: T | Promise<T> } | { error: unknown },
    cached: T,
  ): void {
    if ('error' in call) {
      this.emitter.emit('refresh', { key, value: cached, error: call.error });
      return;
    }
    Promise.resolve(call.result).then(
      (value) => this.emitter.emit('refresh', { key, value }),
      (error: unknown) => this.emitter.emit('refresh', { key, value: cached, error }),
    );
  }

  /**
   * `wrap` whose TTL or threshold is a function of the value: coalesced per key here (as
   * cache-manager does), the load run through the stack without storing (so it joins a load of
   * the key in flight elsewhere), then stored with the TTL of the value.
   */
  private wrapByValue<T>(
    key: string,
    fnc: () => T | Promise<T>,
    ttl: CacheManagerTtl<T> | undefined,
    threshold: CacheManagerTtl<T> | undefined,
  ): Promise<{ value: T; loaded?: number }> {
    const inFlight = this.flights.get(key) as Promise<{ value: T; loaded?: number }> | undefined;
    if (inFlight) return inFlight;
    const flight = this.loadByValue(key, fnc, ttl, threshold).finally(() => {
      this.flights.delete(key);
    });
    this.flights.set(key, flight);
    return flight;
  }

  private async loadByValue<T>(
    key: string,
    fnc: () => T | Promise<T>,
    ttl: CacheManagerTtl<T> | undefined,
    threshold: CacheManagerTtl<T> | undefined,
  ): Promise<{ value: T; loaded?: number }> {
    const { value, status } = await this.stack.wrap(
      key,
      fnc,
      // Stored below, with the TTL of the value; no refresh point (decided here, per hit).
      { unless: NEVER_STORE, refreshAhead: REFRESH_NEVER },
      true,
      true,
    );
    if (status === 'miss') {
      const ms = ttlOfValue(ttl, value) ?? this.stack.defaultTtl * 1000;
      await this.set(key, value, ms);
      return { value, loaded: ms };
    }
    if (status !== 'hit' || threshold === undefined) return { value };
    const below = thresholdOf(
      typeof threshold === 'function' ? threshold(value) : threshold,
      'refreshThreshold',
    );
    const expires = expiryOf(await this.stack.expiresAt(key));
    if (expires !== undefined && Math.max(0, expires - Date.now()) < below) {
      this.refreshByValue(key, fnc, ttl, value);
    }
    return { value };
  }

  /** Reloads `key` in the background (once at a time) and stores it with the TTL of the value. */
  private refreshByValue<T>(
    key: string,
    fnc: () => T | Promise<T>,
    ttl: CacheManagerTtl<T> | undefined,
    cached: T,
  ): void {
    if (this.refreshing.has(key)) return;
    this.refreshing.add(key);
    new Promise<T>((resolve) => resolve(fnc()))
      .then(async (value) => {
        await this.set(key, value, ttlOfValue(ttl, value) ?? this.stack.defaultTtl * 1000);
        this.emitter.emit('refresh', { key, value });
      })
      .catch((error: unknown) => this.emitter.emit('refresh', { key, value: cached, error }))
      .finally(() => this.refreshing.delete(key));
  }
}

const METHODS = [
  'get',
  'mget',
  'ttl',
  'set',
  'mset',
  'del',
  'mdel',
  'clear',
  'on',
  'off',
  'disconnect',
  'cacheId',
  'wrap',
] as const;

const NEVER_STORE = (): boolean => true;

function isOptions<T>(
  value: CacheManagerTtl<T> | CacheManagerWrapOptions<T> | undefined,
): value is CacheManagerWrapOptions<T> | CacheManagerWrapOptionsRaw<T> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const MS_EXPECTED = `a number of milliseconds from 0 to ${MAX_TTL * 1000} (0 = never expires)`;

/**
 * A TTL in ms as the stack's seconds (`undefined`: the module's); a numeric string (what
 * configuration gives) is read as a number; anything else out of range is refused.
 */
function secondsOf(ms: unknown, name: string): number | undefined {
  if (ms === undefined) return undefined;
  const parsed = parseTtl(ms);
  if (typeof parsed !== 'number' || ttlProblem(parsed / 1000)) {
    const hint = typeof ms === 'string' ? ' (a string; pass a number of milliseconds)' : '';
    throw new CacheArgumentError(
      `Invalid ${name} ${describeValue(ms)}${hint}: expected ${MS_EXPECTED}.`,
    );
  }
  return parsed / 1000;
}

/** A `refreshThreshold` in ms, checked like a TTL. */
function thresholdOf(ms: unknown, name: string): number {
  return (secondsOf(ms, name) ?? 0) * 1000;
}

/** `ttl` (a number or a function of `value`), checked, in ms; `undefined`: the module's. */
function ttlOfValue<T>(ttl: CacheManagerTtl<T> | undefined, value: T): number | undefined {
  const ms = typeof ttl === 'function' ? ttl(value) : ttl;
  const seconds = secondsOf(ms, 'ttl');
  return seconds === undefined ? undefined : seconds * 1000;
}

/**
 * The stack's `refreshAhead` for a threshold of `ms` on an entry of `ttl` seconds: the refresh
 * point `ms` before the expiry. An entry that never expires is never refreshed (cache-manager
 * has no remaining TTL to compare); see {@link REFRESH_ALWAYS} and {@link REFRESH_NEVER}.
 */
function refreshAheadOf(ms: number, ttl: number): number {
  if (!(ttl > 0)) return REFRESH_NEVER;
  const fraction = 1 - ms / (ttl * 1000);
  return Math.min(REFRESH_NEVER, Math.max(REFRESH_ALWAYS, fraction));
}

/** The stack's expiry as cache-manager's: absolute ms, `undefined` for none (0 or Infinity). */
function expiryOf(expires: number | undefined): number | undefined {
  return typeof expires === 'number' && Number.isFinite(expires) && expires > 0
    ? expires
    : undefined;
}

/**
 * `@nestjs/cache-manager`'s `Cache`: the {@link CacheManagerCompatible} object as a class token,
 * so `constructor(private readonly cache: Cache)` injects what `@Inject(CACHE_MANAGER)` does.
 *
 * @example
 * ```ts
 * @Injectable()
 * export class Rates {
 *   constructor(private readonly cache: Cache) {}
 *   find(code: string) { return this.cache.wrap(`rate:${code}`, () => fetchRate(code), 60_000); }
 * }
 * ```
 */
// Declaration merging gives the token class the object's type, as @nestjs/cache-manager does.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export abstract class Cache {}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging, @typescript-eslint/no-empty-object-type
export interface Cache extends CacheManagerCompatible {}
