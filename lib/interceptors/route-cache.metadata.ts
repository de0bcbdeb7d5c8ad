import type { ExecutionContext, Type } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
// Nest's route metadata keys (also re-exported by discovery/nest-internals.ts, which sits above
// this layer): stable in practice, used by other official modules.
import { HTTP_CODE_METADATA, ROUTE_ARGS_METADATA, SSE_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';
import {
  CACHE_KEY_METADATA,
  CACHE_OPERATIONS_METADATA,
  CACHE_PER_USER_METADATA,
  CACHE_TTL_METADATA,
  INJECTED_RESPONSE,
} from '../config/cache.constants';
import type {
  CacheKeyFactory,
  CachePerUserMetadata,
  CacheTtlFactory,
} from '../interfaces/cache-route.interface';

/** What `@CacheKey`, `@CacheTTL` and `@CachePerUser` say for one route. */
interface RouteCacheDeclarations {
  readonly key: CacheKeyFactory | undefined;
  readonly ttl: CacheTtlFactory | undefined;
  readonly perUser: CachePerUserMetadata | undefined;
}

/**
 * Reads what the cache decorators recorded on a route: handler first, then controller. A
 * route's decorators are read once (per controller class, as a subclass may set other ones),
 * not on every request. The interceptor's reader; the explorer's `CacheMetadataAccessor`
 * extends it.
 */
export class RouteCacheMetadata {
  private readonly routes = new WeakMap<object, WeakMap<object, RouteCacheDeclarations>>();

  constructor(protected readonly reflector: Reflector) {}

  /** The cache decorators on a handler or method, in the order they were applied. */
  getCacheOperations(handler: object): readonly unknown[] {
    return (
      this.reflector.get<unknown[] | undefined>(CACHE_OPERATIONS_METADATA, handler as Type) ?? []
    );
  }

  /** `@CacheKey` of the route (handler, then controller). */
  getCacheKey(context: ExecutionContext): CacheKeyFactory | undefined {
    return this.route(context).key;
  }

  /** `@CacheTTL` of the route (handler, then controller). */
  getCacheTtl(context: ExecutionContext): CacheTtlFactory | undefined {
    return this.route(context).ttl;
  }

  /** `@CachePerUser` of the route (handler, then controller). */
  getPerUser(context: ExecutionContext): CachePerUserMetadata | undefined {
    return this.route(context).perUser;
  }

  /** `true` for `@Sse()` routes, whose Observable is a stream of events, not one response. */
  isServerSentEvents(context: ExecutionContext): boolean {
    return this.reflector.get<boolean | undefined>(SSE_METADATA, context.getHandler()) === true;
  }

  /** The status the handler sets with `@HttpCode()`, if it does. */
  getHttpCode(context: ExecutionContext): number | undefined {
    const code: unknown = this.reflector.get(HTTP_CODE_METADATA, context.getHandler());
    return typeof code === 'number' ? code : undefined;
  }

  /**
   * `true` if the handler takes `@Res()` or `@Next()`: it writes the response itself. The
   * response argument cachekit gives `@Cacheable` handlers for `X-Cache` does not count.
   */
  usesResponseObject(context: ExecutionContext): boolean {
    return declaresResponse(context.getClass(), context.getHandler().name);
  }

  private route(context: ExecutionContext): RouteCacheDeclarations {
    const controller = context.getClass();
    const handler = context.getHandler();
    let byHandler = this.routes.get(controller);
    if (!byHandler) this.routes.set(controller, (byHandler = new WeakMap()));
    let metadata = byHandler.get(handler);
    if (!metadata) {
      const targets = [handler, controller];
      metadata = {
        key: this.reflector.getAllAndOverride(CACHE_KEY_METADATA, targets),
        ttl: this.reflector.getAllAndOverride(CACHE_TTL_METADATA, targets),
        perUser: this.reflector.getAllAndOverride(CACHE_PER_USER_METADATA, targets),
      };
      byHandler.set(handler, metadata);
    }
    return metadata;
  }
}

/**
 * `true` if the handler `name` of `controller` declares `@Res()` or `@Next()` (the response
 * argument cachekit adds for `X-Cache` does not count).
 */
export function declaresResponse(controller: object, name: string | symbol): boolean {
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, name) as
    Record<string, { data?: unknown }> | undefined;
  if (!args) return false;
  const own = [RouteParamtypes.RESPONSE, RouteParamtypes.NEXT].map(String);
  return Object.entries(args).some(
    ([key, arg]) => own.includes(key.split(':')[0]) && arg.data !== INJECTED_RESPONSE,
  );
}
