import type {
  CacheModuleOptions,
  CacheNamedOptions,
  CacheRedisOptions,
} from '../interfaces/cache-module-options.interface';
import { CacheConfigError } from '../utils/cache.errors';
import { resolveCacheOptions, type ResolvedCacheOptions } from './cache-options.resolver';
import { describeConfigValue, invalidOption } from './validators';

/** The name of the module's own cache in events, stats, metrics and error messages. @internal */
export const DEFAULT_CACHE_NAME = 'default';

// Letters, digits, '_' and '-': the name goes into the default namespace (`<root>.<name>`), log
// lines and metric attributes as it is. '.' is left out so `<root>.<name>` is one segment.
const CACHE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Options set once for the whole module, refused in a named cache. */
const MODULE_WIDE: ReadonlySet<string> = new Set([
  'isGlobal',
  'caches',
  'invalidation',
  'metrics',
  'eventEmitter',
]);

/** Options of a Redis-backed cache, not inherited by a named cache that uses the memory store. */
const REDIS_ONLY: readonly string[] = ['redis', 'failover', 'l1', 'bus', 'strict'];

/**
 * The named caches of `user.caches`, each resolved over the root's options: what it sets wins,
 * what it leaves out is the root's (as given, so the environment and the defaults fill it the
 * same way), except `adapter` (an instance serves one cache) and, for a cache that switches to
 * the memory store, the Redis-only options. Its namespace defaults to `<root>.<name>`, which
 * cannot overlap another (a namespace holds no ':'). Throws {@link CacheConfigError} naming
 * `caches.<name>.<option>`, and when two caches of one store share a namespace.
 * @internal
 */
export function resolveNamedCaches(
  user: CacheModuleOptions,
  root: ResolvedCacheOptions,
  env: Record<string, string | undefined> = process.env,
): ReadonlyMap<string, ResolvedCacheOptions> {
  const named = new Map<string, ResolvedCacheOptions>();
  const caches: unknown = user?.caches;
  if (caches === undefined) return named;
  if (caches === null || typeof caches !== 'object' || Array.isArray(caches)) {
    throw invalidOption(
      'caches',
      caches,
      'an object of named caches such as { sessions: { ttl: 1800 } }',
    );
  }
  for (const [name, given] of Object.entries(caches as Record<string, unknown>)) {
    assertCacheName(name);
    if (given === null || typeof given !== 'object' || Array.isArray(given)) {
      throw invalidOption(
        `caches.${name}`,
        given,
        'an object of cache options such as { ttl: 1800 }',
      );
    }
    for (const option of Object.keys(given)) {
      if (MODULE_WIDE.has(option)) {
        throw new CacheConfigError(
          `Invalid CacheModule option "caches.${name}.${option}": ${option} applies to the whole ` +
            `module (every cache); set it at the root of the options, not per cache.`,
        );
      }
    }
    const own = given as CacheNamedOptions;
    const merged: Record<string, unknown> = {};
    for (const [option, value] of Object.entries(user)) {
      if (!MODULE_WIDE.has(option) && option !== 'adapter' && option !== 'namespace') {
        merged[option] = value;
      }
    }
    if ((own.provider ?? root.provider) === 'memory' && own.adapter === undefined) {
      // The memory store takes none of them; `false` so CACHE_L1 does not switch L1 on either.
      for (const option of REDIS_ONLY) delete merged[option];
      merged.l1 = false;
    }
    // An adapter of the cache's own writes with its own serializer (the option must be left out).
    if (own.adapter !== undefined) delete merged.serializer;
    Object.assign(merged, own);
    // A bus needs an L1: a cache that turns its L1 off drops the root's bus with it.
    if (own.l1 === false && own.bus === undefined) delete merged.bus;
    const redis = mergedRedis(user.redis, own.redis);
    if (redis !== undefined) merged.redis = redis;
    merged.namespace = own.namespace ?? `${root.namespace}.${name}`;
    try {
      named.set(name, resolveCacheOptions(merged, env));
    } catch (error) {
      throw asNamedError(name, error);
    }
  }
  assertDistinctNamespaces(root, named);
  return named;
}

/** Fields of `redis` that say which server (or client) to use. */
const REDIS_TARGET = ['url', 'host', 'port', 'path', 'sentinels', 'cluster', 'client'];

/**
 * A cache's `redis` that names no server (`{ db: 3 }`, a `keyPrefix`, timeouts) adds to the
 * root's, field by field, rather than replacing it (and losing its URL); `undefined`: keep the
 * cache's own (or inherited) `redis` as it is.
 */
function mergedRedis(root: unknown, own: unknown): CacheRedisOptions | undefined {
  if (own === undefined || root === undefined) return undefined;
  if (own === null || typeof own !== 'object' || root === null || typeof root !== 'object') {
    return undefined;
  }
  const targets = (value: object) => REDIS_TARGET.some((field) => field in value);
  if (targets(own) || 'client' in root || 'cluster' in root) return undefined;
  return { ...root, ...own };
}

/** Throws {@link CacheConfigError} unless `name` may name a cache. @internal */
export function assertCacheName(name: unknown, where = 'caches'): asserts name is string {
  if (typeof name === 'string' && CACHE_NAME.test(name) && name !== DEFAULT_CACHE_NAME) return;
  throw new CacheConfigError(
    `Invalid cache name ${describeConfigValue(name)} in ${where}: expected 1 to 64 letters, ` +
      `digits, '_' or '-', other than '${DEFAULT_CACHE_NAME}' (the module's own cache).`,
  );
}

/** The resolver's error about a merged option, re-worded to name `caches.<name>.<option>`. */
export function asNamedError(name: string, error: unknown): unknown {
  if (!(error instanceof CacheConfigError)) return error;
  const message = error.message.includes('CacheModule option "')
    ? error.message.replace(/CacheModule option "/g, `CacheModule option "caches.${name}.`)
    : `caches.${name}: ${error.message}`;
  return new CacheConfigError(message, { cause: error });
}

/**
 * Two caches writing one store under one namespace would read each other's entries, and one's
 * `clear()` (a SCAN of `namespace:*`) would delete the other's; and within one application a
 * namespace is what names a cache to the invalidator (a job applies to the cache whose
 * namespace it carries), to the bus and to the tag clock. So every cache of an application has
 * a namespace of its own, whatever its store (two URLs may reach one server): refused, naming
 * both.
 */
function assertDistinctNamespaces(
  root: ResolvedCacheOptions,
  named: ReadonlyMap<string, ResolvedCacheOptions>,
): void {
  const seen = new Map<string, string>();
  const all: Array<[string, ResolvedCacheOptions]> = [['namespace', root]];
  for (const [name, options] of named) all.push([`caches.${name}.namespace`, options]);
  for (const [option, options] of all) {
    const other = seen.get(options.namespace);
    if (other !== undefined) {
      throw new CacheConfigError(
        `CacheModule options "${other}" and "${option}" are both ${JSON.stringify(options.namespace)}: ` +
          `two caches of one application would read each other's entries (on one store), clear() ` +
          `of one would delete the other's, and invalidations would reach only one of them. ` +
          `Give each cache its own namespace (a named cache's default, <root namespace>.<name>, ` +
          `never overlaps).`,
      );
    }
    seen.set(options.namespace, option);
  }
}

const identities = new WeakMap<object, number>();
let nextIdentity = 0;

function identity(value: object): string {
  let id = identities.get(value);
  if (id === undefined) identities.set(value, (id = ++nextIdentity));
  return `#${id}`;
}

/**
 * A key equal for two Redis settings exactly when they open the same connection: the same URL
 * and options, field by field (functions, class instances and clients by identity), so caches
 * that inherit the root's `redis` share its connection.
 * @internal
 */
export function redisConnectionKey(redis: CacheRedisOptions): string {
  return stable(redis);
}

function stable(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return identity(value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return identity(value);
  const fields = Object.keys(value)
    .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${stable((value as Record<string, unknown>)[key])}`);
  return `{${fields.join(',')}}`;
}
