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
 * Gathers the keys whose loads start together (the misses of one `wrapMany`) into one call of the
 * batch loader. Each key's load is announced ({@link expect}) and then asks for its own value
 * ({@link request}), at once or after taking the fleet lock; the loader runs once, on the
 * `setImmediate` after the last announced load has asked (or found another instance's value, or
 * gone to wait for a lock held elsewhere), and each request settles with its key's value (or the
 * loader's error). A key that asks later (it waited for a lock) starts a batch of its own.
 */
export class LoadBatch<T> {
  private pending: Request[] = [];
  /** Keys whose loads started and have not yet asked for their value (nor settled otherwise). */
  private readonly expected = new Set<string>();
  private scheduled = false;
  private fallback: NodeJS.Timeout | undefined;

  /**
   * @param run calls the batch loader with `keys` (the stack marks them as loading in its async
   *   context and counts the run); resolves its result.
   */
  constructor(
    private readonly run: (keys: readonly string[]) => Promise<BatchLoaded<T>>,
    private readonly what: string,
  ) {}

  /**
   * A load of `key` has started and will ask for its value (or {@link settle}): the batch waits
   * for it, so keys whose loads first take the fleet lock (a round trip each, answered by
   * several Cluster nodes at several times) still share one call.
   */
  expect(key: string): void {
    this.expected.add(key);
  }

  /** The load of `key` ended without asking (another instance's value was found). */
  settle(key: string): void {
    if (this.expected.delete(key)) this.schedule();
  }

  /** `key`'s value from the next batch call (`undefined` when the loader left it out). */
  request(key: string): Promise<T | undefined> {
    return new Promise<unknown>((resolve, reject) => {
      this.pending.push({ key, resolve, reject });
      this.expected.delete(key);
      this.schedule();
    }) as Promise<T | undefined>;
  }

  /**
   * Calls the loader on the next `setImmediate` once no expected load is still on its way (a
   * key waiting for a lock another instance holds is not: it settles or asks later, in a batch
   * of its own); at the latest after {@link MAX_WAIT_MS}, however many are.
   */
  private schedule(): void {
    if (this.pending.length === 0) return;
    this.fallback ??= setTimeout(() => this.flush(), MAX_WAIT_MS);
    if (this.scheduled || this.expected.size > 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.expected.size === 0) this.flush();
    });
  }

  private flush(): void {
    clearTimeout(this.fallback);
    this.fallback = undefined;
    const requests = this.pending;
    if (requests.length === 0) return;
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

/**
 * The longest a batch waits for loads still on their way before calling the loader with the keys
 * it has (ms): a bound in case a load ends without asking by a path that does not settle.
 */
const MAX_WAIT_MS = 250;

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
