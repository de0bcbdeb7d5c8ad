import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Cluster } from 'ioredis';
import { CacheModule, CacheService, type CacheModuleOptions } from '../../lib';
import { RedisCluster } from '../support/redis-cluster';
import { uniqueNamespace } from '../support/redis';

// Issue 10, item 2 on a real 3-master Cluster: keys holding UTF-16 surrogates are sent as
// CESU-8 Buffers, routed by the slot of those bytes, and found again by SCAN on every master.

async function boot(options: CacheModuleOptions) {
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
  }).compile();
  const app: INestApplication = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return { app, cache: app.get(CacheService) };
}

const UNITS = ['\uD800', '\uDC00', '\uFFFD', '\uD83D\uDE00', '\uD83D', '\uDE00\uD83D'];

describe('surrogate keys on a real Redis Cluster', () => {
  let redisCluster: RedisCluster;
  let inspector: Cluster;

  beforeAll(async () => {
    redisCluster = await RedisCluster.start(3);
    inspector = new Cluster(redisCluster.seeds);
  }, 60_000);

  afterAll(async () => {
    await inspector?.quit();
    await redisCluster?.stop();
  });

  it('keeps them apart across masters, and deleteByPrefix and clear find them all', async () => {
    const namespace = uniqueNamespace('cluster-utf16');
    const { app, cache } = await boot({
      provider: 'redis',
      redis: { cluster: redisCluster.seeds },
      namespace,
    });
    try {
      // Many shards of each unit, so the keys land on every master; hash tags included.
      const keys = Array.from({ length: 30 }, (_, i) =>
        UNITS.flatMap((unit) => [`${i}:${unit}`, `{${unit}}${i}`, `p:${unit}:${i}`]),
      ).flat();
      expect(new Set(keys).size).toBe(keys.length);
      await Promise.all(keys.map((key) => cache.set(key, key, 60)));
      expect(await Promise.all(keys.map((key) => cache.get(key)))).toEqual(keys);
      expect(await Promise.all(keys.map((key) => cache.has(key)))).toEqual(keys.map(() => true));

      // Readable by any client that sends the same bytes (a Buffer key is routed by its bytes).
      const lone = Buffer.concat([Buffer.from(`${namespace}:0:`), Buffer.from([0xed, 0xa0, 0x80])]);
      expect(await inspector.get(lone as unknown as string)).toBe(JSON.stringify('0:\uD800'));

      // `p:\uD83D` takes `p:\uD83D:i` and `p:\uD83D\uDE00:i`, nothing else.
      expect(await cache.deleteByPrefix('p:\uD83D')).toBe(60);
      expect(await cache.get('p:\uD83D\uDE00:3')).toBeUndefined();
      expect(await cache.get('p:\uDE00\uD83D:3')).toBe('p:\uDE00\uD83D:3');
      expect(await cache.get('p:\uFFFD:3')).toBe('p:\uFFFD:3');

      await cache.clear();
      expect(await Promise.all(keys.map((key) => cache.has(key)))).toEqual(keys.map(() => false));
    } finally {
      await cache.clear();
      await app.close();
    }
  });
});
