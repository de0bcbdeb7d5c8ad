import { escapeLogLine, quote } from './describe-value';
import { redact } from './redact';

/**
 * Base class of every error this module throws, so callers can catch them as one family.
 * Its message never shows a password (see `redact`) and is one line (see `escapeLogLine`),
 * whatever text was put in it: Nest prints it as a log line when startup fails.
 */
export class CacheError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(escapeLogLine(redact(message)), options);
    this.name = new.target.name;
  }
}

/**
 * Thrown at startup when an option (or its environment variable) holds an invalid value.
 * The message names the option and the rejected value; URLs are shown without passwords.
 */
export class CacheConfigError extends CacheError {}

/**
 * Thrown by `set` (and the decorators' stores) when a value cannot be stored as JSON:
 * circular references, `BigInt`, functions, symbols, `Map`/`Set`, non-finite numbers.
 * The previous entry under the key is left untouched.
 */
export class CacheSerializationError extends CacheError {}

/** Thrown when a call argument is invalid (a TTL that is negative or not a number, ...). */
export class CacheArgumentError extends CacheError {}

/** Thrown when a cache key (or prefix) is not a non-empty string. */
export class CacheKeyError extends CacheArgumentError {}

/** Thrown at startup in `strict` mode when the Redis backend cannot be reached. */
export class CacheConnectionError extends CacheError {}

/**
 * Rejected to a caller of `wrap` (or of a `@Cacheable` method, or a `cacheResult` function)
 * whose loader has not answered within its `timeouts.hard` seconds. The loader is not
 * cancelled: it goes on in the background and its value is stored when it resolves (unless the
 * key was written, deleted or cleared meanwhile), so a later call hits.
 *
 * @example
 * ```ts
 * try {
 *   return await cache.wrap('report', () => buildReport(), { timeouts: { hard: 2 } });
 * } catch (error) {
 *   if (error instanceof CacheLoaderTimeoutError) return placeholderReport();
 *   throw error;
 * }
 * ```
 */
export class CacheLoaderTimeoutError extends CacheError {
  constructor(
    /** The key whose loader did not answer in time. */
    readonly key: string,
    /** The bound the caller waited, in seconds (`timeouts.hard`). */
    readonly timeout: number,
  ) {
    super(
      `The loader of cache key ${quote(key)} did not answer within ${timeout} s ` +
        `(timeouts.hard); it goes on in the background and its value is stored when it resolves.`,
    );
  }
}

/**
 * A bulk read (`getMany`) that failed for some of its keys only (a Cluster node down, a slot
 * moving): `results` holds what was read, in the order of the keys, `undefined` at each index of
 * `failed`. A failure of every key rejects with the plain error instead. Caught by the cache,
 * which answers the failed keys as misses.
 *
 * @internal
 */
export class CachePartialError<T = unknown> extends CacheError {
  constructor(
    message: string,
    /** What was read, in the order of the keys; `undefined` for a miss or a failed key. */
    readonly results: Array<T | undefined>,
    /** The indexes (into the keys) whose read failed. */
    readonly failed: readonly number[],
    /** The first failure. */
    override readonly cause: unknown,
  ) {
    super(message, { cause });
  }
}
