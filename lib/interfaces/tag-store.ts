/**
 * The internal capability of a built-in remote adapter to keep the invalidation time of each
 * tag (`deleteByTag`) where every instance reads it: lazy invalidation, so invalidating a tag
 * costs the same whatever the number of entries carrying it. The records live apart from every
 * entry key (see `RedisCacheAdapter`). Symbol-keyed: no part of the `CacheAdapter` port.
 *
 * @internal
 */
export const TAG_STORE = Symbol('cachekit:tagStore');

/** Tag invalidation times, in ms since the epoch (fractions allowed). @internal */
export interface TagStore {
  /** The invalidation time of each tag, in order; `undefined` for one never invalidated. */
  read(tags: readonly string[]): Promise<Array<number | undefined>>;
  /**
   * Records that `tags` were invalidated at `at` (a later time already recorded stays), for
   * `ttlMs` (`0`: no expiry).
   */
  mark(tags: readonly string[], at: number, ttlMs: number): Promise<void>;
  /**
   * Records that some instance writes tagged entries living up to `ttlMs` (`0`: forever): every
   * later {@link mark}, by any instance, keeps its records at least that long.
   */
  lives(ttlMs: number): Promise<void>;
  /**
   * The store's clock (ms since the epoch): tag marks and creation times are taken on it, so
   * instances whose hosts' clocks disagree still agree on them.
   */
  time?(): Promise<number>;
}

/** The tag store `adapter` offers, if any. @internal */
export function tagStoreOf(adapter: object): TagStore | undefined {
  const capable = adapter as { [TAG_STORE]?: () => TagStore | undefined };
  return typeof capable[TAG_STORE] === 'function' ? capable[TAG_STORE]() : undefined;
}
