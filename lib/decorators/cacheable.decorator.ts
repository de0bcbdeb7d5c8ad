import type { CacheKeySpec } from '../interfaces/cache-key.interface';
import type {
  CacheCondition,
  CacheableOptions,
  CacheUnless,
} from '../interfaces/cache-operation-options.interface';
import { LOADING_OPTION_FIELDS } from '../config/validators';
import { createKeyResolver } from '../keys/key-resolver';
import { createTagsResolver } from '../keys/tag-resolver';
import { addCacheOperation } from './cached-method';
import { batchSpecOf } from './batch-options';
import { registerInvalidation } from '../invalidation/invalidation.registry';
import type { InvalidationRule } from '../invalidation/invalidation-rule';
import {
  assertKnownOptions,
  checkCacheName,
  checkFunction,
  checkLoading,
  checkTtl,
  normaliseOptions,
} from './decorator-options';

/**
 * Caches the method's result under a key built from its arguments: on a hit the method does
 * not run; on a miss it runs once (concurrent callers share that run) and its result is
 * stored. Works on provider methods and controller handlers, sync or async, and on methods
 * returning an rxjs Observable (its last value is cached; a hit emits it). A decorated method
 * returns a Promise (or an Observable) even if it was written sync.
 *
 * A cache failure never fails the method: it is logged and the method is called. A method
 * that throws caches nothing. With `enabled: false` the decorator is a plain call.
 *
 * @param key a key template (`'product:{id}'`: `{name}` a parameter, `{name.path}` a path
 *   into it, `{0}` a position), a function of the arguments, or a key source such as a
 *   `KeyConstructor`. A placeholder naming no parameter throws when the class is defined.
 * @param options `ttl` (seconds), the loading options — `jitter` (a fraction of the TTL added
 *   at random), `timeouts` (`{ soft, hard }`), `grace` (seconds an expired result is kept to
 *   answer when the method fails or is slow: status `stale`, `X-Cache: STALE`),
 *   `graceBackoff`, `refreshAhead` (a fraction of the TTL after which a hit refreshes in the
 *   background), `lock` (one call across the fleet) —, `tags` (templates rendered from the
 *   arguments like the key, or functions of them: `deleteByTag`, `@CacheEvict({ tags })` and
 *   invalidation rules naming a tag drop the entry), `condition(...args)`, `unless(result)`,
 *   `invalidateOn` (invalidation rules).
 *
 * @example
 * ```ts
 * @Cacheable('product:{productId}', { ttl: 900 })
 * async getProduct(productId: string): Promise<Product | null> { ... }
 *
 * @Cacheable('report:{day}', { ttl: 3600, jitter: 0.1, timeouts: { hard: 5 } })
 * async dailyReport(day: string): Promise<Report> { ... }
 *
 * @Cacheable('rates:{currency}', { ttl: 60, grace: 3600, timeouts: { soft: 0.5 }, lock: true })
 * async rates(currency: string): Promise<Rates> { ... } // a failing upstream serves the last rates
 *
 * @Cacheable({ key: 'search:{query}:page:{page}', unless: (r: unknown[]) => r.length === 0 })
 * async search(query: string, page = 1): Promise<Product[]> { ... } // search('shoes') → 'search:shoes:page:1'
 *
 * @Cacheable({ key: 'product:{id}:{locale}', tags: ['product:{id}', 'products'] })
 * async localized(id: string, locale: string): Promise<Product> { ... } // deleteByTag('product:42') drops every locale
 * ```
 */
export function Cacheable(
  key: CacheKeySpec,
  options?: Omit<CacheableOptions, 'key'>,
): MethodDecorator;
export function Cacheable(options?: CacheableOptions): MethodDecorator;
export function Cacheable(
  keyOrOptions?: CacheKeySpec | CacheableOptions,
  options?: Omit<CacheableOptions, 'key'>,
): MethodDecorator {
  const name = 'Cacheable';
  const resolved = normaliseOptions<CacheableOptions>(name, keyOrOptions, options);
  assertKnownOptions(name, resolved, [
    'key',
    'ttl',
    ...LOADING_OPTION_FIELDS,
    'tags',
    'condition',
    'unless',
    'invalidateOn',
    'cache',
    'batch',
  ]);
  const cache = checkCacheName(name, resolved.cache);
  const ttl = checkTtl(name, resolved.ttl);
  const loading = checkLoading(name, resolved);
  const condition = checkFunction<CacheCondition>(name, 'condition', resolved.condition);
  const unless = checkFunction<CacheUnless>(name, 'unless', resolved.unless);
  return (target, propertyKey, descriptor) => {
    const installed = addCacheOperation(
      name,
      resolved,
      target,
      propertyKey,
      descriptor,
      (signature) => ({
        kind: 'cacheable',
        key: createKeyResolver(resolved.key, signature, { allowResult: false, what: `@${name}` }),
        tags: createTagsResolver(resolved.tags, signature, {
          allowResult: false,
          what: `@${name}`,
        }),
        ttl,
        loading,
        condition,
        unless,
        cache,
        batch: batchSpecOf(name, resolved.batch, signature, resolved.key),
      }),
    );
    // invalidateOn: the rules run in every application that provides this class.
    if (resolved.invalidateOn !== undefined) {
      // Checked there: each entry must come from InvalidationRule(...).
      const rules = resolved.invalidateOn as readonly InvalidationRule[];
      registerInvalidation(target, propertyKey, resolved.key, rules, cache);
    }
    return installed;
  };
}
