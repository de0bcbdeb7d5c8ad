import type { CacheSerializer } from '../interfaces/cache-serializer.interface';
import { CacheSerializationError } from './cache.errors';
import { describeError, describeValue, quote } from './describe-value';
import { toRichStorable, toStorable } from './serializable';
import { estimateRichSize, estimateSize } from './value-size';

/**
 * `serializer: 'json'`: `JSON.stringify` / `JSON.parse`. Compared by identity: the adapters and
 * the stack keep their plain JSON code path for it.
 *
 * @internal
 */
export const JSON_SERIALIZER: CacheSerializer = Object.freeze({
  serialize: (value: unknown): string => JSON.stringify(value),
  deserialize: (text: string): unknown => JSON.parse(text),
});

// A Buffer is written as base64 under its own tag, so it reads back as a Buffer (devalue alone
// would read it back as a Uint8Array). Checked before devalue's own types.
const REDUCERS = {
  Buffer: (value: unknown): string | false => Buffer.isBuffer(value) && value.toString('base64'),
};
const REVIVERS = {
  Buffer: (text: unknown): Buffer => {
    if (typeof text !== 'string') throw new TypeError('a Buffer must be stored as base64 text');
    return Buffer.from(text, 'base64');
  },
  // devalue's null-prototype object: never written here (the rich form of such an object is a
  // plain one), so text holding one is not ours: read as unreadable data (a miss), not as an
  // object the memory backend would never return.
  null: (): never => {
    throw new TypeError('a null-prototype object is never written by the rich serializer');
  },
  // devalue's boxed primitive: never written either (the rich form unboxes `new String('x')`).
  Object: (): never => {
    throw new TypeError('a boxed primitive is never written by the rich serializer');
  },
};

/** What the rich serializer uses of devalue. */
interface Devalue {
  stringify(value: unknown, reducers: typeof REDUCERS): string;
  parse(text: string, revivers: typeof REVIVERS): unknown;
}

let devalue: Devalue | undefined;

/**
 * devalue, loaded on the first use of `serializer: 'rich'`: it ships ES modules only, which Node
 * 20.19+ `require`s but a CommonJS test runner (Jest) cannot load without a transform, so an
 * application that never chooses `'rich'` never loads it (see README, "Rich values").
 */
function loadDevalue(): Devalue {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (devalue ??= require('devalue') as Devalue);
}

/**
 * `serializer: 'rich'`: devalue's JSON-based format, with Buffers as Buffers. Values reach it
 * in their rich stored form ({@link toRichStorable}).
 *
 * @internal
 */
export const RICH_SERIALIZER: CacheSerializer = Object.freeze({
  serialize: (value: unknown): string => loadDevalue().stringify(value, REDUCERS),
  deserialize: (text: string): unknown => loadDevalue().parse(text, REVIVERS),
});

/**
 * Loads what `serializer: 'rich'` needs, at startup: a failure (a test runner that cannot load
 * ES modules) is then a clear configuration error rather than a failed write later.
 *
 * @internal
 */
export function loadRichSerializer(): void {
  loadDevalue();
}

/** Checks a value and returns what to store (see `toStorable`). */
export type Storable = (value: unknown, key: string) => unknown;

/**
 * The check-and-convert of values written with `serializer` (run before any write): JSON's
 * {@link toStorable}, the rich one, or for a serializer of the user's the value after one round
 * trip through it, so every tier holds what Redis returns.
 *
 * @internal
 */
export function storableFor(serializer: CacheSerializer | undefined): Storable {
  if (serializer === undefined || serializer === JSON_SERIALIZER) return toStorable;
  if (serializer === RICH_SERIALIZER) return toRichStorable;
  return (value, key) => roundTrip(serializer, value, key);
}

/**
 * The size estimate (bytes) the byte bounds count for values stored with `serializer`.
 *
 * @internal
 */
export function sizerFor(serializer: CacheSerializer | undefined): (value: unknown) => number {
  return serializer === undefined || serializer === JSON_SERIALIZER
    ? estimateSize
    : estimateRichSize;
}

/**
 * `serializer.serialize(value)`, checked: throwing or returning anything but a string is a
 * {@link CacheSerializationError} naming `key`.
 *
 * @internal
 */
export function serializeWith(serializer: CacheSerializer, value: unknown, key: string): string {
  let text: unknown;
  try {
    text = serializer.serialize(value);
  } catch (error) {
    if (error instanceof CacheSerializationError) throw error;
    throw new CacheSerializationError(
      `Cannot cache the value for key ${quote(key)}: the serializer's serialize() threw ` +
        `${describeError(error)}; the previous entry, if any, was left unchanged.`,
    );
  }
  if (typeof text !== 'string') {
    throw new CacheSerializationError(
      `Cannot cache the value for key ${quote(key)}: the serializer's serialize() returned ` +
        `${describeValue(text)}, not a string; the previous entry, if any, was left unchanged.`,
    );
  }
  return text;
}

function roundTrip(serializer: CacheSerializer, value: unknown, key: string): unknown {
  if (value === undefined) {
    throw new CacheSerializationError(
      `Cannot cache the value for key ${quote(key)}: value is undefined (a miss reads as ` +
        `undefined, so it cannot be stored; store null instead).`,
    );
  }
  const text = serializeWith(serializer, value, key);
  let back: unknown;
  try {
    back = serializer.deserialize(text);
  } catch (error) {
    throw new CacheSerializationError(
      `Cannot cache the value for key ${quote(key)}: the serializer's deserialize() threw ` +
        `${describeError(error)} on what its serialize() wrote; the previous entry, if any, ` +
        `was left unchanged.`,
    );
  }
  if (back === undefined) {
    throw new CacheSerializationError(
      `Cannot cache the value for key ${quote(key)}: the serializer's deserialize() returned ` +
        `undefined for what its serialize() wrote (a miss reads as undefined); the previous ` +
        `entry, if any, was left unchanged.`,
    );
  }
  return back;
}
