import { SetMetadata, type ExecutionContext } from '@nestjs/common';
import { CACHE_TTL_METADATA } from '../config/cache.constants';
import { checkTtl } from './decorator-options';

/** Seconds, or a function of the execution context returning seconds. */
export type CacheTtlFactory = number | ((context: ExecutionContext) => number | Promise<number>);

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
