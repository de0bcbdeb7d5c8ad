import { types } from 'node:util';
import { MAX_VALUE_DEPTH } from './serializable';

// The size the byte bounds (`memory.maxSize`, `l1.maxSize`) count: the length of the value's
// JSON text, estimated by one walk without building the text (JSON.stringify would allocate
// the whole string on every write). Strings count their UTF-16 code units plus the quotes —
// `str.length` costs nothing, while counting UTF-8 bytes would read the whole string — so ASCII
// text counts exactly the bytes Redis stores, other text counts less (up to 3 UTF-8 bytes per
// code unit); escapes are not counted. It is an estimate of the cached data, not of the heap:
// V8 objects take several times their JSON length.

/**
 * Numbers with a fraction count their integer digits plus this many characters (a point and 7
 * digits: between a price's 2 and a computed double's 17). Printing the number exactly would
 * cost more than the rest of the walk.
 */
const FRACTION_CHARS = 8;

/** What a value JSON cannot hold counts (`null`, as JSON writes it in an array). */
const OPAQUE_CHARS = 4;

/**
 * Values nested deeper than the cache stores ({@link MAX_VALUE_DEPTH}) count as `{}` from there
 * on: only a value that skipped `toStorable` (a cycle) gets there, and the walk must end.
 */
const EMPTY_CHARS = 2;

/**
 * Estimated size, in bytes, of the stored JSON form of `value` — what `JSON.stringify(value)`
 * writes, counted as its length in UTF-16 code units without escapes. Exact for ASCII data
 * with integers; a number with a fraction counts its integer digits plus 8. Always a whole
 * number >= 1; never throws (a getter or proxy that throws ends the count with what was
 * counted so far).
 *
 * Meant for values already in their JSON form (`toStorable`): strings, finite numbers,
 * booleans, `null`, arrays and plain objects. Anything else counts 4 (as `null`), and nesting
 * past {@link MAX_VALUE_DEPTH} levels counts 2, so even a cycle ends.
 *
 * @example
 * ```ts
 * estimateSize({ id: 1, name: 'Ada' }); // 21, the length of {"id":1,"name":"Ada"}
 * ```
 * @internal
 */
export function estimateSize(value: unknown): number {
  const count = { chars: 0 };
  try {
    walk(value, count, 0);
  } catch {
    // A getter or proxy trap threw: keep what was counted.
  }
  return Math.max(1, count.chars);
}

function walk(value: unknown, count: { chars: number }, depth: number): void {
  switch (typeof value) {
    case 'string':
      count.chars += value.length + 2;
      return;
    case 'number':
      count.chars += numberChars(value);
      return;
    case 'boolean':
      count.chars += value ? 4 : 5;
      return;
    case 'object':
      if (value === null) {
        count.chars += 4;
      } else if (depth >= MAX_VALUE_DEPTH) {
        count.chars += EMPTY_CHARS;
      } else if (Array.isArray(value)) {
        const items: readonly unknown[] = value;
        // Brackets and the commas between items.
        count.chars += items.length > 0 ? items.length + 1 : 2;
        for (let i = 0; i < items.length; i++) walk(items[i], count, depth + 1);
      } else {
        let fields = 0;
        const record = value as Record<string, unknown>;
        for (const key in record) {
          if (!Object.hasOwn(record, key)) continue;
          const item = record[key];
          if (item === undefined) continue; // JSON leaves it out
          // "key": plus the comma before it (the first field's "comma" is the opening brace).
          count.chars += key.length + 4;
          fields++;
          walk(item, count, depth + 1);
        }
        count.chars += fields > 0 ? 1 : 2;
      }
      return;
    default:
      count.chars += OPAQUE_CHARS;
  }
}

function numberChars(value: number): number {
  if (!Number.isFinite(value)) return OPAQUE_CHARS; // JSON writes null
  let chars = value < 0 ? 1 : 0;
  let magnitude = Math.abs(value);
  if (magnitude >= 1e21) return chars + 22; // JSON writes 1e+21 and beyond in exponent form
  if (!Number.isInteger(magnitude)) {
    chars += FRACTION_CHARS;
    magnitude = Math.floor(magnitude);
  }
  let digits = 1;
  for (let bound = 10; magnitude >= bound && digits < 21; bound *= 10) digits++;
  return chars + digits;
}

/** What a Date, URL or other fixed-size built-in counts in {@link estimateRichSize}. */
const BUILTIN_CHARS = 32;

/**
 * {@link estimateSize} for values in their rich form (`serializer: 'rich'` or a serializer of
 * the application's): JSON data counts as there, and `Date`, `Map`, `Set`, `BigInt`, binary
 * data (its bytes in base64), `RegExp`, `URL`, `undefined` and non-finite numbers count about
 * what the rich format writes for them. An object met again (a repeated or circular
 * reference) counts 2, so every value's count ends and stays bounded by its real size.
 *
 * @internal
 */
export function estimateRichSize(value: unknown): number {
  const count = { chars: 0, seen: new Set<object>() };
  try {
    walkRich(value, count, 0);
  } catch {
    // A getter or proxy trap threw: keep what was counted.
  }
  return Math.max(1, count.chars);
}

function walkRich(
  value: unknown,
  count: { chars: number; seen: Set<object> },
  depth: number,
): void {
  switch (typeof value) {
    case 'string':
      count.chars += value.length + 2;
      return;
    case 'number':
      count.chars += numberChars(value);
      return;
    case 'boolean':
      count.chars += value ? 4 : 5;
      return;
    case 'bigint':
      // ["BigInt","digits"]
      count.chars += value.toString(16).length + 14;
      return;
    case 'undefined':
      count.chars += 2;
      return;
    case 'object':
      break;
    default:
      count.chars += OPAQUE_CHARS;
      return;
  }
  if (value === null) {
    count.chars += 4;
    return;
  }
  if (count.seen.has(value) || depth >= MAX_VALUE_DEPTH) {
    count.chars += EMPTY_CHARS;
    return;
  }
  count.seen.add(value);
  if (Array.isArray(value)) {
    const items: readonly unknown[] = value;
    count.chars += items.length > 0 ? items.length + 1 : 2;
    for (let i = 0; i < items.length; i++) {
      if (items[i] !== undefined || i in items) {
        walkRich(items[i], count, depth + 1);
        continue;
      }
      // A hole: the rest by the elements it holds, not by its length (see toRichStorable).
      for (const prop of Object.keys(items)) {
        const index = Number(prop);
        if (!Number.isInteger(index) || String(index) !== prop) break;
        if (index > i) walkRich(items[index], count, depth + 1);
      }
      break;
    }
  } else if (types.isMap(value)) {
    count.chars += 8;
    for (const [key, item] of value) {
      count.chars += 2;
      walkRich(key, count, depth + 1);
      walkRich(item, count, depth + 1);
    }
  } else if (types.isSet(value)) {
    count.chars += 8;
    for (const item of value) {
      count.chars += 1;
      walkRich(item, count, depth + 1);
    }
  } else if (ArrayBuffer.isView(value) || types.isAnyArrayBuffer(value)) {
    // base64 of the bytes, plus the type's tag.
    count.chars += Math.ceil((value as ArrayBufferLike).byteLength / 3) * 4 + BUILTIN_CHARS;
  } else if (types.isRegExp(value)) {
    count.chars += value.source.length + BUILTIN_CHARS;
  } else if (value instanceof URL) {
    count.chars += value.href.length + BUILTIN_CHARS;
  } else if (value instanceof URLSearchParams) {
    count.chars += value.toString().length + BUILTIN_CHARS;
  } else if (types.isDate(value) || types.isBoxedPrimitive(value)) {
    count.chars += BUILTIN_CHARS;
  } else {
    let fields = 0;
    const record = value as Record<string, unknown>;
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue;
      count.chars += key.length + 4;
      fields++;
      walkRich(record[key], count, depth + 1);
    }
    count.chars += fields > 0 ? 1 : 2;
  }
}
