import type { CacheKeySpec, CacheKeyFunction } from './cache-key.interface';
import type { CacheLoadingOptions } from './cache-module-options.interface';
import type { InvalidationRuleOptions } from './invalidation-rule.interface';

/**
 * Decides from the method's arguments whether a decorator applies to this call (called with
 * `this` set to the instance); `false` makes the decorator step aside for the call.
 *
 * @example
 * ```ts
 * @Cacheable({ key: 'search:{query}', condition: (query: string) => query.length > 2 })
 * ```
 */
export type CacheCondition = {
  bivarianceHack(...args: unknown[]): boolean;
}['bivarianceHack'];

/**
 * Vetoes storing a result: when it returns `true` the result is returned but not cached.
 *
 * @example
 * ```ts
 * @Cacheable({ key: 'product:{id}', unless: (product: Product | null) => product === null })
 * ```
 */
export type CacheUnless = {
  bivarianceHack(result: unknown): boolean;
}['bivarianceHack'];

/**
 * Options of `@Cacheable`: the key, the TTL, the loading options of
 * {@link CacheLoadingOptions} (`jitter`, `timeouts`, `grace`, `graceBackoff`, `refreshAhead`,
 * `lock`; each defaults to the module's), `condition`, `unless` and `invalidateOn`.
 */
export interface CacheableOptions extends CacheLoadingOptions {
  /**
   * The key: a template (`'product:{id}'`), a function of the arguments, or a key source such
   * as a `KeyConstructor`.
   * @default `ClassName:methodName:<each argument>`
   */
  key?: CacheKeySpec;
  /**
   * Seconds to keep the result; `0` never expires.
   * @default the module's `ttl`
   */
  ttl?: number;
  /** Skip the cache for calls whose arguments fail this test. */
  condition?: CacheCondition;
  /** Do not store results that pass this test. */
  unless?: CacheUnless;
  /**
   * Events that drop this method's entries — `InvalidationRule({ event, fieldMapping })`
   * (needs a `KeyConstructor` key, so payload fields can be mapped to key fields).
   *
   * @example
   * ```ts
   * @Cacheable({ key: UserPayloadKey, invalidateOn: [InvalidationRule({ event: User, fieldMapping: { userId: 'id' } })] })
   * ```
   */
  // The shape of what `InvalidationRule(...)` returns, spelled with interface types so this
  // layer does not import from invalidation/.
  invalidateOn?: readonly Readonly<Required<InvalidationRuleOptions>>[];
}

/** Options of `@CachePut`. `{result}` / `{result.path}` may be used in the key template. */
export interface CachePutOptions {
  /**
   * The key the result is stored under.
   * @default `ClassName:methodName:<each argument>`
   */
  key?: CacheKeySpec;
  /**
   * Seconds to keep the result; `0` never expires.
   * @default the module's `ttl`
   */
  ttl?: number;
  /**
   * Fraction of the TTL (0 to 1) added at random to the stored result's TTL.
   * @default the module's `jitter`
   */
  jitter?: number;
  /**
   * Seconds the stored result is kept after it expires, as a stale value a failing
   * `@Cacheable` of the same key falls back on.
   * @default the module's `grace`
   */
  grace?: number;
  /** Skip the store for calls whose arguments fail this test. */
  condition?: CacheCondition;
  /** Do not store results that pass this test (the previous entry is kept). */
  unless?: CacheUnless;
}

/**
 * Options of `@CacheEvict`. Give at most one of `key`, `prefix` and `allEntries`; with none,
 * the default key of the method's arguments is evicted.
 */
export interface CacheEvictOptions {
  /** The key to delete. After invocation, `{result}` may be used in the template. */
  key?: CacheKeySpec;
  /**
   * Delete every key starting with this (rendered) prefix, e.g. `'products:'` or
   * `'user:{userId}:'`; taken literally, glob characters included.
   */
  prefix?: string | CacheKeyFunction;
  /**
   * Clear this application's whole namespace (`CacheService.clear()`).
   * @default false
   */
  allEntries?: boolean;
  /**
   * Evict before the method runs (so it happens even if the method throws).
   * @default false
   */
  beforeInvocation?: boolean;
  /** Skip the eviction for calls whose arguments fail this test. */
  condition?: CacheCondition;
}
