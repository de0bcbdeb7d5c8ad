/**
 * The internal capability of a built-in remote adapter to write a value the cache has already
 * checked and brought to its stored form (`toStorable`), without checking it again: the
 * adapter's public `set` checks every value, the cache's own writes need not pay twice.
 * Symbol-keyed, so it is no part of the `CacheAdapter` port users implement.
 *
 * @internal
 */
export const STORED_WRITER = Symbol('cachekit:storedWriter');

/**
 * Writes `value`, already in its stored form, under `key` for `ttl` seconds. With `ifAbsent`, only
 * when the key holds nothing (a loader's value must not overwrite a write made while it loaded),
 * resolving `null` when it did not write.
 * @internal
 */
export type StoredWrite = (
  key: string,
  value: unknown,
  ttl: number,
  ifAbsent?: boolean,
) => Promise<unknown>;

/** An adapter that offers {@link STORED_WRITER}. @internal */
export interface StoredWriterCapable {
  /** The unchecked write, or `undefined` when `set` was overridden (it must then be called). */
  [STORED_WRITER](): StoredWrite | undefined;
}

/** The unchecked write `adapter` offers, if any. @internal */
export function storedWriterOf(adapter: object): StoredWrite | undefined {
  const capable = adapter as Partial<StoredWriterCapable>;
  return typeof capable[STORED_WRITER] === 'function' ? capable[STORED_WRITER]() : undefined;
}
