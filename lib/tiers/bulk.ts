import type { CacheAdapter, CacheAdapterEntry } from '../interfaces/cache-adapter.interface';
import { CachePartialError } from '../utils/cache.errors';
import { describeError } from '../utils/describe-value';
import { asError } from '../utils/timeout';

/**
 * The bulk operations of any {@link CacheAdapter}: its own `getMany` / `setMany` / `deleteMany`
 * when it has them, else its single-key methods run concurrently (a custom adapter).
 */

/**
 * The values of `keys`, in their order. Without the adapter's `getMany`: one `get` per distinct
 * key, concurrently; some failing rejects with {@link CachePartialError}, all failing with the
 * first error.
 *
 * @internal
 */
export function getManyOf<T = unknown>(
  adapter: CacheAdapter,
  keys: readonly string[],
): Promise<Array<T | undefined>> {
  if (keys.length === 0) return Promise.resolve([]);
  if (typeof adapter.getMany === 'function') {
    return call(() =>
      (adapter.getMany as (k: readonly string[]) => Promise<Array<T | undefined>>)(keys),
    );
  }
  return readEach(keys, (key) => adapter.get<T>(key));
}

/**
 * Reads each distinct key with `read`, concurrently; answers in the order of `keys`. Rejects
 * with {@link CachePartialError} when some keys failed, with the first error when all did.
 *
 * @internal
 */
export async function readEach<R>(
  keys: readonly string[],
  read: (key: string) => Promise<R | undefined>,
): Promise<Array<R | undefined>> {
  const distinct = [...new Set(keys)];
  const settled = await Promise.allSettled(distinct.map((key) => call(() => read(key))));
  const byKey = new Map<string, PromiseSettledResult<R | undefined>>();
  distinct.forEach((key, i) => byKey.set(key, settled[i]));
  const results: Array<R | undefined> = [];
  const failed: number[] = [];
  let firstError: unknown;
  keys.forEach((key, i) => {
    const outcome = byKey.get(key) as PromiseSettledResult<R | undefined>;
    if (outcome.status === 'fulfilled') {
      results.push(outcome.value);
    } else {
      results.push(undefined);
      if (failed.length === 0) firstError = outcome.reason;
      failed.push(i);
    }
  });
  if (failed.length === 0) return results;
  if (failed.length === keys.length) throw asError(firstError);
  throw partialError(results, failed, firstError);
}

/** A {@link CachePartialError} for `failed` (indexes) with its message. @internal */
export function partialError<R>(
  results: Array<R | undefined>,
  failed: readonly number[],
  cause: unknown,
): CachePartialError<R> {
  return new CachePartialError<R>(
    `Bulk read failed for ${failed.length} of ${results.length} keys: ${describeError(cause)}`,
    results,
    failed,
    cause,
  );
}

/**
 * Stores every entry. Without the adapter's `setMany`: one `set` per entry, concurrently;
 * rejects with the first failure once all settled. The values are in their stored form: the
 * cache checked every one of them before (so none is refused for its value).
 *
 * @internal
 */
export async function setManyOf(
  adapter: CacheAdapter,
  entries: readonly CacheAdapterEntry[],
): Promise<void> {
  if (entries.length === 0) return;
  if (typeof adapter.setMany === 'function') {
    const setMany = adapter.setMany.bind(adapter);
    await call(() => setMany(entries));
    return;
  }
  await settleAll(entries.map(({ key, value, ttl }) => call(() => adapter.set(key, value, ttl))));
}

/**
 * Deletes every key; resolves how many existed. Without the adapter's `deleteMany`: one
 * `delete` per distinct key, concurrently; rejects with the first failure once all settled.
 *
 * @internal
 */
export async function deleteManyOf(
  adapter: CacheAdapter,
  keys: readonly string[],
): Promise<number> {
  if (keys.length === 0) return 0;
  if (typeof adapter.deleteMany === 'function') {
    const deleteMany = adapter.deleteMany.bind(adapter);
    return call(() => deleteMany(keys));
  }
  const existed = await settleAll([...new Set(keys)].map((key) => call(() => adapter.delete(key))));
  return existed.filter((found) => found === true).length;
}

/** Waits for every call; rejects with the first failure, if any. @internal */
export async function settleAll<R>(runs: Array<Promise<R>>): Promise<R[]> {
  const settled = await Promise.allSettled(runs);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw asError(failed.reason);
  return (settled as Array<PromiseFulfilledResult<R>>).map((r) => r.value);
}

/** `fn()` as a Promise: a synchronous throw becomes a rejection. */
function call<R>(fn: () => Promise<R>): Promise<R> {
  try {
    return fn();
  } catch (error) {
    return Promise.reject(asError(error));
  }
}
