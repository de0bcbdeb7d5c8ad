import type { ResolvedCacheOptions } from '../config/cache-options.resolver';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import { MemoryCacheAdapter } from '../adapters/memory.adapter';
import { RedisCacheAdapter } from '../adapters/redis.adapter';
import { FailoverCacheAdapter } from '../tiers/failover.adapter';

/** Builds the adapter the resolved options ask for (a custom `adapter` wins). */
export function createCacheAdapter(options: ResolvedCacheOptions): CacheAdapter {
  if (options.adapter) return options.adapter;
  const memory = () => new MemoryCacheAdapter(options.memory);
  if (options.provider === 'memory') return memory();
  const redis = new RedisCacheAdapter({
    redis: options.redis,
    namespace: options.namespace,
    strict: options.strict,
    whileUnreachable: options.failover
      ? 'the in-memory fallback serves cache calls'
      : 'cache calls miss and call through',
  });
  if (options.failover) {
    // With l1, the fallback is the L1 (one memory copy), bounded as the L1.
    const fallback = options.l1
      ? new MemoryCacheAdapter({
          ...options.memory,
          maxEntries: options.l1.maxEntries,
          maxSize: options.l1.maxSize,
        })
      : memory();
    return new FailoverCacheAdapter(redis, fallback, options.failover);
  }
  return redis;
}
