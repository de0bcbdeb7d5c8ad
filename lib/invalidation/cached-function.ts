import { CacheLogger, RateLimitedLogger } from '../utils/rate-limited-logger';
import { CacheConfigError, CacheKeyError } from '../utils/cache.errors';
import { loadingOptionsProblem, parseTtl, ttlProblem } from '../config/validators';
import type { CacheLoadingOptions } from '../interfaces/cache-module-options.interface';
import { loadingCopy } from '../config/load-policy';
import { describeError, describeValue, quote } from '../utils/describe-value';
import { isThenable } from '../utils/thenable';
import { recordCacheStatus } from '../runtime/cache-status';
import { namedStack } from '../runtime/cache-binding';
import { assertCacheName } from '../config/named-caches';
import type { CacheStack, WrapResult } from '../core/cache-stack';
import { KeyConstructor, type KeyFieldValues } from '../keys/key-constructor';
import { parameterNames, withDefaults } from '../keys/key-resolver';
import { createTagsResolver, type TagsResolver } from '../keys/tag-resolver';
import type { CacheTagsSpec } from '../interfaces/cache-operation-options.interface';
import type { MethodSignature } from '../keys/key-template';
import { readParameters } from '../keys/parameter-names';
import {
  attachCachedFunction,
  hostOf,
  registerCachedFunction,
  type CachedFunctionState,
  type InvalidationHost,
} from './cached-function.registry';
import type { CacheInvalidator } from './cache-invalidator.service';
import type { InvalidationRule } from './invalidation-rule';
import { createInvalidationBinding } from './invalidation.registry';

/**
 * Options of {@link cacheResult}.
 *
 * @example
 * ```ts
 * const options: CacheResultOptions<[number], Promise<Payload>> = { key: UserPayloadKey, ttl: 300 };
 * ```
 */
export interface CacheResultOptions<A extends unknown[], R> extends CacheLoadingOptions {
  /**
   * The key: a {@link KeyConstructor} (needed for `invalidateOn` and `invalidatePartition`), or a
   * function of the arguments returning the key (used verbatim).
   */
  key: KeyConstructor | ((...args: A) => string);
  /** Seconds to keep a result; defaults to the module's `ttl`. `0` never expires. */
  ttl?: number | `${number}`;
  /** When it returns `true` for a result, the result is returned but not stored. */
  unless?: (result: Awaited<R>) => boolean;
  /**
   * Tags of each stored result: templates rendered from the arguments like keys
   * (`'product:{id}'`: `{name}`, `{name.path}`, `{0}`; needs the parameter names, read from
   * the source or given as `parameterNames`), functions of the arguments returning one tag, or
   * one function returning them all (see `CacheTagsSpec`). A call whose tags cannot be rendered
   * runs uncached (logged).
   *
   * @example
   * ```ts
   * cacheResult(loadProduct, { key: (id: string) => `product:${id}`, tags: ['product:{id}', 'products'] });
   * ```
   */
  tags?: CacheTagsSpec;
  /**
   * Events that drop this function's entries. A rule with `tags` and no `fieldMapping` works
   * with a function key too (it drops the tagged entries only); the others need a
   * `KeyConstructor` key.
   */
  invalidateOn?: readonly InvalidationRule[];
  /**
   * Parameter names by position, for functions whose source cannot be read (native, bound or
   * minified functions). Read from the function's source when left out.
   */
  parameterNames?: readonly string[];
  /** Name used in logs and errors. @default the function's name */
  name?: string;
  /**
   * The named cache the results live in (a key of the module's `caches`); a name the running
   * application does not configure fails its startup.
   * @default the module's own cache (`'default'`)
   */
  cache?: string;
}

/**
 * A function wrapped by {@link cacheResult} (Restflow's `CachedWrapper`): calling it returns
 * the cached result or runs the function and caches it; concurrent calls with the same
 * arguments share one run.
 *
 * @example
 * ```ts
 * const getUserPayload: CachedFunction<[number], Promise<Payload>> = cacheResult(load, { key: UserPayloadKey });
 * await getUserPayload.invalidate(42);
 * ```
 */
export interface CachedFunction<A extends unknown[], R> {
  (...args: A): Promise<Awaited<R>>;
  /** The key scheme. */
  readonly key: KeyConstructor | ((...args: A) => string);
  /** The key one call would use. */
  keyFor(...args: A): string;
  /** Drops the cached result of these arguments; resolves `true` if there was one. */
  invalidate(...args: A): Promise<boolean>;
  /**
   * Drops every cached result of one partition (`{ userId: 42 }`: all of user 42's entries);
   * resolves how many were dropped. Needs a `KeyConstructor` with partition fields.
   */
  invalidatePartition(values: KeyFieldValues): Promise<number>;
  /** Runs the function now, stores its result (replacing any cached one) and returns it. */
  refresh(...args: A): Promise<Awaited<R>>;
  /**
   * Binds this function to one application's cache and invalidation rules (see
   * {@link CacheInvalidator}); `undefined` goes back to the default application.
   */
  attach(host: CacheInvalidator | undefined): this;
}

/**
 * Caches a plain function — for code outside Nest classes, where decorators cannot go
 * (Restflow's `@cache_result`). Declare it once, at module level.
 *
 * The function uses the cache of the running Nest application: the one whose `CacheModule`
 * started last and has not shut down (one application per process is the norm). Until an
 * application starts, calls run the function uncached (logged once). A process that runs
 * several applications binds a function explicitly with `.attach(app.get(CacheInvalidator))`.
 *
 * @example
 * ```ts
 * export const getUserPayload = cacheResult(
 *   async (userId: number) => expensiveLookup(userId),
 *   {
 *     key: UserPayloadKey,
 *     ttl: 300,
 *     invalidateOn: [InvalidationRule({ event: User, fieldMapping: { userId: 'id' } })],
 *   },
 * );
 *
 * await getUserPayload(42);            // cached under 'users:userId=42:v=1'
 * await getUserPayload.invalidate(42); // drop it
 * await getUserPayload.refresh(42);    // recompute and store
 *
 * export const getProduct = cacheResult(async (id: string) => db.product(id), {
 *   key: (id) => `product:${id}`,
 *   tags: ['product:{id}', 'products'],
 *   invalidateOn: [InvalidationRule({ event: 'product.updated', tags: ['product:{id}'] })],
 * });
 * ```
 */
export function cacheResult<A extends unknown[], R>(
  fn: (...args: A) => R,
  options: CacheResultOptions<A, R>,
): CachedFunction<A, R> {
  if (typeof fn !== 'function') {
    throw new CacheConfigError('cacheResult(fn, options) needs a function to wrap.');
  }
  if (!options || (typeof options.key !== 'function' && !(options.key instanceof KeyConstructor))) {
    throw new CacheConfigError(
      `cacheResult(${fn.name || 'fn'}): options.key must be a KeyConstructor or a function of the arguments.`,
    );
  }
  const name = options.name ?? (fn.name || 'anonymous');
  // A string of plain decimal digits ('60', from ConfigService) is that number of seconds.
  const ttl = options.ttl === undefined ? undefined : (parseTtl(options.ttl) as number);
  const ttlIssue = ttl === undefined ? undefined : ttlProblem(ttl);
  if (ttlIssue) {
    throw new CacheConfigError(
      `cacheResult(${name}): invalid ttl ${describeValue(options.ttl)}; expected ${ttlIssue}, or a string of plain decimal digits.`,
    );
  }
  const { cache: cacheName, ...loadingOptions } = options;
  if (cacheName !== undefined) assertCacheName(cacheName, `cacheResult(${name}, { cache })`);
  const loading = checkLoading(name, loadingOptions);
  const writeOptions =
    options.jitter === undefined && options.grace === undefined
      ? ttl
      : { ttl, jitter: options.jitter, grace: options.grace };
  const { key } = options;
  const signature: MethodSignature = {
    className: '',
    methodName: name,
    parameters: options.parameterNames
      ? options.parameterNames.map((n) => ({ name: n || undefined, rest: false }))
      : readParameters(fn),
  };
  const names = parameterNames(signature);
  if (key instanceof KeyConstructor) {
    if (!names) {
      throw new CacheConfigError(
        `cacheResult(${name}): the function's parameter names cannot be read from its source; ` +
          `pass them as options.parameterNames.`,
      );
    }
    key.assertParameters(names, name);
  }
  let tagsResolver: TagsResolver | undefined;
  try {
    tagsResolver = createTagsResolver(options.tags, signature, {
      allowResult: false,
      what: `cacheResult(${name})`,
    });
  } catch (error) {
    throw new CacheConfigError(`cacheResult(${name}): invalid tags: ${describeError(error)}`);
  }
  const rules = options.invalidateOn ?? [];
  const state: CachedFunctionState = {
    binding: rules.length > 0 ? createInvalidationBinding(name, key, rules, cacheName) : undefined,
    attached: undefined,
    name,
    cache: cacheName,
  };
  let warned = false;

  const keyFor = (args: A): string => {
    const rendered =
      key instanceof KeyConstructor
        ? key.renderArgs(withDefaults(args, signature), names ?? [])
        : key(...args);
    if (typeof rendered !== 'string' || rendered.length === 0) {
      throw new CacheKeyError(
        `cacheResult(${name}): the key function must return a non-empty string.`,
      );
    }
    return rendered;
  };
  const tagsFor = (args: A, self: unknown): readonly string[] | undefined => {
    if (!tagsResolver) return undefined;
    const rendered = tagsResolver.render({
      instance: self ?? {},
      args,
      hasResult: false,
    });
    return rendered.length > 0 ? rendered : undefined;
  };
  const cacheOrWarn = (): CacheStack | undefined => {
    const host = hostOf(state)?.stack;
    const cache = host && namedStack(host, cacheName);
    if (!cache && !warned) {
      warned = true;
      new CacheLogger().warn(
        host
          ? `cacheResult(${name}): its application has no cache ${quote(String(cacheName))}; calling it uncached.`
          : `cacheResult(${name}) was called before any CacheModule started; calling it uncached.`,
      );
    }
    return cache;
  };
  const run = async (self: unknown, args: A): Promise<Awaited<R>> => await fn.apply(self, args);
  const keyLog = new RateLimitedLogger();

  const wrapper = async function (this: unknown, ...args: A): Promise<Awaited<R>> {
    const cache = cacheOrWarn();
    if (!cache) return run(this, args);
    let key: string;
    let tags: readonly string[] | undefined;
    try {
      key = keyFor(args);
      tags = tagsFor(args, this);
    } catch (error) {
      // As the decorators do: a key (or tags) that cannot be built is logged, and the call goes
      // through: an entry stored without one of its tags would escape that tag's invalidation.
      keyLog.warn(
        `cacheResult:${name}`,
        `cacheResult(${name}): its key or tags could not be built, calling through: ${describeError(error)}`,
      );
      return run(this, args);
    }
    // Reported like a @Cacheable call, so X-Cache reflects it (CacheStatusInterceptor, ...).
    return cache
      .wrap<Awaited<R>>(
        key,
        () => run(this, args),
        { ...loading, ttl, unless: options.unless, tags },
        true,
        true,
      )
      .then<Awaited<R>>(reported);
  } as CachedFunction<A, R>;

  Object.defineProperty(wrapper, 'name', { value: name });
  Object.defineProperties(wrapper, {
    key: { value: key, enumerable: true },
    keyFor: { value: (...args: A) => keyFor(args) },
    invalidate: {
      value: async (...args: A) => (await cacheOrWarn()?.delete(keyFor(args))) ?? false,
    },
    invalidatePartition: {
      value: async (values: KeyFieldValues) => {
        if (!(key instanceof KeyConstructor)) {
          throw new CacheKeyError(
            `cacheResult(${name}).invalidatePartition needs a KeyConstructor key.`,
          );
        }
        const prefix = key.partition(values);
        return (await cacheOrWarn()?.deleteByPrefix(prefix)) ?? 0;
      },
    },
    refresh: {
      value: async function (this: unknown, ...args: A): Promise<Awaited<R>> {
        const cache = cacheOrWarn();
        const value = await run(this, args);
        if (!cache || value === undefined || vetoed(keyLog, name, options.unless, value))
          return value;
        let key: string | undefined;
        try {
          key = keyFor(args);
          let tags: readonly string[] | undefined;
          try {
            tags = tagsFor(args, this);
          } catch (error) {
            // Not stored without its tags; the old entry goes below.
            throw new CacheKeyError(`its tags could not be built: ${describeError(error)}`);
          }
          await cache.set(
            key,
            value,
            tags === undefined
              ? writeOptions
              : { ttl, jitter: options.jitter, grace: options.grace, tags },
          );
        } catch (error) {
          // As a call's write: a result that cannot be cached is logged, and still returned;
          // the old entry no longer describes the data, so it goes (as @CachePut does).
          keyLog.warn(
            `cacheResult:${name}`,
            `cacheResult(${name}): its result was not stored` +
              `${key === undefined ? '' : `, entry ${quote(key)} deleted`}: ${describeError(error)}`,
          );
          if (key !== undefined) await cache.delete(key).catch(() => undefined);
        }
        return value;
      },
    },
    attach: {
      value(host: InvalidationHost | undefined) {
        attachCachedFunction(state, host);
        return wrapper;
      },
    },
  });
  registerCachedFunction(state);
  return wrapper;
}

/** The loading options checked (`CacheConfigError` naming the function) and copied. */
function checkLoading(
  name: string,
  options: CacheLoadingOptions,
): Readonly<CacheLoadingOptions> | undefined {
  const problem = loadingOptionsProblem(options);
  if (problem && 'unknown' in problem) {
    throw new CacheConfigError(
      `cacheResult(${name}): unknown option "${problem.unknown}". Known: ${problem.known.join(', ')}.`,
    );
  }
  if (problem) {
    throw new CacheConfigError(
      `cacheResult(${name}): invalid ${problem.field} ${describeValue(problem.value)}; expected ${problem.expected}.`,
    );
  }
  return loadingCopy(options);
}

/**
 * Whether `unless` keeps `value` out of the cache: when it says so, throws, or returns a
 * Promise (it must be synchronous; the Promise's rejection is absorbed), the last two logged.
 */
function vetoed<T>(
  keyLog: RateLimitedLogger,
  name: string,
  unless: ((value: T) => boolean) | undefined,
  value: T,
): boolean {
  if (!unless) return false;
  let verdict: unknown;
  try {
    verdict = unless(value);
  } catch (error) {
    keyLog.warn(
      `cacheResult:${name}`,
      `cacheResult(${name}): its unless threw (${describeError(error)}); not stored`,
    );
    return true;
  }
  if (isThenable(verdict)) {
    keyLog.warn(
      `cacheResult:${name}`,
      `cacheResult(${name}): its unless returned a Promise (it must be synchronous); not stored`,
    );
    return true;
  }
  return Boolean(verdict);
}

/** Tells the request being handled, if any, how a cached call was answered. */
function reported<T>(result: WrapResult<T>): T {
  recordCacheStatus(result.status);
  return result.value;
}
