import { CacheSerializationError } from '../cache.errors';

/**
 * Throws {@link CacheSerializationError} unless `value` survives a JSON round trip without
 * silently losing data: no `undefined` at the top, no functions, symbols or `BigInt`, no
 * circular references, no `Map`/`Set`/`WeakMap`/`WeakSet`/`Promise`, no `NaN`/`Infinity`.
 * Objects with a `toJSON` method (such as `Date`) are accepted as JSON would serialise them.
 * Run before any write, so a rejected value never replaces the previous entry.
 */
export function assertSerializable(value: unknown, key: string): void {
  // The common case, on every write: a quick yes. The detailed walk, which builds the path of
  // the offending part for the message, runs only when the answer is no.
  if (isSafe(value)) return;
  const problem =
    typeof value === 'object' && value !== null
      ? findProblem(value, 'value', [])
      : checkLeaf(value, 'value');
  if (problem === undefined) return;
  throw new CacheSerializationError(
    `Cannot cache the value for key ${JSON.stringify(key)}: ${problem}. Cache values must be ` +
      `JSON-compatible (plain objects, arrays, strings, finite numbers, booleans, null); ` +
      `the previous entry, if any, was left unchanged.`,
  );
}

/**
 * `true` when JSON keeps `value` as it is (the same rules as {@link findProblem}). A cycle
 * has no end, so instead of tracking ancestors (costly on every write) the walk gives up past
 * a depth no real value reaches and lets {@link findProblem} decide precisely.
 */
function isSafe(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object':
      return value === null || isSafeObject(value, 0);
    default:
      return false;
  }
}

/**
 * {@link isSafe} for an object. Runs on every write, so leaves are checked in the loop rather
 * than by a call each (a third of the cost of a typical `set`).
 */
function isSafeObject(value: object, depth: number): boolean {
  if (depth > MAX_FAST_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (typeof item === 'string' || typeof item === 'boolean') continue;
      if (typeof item === 'number') {
        if (Number.isFinite(item)) continue;
        return false;
      }
      // undefined (JSON writes null), functions, symbols, BigInts: no.
      if (typeof item !== 'object') return false;
      if (item !== null && !isSafeObject(item, depth + 1)) return false;
    }
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    // A class instance: JSON writes what its toJSON returns (a Date), or its own properties.
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return true;
    if (isOpaque(value)) return false;
  }
  // for...in with an own-property check only where it matters (a primitive is safe wherever
  // it comes from): cheaper than Object.keys, which allocates.
  for (const prop in value) {
    const item = (value as Record<string, unknown>)[prop];
    // An undefined property is left out by JSON, as an absent one reads the same.
    if (typeof item === 'string' || typeof item === 'boolean' || item == null) continue;
    if (typeof item === 'number') {
      if (Number.isFinite(item)) continue;
      return false;
    }
    if (!Object.hasOwn(value, prop)) continue;
    if (typeof item !== 'object') {
      // An own toJSON method decides what JSON writes for a plain object too.
      return prop === 'toJSON' && typeof item === 'function';
    }
    if (!isSafeObject(item, depth + 1)) return false;
  }
  return true;
}

const MAX_FAST_DEPTH = 64;

function isOpaque(value: object): boolean {
  return (
    value instanceof Map ||
    value instanceof Set ||
    value instanceof WeakMap ||
    value instanceof WeakSet ||
    value instanceof Promise
  );
}

function checkLeaf(value: unknown, path: string): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON stores as null`;
    case 'undefined':
      return `${path} is undefined (a miss is undefined, so it cannot be stored; store null instead)`;
    case 'bigint':
      return `${path} is a BigInt (convert it to a string or number first)`;
    case 'function':
      return `${path} is a function`;
    case 'symbol':
      return `${path} is a symbol`;
    default:
      return undefined;
  }
}

function findProblem(value: object, path: string, ancestors: object[]): string | undefined {
  if (ancestors.includes(value)) return `${path} is a circular reference`;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return undefined;
  if (isOpaque(value) && !(value instanceof Promise)) {
    return `${path} is a ${value.constructor.name}, which JSON stores as {} (convert it to an object or array first)`;
  }
  if (value instanceof Promise) return `${path} is a Promise (await it first)`;
  ancestors.push(value);
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const item: unknown = value[i];
        const problem =
          typeof item === 'object' && item !== null
            ? findProblem(item, `${path}[${i}]`, ancestors)
            : item === undefined
              ? `${path}[${i}] is undefined, which JSON stores as null`
              : checkLeaf(item, `${path}[${i}]`);
        if (problem) return problem;
      }
      return undefined;
    }
    for (const prop of Object.keys(value)) {
      const item = (value as Record<string, unknown>)[prop];
      if (item === undefined) continue; // JSON omits it, as an absent property reads the same
      const childPath = `${path}.${prop}`;
      const problem =
        typeof item === 'object' && item !== null
          ? findProblem(item, childPath, ancestors)
          : checkLeaf(item, childPath);
      if (problem) return problem;
    }
    return undefined;
  } finally {
    ancestors.pop();
  }
}
