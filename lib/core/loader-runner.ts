import { AsyncLocalStorage } from 'node:async_hooks';
import { CacheLoaderTimeoutError } from '../utils/cache.errors';
import { withTimeout } from '../utils/timeout';

/**
 * Runs loaders, remembering which keys are loading in the current async context: a loader that
 * wraps its own key again (two layers cached under one key, an interceptor applied twice) would
 * otherwise wait for itself. Bounds how long each caller waits for a load (`timeouts.hard`).
 */
export class LoaderRunner {
  /** Keys whose loader is running in the current async context. */
  private readonly loading = new AsyncLocalStorage<ReadonlySet<string>>();
  /**
   * Loaders running now. At 0 `loading` is switched off: while any AsyncLocalStorage is on,
   * Node 20 runs a hook on every Promise the process creates, which would tax every request of
   * an application that has ever had a cache miss.
   */
  private running = 0;

  /** `true` inside a loader of `key` (however deeply nested). */
  isLoading(key: string): boolean {
    return this.running > 0 && this.loading.getStore()?.has(key) === true;
  }

  /**
   * Calls `loader` with `key` marked as loading in its async context (synchronously, up to its
   * first await); every call is paired with {@link done} once the loader has settled.
   */
  call<T>(key: string, loader: () => T | Promise<T>): T | Promise<T> {
    this.running++;
    return this.loading.run(new Set(this.loading.getStore()).add(key), loader);
  }

  /** {@link call} for a loader of several keys at once (a `wrapMany` batch). */
  callAll<T>(keys: readonly string[], loader: () => T | Promise<T>): T | Promise<T> {
    this.running++;
    const loading = new Set(this.loading.getStore());
    for (const key of keys) loading.add(key);
    return this.loading.run(loading, loader);
  }

  /** Ends a {@link call} or {@link callAll}. */
  done(): void {
    if (--this.running === 0) this.loading.disable();
  }

  /**
   * What one caller of `key` waits for: `load` itself, or, with a `hard` timeout (seconds),
   * `load` bounded for this caller alone: it rejects with {@link CacheLoaderTimeoutError} once
   * `hard` seconds have passed from now. The load goes on (and is stored when it resolves): other
   * callers keep their own bounds. The timer is unref'd and cleared when the load settles first.
   */
  wait<T>(
    key: string,
    load: Promise<T>,
    hard: number | undefined,
    onTimeout?: () => void,
  ): Promise<T> {
    if (hard === undefined) return load;
    // At least 1 ms: withTimeout reads 0 as "no bound".
    const ms = Math.max(1, Math.round(hard * 1000));
    return withTimeout(load, ms, () => {
      onTimeout?.();
      return new CacheLoaderTimeoutError(key, hard);
    });
  }
}
