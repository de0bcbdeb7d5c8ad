import { Test } from '@nestjs/testing';
import { Cluster } from 'ioredis';
import { CacheModule, CacheService } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { eventually } from '../support/eventually';
import { RedisCluster } from '../support/redis-cluster';
import { uniqueNamespace } from '../support/redis';

/**
 * Two tiers on a real 3-master Redis Cluster: the bus listens on one master (a cluster
 * broadcasts every PUBLISH to all its nodes) and moves to another when its node goes; keys of
 * every slot stay coherent across instances.
 */
describe('Two tiers (l1 + bus) on a real Redis Cluster (3 masters)', () => {
  let redisCluster: RedisCluster;
  let inspector: Cluster;
  let namespace: string;
  const apps: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    redisCluster = await RedisCluster.start(3);
    inspector = new Cluster(redisCluster.seeds, { redisOptions: { maxRetriesPerRequest: 1 } });
  }, 60_000);
  afterAll(async () => {
    inspector.disconnect();
    await redisCluster.stop();
  });
  beforeEach(() => {
    namespace = uniqueNamespace('cluster-l1');
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  const instance = async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { cluster: redisCluster.seeds },
          namespace,
          l1: true,
          bus: { heartbeat: 0.3 },
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    apps.push(app);
    const stack = app.get(CacheStack);
    await eventually(async () => stack.busState === 'live', 10_000, 10);
    return { app, cache: app.get(CacheService), stack };
  };
  /** Changes Redis without the cache (no bus message). */
  const behindTheBack = (key: string, value: unknown) =>
    inspector.set(`${namespace}:${key}`, JSON.stringify(value));
  /** The node whose connections include a subscriber of the namespace's channel. */
  const subscriberNodes = async () => {
    const counts = await Promise.all(
      redisCluster.nodes.map(async (node) => {
        if (!node.running) return 0;
        const reply = await node.command('PUBSUB', 'NUMSUB', `cachekit:bus:${namespace}`);
        return Number(/:(\d+)\r\n$/.exec(reply)?.[1] ?? 0);
      }),
    );
    return redisCluster.nodes.filter((_, i) => counts[i] > 0);
  };

  it('keeps keys of every slot coherent: writes, deletes, prefix deletes and clears reach the other L1', async () => {
    const a = await instance();
    const b = await instance();
    const keys = Array.from({ length: 60 }, (_, i) => `item:${i}`);
    for (const key of keys) await a.cache.set(key, `${key}=1`);
    for (const key of keys) expect(await b.cache.get(key)).toBe(`${key}=1`);
    // b answers from its L1: Redis changed behind the cache's back is not seen.
    await behindTheBack('item:0', 'changed in Redis');
    expect(await b.cache.get('item:0')).toBe('item:0=1');

    for (const key of keys) await a.cache.set(key, `${key}=2`);
    await eventually(async () => {
      const values = await Promise.all(keys.map((key) => b.cache.get(key)));
      return values.every((value, i) => value === `${keys[i]}=2`);
    }, 5000);

    await a.cache.delete('item:1');
    await a.cache.deleteByPrefix('item:2');
    await eventually(
      async () =>
        (await b.cache.get('item:1')) === undefined &&
        (await b.cache.get('item:2')) === undefined &&
        (await b.cache.get('item:25')) === undefined,
      5000,
    );
    expect(await b.cache.get('item:3')).toBe('item:3=2');
    await a.cache.clear();
    await eventually(async () => (await b.cache.get('item:3')) === undefined, 5000);
  });

  it('moves its subscriber when its node dies; the L1 is bypassed meanwhile and dropped after', async () => {
    const a = await instance();
    const b = await instance();
    await a.cache.set('k', 'v1');
    expect(await b.cache.get('k')).toBe('v1');
    const [node] = await subscriberNodes();
    expect(node).toBeDefined();
    await node.kill();
    try {
      await eventually(async () => b.stack.busState === 'deaf', 10_000, 10);
      // Deaf: nothing from b's L1 (it reads Redis, which may answer nothing while a slot is down).
      expect(b.stack.peek('k')).toBeUndefined();
      // The node stays down: the subscriber gives up on it and listens on another master.
      await eventually(async () => b.stack.busState === 'live', 20_000, 50);
      const moved = await subscriberNodes();
      expect(moved.length).toBeGreaterThan(0);
      expect(moved).not.toContain(node);
    } finally {
      await node.restart();
    }
    await eventually(async () => b.stack.busState === 'live', 30_000, 50);
    await eventually(async () => a.stack.busState === 'live', 30_000, 50);
    // The cluster is whole again: changes behind b's back during the gap are seen ...
    await eventually(async () => {
      // The cluster answers CLUSTERDOWN until the node is back in it.
      const written = await behindTheBack('k', 'v2').catch(() => undefined);
      return written !== undefined && (await b.cache.get('k')) === 'v2';
    }, 20_000);
    // ... and the bus carries a's writes to b again.
    await a.cache.set('k', 'v3');
    await eventually(async () => (await b.cache.get('k')) === 'v3', 5000);
  }, 90_000);
});
