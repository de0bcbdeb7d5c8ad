import { Logger } from '@nestjs/common';
import type { CacheAdapter, CacheAdapterEntry } from '../interfaces/cache-adapter.interface';
import { CachePartialError } from '../utils/cache.errors';
import { deleteManyOf, getManyOf, partialError, setManyOf } from './bulk';
import { CacheConfigError } from '../utils/cache.errors';
import { describeError, quote } from '../utils/describe-value';
import { CACHE_LOGGER_CONTEXT, RateLimitedLogger } from '../utils/rate-limited-logger';
import { asError, withTimeout } from '../utils/timeout';

/** Options of {@link StoresCacheAdapter}. */
export interface StoresCacheAdapterOptions {
  /**
   * `cache-manager`'s `nonBlocking`: writes and deletes wait for the first store only (the
   * others finish in the background, their failures logged), and `get` answers with the first
   * store that answers, found or not, instead of asking the stores in order. @default false
   */
  nonBlocking?: boolean;
}

/** Longest wait, at shutdown, for background writes before the stores are shut down. */
const SHUTDOWN_WAIT_MS = 1000;

/**
 * Several stores as one {@link CacheAdapter}, in their order, as `cache-manager` 7 uses its
 * `stores` (what `@nestjs/cache-manager`'s `stores: [a, b]` becomes):
 *
 * - `get` asks the stores in order and answers with the first value found; a store that fails
 *   is logged and skipped; nothing is copied back into earlier stores (`cache-manager`'s `get`
 *   does not either). It rejects only when every store failed. `has` is `get !== undefined`.
 * - `set`, `delete`, `clear` and `deleteByPrefix` go to every store. They wait for all and
 *   reject when the first store fails; a later store's failure is logged, not thrown (the first
 *   store is the one reads ask first).
 * - With `nonBlocking`, they wait for the first store alone and `get` answers with whichever
 *   store answers first (a failing store does not win: the next answer does). Background writes
 *   are awaited, briefly, at shutdown.
 * - `onModuleInit` / `onApplicationShutdown` are forwarded to every store that has them, so the
 *   stores need not be Nest providers themselves.
 *
 * @example
 * ```ts
 * new StoresCacheAdapter([new MemoryCacheAdapter(), new KeyvCacheAdapter(new KeyvRedis(url))]);
 * ```
 */
export class StoresCacheAdapter implements CacheAdapter {
  /** The stores, in the order reads ask them. */
  readonly stores: readonly CacheAdapter[];
  /** Whether writes wait for the first store only (see {@link StoresCacheAdapterOptions}). */
  readonly nonBlocking: boolean;
  private readonly log = new RateLimitedLogger(new Logger(CACHE_LOGGER_CONTEXT));
  private readonly background = new Set<Promise<unknown>>();

  /** Throws `CacheConfigError` when `stores` is empty. */
  constructor(stores: readonly CacheAdapter[], options: StoresCacheAdapterOptions = {}) {
    if (stores.length === 0) {
      throw new CacheConfigError('StoresCacheAdapter needs at least one store; got none.');
    }
    this.stores = [...stores];
    this.nonBlocking = options.nonBlocking ?? false;
  }

  /** See {@link CacheAdapter.get}. */
  get<T = unknown>(key: string): Promise<T | undefined> {
    return this.nonBlocking ? this.firstAnswer<T>(key) : this.inOrder<T>(key);
  }

  /** See {@link CacheAdapter.has}. */
  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  /** See {@link CacheAdapter.set}. */
  async set(key: string, value: unknown, ttl: number): Promise<void> {
    await this.all('SET', quote(key), (store) => store.set(key, value, ttl));
  }

  /** See {@link CacheAdapter.delete}. */
  async delete(key: string): Promise<boolean> {
    const results = await this.all('DELETE', quote(key), (store) => store.delete(key));
    return results.some((existed) => existed === true);
  }

  /**
   * The values of `keys`, in their order: the stores asked in order, each once (in bulk) for the
   * keys the earlier ones did not answer; a store that fails (for some keys or all) is logged and
   * the next one asked for those keys. Rejects when every store failed for every key, with
   * `CachePartialError` when every store failed for some keys only.
   */
  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    const results = new Array<T | undefined>(keys.length).fill(undefined);
    let pending = keys.map((_, i) => i);
    const failedEverywhere = new Set<number>(pending);
    let firstError: unknown;
    for (let s = 0; s < this.stores.length && pending.length > 0; s++) {
      let values: Array<T | undefined>;
      let failed: readonly number[] = [];
      try {
        values = await getManyOf<T>(
          this.stores[s],
          pending.map((i) => keys[i]),
        );
      } catch (error) {
        firstError ??= error instanceof CachePartialError ? error.cause : error;
        this.failed(s, 'GET', `${pending.length} keys`, error);
        if (error instanceof CachePartialError) {
          values = (error as CachePartialError<T>).results;
          failed = error.failed;
        } else {
          values = [];
          failed = pending.map((_, j) => j);
        }
      }
      const failedHere = new Set(failed);
      const next: number[] = [];
      pending.forEach((index, j) => {
        if (failedHere.has(j)) {
          next.push(index);
          return;
        }
        failedEverywhere.delete(index);
        if (values[j] === undefined) next.push(index);
        else results[index] = values[j];
      });
      pending = next;
    }
    if (failedEverywhere.size === 0) return results;
    if (failedEverywhere.size === keys.length) throw asError(firstError);
    throw partialError(
      results,
      [...failedEverywhere].sort((a, b) => a - b),
      firstError,
    );
  }

  /** See {@link CacheAdapter.setMany}: written to every store, as {@link set}. */
  async setMany(entries: readonly CacheAdapterEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await this.all('SET', `${entries.length} keys`, (store) => setManyOf(store, entries));
  }

  /** See {@link CacheAdapter.deleteMany}: every store; resolves the largest count. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const counts = await this.all('DELETE', `${keys.length} keys`, (store) =>
      deleteManyOf(store, keys),
    );
    return counts.reduce<number>((max, n) => (typeof n === 'number' && n > max ? n : max), 0);
  }

  /** See {@link CacheAdapter.clear}. */
  async clear(): Promise<void> {
    await this.all('CLEAR', 'the namespace', (store) => store.clear());
  }

  /** Resolves the largest count a store reported (the stores hold the same keys, ideally). */
  async deleteByPrefix(prefix: string): Promise<number> {
    const counts = await this.all('DELETE PREFIX', quote(prefix), (store) =>
      store.deleteByPrefix(prefix),
    );
    return counts.reduce<number>((max, n) => (typeof n === 'number' && n > max ? n : max), 0);
  }

  /** Resolves when every store that can be pinged answers; rejects with the first failure. */
  async ping(): Promise<void> {
    await Promise.all(this.stores.map((store) => call(() => store.ping?.())));
  }

  /** See {@link CacheAdapter.onModuleInit}. */
  async onModuleInit(): Promise<void> {
    for (const store of this.stores) await store.onModuleInit?.();
  }

  /**
   * Waits (at most a second) for background writes, then shuts every store down; one store's
   * failure does not keep the others open (the first failure is rethrown at the end).
   */
  async onApplicationShutdown(signal?: string): Promise<void> {
    if (this.background.size > 0) {
      await withTimeout(Promise.allSettled([...this.background]), SHUTDOWN_WAIT_MS).catch(
        () => undefined,
      );
    }
    const results = await Promise.allSettled(
      this.stores.map((store) => call(() => store.onApplicationShutdown?.(signal))),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw asError(failed.reason);
  }

  private async inOrder<T>(key: string): Promise<T | undefined> {
    let firstError: unknown;
    let failures = 0;
    for (let i = 0; i < this.stores.length; i++) {
      try {
        const value = await this.stores[i].get<T>(key);
        if (value !== undefined) return value;
      } catch (error) {
        if (failures++ === 0) firstError = error;
        this.failed(i, 'GET', quote(key), error);
      }
    }
    if (failures === this.stores.length) throw asError(firstError);
    return undefined;
  }

  private firstAnswer<T>(key: string): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      const errors: unknown[] = new Array<unknown>(this.stores.length);
      let failures = 0;
      this.stores.forEach((store, i) => {
        call(() => store.get<T>(key)).then(resolve, (error: unknown) => {
          errors[i] = error;
          this.failed(i, 'GET', quote(key), error);
          if (++failures === this.stores.length) reject(asError(errors[0]));
        });
      });
    });
  }

  /**
   * Runs `operation` on every store. Blocking: waits for all, rejects when the first store
   * failed, logs the others' failures. Non-blocking: waits for the first store only.
   */
  private async all<R>(
    name: string,
    target: string,
    operation: (store: CacheAdapter) => Promise<R>,
  ): Promise<R[]> {
    const runs = this.stores.map((store) => call(() => operation(store)));
    runs.forEach((run, i) => {
      if (i === 0) return;
      const logged = run.catch((error: unknown) => {
        this.failed(i, name, target, error);
        return undefined;
      });
      if (this.nonBlocking) {
        this.background.add(logged);
        void logged.finally(() => this.background.delete(logged));
      }
    });
    if (this.nonBlocking) return [await runs[0]];
    const settled = await Promise.allSettled(runs);
    const first = settled[0];
    if (first.status === 'rejected') throw asError(first.reason);
    return settled
      .filter((r): r is PromiseFulfilledResult<Awaited<R>> => r.status === 'fulfilled')
      .map((r) => r.value);
  }

  private failed(index: number, operation: string, target: string, error: unknown): void {
    const store = this.stores[index];
    const name = store.constructor?.name || 'store';
    this.log.warn(
      `stores:${operation}:${index}`,
      `Cache store ${index + 1} of ${this.stores.length} (${name}) failed for ${operation} ` +
        `${target}: ${describeError(error)}`,
    );
  }
}

/** `fn()` as a Promise: a synchronous throw becomes a rejection. */
function call<R>(fn: () => R | Promise<R>): Promise<R> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(asError(error));
  }
}
