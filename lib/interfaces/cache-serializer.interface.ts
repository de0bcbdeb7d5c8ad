/**
 * How cached values become the text stored in Redis, and back: the `serializer` option's own
 * form (`serializer: { serialize, deserialize }`), or what `'json'` and `'rich'` resolve to.
 *
 * `serialize` receives the entry as the cache stores it: the value, or an object wrapping it
 * with the entry's metadata (`{ "\u0000cachekit": 1, v: value, e, x, ... }`, written for
 * `grace`, `refreshAhead`, tags, or a value that looks like such an object). `deserialize`
 * must return an equal object for it, so a serializer must round-trip plain objects, arrays,
 * strings and numbers at least. Both must be synchronous.
 *
 * `serialize` throwing (or returning anything but a string) rejects the write with
 * `CacheSerializationError` and leaves the previous entry unchanged; `deserialize` throwing
 * reads as a miss, with a warning. Every tier returns what Redis would: the in-memory store
 * and the L1 keep `deserialize(serialize(value))` of each value written.
 *
 * @example
 * ```ts
 * import { pack, unpack } from 'my-codec';
 * CacheModule.forRoot({
 *   provider: 'redis',
 *   serializer: { serialize: (value) => pack(value), deserialize: (text) => unpack(text) },
 * });
 * ```
 */
export interface CacheSerializer {
  /** The text to store for `value`. Throws for a value it cannot store. */
  serialize(value: unknown): string;
  /** The value `text` (written by {@link CacheSerializer.serialize}) holds. Throws for text it cannot read. */
  deserialize(text: string): unknown;
}

/** The `serializer` option: `'json'` (the default), `'rich'`, or your own. */
export type CacheSerializerOption = 'json' | 'rich' | CacheSerializer;
