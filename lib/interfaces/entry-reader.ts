/**
 * The internal capability of a built-in remote adapter to read an entry with the time it has
 * left, in one round trip: the two-tier store keeps an L1 copy no longer than the shared entry
 * lives. Symbol-keyed, so it is no part of the `CacheAdapter` port users implement.
 *
 * @internal
 */
export const ENTRY_READER = Symbol('cachekit:entryReader');

/** A shared entry: its value and the milliseconds it has left (`undefined`: no expiry). @internal */
export interface SharedEntry {
  readonly value: unknown;
  readonly ttlMs: number | undefined;
}

/** Reads `key` with its remaining TTL; resolves `undefined` on a miss. @internal */
export type EntryRead = (key: string) => Promise<SharedEntry | undefined>;

/** An adapter that offers {@link ENTRY_READER}. @internal */
export interface EntryReaderCapable {
  /** The read, or `undefined` when `get` was overridden (it must then be called). */
  [ENTRY_READER](): EntryRead | undefined;
}

/** The entry read `adapter` offers, if any. @internal */
export function entryReaderOf(adapter: object): EntryRead | undefined {
  const capable = adapter as Partial<EntryReaderCapable>;
  return typeof capable[ENTRY_READER] === 'function' ? capable[ENTRY_READER]() : undefined;
}

/**
 * The internal capability of a built-in remote adapter to delete an entry only while it still
 * holds a given value (compare-and-delete, atomic on the server): the two-tier store undoes a
 * loader's write this way without deleting a newer write of another instance.
 *
 * @internal
 */
export const ENTRY_UNDO = Symbol('cachekit:entryUndo');

/** Deletes `key` if it holds `value` (in its stored form); resolves whether it did. @internal */
export type EntryUndo = (key: string, value: unknown) => Promise<boolean>;

/** The compare-and-delete `adapter` offers, if any. @internal */
export function entryUndoOf(adapter: object): EntryUndo | undefined {
  const capable = adapter as { [ENTRY_UNDO]?: () => EntryUndo | undefined };
  return typeof capable[ENTRY_UNDO] === 'function' ? capable[ENTRY_UNDO]() : undefined;
}

/**
 * The internal capability of a built-in remote adapter to replace an entry only while it still
 * holds a given value (compare-and-set, atomic on the server): `expire` rewrites an entry as
 * stale this way without overwriting a write made since it read the entry.
 *
 * @internal
 */
export const ENTRY_SWAP = Symbol('cachekit:entrySwap');

/**
 * Replaces `key`'s value with `next` for `ttl` seconds (`0`: no expiry) if it holds `expected`
 * (both in their stored form); resolves whether it did. @internal
 */
export type EntrySwap = (
  key: string,
  expected: unknown,
  next: unknown,
  ttl: number,
) => Promise<boolean>;

/** The compare-and-set `adapter` offers, if any. @internal */
export function entrySwapOf(adapter: object): EntrySwap | undefined {
  const capable = adapter as { [ENTRY_SWAP]?: () => EntrySwap | undefined };
  return typeof capable[ENTRY_SWAP] === 'function' ? capable[ENTRY_SWAP]() : undefined;
}

/**
 * The internal capability of a built-in remote adapter to read many entries with the time each
 * has left, in one round trip per node (Redis: `MGET` and `PTTL`s in one pipeline per node): the
 * two-tier store's bulk read. A read that fails for some keys only rejects with
 * `CachePartialError` (whose results are entries).
 *
 * @internal
 */
export const ENTRIES_READER = Symbol('cachekit:entriesReader');

/** Reads `keys` with their remaining TTLs, in their order; `undefined` for a miss. @internal */
export type EntriesRead = (keys: readonly string[]) => Promise<Array<SharedEntry | undefined>>;

/** The bulk entry read `adapter` offers, if any. @internal */
export function entriesReaderOf(adapter: object): EntriesRead | undefined {
  const capable = adapter as { [ENTRIES_READER]?: () => EntriesRead | undefined };
  return typeof capable[ENTRIES_READER] === 'function' ? capable[ENTRIES_READER]() : undefined;
}
