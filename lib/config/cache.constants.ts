/** Injection token of the resolved (defaults + environment + user) module options. */
export const CACHE_MODULE_OPTIONS = 'CACHEKIT:MODULE_OPTIONS';

/** Injection token of the named caches (`caches`): a `NamedStacks`. @internal */
export const CACHE_NAMED_STACKS = 'CACHEKIT:NAMED_STACKS';

/**
 * The injection token of a named cache's `CacheService` (what `@InjectCache(name)` injects),
 * for `moduleRef.get(getCacheToken('sessions'))` or a custom provider's `inject`.
 * `getCacheToken('default')` is the module's own cache (`CacheService`).
 *
 * @example
 * ```ts
 * const sessions = app.get<CacheService>(getCacheToken('sessions'));
 * ```
 */
export function getCacheToken(name: string): string {
  return `CACHEKIT:CACHE:${name}`;
}

/** Injection token of the options exactly as the user passed them (before resolution). */
export const CACHE_USER_OPTIONS = 'CACHEKIT:USER_OPTIONS';

/**
 * Injection token of the cache-manager-compatible object (`@Inject(CACHE_MANAGER) cache:
 * Cache`): the same string as `@nestjs/cache-manager`'s token, so either import finds it.
 */
export const CACHE_MANAGER = 'CACHE_MANAGER';

/** Injection token of what `register` kept for `CACHE_MANAGER` (`cacheId`, `refreshThreshold`). */
export const CACHE_MANAGER_SETTINGS = 'CACHEKIT:CACHE_MANAGER_SETTINGS';

// The logger context is defined beside the logger (utils sit below config).
export { CACHE_LOGGER_CONTEXT } from '../utils/rate-limited-logger';

/** Metadata on a decorated method: its `@Cacheable` / `@CachePut` / `@CacheEvict` declarations. */
export const CACHE_OPERATIONS_METADATA = 'CACHEKIT:OPERATIONS';

/** Metadata on a class: names of its methods that carry cache operations (read by the explorer). */
export const CACHE_CLASS_METADATA = 'CACHEKIT:CACHED_METHODS';

/** Metadata of `@CacheKey` (handler or controller): the interceptor's key. */
export const CACHE_KEY_METADATA = 'CACHEKIT:CACHE_KEY';

/** Metadata of `@CacheTTL` (handler or controller): the interceptor's TTL in seconds. */
export const CACHE_TTL_METADATA = 'CACHEKIT:CACHE_TTL';

/** Metadata of `@CachePerUser` (handler or controller): responses are cached per user. */
export const CACHE_PER_USER_METADATA = 'CACHEKIT:CACHE_PER_USER';

/**
 * The `data` of the response argument given to `@Cacheable` route handlers so they can write
 * `X-Cache` (Nest ignores `data` for a response argument): tells it from a declared `@Res()`.
 */
export const INJECTED_RESPONSE = 'cachekit:x-cache-response';
