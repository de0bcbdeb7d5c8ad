import { SetMetadata } from '@nestjs/common';
import { CACHE_KEY_METADATA } from '../config/cache.constants';
import { CacheArgumentError } from '../utils/cache.errors';

import type { CacheKeyFactory } from '../interfaces/cache-route.interface';

export type { CacheKeyFactory };

/**
 * Sets the key under which {@link CacheInterceptor} caches a route's response, instead of the
 * request's host and URL (as in `@nestjs/cache-manager`): a non-empty string, or a function of
 * the execution context returning the key or a Promise of it (`undefined`, `null` or `''`: this
 * request is not cached). On a handler or a controller (handler wins). The key is used as given,
 * without the host: include it in a function's key if the response depends on it. Only requests
 * whose method the interceptor caches (`GET` by default) use it. Requests carrying
 * `Authorization` or `Cookie` still bypass the cache unless the route is also marked
 * {@link CachePerUser}, and HTTP still decides what is stored (status, `Cache-Control`, cookies,
 * `Vary`).
 *
 * @example
 * ```ts
 * @Get('settings')
 * @UseInterceptors(CacheInterceptor)
 * @CacheKey('public-settings')
 * settings() { ... }
 *
 * @Get('products/:id')
 * @UseInterceptors(CacheInterceptor)
 * @CacheKey((context) => `product:${context.switchToHttp().getRequest().params.id}`)
 * product() { ... }
 * ```
 */
export function CacheKey(key: CacheKeyFactory): ClassDecorator & MethodDecorator {
  if ((typeof key !== 'string' || key.length === 0) && typeof key !== 'function') {
    throw new CacheArgumentError(
      '@CacheKey() needs a non-empty string or a function of the context.',
    );
  }
  return SetMetadata(CACHE_KEY_METADATA, key);
}
