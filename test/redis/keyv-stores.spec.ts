import { Logger } from '@nestjs/common';
import KeyvRedis from '@keyv/redis';
import { Redis } from 'ioredis';
import { Keyv } from 'keyv';
import { KeyvCacheAdapter } from '../../lib/adapters/keyv.adapter';
import { StoresCacheAdapter } from '../../lib/tiers/stores.adapter';
import { CapturingLogger } from '../support/logs';
import { RedisServer } from '../support/redis-server';

const GLOB_KEYS = ['a*b:1', 'a*b:2', 'axb:1', 'a?c:1', 'abc:1', 'a[b]:1', 'ab]:1', 'a\\x:1'];

describe('KeyvCacheAdapter and StoresCacheAdapter on a real redis-server', () => {
  let server: RedisServer;
  let raw: Redis;
  const opened: Array<{ onApplicationShutdown(): Promise<void> }> = [];

  /** An adapter the test closes at the end, whatever it wraps. */
  function adapter(store: ConstructorParameters<typeof KeyvCacheAdapter>[0], namespace?: string) {
    const made = new KeyvCacheAdapter(store, { namespace, disconnectOnShutdown: true });
    opened.push(made);
    return made;
  }

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  beforeEach(async () => {
    Logger.overrideLogger(new CapturingLogger());
    await raw.flushdb();
  });
  afterEach(async () => {
    for (const made of opened.splice(0)) await made.onApplicationShutdown();
    Logger.overrideLogger(new Logger());
  });
  afterAll(async () => {
    await raw.quit();
    await server.stop();
  });

  describe.each([
    [
      'new Keyv({ store: new KeyvRedis(url) })',
      () => new Keyv({ store: new KeyvRedis(server.url) }),
      'keyv::keyv:',
    ],
    ['new KeyvRedis(url)', () => new KeyvRedis(server.url), 'cache::'],
  ])('%s', (_, make, storedPrefix) => {
    it('writes under the namespace, with the TTL as PX milliseconds (0: no expiry)', async () => {
      const cache = adapter(make());
      await cache.set('short', { a: 1 }, 2.5);
      await cache.set('forever', 'v', 0);
      const pttl = await raw.pttl(`${storedPrefix}cache:short`);
      expect(pttl).toBeGreaterThan(2000);
      expect(pttl).toBeLessThanOrEqual(2500);
      expect(await raw.pttl(`${storedPrefix}cache:forever`)).toBe(-1);
      expect(await cache.get('short')).toEqual({ a: 1 });
    });

    it('round-trips null, 0, false and empty strings; a miss is undefined', async () => {
      const cache = adapter(make());
      for (const value of [null, 0, false, '', [null]]) {
        await cache.set('k', value, 10);
        expect(await cache.get('k')).toEqual(value);
        expect(await cache.has('k')).toBe(true);
      }
      expect(await cache.get('missing')).toBeUndefined();
      expect(await cache.has('missing')).toBe(false);
    });

    it('keeps namespaces apart; deleteByPrefix and clear touch their own only', async () => {
      const a = adapter(make(), 'a');
      const b = adapter(make(), 'b');
      await a.set('user:1', 'a', 0);
      await b.set('user:1', 'b', 0);
      await raw.set('user:1', 'not a cache entry');
      expect(await a.deleteByPrefix('user:')).toBe(1);
      expect(await a.get('user:1')).toBeUndefined();
      expect(await b.get('user:1')).toBe('b');
      await b.set('other', 1, 0);
      await b.clear();
      expect(await b.get('other')).toBeUndefined();
      expect(await raw.get('user:1')).toBe('not a cache entry');
    });

    it('deleteByPrefix treats glob characters as plain characters', async () => {
      const cache = adapter(make());
      for (const key of GLOB_KEYS) await cache.set(key, key, 0);
      expect(await cache.deleteByPrefix('a*b:')).toBe(2);
      expect(await cache.deleteByPrefix('a?')).toBe(1);
      expect(await cache.deleteByPrefix('a[b]')).toBe(1);
      expect(await cache.deleteByPrefix('a\\')).toBe(1);
      const left = [];
      for (const key of GLOB_KEYS) if ((await cache.get(key)) !== undefined) left.push(key);
      expect(left).toEqual(['axb:1', 'abc:1', 'ab]:1']);
    });
  });

  it('several stores, in order: memory first, Redis second; writes reach both', async () => {
    const memory = adapter(new Keyv());
    const redis = adapter(new KeyvRedis(server.url));
    const stores = new StoresCacheAdapter([memory, redis]);
    await stores.set('k', { v: 1 }, 30);
    expect(await raw.get('cache::cache:k')).toContain('"v":1');
    expect(await memory.get('k')).toEqual({ v: 1 });
    await redis.set('only-redis', 'r', 0);
    expect(await stores.get('only-redis')).toBe('r');
    expect(await memory.get('only-redis')).toBeUndefined(); // no copy back, as cache-manager
    expect(await stores.delete('k')).toBe(true);
    expect(await raw.exists('cache::cache:k')).toBe(0);
    expect(await memory.get('k')).toBeUndefined();
  });

  it('nonBlocking over a Redis secondary: the write answers from memory, Redis follows', async () => {
    const memory = adapter(new Keyv());
    const redis = adapter(new KeyvRedis(server.url));
    const stores = new StoresCacheAdapter([memory, redis], { nonBlocking: true });
    await stores.set('k', 'v', 0);
    expect(await memory.get('k')).toBe('v');
    await stores.onApplicationShutdown(); // waits for the background write, then closes both
    opened.splice(0);
    expect(await raw.get('cache::cache:k')).toContain('"v"');
  });
});
