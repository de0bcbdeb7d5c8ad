import { SetMetadata } from '@nestjs/common';
import { CACHE_PER_USER_METADATA } from '../config/cache.constants';
import { CacheArgumentError } from '../utils/cache.errors';

import type {
  CachePerUserMetadata,
  CacheUserIdentifier,
} from '../interfaces/cache-route.interface';

export type { CachePerUserMetadata, CacheUserIdentifier };

/**
 * Declares that a route's cached responses vary by user, so {@link CacheInterceptor} may cache
 * requests that carry credentials: each user gets their own entry, under
 * `http:user:<id>:<key>`. Without it, a request with an `Authorization`, `Proxy-Authorization`
 * or `Cookie` header is never answered from, nor stored into, the URL cache.
 *
 * The user is identified by `identify(context)` (e.g. `req.user.id`, set by your guard), or by
 * default by a SHA-256 of the request's credential headers. Requests with credentials but no
 * identity are not cached; anonymous requests share one entry.
 *
 * @example
 * ```ts
 * @Get('me/orders')
 * @UseGuards(AuthGuard)
 * @UseInterceptors(CacheInterceptor)
 * @CachePerUser((ctx) => ctx.switchToHttp().getRequest<{ user?: { id: string } }>().user?.id)
 * myOrders() { ... }
 * ```
 */
export function CachePerUser(identify?: CacheUserIdentifier): ClassDecorator & MethodDecorator {
  if (identify !== undefined && typeof identify !== 'function') {
    throw new CacheArgumentError('@CachePerUser() takes an optional function of the context.');
  }
  const metadata: CachePerUserMetadata = { identify };
  return SetMetadata(CACHE_PER_USER_METADATA, metadata);
}
