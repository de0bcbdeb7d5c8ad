import type { ResolvedCacheOptions } from '../config/cache-options.resolver';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import { FailoverCacheAdapter } from './failover.adapter';
import { MemoryCacheAdapter } from './memory.adapter';
import { RedisCacheAdapter } from './redis.adapter';

/** Builds the adapter the resolved options ask for (a custom `adapter` wins). */
export function createCacheAdapter(options: ResolvedCacheOptions): CacheAdapter {
  if (options.adapter) return options.adapter;
  const memory = () => new MemoryCacheAdapter(options.memory);
  if (options.provider === 'memory') return memory();
  const redis = new RedisCacheAdapter({
    redis: options.redis,
    namespace: options.namespace,
    strict: options.strict,
    behindFailover: options.failover !== false,
  });
  if (options.failover) return new FailoverCacheAdapter(redis, memory(), options.failover);
  return redis;
}
