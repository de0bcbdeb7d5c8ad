import { Injectable, type ExecutionContext, type Type } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  CACHE_CLASS_METADATA,
  CACHE_KEY_METADATA,
  CACHE_OPERATIONS_METADATA,
  CACHE_PER_USER_METADATA,
  CACHE_TTL_METADATA,
} from './cache.constants';
import type { CacheKeyFactory } from './decorators/cache-key.decorator';
import type { CachePerUserMetadata } from './decorators/cache-per-user.decorator';
import type { CacheTtlFactory } from './decorators/cache-ttl.decorator';
import type { CacheOperationMetadata } from './decorators/cached-method';
import { ROUTE_ARGS_METADATA, RouteParamtypes, SSE_METADATA } from './nest-internals';

/**
 * Reads what the cache decorators recorded: handler first, then class. The explorer and the
 * interceptor read metadata only through this class.
 */
@Injectable()
export class CacheMetadataAccessor {
  constructor(private readonly reflector: Reflector) {}

  /** `true` if `instance`'s class (or a parent class) has methods with cache operations. */
  hasCacheOperations(instance: object): boolean {
    const ctor = (instance as { constructor?: unknown }).constructor;
    if (typeof ctor !== 'function') return false;
    const names = Reflect.getMetadata(CACHE_CLASS_METADATA, ctor) as unknown[] | undefined;
    return (names?.length ?? 0) > 0;
  }

  /** The cache decorators on a handler or method, in the order they were applied. */
  getCacheOperations(handler: object): readonly CacheOperationMetadata[] {
    return (
      this.reflector.get<CacheOperationMetadata[] | undefined>(
        CACHE_OPERATIONS_METADATA,
        handler as Type,
      ) ?? []
    );
  }

  /** `@CacheKey` of the route (handler, then controller). */
  getCacheKey(context: ExecutionContext): CacheKeyFactory | undefined {
    return this.reflector.getAllAndOverride<CacheKeyFactory | undefined>(CACHE_KEY_METADATA, [
      context.getHandler(),
      context.getClass(),
    ]);
  }

  /** `@CacheTTL` of the route (handler, then controller). */
  getCacheTtl(context: ExecutionContext): CacheTtlFactory | undefined {
    return this.reflector.getAllAndOverride<CacheTtlFactory | undefined>(CACHE_TTL_METADATA, [
      context.getHandler(),
      context.getClass(),
    ]);
  }

  /** `@CachePerUser` of the route (handler, then controller). */
  getPerUser(context: ExecutionContext): CachePerUserMetadata | undefined {
    return this.reflector.getAllAndOverride<CachePerUserMetadata | undefined>(
      CACHE_PER_USER_METADATA,
      [context.getHandler(), context.getClass()],
    );
  }

  /** `true` for `@Sse()` routes, whose Observable is a stream of events, not one response. */
  isServerSentEvents(context: ExecutionContext): boolean {
    return this.reflector.get<boolean | undefined>(SSE_METADATA, context.getHandler()) === true;
  }

  /** `true` if the handler takes `@Res()` or `@Next()`: it writes the response itself. */
  usesResponseObject(context: ExecutionContext): boolean {
    const args = Reflect.getMetadata(
      ROUTE_ARGS_METADATA,
      context.getClass(),
      context.getHandler().name,
    ) as Record<string, unknown> | undefined;
    if (!args) return false;
    const own = [RouteParamtypes.RESPONSE, RouteParamtypes.NEXT].map(String);
    return Object.keys(args).some((key) => own.includes(key.split(':')[0]));
  }
}
