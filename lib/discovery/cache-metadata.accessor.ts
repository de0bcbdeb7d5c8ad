import { Injectable, type ExecutionContext, type Type } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  CACHE_CLASS_METADATA,
  CACHE_KEY_METADATA,
  CACHE_OPERATIONS_METADATA,
  CACHE_PER_USER_METADATA,
  CACHE_TTL_METADATA,
  INJECTED_RESPONSE,
} from '../config/cache.constants';
import type { CacheKeyFactory } from '../decorators/cache-key.decorator';
import type { CachePerUserMetadata } from '../decorators/cache-per-user.decorator';
import type { CacheTtlFactory } from '../decorators/cache-ttl.decorator';
import type { CacheOperationMetadata } from '../decorators/cached-method';
import { ROUTE_ARGS_METADATA, RouteParamtypes, SSE_METADATA } from './nest-internals';

/** What `@CacheKey`, `@CacheTTL` and `@CachePerUser` say for one route. */
interface RouteCacheMetadata {
  readonly key: CacheKeyFactory | undefined;
  readonly ttl: CacheTtlFactory | undefined;
  readonly perUser: CachePerUserMetadata | undefined;
}

/**
 * Reads what the cache decorators recorded: handler first, then class. The explorer and the
 * interceptor read metadata only through this class. A route's decorators are read once (per
 * controller class, as a subclass may set other ones), not on every request.
 */
@Injectable()
export class CacheMetadataAccessor {
  private readonly routes = new WeakMap<object, WeakMap<object, RouteCacheMetadata>>();

  constructor(private readonly reflector: Reflector) {}

  /** `true` if `instance`'s class (or a parent class) has methods with cache operations. */
  hasCacheOperations(instance: object): boolean {
    const ctor = (instance as { constructor?: unknown }).constructor;
    if (typeof ctor !== 'function') return false;
    const names = Reflect.getMetadata(CACHE_CLASS_METADATA, ctor) as unknown[] | undefined;
    return (names?.length ?? 0) > 0;
  }

  /**
   * The classes of `type`'s chain (itself, then its parents) that declare cached methods —
   * whose names the decorators saw as the method's class.
   */
  declaringClasses(type: unknown): object[] {
    const classes: object[] = [];
    for (
      let current: unknown = type;
      typeof current === 'function' && current !== Function.prototype;
      current = Object.getPrototypeOf(current)
    ) {
      const names = Reflect.getOwnMetadata(CACHE_CLASS_METADATA, current) as unknown[] | undefined;
      if ((names?.length ?? 0) > 0) classes.push(current);
    }
    return classes;
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

  private route(context: ExecutionContext): RouteCacheMetadata {
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

  /** `true` for `@Sse()` routes, whose Observable is a stream of events, not one response. */
  isServerSentEvents(context: ExecutionContext): boolean {
    return this.reflector.get<boolean | undefined>(SSE_METADATA, context.getHandler()) === true;
  }

  /**
   * `true` if the handler takes `@Res()` or `@Next()`: it writes the response itself. The
   * response argument cachekit gives `@Cacheable` handlers for `X-Cache` does not count.
   */
  usesResponseObject(context: ExecutionContext): boolean {
    return declaresResponse(context.getClass(), context.getHandler().name);
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
