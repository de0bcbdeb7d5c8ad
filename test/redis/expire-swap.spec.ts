import { Redis } from 'ioredis';
import type { CacheModuleOptions } from '../../lib';
import { CacheService } from '../../lib';
import type { CacheAdapter } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { RedisCacheAdapter } from '../../lib/adapters/redis.adapter';
import { entrySwapOf } from '../../lib/interfaces/entry-reader';
import { boot, type BootedApp } from '../support/failover';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * expire() rewrites an entry as stale with a compare-and-set (issue 13, item 6): a write that
 * lands between its read and its rewrite is never overwritten by the stale copy of the older
 * value, on the plain provider, with an L1 and with failover.
 */

const CONFIGS: Array<[string, CacheModuleOptions]> = [
  ['redis', {}],
  ['redis + l1', { l1: true }],
  ['redis + failover', { failover: true }],
];

describe('expire() against a concurrent write, on a real redis-server', () => {
  let server: RedisServer;
  let raw: Redis;

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    raw.disconnect();
    await server.stop();
  });

  it('the adapter swaps only while the key holds the expected value', async () => {
    const namespace = uniqueNamespace('swap');
    const adapter = new RedisCacheAdapter({ redis: { url: server.url }, namespace });
    await adapter.onModuleInit();
    try {
      const swap = entrySwapOf(adapter)!;
      await adapter.set('k', { v: 1 }, 60);
      await expect(swap('k', { v: 2 }, { v: 3 }, 60)).resolves.toBe(false);
      await expect(adapter.get('k')).resolves.toEqual({ v: 1 });
      await expect(swap('k', { v: 1 }, { v: 3 }, 30)).resolves.toBe(true);
      await expect(adapter.get('k')).resolves.toEqual({ v: 3 });
      const pttl = await raw.pttl(`${namespace}:k`);
      expect(pttl).toBeGreaterThan(20_000);
      expect(pttl).toBeLessThanOrEqual(30_000);
      await expect(swap('k', { v: 3 }, { v: 4 }, 0)).resolves.toBe(true);
      await expect(raw.pttl(`${namespace}:k`)).resolves.toBe(-1);
      await expect(swap('gone', { v: 3 }, { v: 4 }, 10)).resolves.toBe(false);
      await expect(raw.exists(`${namespace}:gone`)).resolves.toBe(0);
    } finally {
      await adapter.onApplicationShutdown();
    }
  });

  describe.each(CONFIGS)('%s', (_name, extra) => {
    let app: BootedApp | undefined;
    afterEach(async () => {
      await app?.app.close();
      app = undefined;
    });

    it('a write landing between expire()’s read and its rewrite stays', async () => {
      const namespace = uniqueNamespace('expire-race');
      app = await boot({ provider: 'redis', redis: { url: server.url }, namespace, ...extra });
      const cache = app.app.get(CacheService);
      const stack: { store: CacheAdapter } = app.app.get<CacheStack, { store: CacheAdapter }>(
        CacheStack,
      );
      await cache.set('k', 'old', { ttl: 60, grace: 600 });
      // Another instance writes the key right after expire() has read it.
      const store = stack.store;
      stack.store = new Proxy(store, {
        get(target, name, receiver) {
          if (name !== 'get') return Reflect.get(target, name, receiver) as unknown;
          return async (key: string) => {
            const value = await target.get(key);
            await raw.set(`${namespace}:${key}`, JSON.stringify('new'), 'PX', 60_000);
            return value;
          };
        },
      });
      try {
        await expect(cache.expire('k')).resolves.toBe(true);
      } finally {
        stack.store = store;
      }
      await expect(raw.get(`${namespace}:k`)).resolves.toBe(JSON.stringify('new'));
      await expect(cache.get('k')).resolves.toBe('new');
    });

    it('without a concurrent write, the entry is kept as a stale value for its grace', async () => {
      const namespace = uniqueNamespace('expire-kept');
      app = await boot({ provider: 'redis', redis: { url: server.url }, namespace, ...extra });
      const cache = app.app.get(CacheService);
      await cache.set('k', 'old', { ttl: 60, grace: 600 });
      await expect(cache.expire('k')).resolves.toBe(true);
      await expect(cache.get('k')).resolves.toBeUndefined();
      const pttl = await raw.pttl(`${namespace}:k`);
      expect(pttl).toBeGreaterThan(600_000);
      await expect(
        cache.wrap('k', () => Promise.reject(new Error('down')), { ttl: 60, grace: 600 }),
      ).resolves.toBe('old');
    });
  });
});
