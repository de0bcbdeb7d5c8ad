import { Inject } from '@nestjs/common';
import { getCacheToken } from '../config/cache.constants';
import { assertCacheName } from '../config/named-caches';
import { CacheArgumentError } from '../utils/cache.errors';

/** Metadata on a class: the cache names its constructor parameters or properties inject. */
const INJECTED_CACHES = 'CACHEKIT:INJECTED_CACHES';

// Every name given to @InjectCache so far: forRootAsync declares a provider for each (its
// `caches` are only known once the factory has run).
const requested = new Set<string>();

/**
 * Injects the `CacheService` of the named cache `name` (a key of the module's `caches`), as a
 * constructor parameter or a property. The module's own cache is `CacheService` itself (or
 * `@InjectCache('default')`). A name the module does not configure fails startup, naming the
 * class that injects it and the configured caches.
 *
 * @example
 * ```ts
 * CacheModule.forRoot({ caches: { sessions: { ttl: 1800 } } });
 *
 * @Injectable()
 * export class SessionStore {
 *   constructor(@InjectCache('sessions') private readonly sessions: CacheService) {}
 * }
 * ```
 */
export function InjectCache(name: string): PropertyDecorator & ParameterDecorator {
  if (name !== 'default') {
    try {
      assertCacheName(name, '@InjectCache(name)');
    } catch (error) {
      throw new CacheArgumentError((error as Error).message);
    }
    requested.add(name);
  }
  const inject = Inject(getCacheToken(name));
  return (target: object, key?: string | symbol, index?: number): void => {
    const type = typeof target === 'function' ? target : target.constructor;
    const names = (Reflect.getOwnMetadata(INJECTED_CACHES, type) ?? []) as string[];
    if (!names.includes(name)) Reflect.defineMetadata(INJECTED_CACHES, [...names, name], type);
    (inject as (target: object, key?: string | symbol, index?: number) => void)(target, key, index);
  };
}

/** The names `@InjectCache` was given so far, in order. @internal */
export function requestedCacheNames(): string[] {
  return [...requested];
}

/** The cache names `type` (and its parent classes) inject with `@InjectCache`. @internal */
export function injectedCacheNames(type: unknown): string[] {
  const names: string[] = [];
  for (
    let current: unknown = type;
    typeof current === 'function' && current !== Function.prototype;
    current = Object.getPrototypeOf(current)
  ) {
    const own = Reflect.getOwnMetadata(INJECTED_CACHES, current) as string[] | undefined;
    for (const name of own ?? []) if (!names.includes(name)) names.push(name);
  }
  return names;
}
