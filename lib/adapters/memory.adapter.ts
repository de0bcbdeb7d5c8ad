import { LRUCache } from 'lru-cache';
import { CacheArgumentError } from '../utils/cache.errors';
import type {
  CacheSerializer,
  CacheSerializerOption,
} from '../interfaces/cache-serializer.interface';
import { sizerFor, storableFor, type Storable } from '../utils/serializer';
import { coarseClock } from '../utils/coarse-clock';
import { MEMORY_DEFAULTS } from '../config/defaults';
import {
  invalidOption,
  invalidTtlMessage,
  positiveIntegerProblem,
  resolveSerializer,
  ttlProblem,
} from '../config/validators';
import type {
  CacheAdapter,
  CacheAdapterEntry,
  SyncCacheView,
} from '../interfaces/cache-adapter.interface';

/** Options of {@link MemoryCacheAdapter}. */
export interface MemoryCacheAdapterOptions {
  /** Most entries kept; the least recently used is evicted beyond it. @default 10000 */
  maxEntries?: number;
  /** Seconds between sweeps of expired entries; `0` disables the sweep. @default 60 */
  sweepInterval?: number;
  /**
   * Most bytes kept, estimated per entry as its key's length plus the length of its value's
   * JSON text (UTF-16 code units, escapes not counted: exact for ASCII data). The least
   * recently used entries are evicted to stay under it; an entry larger than the bound is not
   * stored, and the key's previous entry is dropped, so the key misses rather than serving an
   * older value. Unset: entries are not measured at all.
   * @default undefined (no byte bound)
   */
  maxSize?: number;
  /**
   * The `serializer` the cache writes with (`'json'`, `'rich'` or your own, as the module's
   * option): values are kept in the form its Redis round trip returns them — JSON's, the rich
   * form (Dates as Dates, Maps as Maps, ...), or for a serializer of your own,
   * `deserialize(serialize(value))` — and sized accordingly for `maxSize`. @default 'json'
   */
  serializer?: CacheSerializerOption;
}

// One options object per distinct TTL, not one per `set`; the last one used is at hand
// (most writes use the module's default TTL). A TTL is checked once, when its options object
// is made: memory must refuse what Redis cannot store rather than keep it forever.
const ttlOptions = new Map<number, { ttl: number }>();
let lastTtl = { seconds: NaN, option: { ttl: 0 } };
function ttlOption(seconds: number): { ttl: number } {
  if (seconds === lastTtl.seconds) return lastTtl.option;
  let option = ttlOptions.get(seconds);
  if (!option) {
    const problem = ttlProblem(seconds);
    if (problem) {
      throw new CacheArgumentError(invalidTtlMessage(seconds, problem));
    }
    // Above 0, at least 1 ms: a tiny fraction must not round to 0, which means "no expiry".
    option = { ttl: seconds > 0 ? Math.max(1, Math.round(seconds * 1000)) : 0 };
    if (ttlOptions.size < 1000) ttlOptions.set(seconds, option);
  }
  lastTtl = { seconds, option };
  return option;
}

/**
 * The TTL clock (see {@link coarseClock}). It reads the global `performance` on each refresh
 * (lru-cache captures it at import), so fake timers in users' tests move TTLs too:
 * `performance.now()` costs more than the rest of a `set`. +1: lru-cache reads a start time of 0
 * as "no TTL", and a faked clock starts at 0.
 */
const clock = {
  now: coarseClock(
    // Compared by identity only, never called unbound:
    // eslint-disable-next-line @typescript-eslint/unbound-method
    () => performance.now,
    () => performance.now() + 1,
  ),
};

// lru-cache cannot hold null/undefined values, so a cached null is stored as this marker.
const NULL = Symbol('null');
type Stored = NonNullable<unknown>;

// The key is held too. The size estimates count the NULL marker as 4, as `null`.
const entrySizeOf =
  (sizer: (value: unknown) => number) =>
  (value: Stored, key: string): number =>
    key.length + sizer(value);

/**
 * In-process backend on `lru-cache`: values are kept as-is (no serialisation round trip, so
 * callers must not mutate what they cached), expired entries are dropped lazily on read and by
 * a periodic sweep whose timer is `unref()`ed and stopped at shutdown, and the number of
 * entries is bounded by `maxEntries` (and their estimated bytes by `maxSize`, when set) with
 * least-recently-used eviction.
 *
 * @example
 * ```ts
 * const adapter = new MemoryCacheAdapter({ maxEntries: 50_000 });
 * ```
 */
export class MemoryCacheAdapter implements CacheAdapter, SyncCacheView {
  private readonly store: LRUCache<string, Stored>;
  private readonly sweepMs: number;
  private timer: NodeJS.Timeout | undefined;
  /** The form values are kept in (see {@link MemoryCacheAdapterOptions.serializer}). */
  readonly serializer: CacheSerializer;
  /** Checks and converts a value for the serializer. */
  private readonly storable: Storable;
  private readonly entrySize: (value: Stored, key: string) => number;

  /**
   * Throws `CacheConfigError` when `maxSize` is given and is not a whole number >= 1.
   */
  constructor(options: MemoryCacheAdapterOptions = {}) {
    const { maxSize } = options;
    const problem = maxSize === undefined ? undefined : positiveIntegerProblem(maxSize);
    if (problem) throw invalidOption('maxSize', maxSize, problem, 'MemoryCacheAdapter');
    const serializer = resolveSerializer(options.serializer, 'MemoryCacheAdapter');
    this.serializer = serializer;
    this.storable = storableFor(serializer);
    this.entrySize = entrySizeOf(sizerFor(serializer));
    this.store = new LRUCache<string, Stored>({
      max: options.maxEntries ?? MEMORY_DEFAULTS.maxEntries,
      // Per-entry TTLs are set on each `set`; 0 here means "no default TTL".
      ttl: 0,
      allowStale: false,
      updateAgeOnGet: false,
      updateAgeOnHas: false,
      perf: clock,
      // Only with a byte bound: measuring costs every `set` a walk of the value. lru-cache
      // refuses an entry above maxSize and deletes the key's previous entry (lru-cache #set).
      ...(maxSize === undefined ? {} : { maxSize, sizeCalculation: this.entrySize }),
    });
    this.sweepMs = (options.sweepInterval ?? MEMORY_DEFAULTS.sweepInterval) * 1000;
  }

  /** Number of entries currently held (expired ones not yet swept included). */
  get size(): number {
    return this.store.size;
  }

  /**
   * Estimated bytes held (keys and values, as `maxSize` counts them): kept up to date with a
   * byte bound; without one, measured now by a walk of every entry.
   */
  get bytes(): number {
    if (this.maxSize !== undefined) return this.store.calculatedSize;
    let total = 0;
    for (const [key, value] of this.store.entries()) total += this.entrySize(value, key);
    return total;
  }

  /**
   * Milliseconds `key` has left: `Infinity` when it never expires, `undefined` when it is not
   * held (or has expired).
   */
  remainingMs(key: string): number | undefined {
    if (!this.store.has(key)) return undefined;
    const left = this.store.getRemainingTTL(key);
    return left > 0 ? left : undefined;
  }

  /** The entry bound (`maxEntries`). */
  get maxEntries(): number {
    return this.store.max;
  }

  /** The byte bound (`maxSize`), if one is set. */
  get maxSize(): number | undefined {
    return this.store.maxSize > 0 ? this.store.maxSize : undefined;
  }

  get<T = unknown>(key: string): Promise<T | undefined> {
    return Promise.resolve(this.getSync<T>(key));
  }

  /**
   * Stores the form of `value` the serializer's round trip returns (JSON's by default), as the
   * cache does (so memory returns what Redis returns). Rejects with `CacheSerializationError`
   * for a value the serializer cannot hold (the previous entry is kept) and with
   * `CacheArgumentError` when `ttl` is not 0 to `MAX_TTL` seconds.
   */
  set(key: string, value: unknown, ttl: number): Promise<void> {
    try {
      this.setSync(key, this.storable(value, key), ttl);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return Promise.resolve();
  }

  /**
   * Itself, read and written synchronously by the cache; `undefined` for a subclass that
   * overrides `get` or `set`, whose overrides must then be called.
   */
  syncView(): SyncCacheView | undefined {
    const proto = MemoryCacheAdapter.prototype;
    // Compared by identity: an override on a subclass or on the instance (a test spy) opts out.
    return this.get === proto.get && this.set === proto.set ? this : undefined;
  }

  /** {@link get} without the Promise: the value, or `undefined` on a miss. */
  getSync<T = unknown>(key: string): T | undefined {
    const value = this.store.get(key);
    return (value === NULL ? null : value) as T | undefined;
  }

  /**
   * {@link set} without the Promise and without the value check: `value` must already be in its
   * stored form (the cache checked it). Throws `CacheArgumentError` on an invalid `ttl`. With
   * `maxSize`, an entry larger than it is not stored and the key's previous entry is dropped.
   */
  setSync(key: string, value: unknown, ttl: number): void {
    this.store.set(key, value === null || value === undefined ? NULL : value, ttlOption(ttl));
  }

  /** The values of `keys`, in their order (see {@link CacheAdapter.getMany}). */
  getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    // A subclass overriding `get` (no sync view) is read through its override.
    if (this.syncView() === undefined) return Promise.all(keys.map((key) => this.get<T>(key)));
    return Promise.resolve(keys.map((key) => this.getSync<T>(key)));
  }

  /**
   * Stores every entry (see {@link CacheAdapter.setMany}). Every value and TTL is checked first:
   * one that cannot be stored rejects the call and nothing is written.
   */
  setMany(entries: readonly CacheAdapterEntry[]): Promise<void> {
    try {
      const stored = entries.map(({ key, value, ttl }) => {
        ttlOption(ttl);
        return this.storable(value, key);
      });
      if (this.syncView() === undefined) {
        return Promise.all(entries.map(({ key, ttl }, i) => this.set(key, stored[i], ttl))).then(
          () => undefined,
        );
      }
      entries.forEach(({ key, ttl }, i) => this.setSync(key, stored[i], ttl));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    return Promise.resolve();
  }

  /** Deletes every key; resolves how many existed (see {@link CacheAdapter.deleteMany}). */
  deleteMany(keys: readonly string[]): Promise<number> {
    let deleted = 0;
    for (const key of keys) {
      // `has` first, as `delete` does: an expired entry still held did not exist.
      if (this.store.has(key)) deleted++;
      this.store.delete(key);
    }
    return Promise.resolve(deleted);
  }

  delete(key: string): Promise<boolean> {
    const existed = this.store.has(key);
    this.store.delete(key);
    return Promise.resolve(existed);
  }

  has(key: string): Promise<boolean> {
    return Promise.resolve(this.store.has(key));
  }

  clear(): Promise<void> {
    this.store.clear();
    return Promise.resolve();
  }

  deleteByPrefix(prefix: string): Promise<number> {
    let deleted = 0;
    for (const key of [...this.store.keys()]) {
      if (key.startsWith(prefix) && this.store.delete(key)) deleted++;
    }
    return Promise.resolve(deleted);
  }

  /** Drops every expired entry now; the periodic sweep calls this. */
  sweep(): number {
    const before = this.store.size;
    this.store.purgeStale();
    return before - this.store.size;
  }

  onModuleInit(): void {
    if (this.sweepMs > 0 && !this.timer) {
      this.timer = setInterval(() => this.sweep(), this.sweepMs);
      this.timer.unref();
    }
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
