import type { CacheStack, WrapManyOptions } from '../core/cache-stack';
import type { MethodCall } from '../keys/key-resolver';
import { CacheArgumentError } from '../utils/cache.errors';
import { describeValue } from '../utils/describe-value';

/** How a `@Cacheable({ batch })` method takes its ids and returns its values (compiled). */
export interface BatchSpec {
  /** The position of the parameter holding the list of ids. */
  readonly index: number;
  /**
   * What the method returns: `array`, its values in the order of the ids it was given; `map`, a
   * `Map` from id to value; `items`, items in any order, each carrying its id (read by `idOf`).
   */
  readonly shape: 'array' | 'map' | 'items';
  /** With `items`: the id an item carries. */
  readonly idOf?: (item: unknown) => unknown;
}

/** What a batch call needs of its decorated method (see `cache-operations.ts`). */
export interface BatchCall {
  readonly cache: CacheStack;
  /** `Class.method`, for error messages. */
  readonly name: string;
  readonly instance: object;
  readonly args: readonly unknown[];
  readonly spec: BatchSpec;
  /** Renders the key of one id's entry (the list argument replaced by the id), or `undefined`. */
  readonly key: (call: MethodCall) => string | undefined;
  /** Renders the tags of one id's entry: `undefined` without tags, `null` when they fail. */
  readonly tags: (call: MethodCall) => string[] | undefined | null;
  /** Runs the method with these arguments and resolves its result (an Observable's last value). */
  readonly invoke: (args: unknown[]) => Promise<unknown>;
  readonly options: WrapManyOptions<unknown>;
}

/**
 * Runs a `@Cacheable({ batch })` call: renders one key per id, reads them all at once, calls the
 * method once with only the ids that missed (the other arguments unchanged), stores each value
 * under its own id's key, and answers in the method's own shape for the whole list. Resolves
 * `undefined` when the call cannot be cached (the list is not an array, a key or tags cannot be
 * rendered): the caller then runs the method as it is.
 *
 * Resolves `{ value, loaded }`: `loaded` tells whether the method ran (for `X-Cache`).
 */
export async function runBatch(
  call: BatchCall,
): Promise<{ value: unknown; loaded: boolean } | undefined> {
  const { spec, args, instance } = call;
  const list = args[spec.index];
  if (!Array.isArray(list)) return undefined;
  const keys: string[] = [];
  // Each key's first id (ids rendering to one key are one entry), and its tags.
  const idOfKey = new Map<string, unknown>();
  const tagsOfKey = new Map<string, readonly string[] | undefined>();
  for (const id of list) {
    const one: MethodCall = { instance, args: withArg(args, spec.index, id), hasResult: false };
    const key = call.key(one);
    if (key === undefined) return undefined;
    const tags = call.tags(one);
    if (tags === null) return undefined;
    keys.push(key);
    if (!idOfKey.has(key)) {
      idOfKey.set(key, id);
      tagsOfKey.set(key, tags);
    }
  }
  let loaded = false;
  const load = async (missing: string[]): Promise<Map<string, unknown>> => {
    loaded = true;
    const ids = missing.map((key) => idOfKey.get(key));
    // The method gets its own copy: one that sorts or splices its ids must not move the values
    // matched by position (or by id) onto other ids' keys.
    const result = await call.invoke(withArg(args, spec.index, ids.slice()));
    // An id that is an object (a composite id) is matched by the key it renders.
    const keyOf = (id: unknown): string | undefined =>
      call.key({ instance, args: withArg(args, spec.index, id), hasResult: false });
    return byKey(result, ids, missing, call, keyOf);
  };
  const hasTags = [...tagsOfKey.values()].some((tags) => tags !== undefined);
  const options: WrapManyOptions<unknown> = hasTags
    ? { ...call.options, tags: (key) => tagsOfKey.get(key) ?? [] }
    : call.options;
  const results = await call.cache.wrapManyResults(keys, load, options);
  const values = results.map((result) => result.value);
  // Joined another caller's load (`shared`): loaded too, as the single form reports it.
  if (results.some((result) => result.status === 'shared')) loaded = true;
  return { value: shaped(values, list, keys, spec), loaded };
}

/** `args` with the one at `index` replaced by `value`. */
function withArg(args: readonly unknown[], index: number, value: unknown): unknown[] {
  const out = args.slice();
  out[index] = value;
  return out;
}

/** The method's result for `ids` (whose keys are `keys`), as values by key. */
function byKey(
  result: unknown,
  ids: readonly unknown[],
  keys: readonly string[],
  call: BatchCall,
  keyOf: (id: unknown) => string | undefined,
): Map<string, unknown> {
  const values = new Map<string, unknown>();
  const { spec } = call;
  // Ids as given, and primitive ids by their text.
  const known: KnownIds = { exact: new Map(), text: new Map() };
  ids.forEach((id, i) => {
    if (!known.exact.has(id)) known.exact.set(id, keys[i]);
    if (isPrimitive(id) && !known.text.has(String(id))) known.text.set(String(id), keys[i]);
  });
  if (spec.shape === 'array') {
    if (!Array.isArray(result) || result.length !== ids.length) {
      throw shapeError(
        call,
        `an array of ${ids.length} values, in the order of the ids it was given`,
        result,
        `(or set batch: { by: 'id' } for items in any order, batch: { map: true } for a Map)`,
      );
    }
    keys.forEach((key, i) => values.set(key, result[i]));
    return values;
  }
  if (spec.shape === 'map') {
    if (!(result instanceof Map)) throw shapeError(call, 'a Map from id to value', result);
    // An id as given first; then the entries that name an id another way.
    keys.forEach((key, i) => {
      if (result.has(ids[i])) values.set(key, result.get(ids[i]));
    });
    const asked = new Set(keys);
    for (const [id, value] of result as Map<unknown, unknown>) {
      const key = keyOfItem(id, known, keyOf, asked);
      if (key !== undefined && !values.has(key)) values.set(key, value);
    }
    return values;
  }
  if (!Array.isArray(result)) throw shapeError(call, 'an array of items', result);
  const asked = new Set(keys);
  const idOf = spec.idOf as (item: unknown) => unknown;
  for (const item of result) {
    if (item === undefined || item === null) continue;
    const key = keyOfItem(idOf(item), known, keyOf, asked);
    if (key !== undefined && !values.has(key)) values.set(key, item);
  }
  return values;
}

/** The keys of the ids a batch asked for: by the id itself, and a primitive id by its text. */
interface KnownIds {
  readonly exact: Map<unknown, string>;
  readonly text: Map<string, string>;
}

function isPrimitive(id: unknown): boolean {
  return id === null || (typeof id !== 'object' && typeof id !== 'function');
}

/**
 * The key of the id a result names: as given, or by its text for a primitive (a numeric id the
 * database returns as a string, or the reverse); an object id by the key it renders. Never
 * another id's key: `'[object Object]'` is no id's text.
 */
function keyOfItem(
  id: unknown,
  known: KnownIds,
  keyOf: (id: unknown) => string | undefined,
  asked: ReadonlySet<string>,
): string | undefined {
  const exact = known.exact.get(id);
  if (exact !== undefined) return exact;
  if (isPrimitive(id)) return known.text.get(String(id));
  let rendered: string | undefined;
  try {
    rendered = keyOf(id);
  } catch {
    return undefined;
  }
  return rendered !== undefined && asked.has(rendered) ? rendered : undefined;
}

/** The answer for the whole `list`, in the method's shape. */
function shaped(
  values: ReadonlyArray<unknown>,
  list: readonly unknown[],
  keys: readonly string[],
  spec: BatchSpec,
): unknown {
  if (spec.shape === 'array') return values.slice();
  if (spec.shape === 'map') {
    const map = new Map<unknown, unknown>();
    list.forEach((id, i) => {
      if (values[i] !== undefined && !map.has(id)) map.set(id, values[i]);
    });
    return map;
  }
  const seen = new Set<string>();
  const items: unknown[] = [];
  keys.forEach((key, i) => {
    if (values[i] === undefined || seen.has(key)) return;
    seen.add(key);
    items.push(values[i]);
  });
  return items;
}

function shapeError(call: BatchCall, expected: string, got: unknown, hint = ''): Error {
  return new CacheArgumentError(
    `${call.name} (@Cacheable batch) must return ${expected}; got ${describeValue(got)}` +
      (Array.isArray(got) ? ` of length ${got.length}` : '') +
      (hint ? ` ${hint}` : '') +
      '.',
  );
}
