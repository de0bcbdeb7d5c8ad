import { SetMetadata } from '@nestjs/common';
import { CACHE_TTL_METADATA } from '../config/cache.constants';
import { checkTtl } from './decorator-options';

import type { CacheTtlFactory } from '../interfaces/cache-route.interface';

export type { CacheTtlFactory };

/**
 * Time-to-live of responses cached by {@link CacheInterceptor}, in **seconds** (unlike
 * `@nestjs/cache-manager` v5+, which takes milliseconds); `0` never expires. On a handler or
 * a controller (handler wins); defaults to the module's `ttl`.
 *
 * @example
 * ```ts
 * @Get()
 * @UseInterceptors(CacheInterceptor)
 * @CacheTTL(30)
 * list() { ... }
 * ```
 */
export function CacheTTL(ttl: CacheTtlFactory): ClassDecorator & MethodDecorator {
  if (typeof ttl !== 'function') checkTtl('CacheTTL', ttl);
  return SetMetadata(CACHE_TTL_METADATA, ttl);
}
