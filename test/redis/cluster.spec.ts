import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Cluster } from 'ioredis';
import {
  CacheAdapter,
  CacheModule,
  CacheService,
  Cacheable,
  RedisCacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { RedisCluster } from '../support/redis-cluster';
import { uniqueNamespace } from '../support/redis';

@Injectable()
class Catalog {
  loads = 0;

  @Cacheable('product:{id}')
  async find(id: number): Promise<{ id: number }> {
    this.loads++;
    return Promise.resolve({ id });
  }
}

async function boot(options: CacheModuleOptions) {
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
    providers: [Catalog],
  }).compile();
  const app: INestApplication = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return { app, cache: app.get(CacheService), catalog: app.get(Catalog) };
}

/** How many keys matching `pattern` each master holds (SCAN is local to a node). */
async function perMaster(cluster: Cluster, pattern: string): Promise<number[]> {
  return Promise.all(
    cluster.nodes('master').map(async (node) => {
      let cursor = '0';
      let count = 0;
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        count += keys.length;
      } while (cursor !== '0');
      return count;
    }),
  );
}

describe('RedisCacheAdapter on a real Redis Cluster (3 masters)', () => {
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

  it('spreads keys over the masters and reads them back, one at a time and 300 at once', async () => {
    const namespace = uniqueNamespace('cluster');
    const { app, cache } = await boot({
      provider: 'redis',
      redis: { cluster: redisCluster.seeds },
      namespace,
    });
    const adapter = app.get<RedisCacheAdapter>(CacheAdapter);
    expect(adapter.client).toBeInstanceOf(Cluster);

    const ids = Array.from({ length: 300 }, (_, i) => i);
    await Promise.all(ids.map((i) => cache.set(`item:${i}`, { i }, 60)));
    expect(await cache.get('item:7')).toEqual({ i: 7 });
    expect(await Promise.all(ids.map((i) => cache.get(`item:${i}`)))).toEqual(
      ids.map((i) => ({ i })),
    );
    const stored = ids.map((i) => `${namespace}:item:${i}`);
    const counts = await perMaster(inspector, `${namespace}:item:*`);
    expect(counts).toHaveLength(3);
    expect(counts.every((n) => n > 0)).toBe(true);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(300);
    expect(await inspector.get(stored[42])).toBe('{"i":42}');
    expect(await inspector.pttl(stored[42])).toBeGreaterThan(50_000);
    await app.close();
  });

  it('deleteByPrefix and clear walk every master, leaving other namespaces alone', async () => {
    const namespace = uniqueNamespace('cluster-wipe');
    const other = uniqueNamespace('cluster-other');
    const { app, cache } = await boot({
      provider: 'redis',
      redis: { cluster: redisCluster.seeds },
      namespace,
    });
    const ids = Array.from({ length: 60 }, (_, i) => i);
    await Promise.all(ids.map((i) => cache.set(`user:${i}:profile`, i)));
    await Promise.all(ids.map((i) => cache.set(`order:${i}`, i)));
    await inspector.set(`${other}:user:1:profile`, 'keep');

    expect(await cache.deleteByPrefix('user:')).toBe(60);
    expect(await cache.get('user:5:profile')).toBeUndefined();
    expect(await cache.get('order:5')).toBe(5);

    await cache.clear();
    expect(await cache.get('order:5')).toBeUndefined();
    expect(await inspector.get(`${other}:user:1:profile`)).toBe('keep');
    await inspector.del(`${other}:user:1:profile`);
    await app.close();
  });

  it('runs @Cacheable through the cluster: 200 concurrent misses load once, then hits', async () => {
    const { app, catalog, cache } = await boot({
      provider: 'redis',
      redis: { cluster: redisCluster.seeds },
      namespace: uniqueNamespace('cluster-decorator'),
    });
    const results = await Promise.all(Array.from({ length: 200 }, () => catalog.find(9)));
    expect(results.every((r) => r.id === 9)).toBe(true);
    expect(catalog.loads).toBe(1);
    expect(await catalog.find(9)).toEqual({ id: 9 });
    expect(catalog.loads).toBe(1);
    expect(await cache.get('product:9')).toEqual({ id: 9 });
    await app.close();
  });

  it('uses an application-provided Cluster client and leaves it open', async () => {
    const client = new Cluster(redisCluster.seeds);
    const { app, cache } = await boot({
      provider: 'redis',
      redis: { client },
      namespace: uniqueNamespace('cluster-own'),
    });
    await Promise.all(Array.from({ length: 50 }, (_, i) => cache.set(`k:${i}`, i)));
    expect(await Promise.all(Array.from({ length: 50 }, (_, i) => cache.get(`k:${i}`)))).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );
    await cache.clear();
    await app.close();
    expect(client.status).toBe('ready');
    await client.quit();
  });
});
