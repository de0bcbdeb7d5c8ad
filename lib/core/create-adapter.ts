import type { ResolvedCacheOptions } from '../config/cache-options.resolver';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import { MemoryCacheAdapter } from '../adapters/memory.adapter';
import { RedisCacheAdapter } from '../adapters/redis.adapter';
import { FailoverCacheAdapter } from '../tiers/failover.adapter';
import { redisConnectionKey } from '../config/named-caches';
import { CacheConnectionError } from '../utils/cache.errors';

/**
 * Resolves when `adapter`'s own startup is over, rejects when it failed (a `strict` cache that
 * cannot reach Redis): for the Redis adapters (alone or under failover), whose `onModuleInit`
 * runs once however often it is called; any other adapter at once.
 */
export function adapterStarted(adapter: CacheAdapter): Promise<void> {
  if (adapter instanceof RedisCacheAdapter || adapter instanceof FailoverCacheAdapter) {
    return adapter.onModuleInit();
  }
  return Promise.resolve();
}

/**
 * Builds the adapter the resolved options ask for (a custom `adapter` wins). With `shared`, a
 * Redis connection the cache would open itself is taken from there instead (one per distinct
 * Redis settings, opened and closed by its owner).
 */
export function createCacheAdapter(
  options: ResolvedCacheOptions,
  shared?: SharedRedisClients,
): CacheAdapter {
  if (options.adapter) return options.adapter;
  const { serializer } = options;
  const memory = () => new MemoryCacheAdapter({ ...options.memory, serializer });
  if (options.provider === 'memory') return memory();
  const redis = new RedisCacheAdapter({
    redis: shared ? shared.redisFor(options) : options.redis,
    namespace: options.namespace,
    strict: options.strict,
    serializer,
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
          serializer,
        })
      : memory();
    return new FailoverCacheAdapter(redis, fallback, options.failover);
  }
  return redis;
}

/**
 * The Redis connections of an application with named caches: one per distinct Redis settings
 * (see `redisConnectionKey`), shared by every cache (and every cache's adapter) that names
 * them. Each is opened and closed here, once: a cache's adapter is given it as an
 * application-provided `client`, which it never closes, so the connection outlives every cache
 * that uses it until {@link close}. A `client` the application passed stays the application's.
 * @internal
 */
export class SharedRedisClients {
  private readonly owners = new Map<string, { adapter: RedisCacheAdapter; strict: string[] }>();

  /**
   * Records that cache `name` uses `options` (its `strict` then applies to the connection).
   * Call it for every cache before {@link connect}.
   */
  register(options: ResolvedCacheOptions, name: string): void {
    if (options.provider !== 'redis' || options.adapter || 'client' in options.redis) return;
    this.redisFor(options);
    const owner = this.owners.get(redisConnectionKey(options.redis));
    if (options.strict && owner && !owner.strict.includes(name)) owner.strict.push(name);
  }

  /** `options.redis`, or `{ client }` of the connection shared by the same settings. */
  redisFor(options: ResolvedCacheOptions): ResolvedCacheOptions['redis'] {
    if ('client' in options.redis) return options.redis;
    const key = redisConnectionKey(options.redis);
    let owner = this.owners.get(key);
    if (!owner) {
      // Never used for data: it holds the connection and its lifecycle (connect, error log, QUIT).
      const adapter = new RedisCacheAdapter({ redis: options.redis, strict: false });
      owner = { adapter, strict: [] };
      this.owners.set(key, owner);
    }
    return { client: owner.adapter.client };
  }

  /** How many connections are shared. */
  get size(): number {
    return this.owners.size;
  }

  /**
   * Connects each (a failure is logged and retried in the background), then fails with
   * {@link CacheConnectionError} when a cache with `strict` cannot reach its Redis.
   */
  async connect(): Promise<void> {
    await Promise.all([...this.owners.values()].map(({ adapter }) => adapter.onModuleInit()));
    for (const { adapter, strict } of this.owners.values()) {
      if (strict.length === 0 || adapter.client.status === 'ready') continue;
      await this.close();
      throw new CacheConnectionError(
        `Cannot reach Redis at startup for cache${strict.length > 1 ? 's' : ''} ` +
          `${strict.map((name) => `'${name}'`).join(', ')} (strict: true). Start Redis, fix ` +
          `redis.url, or drop strict: true to boot with a warning and call through while Redis is down.`,
      );
    }
  }

  /** Closes every connection (once the caches using them have stopped). Idempotent. */
  async close(): Promise<void> {
    const owners = [...this.owners.values()];
    this.owners.clear();
    await Promise.all(owners.map(({ adapter }) => adapter.onApplicationShutdown()));
  }
}
