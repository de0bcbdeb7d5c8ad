import { Redis } from 'ioredis';
import type { CacheModuleOptions } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { boot, type BootedApp } from '../support/failover';
import { eventually } from '../support/eventually';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

describe('getMany through two tiers while the bus is down', () => {
  let server: RedisServer;
  let raw: Redis;
  let namespace: string;
  const apps: BootedApp[] = [];
  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url);
  });
  afterAll(async () => {
    raw.disconnect();
    await server.stop();
  });
  beforeEach(() => {
    namespace = uniqueNamespace('r1-bus');
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
  });
  const instance = async (options: CacheModuleOptions = {}) => {
    const booted = await boot({
      provider: 'redis',
      redis: { url: server.url },
      namespace,
      l1: true,
      ...options,
    });
    apps.push(booted);
    const stack = booted.app.get(CacheStack);
    await eventually(async () => stack.busState === 'live', 5000, 10);
    return { ...booted, stack };
  };

  it('a write made elsewhere while the bus is down is never hidden by the L1 (getMany, wrapMany)', async () => {
    const a = await instance();
    const b = await instance();
    await a.cache.setMany([
      { key: 'k1', value: 'old' },
      { key: 'k2', value: 'old' },
    ]);
    await expect(a.cache.getMany(['k1', 'k2'])).resolves.toEqual(['old', 'old']);
    await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await b.cache.setMany([{ key: 'k1', value: 'new' }]);
    await b.cache.deleteMany(['k2']);
    const loader = jest.fn(async (keys: string[]) => keys.map(() => 'loaded'));
    for (let i = 0; i < 30; i++) {
      const [k1, k2] = await a.cache.getMany(['k1', 'k2']);
      expect(k1).toBe('new');
      expect(k2).toBeUndefined();
      const [w1] = await a.cache.wrapMany(['k1'], loader);
      expect(w1).toBe('new');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
});
