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
  if (value !== undefined && isSafe(value, 0)) return;
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
function isSafe(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (depth > MAX_FAST_DEPTH) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined || !isSafe(item, depth + 1)) return false;
        }
        return true;
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return true;
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null && isOpaque(value)) return false;
      for (const prop in value) {
        if (!Object.hasOwn(value, prop)) continue;
        const item = (value as Record<string, unknown>)[prop];
        if (item !== undefined && !isSafe(item, depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
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
