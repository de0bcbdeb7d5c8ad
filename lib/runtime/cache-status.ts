import { AsyncLocalStorage } from 'node:async_hooks';
import type { WrapStatus } from '../core/cache-stack';

/**
 * Collects how the cached calls made while handling one request were answered, so the HTTP
 * layer can write `X-Cache`: `HIT` when every cached call was served from the cache, `MISS`
 * when at least one ran its method (a call that joined another caller's load counts as a
 * miss: its value did not come from the cache), else `STALE` when at least one was answered
 * with an expired value kept by `grace`, nothing when no cached call was made.
 */
export class CacheStatusRecorder {
  private hits = 0;
  private misses = 0;
  private stale = 0;

  /** Records one cached call. */
  record(status: WrapStatus): void {
    const header = headerFor(status);
    if (header === 'HIT') this.hits++;
    else if (header === 'MISS') this.misses++;
    else if (header === 'STALE') this.stale++;
  }

  /** The `X-Cache` value, or `undefined` when no cached call was recorded. */
  get header(): CacheStatusHeader | undefined {
    if (this.misses > 0) return 'MISS';
    if (this.stale > 0) return 'STALE';
    return this.hits > 0 ? 'HIT' : undefined;
  }
}

/** The values of `X-Cache`. */
export type CacheStatusHeader = 'HIT' | 'MISS' | 'STALE';

/** The `X-Cache` value one cached call stands for on its own. */
export function headerFor(status: WrapStatus): CacheStatusHeader | undefined {
  if (status === 'hit') return 'HIT';
  if (status === 'stale') return 'STALE';
  return status === 'miss' || status === 'shared' ? 'MISS' : undefined;
}

const storage = new AsyncLocalStorage<CacheStatusRecorder>();

/** Runs `fn` (and everything it starts asynchronously) with `recorder` collecting statuses. */
export function withCacheStatus<T>(recorder: CacheStatusRecorder, fn: () => T): T {
  return storage.run(recorder, fn);
}

/** Reports a cached call to the request being handled, if any. */
export function recordCacheStatus(status: WrapStatus): void {
  storage.getStore()?.record(status);
}
