import type { CacheAdapter, SyncCacheView } from '../interfaces/cache-adapter.interface';
import type { SharedEntry } from '../interfaces/entry-reader';

/**
 * The in-process tier: an adapter that offers the port's sync capability
 * ({@link CacheAdapter.syncView}), read and written without a Promise. The stack answers a hit
 * from it in the caller's own turn (the decorators' and the interceptor's fast path).
 */
export class LocalTier {
  private constructor(
    /** The adapter: its async calls (delete, has, clear, prefix) go to it directly. */
    readonly store: CacheAdapter,
    private readonly view: SyncCacheView,
  ) {}

  /** The local tier over `adapter`, or `undefined` when it has no sync capability. */
  static of(adapter: CacheAdapter): LocalTier | undefined {
    const view = adapter.syncView?.();
    return view ? new LocalTier(adapter, view) : undefined;
  }

  /** The value of `key`, or `undefined` on a miss. */
  get<T>(key: string): T | undefined {
    return this.view.getSync<T>(key);
  }

  /**
   * `key`'s value with the milliseconds it has left (`ttlMs` undefined: never expires, or the
   * store cannot tell), or `undefined` on a miss.
   */
  entry(key: string): SharedEntry | undefined {
    const value = this.view.getSync(key);
    if (value === undefined) return undefined;
    const remaining = (this.store as { remainingMs?: (key: string) => number | undefined })
      .remainingMs;
    const left = typeof remaining === 'function' ? remaining.call(this.store, key) : undefined;
    return { value, ttlMs: left === undefined || left === Infinity ? undefined : left };
  }

  /** Stores `value` (already in its stored form); throws on an invalid `ttl`. */
  set(key: string, value: unknown, ttl: number): void {
    this.view.setSync(key, value, ttl);
  }

  /** Drops `key` (an in-process store does it at once; its Promise is not awaited). */
  drop(key: string): void {
    settle(() => this.store.delete(key));
  }

  /** Drops every key under `prefix`. */
  dropPrefix(prefix: string): void {
    settle(() => this.store.deleteByPrefix(prefix));
  }

  /** Drops every entry. */
  dropAll(): void {
    settle(() => this.store.clear());
  }
}

/** Runs `call` without awaiting it; a failure (sync or async) of an in-process store is ignored. */
function settle(call: () => Promise<unknown>): void {
  try {
    call().catch(() => undefined);
  } catch {
    // An in-process store that throws has nothing to drop.
  }
}
