import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import { storedWriterOf } from '../interfaces/stored-write';
import { FailoverCacheAdapter } from '../tiers/failover.adapter';
import { LocalTier } from '../tiers/local-tier';
import { CacheStack, type CacheStackOptions, type CacheTiers } from './cache-stack';

/**
 * The stack over the application's `CacheAdapter` provider, holding its tiers directly:
 * a {@link FailoverCacheAdapter} (built for `failover`, given as `adapter`, or provided by
 * overriding the provider) lends its failover policy (remote tier with breaker, timeout,
 * journal and recovery, plus its fallback: one memory copy); an adapter with a sync view is
 * the local tier; any other is a plain remote store whose failures the stack's error policy
 * answers. The adapter stays the provider Nest starts and stops, so each piece's lifecycle runs
 * once.
 */
export function createCacheStack(adapter: CacheAdapter, options: CacheStackOptions): CacheStack {
  return new CacheStack(tiersOf(adapter), options);
}

function tiersOf(adapter: CacheAdapter): CacheTiers {
  // The exact class only: a subclass may override a method, so it is called as a plain store.
  if (Object.getPrototypeOf(adapter) === FailoverCacheAdapter.prototype) {
    return { failover: (adapter as FailoverCacheAdapter).tier };
  }
  const local = LocalTier.of(adapter);
  return local ? { local } : { remote: adapter, write: storedWriterOf(adapter) };
}
