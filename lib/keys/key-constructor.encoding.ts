import { CacheKeyError } from '../utils/cache.errors';

// Characters that carry meaning in a rendered key: ':' separates segments, '=' separates a
// field's name from its value, '~' starts a non-text value, '%' starts an escape, and the
// Redis glob characters (`* ? [ ] \`) plus braces (cluster hash tags) are escaped so a value
// can neither collide with another key nor widen a SCAN pattern.
// eslint-disable-next-line no-control-regex -- control characters are escaped on purpose
const SPECIAL = /[%:=~*?[\]\\{}\u0000-\u001f\u007f]/g;
// The same set without the global flag, for a stateless test.
const HAS_SPECIAL = new RegExp(SPECIAL.source);

/** Percent-escapes every character that has a meaning in a rendered key. */
export function escapeKeyText(text: string): string {
  // Most key parts need no escaping: test first, replace only when needed (hot path).
  if (!HAS_SPECIAL.test(text)) return text;
  return text.replace(
    SPECIAL,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

/**
 * Renders one field value as a key slice. Injective on what a key means:
 *
 * - strings, finite numbers, bigints and booleans are written as text, escaped, so `42` and
 *   `'42'` name the same entry (a route parameter and an entity id must meet);
 * - `null` and `undefined` are `~null` and `~undefined` (a string `'~null'` is `%7Enull`);
 * - objects and arrays are `~` + canonical JSON with sorted keys, so property order does not
 *   matter, and types inside them are kept (`{ id: 1 }` differs from `{ id: '1' }`);
 * - `Date` (and anything with `toJSON`) is rendered as its JSON form.
 *
 * Functions, symbols, `Map`, `Set` and circular structures throw {@link CacheKeyError}.
 */
export function encodeKeyValue(value: unknown, field: string): string {
  const plain = toJsonForm(value);
  switch (typeof plain) {
    case 'string':
      return escapeKeyText(plain);
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(plain);
    case 'undefined':
      return '~undefined';
    case 'object':
      if (plain === null) return '~null';
      return '~' + escapeKeyText(canonical(plain, field, []));
    default:
      throw unsupported(field, typeof plain);
  }
}

function toJsonForm(value: unknown): unknown {
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
  ) {
    return (value as { toJSON: () => unknown }).toJSON();
  }
  return value;
}

function canonical(raw: unknown, field: string, seen: object[]): string {
  const value = toJsonForm(raw);
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      // NaN/Infinity are kept as bare tokens, distinct from null and from strings.
      return Number.isFinite(value) ? JSON.stringify(value) : String(value);
    case 'bigint':
      return `${value}n`;
    case 'boolean':
      return String(value);
    case 'undefined':
      return 'undefined';
    case 'object': {
      if (value === null) return 'null';
      if (value instanceof Map || value instanceof Set || value instanceof WeakMap) {
        throw unsupported(field, value.constructor.name);
      }
      if (seen.includes(value)) {
        throw new CacheKeyError(`Key field "${field}" holds a circular structure.`);
      }
      const inner = [...seen, value];
      if (Array.isArray(value)) {
        return `[${value.map((item) => canonical(item, field, inner)).join(',')}]`;
      }
      const record = value as Record<string, unknown>;
      const entries = Object.keys(record)
        .filter((k) => record[k] !== undefined)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${canonical(record[k], field, inner)}`);
      return `{${entries.join(',')}}`;
    }
    default:
      throw unsupported(field, typeof value);
  }
}

function unsupported(field: string, type: string): CacheKeyError {
  return new CacheKeyError(
    `Key field "${field}" holds a ${type}, which cannot be part of a cache key. ` +
      `Use strings, numbers, booleans, plain objects or arrays (or map it to one first).`,
  );
}
