import { CacheArgumentError } from '../utils/cache.errors';
import type { CacheEvictOperation } from '../runtime/cache-operations';
import type { CacheKeySpec } from '../interfaces/cache-key.interface';
import type {
  CacheCondition,
  CacheEvictOptions,
} from '../interfaces/cache-operation-options.interface';
import { createKeyResolver } from '../keys/key-resolver';
import { createTagsResolver } from '../keys/tag-resolver';
import type { MethodSignature } from '../keys/key-template';
import { addCacheOperation } from './cached-method';
import {
  assertKnownOptions,
  checkCacheName,
  checkFunction,
  normaliseOptions,
} from './decorator-options';

/**
 * Runs the method, then deletes cache entries: one `key`, every key under a `prefix`, every
 * entry carrying one of `tags` (`CacheService.deleteByTag`; templates rendered from the
 * arguments like keys, `{result}` too after invocation), or the whole namespace with
 * `allEntries: true` — one of them per decorator. With `beforeInvocation: true` the entries are
 * deleted before the method runs (and so even if it throws); otherwise a method that throws
 * evicts nothing. Several `@CacheEvict` may be stacked on one method (to drop a key and a tag,
 * stack two).
 *
 * @example
 * ```ts
 * @CacheEvict({ key: 'product:{productId}' })
 * @CacheEvict({ prefix: 'products:' })
 * async deleteProduct(productId: string): Promise<void> { ... }
 *
 * @CacheEvict({ allEntries: true })
 * async clearCatalog(): Promise<void> { ... }
 *
 * @CacheEvict({ tags: ['product:{productId}', 'products'] })
 * async updateProduct(productId: string, patch: Partial<Product>): Promise<void> { ... }
 * ```
 */
export function CacheEvict(
  key: CacheKeySpec,
  options?: Omit<CacheEvictOptions, 'key'>,
): MethodDecorator;
export function CacheEvict(options?: CacheEvictOptions): MethodDecorator;
export function CacheEvict(
  keyOrOptions?: CacheKeySpec | CacheEvictOptions,
  options?: Omit<CacheEvictOptions, 'key'>,
): MethodDecorator {
  const name = 'CacheEvict';
  const resolved = normaliseOptions<CacheEvictOptions>(name, keyOrOptions, options);
  assertKnownOptions(name, resolved, [
    'key',
    'prefix',
    'allEntries',
    'tags',
    'beforeInvocation',
    'condition',
    'cache',
  ]);
  const cache = checkCacheName(name, resolved.cache);
  const condition = checkFunction<CacheCondition>(name, 'condition', resolved.condition);
  const targets = [
    resolved.key !== undefined && 'key',
    resolved.prefix !== undefined && 'prefix',
    resolved.allEntries === true && 'allEntries',
    resolved.tags !== undefined && 'tags',
  ].filter(Boolean);
  if (targets.length > 1) {
    throw new CacheArgumentError(
      `@${name}(): give only one of key, prefix, allEntries and tags (got ${targets.join(' and ')}); ` +
        `stack several @${name} to drop several.`,
    );
  }
  for (const flag of ['allEntries', 'beforeInvocation'] as const) {
    if (resolved[flag] !== undefined && typeof resolved[flag] !== 'boolean') {
      throw new CacheArgumentError(`@${name}(): ${flag} must be a boolean.`);
    }
  }
  const beforeInvocation = resolved.beforeInvocation === true;
  const what = `@${name}`;
  const target = (signature: MethodSignature): CacheEvictOperation['target'] => {
    if (resolved.allEntries === true) return { type: 'all' };
    const allowResult = !beforeInvocation;
    if (resolved.tags !== undefined) {
      const tags = createTagsResolver(resolved.tags, signature, { allowResult, what });
      if (!tags) throw new CacheArgumentError(`@${name}(): tags must name at least one tag.`);
      return { type: 'tags', tags };
    }
    if (resolved.prefix !== undefined) {
      if (typeof resolved.prefix !== 'string' && typeof resolved.prefix !== 'function') {
        throw new CacheArgumentError(`@${name}(): prefix must be a template string or a function.`);
      }
      return {
        type: 'prefix',
        prefix: createKeyResolver(resolved.prefix, signature, { allowResult, what }),
      };
    }
    return { type: 'key', key: createKeyResolver(resolved.key, signature, { allowResult, what }) };
  };
  return (targetObject, propertyKey, descriptor) =>
    addCacheOperation(name, resolved, targetObject, propertyKey, descriptor, (signature) => ({
      kind: 'evict',
      target: target(signature),
      beforeInvocation,
      condition,
      cache,
    }));
}
