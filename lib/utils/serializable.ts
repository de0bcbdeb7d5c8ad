import { types } from 'node:util';
import { CacheSerializationError } from './cache.errors';
import { describeError, quote } from './describe-value';

/**
 * The deepest nesting of objects and arrays a cached value may have (`{ a: { b: 1 } }` has 2
 * levels). JSON.stringify overflows the stack somewhere past a few thousand levels, and many
 * JSON readers of other languages (Python's among them) stop near 1 000; real data stays far
 * below this.
 */
export const MAX_VALUE_DEPTH = 256;

/**
 * Checks that `value` can be cached and returns what to store: `value` itself when it is plain
 * JSON data (the common case, checked without a copy), else its JSON form — a fresh plain value
 * built exactly as `JSON.parse(JSON.stringify(value))` would build it (`toJSON` applied, class
 * instances reduced to their own enumerable properties, boxed primitives unboxed, `-0` as `0`,
 * `undefined` properties left out), so memory returns what Redis returns.
 *
 * Throws {@link CacheSerializationError}, naming the problem and where it is, for anything JSON
 * would silently drop or alter: `undefined` as the value or an array element (JSON writes
 * `null`), a hole, functions, symbols, `BigInt`, `NaN`/`±Infinity`, circular references, nesting deeper than
 * {@link MAX_VALUE_DEPTH}, built-ins whose data JSON loses (`Map`, `Set`, `WeakMap`, `WeakSet`,
 * `WeakRef`, `Promise`, `RegExp`, `Error`, `ArrayBuffer`, `DataView`, typed arrays other than
 * `Buffer`, iterators), an invalid `Date`, and a getter or `toJSON` that throws. Run before any
 * write, so a rejected value never replaces the previous entry.
 */
export function toStorable(value: unknown, key: string): unknown {
  try {
    if (isPlain(value)) return value;
  } catch {
    // A getter threw: the walk below reads it again and says where.
  }
  const walk: Walk = { key, path: [], ancestors: [] };
  try {
    return jsonForm(value, '', walk, 0);
  } catch (error) {
    if (error instanceof CacheSerializationError) throw error;
    // A proxy trap the walk does not call through `run` (a revoked proxy throws on any
    // inspection), or a stack already near its end: still a rejection, never a raw error.
    return fail(walk, `: inspecting it threw ${describeError(error)}`);
  }
}

/**
 * `true` when `value` is plain JSON data that a JSON round trip returns unchanged: strings,
 * booleans, finite numbers other than `-0`, `null`, arrays and `Object.prototype` objects of
 * those, with no `toJSON` in reach. Runs on every write, so it is one loop with the leaves
 * checked inline, and it gives up (the walk decides) past a depth real values rarely reach,
 * which is also how a cycle ends without tracking ancestors.
 *
 * What it cannot see without costing every write a copy of each object's key list: symbol-keyed
 * and non-enumerable properties, non-index properties of arrays, and getters (read once here).
 * JSON leaves the first three out and reads getters; memory keeps such an object as it is.
 */
function isPlain(value: unknown): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      // Finite (NaN - NaN and Infinity - Infinity are NaN) and not -0, which JSON writes as 0.
      return value - value === 0 && (value !== 0 || 1 / value > 0);
    case 'object':
      return value === null || isPlainObject(value, 0);
    default:
      return false;
  }
}

function isPlainObject(value: object, depth: number): boolean {
  if (depth > MAX_FAST_DEPTH) return false;
  if (Array.isArray(value)) {
    if (
      Object.getPrototypeOf(value) !== Array.prototype ||
      (value as { toJSON?: unknown }).toJSON !== undefined
    ) {
      return false;
    }
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (typeof item === 'string' || typeof item === 'boolean') continue;
      if (typeof item === 'number') {
        if (item - item === 0 && (item !== 0 || 1 / item > 0)) continue;
        return false;
      }
      // undefined (a hole reads so too), functions, symbols, BigInts.
      if (typeof item !== 'object') return false;
      if (item !== null && !isPlainObject(item, depth + 1)) return false;
    }
    return true;
  }
  if (
    Object.getPrototypeOf(value) !== Object.prototype ||
    (value as { toJSON?: unknown }).toJSON !== undefined
  ) {
    return false;
  }
  // for...in with an own-property check only where it matters: cheaper than Object.keys, which
  // allocates. An inherited enumerable property is not written by JSON; one that is not plain
  // data sends the value to the walk, which reads own properties only.
  for (const prop in value) {
    const item = (value as Record<string, unknown>)[prop];
    if (typeof item === 'string' || typeof item === 'boolean' || item === null) continue;
    if (typeof item === 'number') {
      if (item - item === 0 && (item !== 0 || 1 / item > 0)) continue;
      return false;
    }
    if (typeof item !== 'object') return false;
    if (!Object.hasOwn(value, prop)) continue;
    if (!isPlainObject(item, depth + 1)) return false;
  }
  return true;
}

const MAX_FAST_DEPTH = 64;

/** A step of a path: a property, an index, or text written as it is (`<Map key #0>`). */
type Step = string | number | { readonly raw: string };

/** Where the walk is: for messages (the path) and cycle detection (the open objects). */
interface Walk {
  readonly key: string;
  /** Property names and indices from the root to the value being walked. */
  readonly path: Step[];
  /** The objects being walked, root first; `ancestors[i]` sits at `path.slice(0, i)`. */
  readonly ancestors: object[];
}

/**
 * The JSON form of `value`, the property `name` of its holder, following `JSON.stringify`'s
 * SerializeJSONProperty step by step (`toJSON(name)`, then unboxing), except that what JSON
 * would drop or alter is rejected instead.
 */
function jsonForm(value: unknown, name: string, walk: Walk, depth: number): unknown {
  let converted = false;
  if ((typeof value === 'object' && value !== null) || typeof value === 'bigint') {
    const holder = value;
    const toJSON = run(walk, 'reading its toJSON', () => (holder as { toJSON?: unknown }).toJSON);
    if (typeof toJSON === 'function') {
      if (isInvalidDate(value, toJSON)) {
        fail(walk, ' is an invalid Date, which JSON stores as null');
      }
      value = run(walk, 'its toJSON()', () =>
        (toJSON as (key: string) => unknown).call(holder, name),
      );
      converted = true;
    }
  }
  if (typeof value === 'object' && value !== null) value = unbox(value, walk);
  const is = converted ? '.toJSON() returned' : ' is';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) fail(walk, `${is} ${value}, which JSON stores as null`);
      return value === 0 ? 0 : value; // -0 → 0, as JSON writes it
    case 'undefined':
      return fail(walk, `${is} undefined${undefinedConsequence(walk)}`);
    case 'bigint':
      return fail(walk, `${is} a BigInt (convert it to a string or a number first)`);
    case 'function':
      return fail(walk, `${is} a function`);
    case 'symbol':
      return fail(walk, `${is} a symbol`);
    default:
      return value === null ? null : objectForm(value as object, walk, depth + 1, is);
  }
}

function objectForm(value: object, walk: Walk, depth: number, is: string): unknown {
  const { path, ancestors } = walk;
  const cycle = ancestors.indexOf(value);
  if (cycle >= 0) {
    fail(walk, `${is} a circular reference (to ${formatPath(path.slice(0, cycle))})`);
  }
  if (depth > MAX_VALUE_DEPTH) {
    fail(
      walk,
      `${is} nested deeper than ${MAX_VALUE_DEPTH} levels, the most a cached value may have`,
    );
  }
  const opaque = opaqueKind(value);
  if (opaque) fail(walk, `${is} ${opaque}`);
  ancestors.push(value);
  if (Array.isArray(value)) {
    const items: readonly unknown[] = value;
    const length = run(walk, 'reading its length', () => items.length);
    const out: unknown[] = [];
    for (let i = 0; i < length; i++) {
      path.push(i);
      const item = run(walk, 'reading it', () => items[i]);
      if (item === undefined && !run(walk, 'reading it', () => i in items)) {
        fail(walk, ' is an empty slot (the array is sparse), which JSON stores as null');
      }
      out.push(jsonForm(item, String(i), walk, depth));
      path.pop();
    }
    ancestors.pop();
    return out;
  }
  const record = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const prop of run(walk, 'listing its properties', () => Object.keys(record))) {
    path.push(prop);
    const item = run(walk, 'reading it', () => record[prop]);
    if (item === undefined) {
      // JSON leaves an undefined property out, and an absent property reads the same: an
      // optional field of a DTO must not make the whole value uncacheable.
      path.pop();
      continue;
    }
    const form = jsonForm(item, prop, walk, depth);
    // As JSON.parse does: an own "__proto__" property, never the prototype.
    if (prop === '__proto__') {
      Object.defineProperty(out, prop, {
        value: form,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      out[prop] = form;
    }
    path.pop();
  }
  ancestors.pop();
  return out;
}

/** What JSON.stringify makes of a boxed primitive (`new Number(1)` → `1`), or `value`. */
function unbox(value: object, walk: Walk): unknown {
  if (!types.isBoxedPrimitive(value)) return value;
  // The same conversions JSON applies (ToNumber and ToString call a valueOf/toString override).
  if (types.isNumberObject(value)) return run(walk, 'converting it to a number', () => +value);
  if (types.isStringObject(value))
    return run(walk, 'converting it to a string', () => String(value));
  if (types.isBooleanObject(value)) return Boolean.prototype.valueOf.call(value);
  if (types.isBigIntObject(value)) return BigInt.prototype.valueOf.call(value);
  return value; // a Symbol object: rejected as opaque
}

function isInvalidDate(value: unknown, toJSON: unknown): boolean {
  return (
    toJSON === Date.prototype.toJSON &&
    types.isDate(value) &&
    Number.isNaN(Date.prototype.getTime.call(value))
  );
}

/** Built-ins whose data JSON loses (it writes `{}`, or index keys for a typed array). */
function opaqueKind(value: object): string | undefined {
  if (types.isMap(value)) {
    return 'a Map, which JSON stores as {} (convert it to an object or an array of entries first)';
  }
  if (types.isSet(value)) return 'a Set, which JSON stores as {} (convert it to an array first)';
  if (types.isPromise(value)) return 'a Promise (await it first)';
  if (types.isRegExp(value)) return 'a RegExp, which JSON stores as {} (store its source instead)';
  if (types.isNativeError(value) || value instanceof Error) {
    return 'an Error, which JSON stores as {} (store the fields you need, such as its message)';
  }
  if (types.isTypedArray(value)) {
    return (
      `${builtinName(value)}, which JSON stores as an object with index keys ` +
      `(convert it with Array.from, or to a Buffer)`
    );
  }
  if (types.isAnyArrayBuffer(value) || types.isDataView(value)) {
    return `${builtinName(value)}, which JSON stores as {} (convert it to a Buffer or an array first)`;
  }
  if (types.isMapIterator(value) || types.isSetIterator(value) || types.isGeneratorObject(value)) {
    return 'an iterator, which JSON stores as {} (collect it into an array first)';
  }
  if (
    types.isWeakMap(value) ||
    types.isWeakSet(value) ||
    value instanceof WeakRef ||
    value instanceof FinalizationRegistry ||
    types.isSymbolObject(value)
  ) {
    return `${builtinName(value)}, which JSON stores as {}`;
  }
  return undefined;
}

/** "a Uint8Array", "an ArrayBuffer". */
function builtinName(value: object): string {
  let name: string;
  try {
    name = Object.prototype.toString.call(value).slice(8, -1);
  } catch {
    name = 'built-in object';
  }
  return /^[AEIO]/.test(name) ? `an ${name}` : `a ${name}`;
}

function undefinedConsequence(walk: Walk): string {
  if (walk.path.length === 0) {
    return ' (a miss reads as undefined, so it cannot be stored; store null instead)';
  }
  return typeof walk.path[walk.path.length - 1] === 'number'
    ? ', which JSON stores as null (store null instead)'
    : ', which JSON leaves out';
}

/** Calls user code (a getter, a toJSON, a proxy trap); what it throws becomes the rejection. */
function run<R>(walk: Walk, what: string, call: () => R): R {
  try {
    return call();
  } catch (error) {
    return fail(walk, `: ${what} threw ${describeError(error)}`);
  }
}

/** Throws the rejection; `problem` follows the path (" is a function", ": reading it threw"). */
function fail(walk: Walk, problem: string, rule = JSON_RULE): never {
  throw new CacheSerializationError(
    `Cannot cache the value for key ${quote(walk.key)}: ${formatPath(walk.path)}${problem}. ` +
      `${rule}; the previous entry, if any, was left unchanged.`,
  );
}

const JSON_RULE =
  `Cache values must be JSON data (objects, arrays, strings, finite numbers, booleans, ` +
  `null; see "What a cached value becomes" in the README)`;

/** `value.a[0]["b c"]`; a long path keeps its first and last steps. */
function formatPath(path: readonly Step[]): string {
  if (path.length <= 2 * PATH_ENDS) return 'value' + path.map(formatStep).join('');
  return (
    'value' +
    path.slice(0, PATH_ENDS).map(formatStep).join('') +
    `…(${path.length - 2 * PATH_ENDS} more levels)…` +
    path.slice(-PATH_ENDS).map(formatStep).join('')
  );
}

function formatStep(step: Step): string {
  if (typeof step === 'number') return `[${step}]`;
  if (typeof step === 'object') return step.raw;
  return IDENTIFIER.test(step) ? `.${step}` : `[${quote(step)}]`;
}

const PATH_ENDS = 5;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * {@link toStorable} for `serializer: 'rich'`: checks that `value` can be cached and returns
 * what to store, `value` itself when it is plain JSON data, else its rich form — a fresh value
 * built as the rich serializer reads it back, so memory returns what Redis returns:
 *
 * - kept, as copies: `Date` (invalid ones too), `Map` and `Set` (keys and items in order),
 *   `BigInt`, `Buffer` (a Buffer), typed arrays (their own type, a copy of their bytes only),
 *   `ArrayBuffer`, `DataView`, `RegExp` (source and flags), `URL`, `URLSearchParams`,
 *   `undefined` in objects and arrays, array holes, `-0`, `NaN`, `±Infinity`, and circular
 *   or repeated references (the same object twice reads back as one object twice);
 * - converted as JSON does: `toJSON()` applied (on anything but the types above), boxed
 *   primitives unboxed, any other object (a class instance, a null-prototype object) reduced
 *   to a plain object of its own enumerable string-keyed properties;
 * - rejected with {@link CacheSerializationError} naming where: `undefined` as the whole value
 *   (a miss reads so), functions, symbols, an own `__proto__` property, `Promise`, `Error`,
 *   `WeakMap`, `WeakSet`, `WeakRef`, `SharedArrayBuffer`, iterators, nesting deeper than
 *   {@link MAX_VALUE_DEPTH}, and a getter or `toJSON` that throws.
 *
 * @internal
 */
export function toRichStorable(value: unknown, key: string): unknown {
  try {
    // An own "__proto__" property, which the rich format refuses, sends the value to the walk.
    if (isPlain(value) && !hasProtoKey(value, 0)) return value;
  } catch {
    // A getter threw: the walk below reads it again and says where.
  }
  const walk: RichWalk = { key, path: [], ancestors: [], seen: new Map() };
  try {
    if (value === undefined) {
      return fail(walk, ` is undefined${undefinedConsequence(walk)}`, RICH_RULE);
    }
    return richForm(value, '', walk, 0);
  } catch (error) {
    if (error instanceof CacheSerializationError) throw error;
    return fail(walk, `: inspecting it threw ${describeError(error)}`, RICH_RULE);
  }
}

/** `true` when plain JSON data holds an own `"__proto__"` property (JSON.parse makes them). */
function hasProtoKey(value: unknown, depth: number): boolean {
  if (typeof value !== 'object' || value === null || depth > MAX_FAST_DEPTH) return false;
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) if (hasProtoKey(item, depth + 1)) return true;
    return false;
  }
  for (const prop in value) {
    if (prop === '__proto__') return true;
    if (hasProtoKey((value as Record<string, unknown>)[prop], depth + 1)) return true;
  }
  return false;
}

const RICH_RULE =
  `With serializer 'rich', cache values may hold JSON data, Date, Map, Set, BigInt, Buffer, ` +
  `typed arrays, undefined, NaN and ±Infinity (see "Rich values" in the README)`;

interface RichWalk extends Walk {
  /** Objects already converted, with their form: repeated and circular references stay so. */
  readonly seen: Map<object, unknown>;
}

type TypedArrayConstructor = new (source: ArrayLike<number> & ArrayLike<bigint>) => object;

function richForm(value: unknown, name: string, walk: RichWalk, depth: number): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'number':
    case 'bigint':
    case 'undefined':
      return value;
    case 'function':
      return fail(walk, ' is a function', RICH_RULE);
    case 'symbol':
      return fail(walk, ' is a symbol', RICH_RULE);
    default:
      return value === null ? null : richObject(value as object, name, walk, depth + 1);
  }
}

function richObject(value: object, name: string, walk: RichWalk, depth: number): unknown {
  const { seen } = walk;
  if (seen.has(value)) return seen.get(value);
  if (depth > MAX_VALUE_DEPTH) {
    fail(
      walk,
      ` is nested deeper than ${MAX_VALUE_DEPTH} levels, the most a cached value may have`,
      RICH_RULE,
    );
  }
  const builtin = richBuiltin(value, walk, depth);
  if (builtin !== NOT_BUILTIN) {
    seen.set(value, builtin);
    return builtin;
  }
  if (!Array.isArray(value)) {
    const holder = value;
    const toJSON = run(walk, 'reading its toJSON', () => (holder as { toJSON?: unknown }).toJSON);
    if (typeof toJSON === 'function') {
      const converted = run(walk, 'its toJSON()', () =>
        (toJSON as (key: string) => unknown).call(holder, name),
      );
      if (converted === undefined) return fail(walk, '.toJSON() returned undefined', RICH_RULE);
      const form =
        converted === value
          ? richFields(value, walk, depth)
          : richForm(converted, name, walk, depth - 1);
      seen.set(value, form);
      return form;
    }
  }
  return richFields(value, walk, depth);
}

/** An array or an object with fields: copied item by item, holes and `undefined` kept. */
function richFields(value: object, walk: RichWalk, depth: number): unknown {
  const { path, ancestors, seen } = walk;
  ancestors.push(value);
  if (Array.isArray(value)) {
    const items: readonly unknown[] = value;
    const length = run(walk, 'reading its length', () => items.length);
    const out: unknown[] = new Array<unknown>(length);
    seen.set(value, out);
    for (let i = 0; i < length; i++) {
      path.push(i);
      const item = run(walk, 'reading it', () => items[i]);
      if (item !== undefined || run(walk, 'reading it', () => i in items)) {
        out[i] = richForm(item, String(i), walk, depth);
        path.pop();
        continue;
      }
      path.pop();
      // A hole: the rest is walked by the elements it holds, not by its length (`a[1e9] = 1`
      // holds one element; devalue writes such an array in its sparse form).
      for (const index of presentIndices(items, i, length, walk)) {
        path.push(index);
        const element = run(walk, 'reading it', () => items[index]);
        out[index] = richForm(element, String(index), walk, depth);
        path.pop();
      }
      break;
    }
    ancestors.pop();
    return out;
  }
  const record = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  seen.set(value, out);
  for (const prop of run(walk, 'listing its properties', () => Object.keys(record))) {
    path.push(prop);
    if (prop === '__proto__') {
      fail(walk, ' is an own "__proto__" property, which the rich format refuses', RICH_RULE);
    }
    const item = run(walk, 'reading it', () => record[prop]);
    out[prop] = richForm(item, prop, walk, depth);
    path.pop();
  }
  ancestors.pop();
  return out;
}

/** The indices above `after` and below `length` that `items` holds, ascending. */
function presentIndices(
  items: readonly unknown[],
  after: number,
  length: number,
  walk: RichWalk,
): number[] {
  const indices: number[] = [];
  // Object.keys lists an array's integer indices first, in ascending order.
  for (const prop of run(walk, 'listing its properties', () => Object.keys(items))) {
    const index = Number(prop);
    if (!Number.isInteger(index) || String(index) !== prop) break;
    if (index > after && index < length) indices.push(index);
  }
  return indices;
}

const NOT_BUILTIN = Symbol('not built-in');

/**
 * The copy the rich format reads back for a built-in it stores (Date, Map, binary, ...), or
 * {@link NOT_BUILTIN}; rejects the built-ins it cannot store.
 */
function richBuiltin(value: object, walk: RichWalk, depth: number): unknown {
  if (types.isDate(value)) return new Date(Date.prototype.getTime.call(value));
  if (types.isMap(value)) return richMap(value, walk, depth);
  if (types.isSet(value)) return richSet(value, walk, depth);
  if (Buffer.isBuffer(value)) return Buffer.from(value);
  if (types.isTypedArray(value)) {
    const ctor = (globalThis as unknown as Record<string, TypedArrayConstructor>)[
      Object.prototype.toString.call(value).slice(8, -1)
    ];
    return new ctor(value as unknown as ArrayLike<number> & ArrayLike<bigint>);
  }
  if (types.isArrayBuffer(value)) return value.slice(0);
  if (types.isDataView(value)) {
    const view = value;
    return new DataView(
      view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer,
    );
  }
  if (types.isRegExp(value)) {
    const pattern = value;
    return new RegExp(pattern.source, pattern.flags);
  }
  if (value instanceof URL) return new URL(value.href);
  if (value instanceof URLSearchParams) return new URLSearchParams(value.toString());
  if (types.isBoxedPrimitive(value) && !types.isSymbolObject(value)) return unbox(value, walk);
  if (types.isPromise(value)) return fail(walk, ' is a Promise (await it first)', RICH_RULE);
  if (types.isNativeError(value) || value instanceof Error) {
    return fail(walk, ' is an Error (store the fields you need, such as its message)', RICH_RULE);
  }
  if (types.isMapIterator(value) || types.isSetIterator(value) || types.isGeneratorObject(value)) {
    return fail(walk, ' is an iterator (collect it into an array first)', RICH_RULE);
  }
  if (
    types.isWeakMap(value) ||
    types.isWeakSet(value) ||
    value instanceof WeakRef ||
    value instanceof FinalizationRegistry ||
    types.isSymbolObject(value) ||
    types.isSharedArrayBuffer(value)
  ) {
    return fail(walk, ` is ${builtinName(value)}, which cannot be stored`, RICH_RULE);
  }
  return NOT_BUILTIN;
}

function richMap(map: Map<unknown, unknown>, walk: RichWalk, depth: number): Map<unknown, unknown> {
  const out = new Map<unknown, unknown>();
  walk.seen.set(map, out);
  walk.ancestors.push(map);
  let index = 0;
  for (const [key, item] of run(walk, 'listing its entries', () => [...map])) {
    walk.path.push({ raw: `<Map key #${index}>` });
    const keyForm = richForm(key, '', walk, depth);
    walk.path.pop();
    walk.path.push({ raw: `<Map value #${index}>` });
    out.set(keyForm, richForm(item, '', walk, depth));
    walk.path.pop();
    index++;
  }
  walk.ancestors.pop();
  return out;
}

function richSet(set: Set<unknown>, walk: RichWalk, depth: number): Set<unknown> {
  const out = new Set<unknown>();
  walk.seen.set(set, out);
  walk.ancestors.push(set);
  let index = 0;
  for (const item of run(walk, 'listing its items', () => [...set])) {
    walk.path.push({ raw: `<Set item #${index}>` });
    out.add(richForm(item, '', walk, depth));
    walk.path.pop();
    index++;
  }
  walk.ancestors.pop();
  return out;
}
