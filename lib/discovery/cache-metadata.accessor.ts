import { Injectable, type Type } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { CACHE_CLASS_METADATA, CACHE_OPERATIONS_METADATA } from '../config/cache.constants';
import type { CacheOperationMetadata } from '../decorators/cached-method';
import { RouteCacheMetadata } from '../interceptors/route-cache.metadata';

export { declaresResponse } from '../interceptors/route-cache.metadata';

/**
 * Reads what the cache decorators recorded: handler first, then class. The explorer reads
 * metadata only through this class; the interceptor through the {@link RouteCacheMetadata} it
 * extends.
 */
@Injectable()
export class CacheMetadataAccessor extends RouteCacheMetadata {
  constructor(reflector: Reflector) {
    super(reflector);
  }

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
  override getCacheOperations(handler: object): readonly CacheOperationMetadata[] {
    return (
      this.reflector.get<CacheOperationMetadata[] | undefined>(
        CACHE_OPERATIONS_METADATA,
        handler as Type,
      ) ?? []
    );
  }
}
