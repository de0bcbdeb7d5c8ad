import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import { RedisCacheAdapter } from '../../lib';
import { createCacheStack } from '../../lib/core/create-stack';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/** Review of issue 17: an enormous key list on a healthy single-node Redis. */
describe('bulk calls with 200k keys on a healthy Redis', () => {
  let server: RedisServer;
  let raw: Redis;
  let adapter: RedisCacheAdapter;
  const N = 200_000;
  const keys = Array.from({ length: N }, (_, i) => `k:${i}`);
  let warnings: string[];

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    await raw.quit();
    await server.stop();
  });
  beforeEach(async () => {
    warnings = [];
    jest.spyOn(Logger.prototype, 'warn').mockImplementation((m: unknown) => {
      warnings.push(String(m));
    });
    jest.spyOn(Logger.prototype, 'error').mockImplementation((m: unknown) => {
      warnings.push(String(m));
    });
    adapter = new RedisCacheAdapter({
      redis: { url: server.url },
      namespace: uniqueNamespace('huge'),
    });
    await adapter.onModuleInit();
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await adapter.onApplicationShutdown();
  });

  it('the adapter reads and deletes them (no RangeError from spreading 200k arguments)', async () => {
    await adapter.setMany(keys.map((key, i) => ({ key, value: i, ttl: 60 })).slice(0, 1000));
    const values = await adapter.getMany<number>(keys);
    expect(values[0]).toBe(0);
    expect(values[999]).toBe(999);
    expect(values[N - 1]).toBeUndefined();
    await expect(adapter.deleteMany(keys)).resolves.toBe(1000);
  }, 60_000);

  it('the stack: getMany hits and deleteMany really deletes (no silent no-op)', async () => {
    const stack = createCacheStack(adapter, { enabled: true, ttl: 60, namespace: 'x' });
    await stack.setMany(keys.slice(0, 1000).map((key, i) => ({ key, value: i })));
    const values = await stack.getMany<number>(keys);
    expect(values.filter((v) => v !== undefined).length).toBe(1000);
    await expect(stack.deleteMany(keys)).resolves.toBe(1000);
    await expect(stack.get('k:7')).resolves.toBeUndefined();
    expect(warnings.join('\n')).not.toMatch(/Maximum call stack/);
  }, 60_000);
});
