import { CacheArgumentError } from '../utils/cache.errors';
import { loadingOptionsProblem, parseTtl, ttlProblem } from '../config/validators';
import { loadingCopy } from '../config/load-policy';
import { describeValue } from '../utils/describe-value';
import { assertCacheName } from '../config/named-caches';
import type { CacheKeySpec } from '../interfaces/cache-key.interface';
import type { CacheLoadingOptions } from '../interfaces/cache-module-options.interface';

/** Splits `(key, options)` / `(options)` call forms into one options object. */
export function normaliseOptions<O extends { key?: CacheKeySpec }>(
  decorator: string,
  keyOrOptions: CacheKeySpec | O | undefined,
  options: Omit<O, 'key'> | undefined,
): O {
  if (keyOrOptions === undefined) return { ...(options ?? {}) } as O;
  if (isKey(keyOrOptions)) {
    if (options !== undefined && (typeof options !== 'object' || options === null)) {
      throw new CacheArgumentError(`@${decorator}(key, options): options must be an object.`);
    }
    if (options && 'key' in options) {
      throw new CacheArgumentError(
        `@${decorator}(key, options): give the key once, not again in options.`,
      );
    }
    return { ...(options ?? {}), key: keyOrOptions } as O;
  }
  if (typeof keyOrOptions !== 'object' || keyOrOptions === null) {
    throw new CacheArgumentError(
      `@${decorator}() takes a key template, a key function or an options object; got ${describeValue(keyOrOptions)}.`,
    );
  }
  if (options !== undefined) {
    throw new CacheArgumentError(`@${decorator}(options): pass a single options object.`);
  }
  return { ...keyOrOptions };
}

function isKey(value: unknown): value is CacheKeySpec {
  return (
    typeof value === 'string' ||
    typeof value === 'function' ||
    (typeof value === 'object' &&
      value !== null &&
      typeof (value as { renderArgs?: unknown }).renderArgs === 'function')
  );
}

/** Rejects unknown option names (a typo like `tll` must not pass silently). */
export function assertKnownOptions(
  decorator: string,
  options: object,
  known: readonly string[],
): void {
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      throw new CacheArgumentError(
        `@${decorator}(): unknown option "${name}". Known options: ${known.join(', ')}.`,
      );
    }
  }
}

/** Validates a TTL in seconds given to a decorator. */
export function checkTtl(decorator: string, ttl: unknown): number | undefined {
  if (ttl === undefined) return undefined;
  // A string of plain decimal digits ('60', from ConfigService) is that number of seconds.
  const seconds = parseTtl(ttl);
  const problem = ttlProblem(seconds);
  if (problem) {
    throw new CacheArgumentError(
      `@${decorator}(): invalid ttl ${describeValue(ttl)}; expected ${problem}, or a string of plain decimal digits.`,
    );
  }
  return seconds as number;
}

/**
 * Validates the loading options (`jitter`, `timeouts`, `grace`, `graceBackoff`, `refreshAhead`,
 * `lock`) given to a decorator; returns a frozen copy of those it sets, or `undefined`.
 */
export function checkLoading(
  decorator: string,
  options: CacheLoadingOptions,
): Readonly<CacheLoadingOptions> | undefined {
  const problem = loadingOptionsProblem(options);
  if (problem && 'unknown' in problem) {
    throw new CacheArgumentError(
      `@${decorator}(): unknown option "${problem.unknown}". Known: ${problem.known.join(', ')}.`,
    );
  }
  if (problem) {
    throw new CacheArgumentError(
      `@${decorator}(): invalid ${problem.field} ${describeValue(problem.value)}; expected ${problem.expected}.`,
    );
  }
  return loadingCopy(options);
}

/** Validates the `cache` option: the name of a named cache (checked against the module at startup). */
export function checkCacheName(decorator: string, cache: unknown): string | undefined {
  if (cache === undefined) return undefined;
  try {
    assertCacheName(cache, `@${decorator}({ cache })`);
  } catch (error) {
    throw new CacheArgumentError((error as Error).message);
  }
  return cache;
}

/** Validates an optional callback option. */
export function checkFunction<F>(decorator: string, name: string, value: unknown): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') {
    throw new CacheArgumentError(
      `@${decorator}(): ${name} must be a function, got ${typeof value}.`,
    );
  }
  return value as F;
}
