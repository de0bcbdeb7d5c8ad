import { CacheArgumentError } from '../utils/cache.errors';
import { describeValue } from '../utils/describe-value';
import { asError } from '../utils/timeout';

/**
 * What a batch loader may resolve for the keys it was given: their values in the same order (an
 * `undefined` element: that key has no value), a `Map` by key, or a plain object by key (a key it
 * leaves out has no value).
 */
export type BatchLoaded<T> =
  | ReadonlyArray<T | undefined>
  | ReadonlyMap<string, T | undefined>
  | Readonly<Record<string, T | undefined>>;

interface Request {
  readonly key: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Gathers the keys whose loads start together (the misses of one `wrapMany`, decided within the
 * same turn of the event loop) into one call of the batch loader. Each key's load asks for its
 * own value with {@link request}; the loader runs once, on the next `setImmediate`, with every key
 * asked for by then, and each request settles with its key's value (or the loader's error). A
 * key asked for later (a load that first waited for the fleet lock) starts the next batch.
 */
export class LoadBatch<T> {
  private pending: Request[] = [];

  /**
   * @param run calls the batch loader with `keys` (the stack marks them as loading in its async
   *   context and counts the run); resolves its result.
   */
  constructor(
    private readonly run: (keys: readonly string[]) => Promise<BatchLoaded<T>>,
    private readonly what: string,
  ) {}

  /** `key`'s value from the next batch call (`undefined` when the loader left it out). */
  request(key: string): Promise<T | undefined> {
    return new Promise<unknown>((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => this.flush());
      this.pending.push({ key, resolve, reject });
    }) as Promise<T | undefined>;
  }

  private flush(): void {
    const requests = this.pending;
    this.pending = [];
    const keys = requests.map((request) => request.key);
    let loaded: Promise<BatchLoaded<T>>;
    try {
      loaded = this.run(keys);
    } catch (error) {
      loaded = Promise.reject(asError(error));
    }
    loaded.then(
      (result) => {
        let values: ReadonlyArray<T | undefined>;
        try {
          values = valuesOf(result, keys, this.what);
        } catch (error) {
          for (const request of requests) request.reject(error);
          return;
        }
        requests.forEach((request, i) => request.resolve(values[i]));
      },
      (error: unknown) => {
        for (const request of requests) request.reject(error);
      },
    );
  }
}

/** The values of `keys`, in their order, from what a batch loader resolved. */
export function valuesOf<T>(
  result: BatchLoaded<T>,
  keys: readonly string[],
  what: string,
): ReadonlyArray<T | undefined> {
  if (Array.isArray(result)) {
    if (result.length !== keys.length) {
      throw new CacheArgumentError(
        `${what} resolved ${result.length} values for ${keys.length} keys: resolve an array in ` +
          `the order of the keys it was given (undefined for a key without a value), a Map by ` +
          `key, or an object by key.`,
      );
    }
    return result as ReadonlyArray<T | undefined>;
  }
  if (result instanceof Map) {
    const map = result as ReadonlyMap<string, T | undefined>;
    return keys.map((key) => map.get(key));
  }
  if (typeof result === 'object' && result !== null && !isIterable(result)) {
    const record = result as Readonly<Record<string, T | undefined>>;
    return keys.map((key) => (Object.hasOwn(record, key) ? record[key] : undefined));
  }
  throw new CacheArgumentError(
    `${what} must resolve an array in the order of the keys it was given, a Map by key, or an ` +
      `object by key; got ${describeValue(result)}.`,
  );
}

function isIterable(value: object): boolean {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}
