/**
 * The port every cache backend implements. The built-in adapters are
 * {@link MemoryCacheAdapter}, {@link RedisCacheAdapter} and {@link FailoverCacheAdapter};
 * pass your own through the `adapter` option or override the {@link CacheAdapter} provider.
 *
 * Keys arrive exactly as the application wrote them; an adapter that shares its store with
 * other applications is responsible for its own namespacing. TTLs are in seconds, `0`
 * meaning "never expires". `get` resolves `undefined` on a miss and must be able to return
 * a stored `null`, `0`, `''` or `false`.
 *
 * Adapters are Nest providers, so `onModuleInit` / `onApplicationShutdown` (when present)
 * are called by Nest at startup and shutdown.
 *
 * @example
 * ```ts
 * class MyAdapter implements CacheAdapter { ... }
 * CacheModule.forRoot({ adapter: new MyAdapter() });
 * ```
 */
export interface CacheAdapter {
  /** Resolves the stored value, or `undefined` on a miss or an expired entry. */
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** Stores `value` under `key` for `ttl` seconds (`0`: no expiry). */
  set(key: string, value: unknown, ttl: number): Promise<void>;
  /** Deletes `key`; resolves `true` if it existed. */
  delete(key: string): Promise<boolean>;
  /**
   * Resolves `true` exactly when {@link get} would resolve a value: present, not expired, and
   * readable (data `get` treats as a miss is `false` here too).
   */
  has(key: string): Promise<boolean>;
  /** Deletes every entry this adapter owns (its namespace only for shared stores). */
  clear(): Promise<void>;
  /** Deletes every entry whose key starts with `prefix`, literally; resolves how many. */
  deleteByPrefix(prefix: string): Promise<number>;
  /**
   * Optional bulk read: the values of `keys`, in their order (a key given twice is answered
   * twice), `undefined` for each miss. A backend that reads many keys in one round trip offers
   * it (Redis: one `MGET` per node); the cache calls {@link get} per key concurrently otherwise.
   */
  getMany?<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>>;
  /**
   * Optional bulk write: stores every entry, as {@link set} does each (a key given twice keeps
   * the later entry). Every value is checked first: one that cannot be stored rejects the call
   * with `CacheSerializationError` and nothing is written (the previous entries are kept).
   */
  setMany?(entries: readonly CacheAdapterEntry[]): Promise<void>;
  /** Optional bulk delete: deletes every key; resolves how many of them existed. */
  deleteMany?(keys: readonly string[]): Promise<number>;
  /**
   * Optional health check: resolves when the backend answers, rejects when it does not.
   * {@link FailoverCacheAdapter} probes its primary with it (Redis: `PING`).
   */
  ping?(): Promise<unknown>;
  /**
   * Optional sync capability: a synchronous view of this adapter's entries, or `undefined`. An
   * in-process store offers one so the cache reads and writes it without a Promise per call
   * (the fast path of a hit); the view must agree with {@link get} and {@link set}, so an
   * adapter whose `get`/`set` do more than the view (a subclass overriding them) returns
   * `undefined` and is called through `get`/`set`.
   */
  syncView?(): SyncCacheView | undefined;
  /** Optional start hook (connect, start timers). Called by Nest. */
  onModuleInit?(): Promise<void> | void;
  /** Optional stop hook (close connections, stop timers). Called by Nest. */
  onApplicationShutdown?(signal?: string): Promise<void> | void;
}

/** One entry of {@link CacheAdapter.setMany}. */
export interface CacheAdapterEntry {
  /** The key, as the application wrote it. */
  readonly key: string;
  /** The value (checked and stored as {@link CacheAdapter.set} stores it). */
  readonly value: unknown;
  /** Seconds to keep it; `0`: no expiry. */
  readonly ttl: number;
}

/**
 * The synchronous view of an in-process {@link CacheAdapter} (see {@link CacheAdapter.syncView}).
 */
export interface SyncCacheView {
  /** {@link CacheAdapter.get} without the Promise. */
  getSync<T = unknown>(key: string): T | undefined;
  /** {@link CacheAdapter.set} without the Promise; throws where `set` would reject. */
  setSync(key: string, value: unknown, ttl: number): void;
}

/**
 * Injection token of the active {@link CacheAdapter} (throttler's `ThrottlerStorage` pattern:
 * the interface and its token share one name).
 *
 * @example
 * ```ts
 * constructor(@Inject(CacheAdapter) private readonly adapter: CacheAdapter) {}
 * ```
 */
export const CacheAdapter = Symbol('CACHEKIT:ADAPTER');
