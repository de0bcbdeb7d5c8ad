/**
 * The internal capability of a built-in remote adapter to hold a short lock per key across
 * processes (`SET NX PX` with a random token; release by a compare-and-delete of that token, so
 * a holder whose lock expired never releases its successor's). The lock keys live apart from
 * every entry key (see `RedisCacheAdapter`). Symbol-keyed: no part of the `CacheAdapter` port.
 *
 * @internal
 */
export const KEY_LOCK = Symbol('cachekit:keyLock');

/** A lock per key across processes. @internal */
export interface KeyLock {
  /**
   * Takes the lock of `key` for `ttlMs` if nobody holds it: `true` when taken, `false` when
   * another holder has it, `undefined` when the store cannot be asked now (the caller then
   * proceeds without the lock: it fails open). May reject when the store fails.
   */
  acquire(key: string, token: string, ttlMs: number): Promise<boolean | undefined>;
  /** Releases the lock of `key` if `token` still holds it; resolves whether it did. */
  release(key: string, token: string): Promise<boolean>;
}

/** The lock `adapter` offers, if any. @internal */
export function keyLockOf(adapter: object): KeyLock | undefined {
  const capable = adapter as { [KEY_LOCK]?: () => KeyLock | undefined };
  return typeof capable[KEY_LOCK] === 'function' ? capable[KEY_LOCK]() : undefined;
}
