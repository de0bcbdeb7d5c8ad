import type { CacheKeySpec } from '../interfaces/cache-key.interface';
import type {
  CacheCondition,
  CachePutOptions,
  CacheUnless,
} from '../interfaces/cache-operation-options.interface';
import { createKeyResolver } from '../keys/key-resolver';
import { createTagsResolver } from '../keys/tag-resolver';
import { addCacheOperation } from './cached-method';
import {
  assertKnownOptions,
  checkFunction,
  checkCacheName,
  checkLoading,
  checkTtl,
  normaliseOptions,
} from './decorator-options';

/**
 * Always runs the method, then stores its result under the key, so the next `@Cacheable`
 * read of that key sees the new value (use it on create/update methods). The key is rendered
 * after the call, so `{result}` / `{result.id}` can name a generated id. A result of
 * `undefined` deletes the key instead (there is nothing to store, and the old entry is stale).
 * A method that throws stores nothing. With `tags` (templates that may read `{result}` too),
 * the result is stored with them; give the tags the `@Cacheable` of the same key gives. A tag
 * that cannot be rendered stores nothing and deletes the key's entry (logged).
 *
 * @example
 * ```ts
 * @CachePut({ key: 'product:{productId}', ttl: 900, jitter: 0.1 }) // stored for 900 to 990 s
 * async updateProduct(productId: string, data: Partial<Product>): Promise<Product> { ... }
 *
 * @CachePut('product:{result.productId}', { tags: ['product:{result.productId}', 'products'] })
 * async createProduct(input: NewProduct): Promise<Product> { ... }
 * ```
 */
export function CachePut(
  key: CacheKeySpec,
  options?: Omit<CachePutOptions, 'key'>,
): MethodDecorator;
export function CachePut(options?: CachePutOptions): MethodDecorator;
export function CachePut(
  keyOrOptions?: CacheKeySpec | CachePutOptions,
  options?: Omit<CachePutOptions, 'key'>,
): MethodDecorator {
  const name = 'CachePut';
  const resolved = normaliseOptions<CachePutOptions>(name, keyOrOptions, options);
  assertKnownOptions(name, resolved, [
    'key',
    'ttl',
    'jitter',
    'grace',
    'tags',
    'condition',
    'unless',
    'cache',
  ]);
  const cache = checkCacheName(name, resolved.cache);
  const ttl = checkTtl(name, resolved.ttl);
  const { jitter, grace } =
    checkLoading(name, { jitter: resolved.jitter, grace: resolved.grace }) ?? {};
  const condition = checkFunction<CacheCondition>(name, 'condition', resolved.condition);
  const unless = checkFunction<CacheUnless>(name, 'unless', resolved.unless);
  return (target, propertyKey, descriptor) =>
    addCacheOperation(name, resolved, target, propertyKey, descriptor, (signature) => ({
      kind: 'put',
      key: createKeyResolver(resolved.key, signature, { allowResult: true, what: `@${name}` }),
      tags: createTagsResolver(resolved.tags, signature, { allowResult: true, what: `@${name}` }),
      ttl,
      jitter,
      grace,
      condition,
      unless,
      cache,
    }));
}
