import { SetMetadata } from '@nestjs/common';
import { CACHE_TTL_METADATA } from '../config/cache.constants';
import { parseTtl, ttlProblem } from '../config/validators';
import { CacheArgumentError } from '../utils/cache.errors';
import { describeValue } from '../utils/describe-value';

import type { CacheTtlFactory } from '../interfaces/cache-route.interface';

export type { CacheTtlFactory };

/**
 * Time-to-live of responses cached by {@link CacheInterceptor}: in **seconds** with
 * `CacheModule.forRoot`, and in **milliseconds** — `@nestjs/cache-manager`'s unit, so a migrated
 * `@CacheTTL(30_000)` keeps meaning 30 s — when the module was built by `CacheModule.register` /
 * `registerAsync`. `0` never expires; fractions are allowed. A string of plain decimal
 * digits (`'60'`, `'1.5'`, as `ConfigService.get` returns from the environment) is read as
 * that many seconds; anything else (`'60s'`, `'1e3'`, `' 60'`) is refused here, at class
 * definition. A function of the execution context may return either, or a Promise of either; a
 * value it returns that is not a TTL leaves the request uncached, with a log line. On a handler
 * or a controller (handler wins); defaults to the module's `ttl`.
 *
 * @example
 * ```ts
 * @Get()
 * @UseInterceptors(CacheInterceptor)
 * @CacheTTL(30)
 * list() { ... }
 *
 * @Get('rates')
 * @UseInterceptors(CacheInterceptor)
 * @CacheTTL(() => config.get<string>('RATES_TTL', '60'))
 * rates() { ... }
 * ```
 */
export function CacheTTL(ttl: CacheTtlFactory): ClassDecorator & MethodDecorator {
  if (typeof ttl === 'function') return SetMetadata(CACHE_TTL_METADATA, ttl);
  const seconds = parseTtl(ttl);
  const problem = ttlProblem(seconds);
  if (problem) {
    throw new CacheArgumentError(
      `@CacheTTL(): invalid ttl ${describeValue(ttl)}; expected ${problem}, or a string of ` +
        'plain decimal digits such as "60".',
    );
  }
  return SetMetadata(CACHE_TTL_METADATA, seconds);
}
