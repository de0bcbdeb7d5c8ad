import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Queue } from 'bullmq';
import { randomUUID } from 'node:crypto';
import {
  BullMqDispatcher,
  CacheInvalidator,
  CacheModule,
  Cacheable,
  InvalidationRule,
  cacheResult,
  type InvalidationJob,
} from '../../lib';
import { eventually } from '../support/eventually';
import { RedisServer } from '../support/redis-server';
import { inspector, uniqueNamespace } from '../support/redis';

/** The "database": one version per product, shared by every node of a test. */
const db = new Map<number, number>();

const DISPATCHERS = ['inline', 'deferred', 'bullmq'] as const;
type DispatcherName = (typeof DISPATCHERS)[number];

@Injectable()
class Catalog {
  loads = 0;

  @Cacheable({
    key: 'product:{id}',
    tags: ['product:{id}'],
    invalidateOn: DISPATCHERS.map((dispatcher) =>
      InvalidationRule({ event: `product.${dispatcher}`, tags: ['product:{id}'], dispatcher }),
    ),
  })
  async product(id: number): Promise<{ id: number; version: number }> {
    this.loads++;
    return Promise.resolve({ id, version: db.get(id) ?? 1 });
  }
}

/** A cacheResult function with a function key, invalidated by a tags-only BullMQ rule. */
const shopName = cacheResult(
  async (shopId: string) => Promise.resolve(`shop ${shopId} v${db.get(0) ?? 1}`),
  {
    key: (shopId) => `shop-name:${shopId}`,
    tags: ['shop:{shopId}'],
    invalidateOn: [
      InvalidationRule({ event: 'shop.renamed', tags: ['shop:{shop.id}'], dispatcher: 'bullmq' }),
    ],
    name: 'shopName',
  },
);

interface Node {
  app: INestApplication;
  catalog: Catalog;
  invalidator: CacheInvalidator;
}

describe('invalidation rules with tags against a real Redis', () => {
  let server: RedisServer;
  const apps: INestApplication[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });

  afterAll(async () => {
    await server.stop();
  });

  afterEach(async () => {
    for (const app of apps.splice(0).reverse()) await app.close();
    db.clear();
  });

  async function boot(namespace: string, queueName: string, worker: boolean): Promise<Node> {
    const bullmq = new BullMqDispatcher({ connection: { url: server.url }, queueName, worker });
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace,
          ttl: 600,
          invalidation: { dispatchers: { bullmq } },
        }),
      ],
      providers: [Catalog],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    apps.push(app);
    return { app, catalog: app.get(Catalog), invalidator: app.get(CacheInvalidator) };
  }

  async function waitingJobs(queueName: string): Promise<InvalidationJob[]> {
    const queue = new Queue(queueName, { connection: { url: server.url } });
    try {
      return (await queue.getWaiting()).map((job) => job.data as InvalidationJob);
    } finally {
      await queue.close();
    }
  }

  it.each(DISPATCHERS)(
    '%s: a publish on one node invalidates the tagged entries another node serves',
    async (dispatcher: DispatcherName) => {
      const namespace = uniqueNamespace(`tagrule-${dispatcher}`);
      const queueName = `inv-${randomUUID().slice(0, 8)}`;
      // The publishing node runs no BullMQ worker: for 'bullmq' the job must travel through Redis.
      const publisher = await boot(namespace, queueName, false);
      const reader = await boot(namespace, queueName, true);

      for (const id of [1, 2, 3]) await publisher.catalog.product(id);
      for (const id of [1, 2, 3]) await reader.catalog.product(id);
      expect(publisher.catalog.loads).toBe(3);
      expect(reader.catalog.loads).toBe(0);

      db.set(1, 2);
      db.set(3, 2);
      await publisher.invalidator.publish(`product.${dispatcher}`, [{ id: 1 }, { id: 3 }]);
      if (dispatcher === 'inline') {
        // Done before publish resolved.
        expect(await reader.catalog.product(1)).toEqual({ id: 1, version: 2 });
      }
      await eventually(async () => (await reader.catalog.product(1)).version === 2);
      await eventually(async () => (await reader.catalog.product(3)).version === 2);
      expect(await reader.catalog.product(2)).toEqual({ id: 2, version: 1 });
      expect(reader.catalog.loads).toBe(2);

      // The tags' invalidation times are recorded in Redis, in the cache namespace.
      const redis = inspector(server.url);
      try {
        expect(await redis.exists(`${namespace}#tag:product:1`)).toBe(1);
        expect(await redis.exists(`${namespace}#tag:product:3`)).toBe(1);
        expect(await redis.exists(`${namespace}#tag:product:2`)).toBe(0);
      } finally {
        redis.disconnect();
      }
    },
  );

  it('bullmq: the queued job carries the tags, and a worker node applies them (more than 100)', async () => {
    const namespace = uniqueNamespace('tagrule-queued');
    const queueName = `inv-${randomUUID().slice(0, 8)}`;
    const publisher = await boot(namespace, queueName, false);
    const ids = Array.from({ length: 120 }, (_, i) => i + 1);
    for (const id of ids) await publisher.catalog.product(id);
    for (const id of ids) db.set(id, 2);

    await publisher.invalidator.publish(
      'product.bullmq',
      ids.map((id) => ({ id })),
    );
    const jobs = await waitingJobs(queueName);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ event: 'product.bullmq', keys: [], prefixes: [], namespace });
    expect(jobs[0].tags).toEqual(ids.map((id) => `product:${id}`));
    // Nothing ran yet: no worker.
    expect(await publisher.catalog.product(120)).toEqual({ id: 120, version: 1 });

    await boot(namespace, queueName, true);
    await eventually(async () => (await publisher.catalog.product(120)).version === 2);
    for (const id of [1, 50, 101]) {
      expect(await publisher.catalog.product(id)).toEqual({ id, version: 2 });
    }
  });

  it('bullmq: a tags-only rule on a cacheResult function with a function key', async () => {
    const namespace = uniqueNamespace('tagrule-fn');
    const queueName = `inv-${randomUUID().slice(0, 8)}`;
    const node = await boot(namespace, queueName, true);
    shopName.attach(node.invalidator);
    try {
      expect(await shopName('a')).toBe('shop a v1');
      expect(await shopName('b')).toBe('shop b v1');
      db.set(0, 2);
      expect(await shopName('a')).toBe('shop a v1');
      await node.invalidator.publish('shop.renamed', { shop: { id: 'a' } });
      await eventually(async () => (await shopName('a')) === 'shop a v2');
      expect(await shopName('b')).toBe('shop b v1');
    } finally {
      shopName.attach(undefined);
    }
  });
});
