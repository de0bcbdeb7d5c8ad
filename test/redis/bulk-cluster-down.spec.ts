import { Logger } from '@nestjs/common';
import { boot, type BootedApp } from '../support/failover';
import { RedisCluster } from '../support/redis-cluster';
import { uniqueNamespace } from '../support/redis';

describe('bulk calls on a Cluster with a master down (through CacheService)', () => {
  let cluster: RedisCluster;
  let booted: BootedApp | undefined;
  beforeAll(async () => {
    cluster = await RedisCluster.start(3);
  }, 60_000);
  afterAll(async () => {
    await booted?.app.close();
    await cluster?.stop();
  });

  it('getMany, setMany, deleteMany, wrapMany never throw; healthy masters still answer', async () => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    booted = await boot({
      provider: 'redis',
      redis: { cluster: cluster.seeds },
      namespace: uniqueNamespace('r1-cd'),
      ttl: 60,
    });
    const { cache } = booted;
    const keys = Array.from({ length: 60 }, (_, i) => `k:${i}`);
    await cache.setMany(keys.map((key, i) => ({ key, value: i })));
    await cluster.nodes[0].kill();
    const values = await cache.getMany<number>(keys);
    const read = values.filter((v) => v !== undefined).length;
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(60);
    await expect(cache.setMany(keys.map((key) => ({ key, value: 'x' })))).resolves.toBeUndefined();
    await expect(cache.deleteMany(keys)).resolves.toEqual(expect.any(Number));
    const loaded = await cache.wrapMany(keys, (missing) => missing.map((key) => `L-${key}`));
    expect(loaded).toEqual(keys.map((key) => `L-${key}`));
  }, 60_000);
});
