import { type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Queue } from 'bullmq';
import { randomUUID } from 'node:crypto';
import {
  BullMqDispatcher,
  CacheInvalidator,
  CacheModule,
  CacheService,
  type BullMqDispatcherOptions,
  type CacheModuleOptions,
} from '../../lib';
import { Feeds, keyOf } from '../support/bullmq-feeds';
import { eventually } from '../support/eventually';
import { GatedAdapter } from '../support/gated-adapter';
import { CapturingLogger } from '../support/logs';
import { RedisServer } from '../support/redis-server';
import { inspector, sharedRedisUrl, uniqueNamespace } from '../support/redis';

async function boot(
  cacheOptions: CacheModuleOptions,
  bullmq: BullMqDispatcherOptions,
  logger: CapturingLogger | false = false,
): Promise<{ app: INestApplication; dispatcher: BullMqDispatcher }> {
  const dispatcher = new BullMqDispatcher(bullmq);
  const moduleRef = await Test.createTestingModule({
    imports: [
      CacheModule.forRoot({
        ...cacheOptions,
        invalidation: { dispatchers: { bullmq: dispatcher } },
      }),
    ],
    providers: [Feeds],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, dispatcher };
}

describe('BullMQ dispatcher across a Redis restart', () => {
  let server: RedisServer;
  const apps: INestApplication[] = [];

  beforeEach(async () => {
    // Persistence on, so what Redis acknowledged (queued jobs, cache entries) survives a kill.
    server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  });

  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    await server.stop();
  });

  it('a job published before Redis is killed and restarted is still carried out', async () => {
    const namespace = uniqueNamespace('bull');
    const queueName = `inv-${randomUUID().slice(0, 8)}`;
    const cacheOptions: CacheModuleOptions = {
      provider: 'redis',
      redis: { url: server.url },
      namespace,
    };
    // A web node: publishes, runs no worker.
    const producer = await boot(cacheOptions, {
      connection: { url: server.url },
      queueName,
      worker: false,
    });
    apps.push(producer.app);
    const cache = producer.app.get(CacheService);
    for (const userId of [42, 7])
      for (const page of [1, 2]) await cache.set(keyOf(userId, page), 'feed');

    await producer.app.get(CacheInvalidator).publish('post.created', { id: 1, authorId: 42 });
    expect(await producer.dispatcher.counts()).toMatchObject({ waiting: 1 });

    await server.kill();
    await server.restart();

    // Both the job and the stale entries survived the restart; nothing has run yet.
    const redis = inspector(server.url);
    try {
      expect(await redis.exists(`${namespace}:${keyOf(42, 1)}`)).toBe(1);
    } finally {
      redis.disconnect();
    }

    // A worker node comes up and carries the job out.
    const worker = await boot(cacheOptions, { connection: { url: server.url }, queueName });
    apps.push(worker.app);
    const workerCache = worker.app.get(CacheService);
    await eventually(async () => !(await workerCache.has(keyOf(42, 1))));
    expect(await workerCache.has(keyOf(42, 2))).toBe(false);
    expect(await workerCache.has(keyOf(7, 1))).toBe(true);
    await eventually(async () => (await worker.dispatcher.counts()).completed === 1);
  });

  it('a publish while Redis is down falls back, and the job is re-sent when Redis returns', async () => {
    const namespace = uniqueNamespace('bull');
    const logger = new CapturingLogger();
    const node = await boot(
      { provider: 'redis', redis: { url: server.url }, namespace },
      { connection: { url: server.url }, queueName: `inv-${randomUUID().slice(0, 8)}` },
      logger,
    );
    apps.push(node.app);
    const cache = node.app.get(CacheService);
    await cache.set(keyOf(42, 1), 'feed');
    await cache.set(keyOf(7, 1), 'feed');

    await server.kill();
    // Resolves without waiting for Redis (the inline fallback fails too, and says so).
    await node.app.get(CacheInvalidator).publish('post.created', { authorId: 42 });
    expect(node.dispatcher.bufferedJobs).toBe(1);
    expect(logger.text).toMatch(/BullMQ did not take the invalidation job for "post.created"/);

    await server.restart();
    // Read Redis directly: the cache itself answers "miss" while it reconnects.
    const redis = inspector(server.url);
    try {
      await eventually(async () => (await redis.exists(`${namespace}:${keyOf(42, 1)}`)) === 0);
      expect(await redis.exists(`${namespace}:${keyOf(7, 1)}`)).toBe(1);
    } finally {
      redis.disconnect();
    }
    // The key may go before the re-send is done: an add that timed out while Redis came back
    // can still land (jobs are idempotent, so the retry's duplicate is harmless). The buffer is
    // empty once a re-send has been acknowledged.
    await eventually(async () =>
      Promise.resolve(/Re-sent 1 buffered cache invalidation job/.test(logger.text)),
    );
    expect(node.dispatcher.bufferedJobs).toBe(0);
  });

  it('a queue whose set-up failed is opened again once Redis answers', async () => {
    // BullMQ sets a queue up once, on its first connection, and reads the server version with
    // INFO; when that fails (Redis went away during the set-up: the race behind the test above
    // failing now and then), BullMQ keeps the error for the queue's lifetime. A server that
    // refuses INFO makes that set-up fail deterministically (the ready check, which needs INFO
    // too, is off).
    await server.stop();
    server = await RedisServer.start({ args: ['--rename-command', 'INFO', ''] });
    const logger = new CapturingLogger();
    const node = await boot(
      { provider: 'memory', namespace: uniqueNamespace('bull') },
      {
        connection: { url: server.url, enableReadyCheck: false },
        queueName: `inv-${randomUUID().slice(0, 8)}`,
        worker: false,
      },
      logger,
    );
    apps.push(node.app);
    await eventually(async () => /BullMQ invalidation queue: .*unknown command/i.test(logger.text));

    // The same port, now with a server that answers INFO.
    const port = server.port;
    await server.stop();
    server = await RedisServer.start({ port });
    await node.app.get(CacheInvalidator).publish('post.created', { authorId: 42 });
    await eventually(async () => node.dispatcher.bufferedJobs === 0);
    expect(await node.dispatcher.counts()).toMatchObject({ waiting: 1 });
  });
});

describe('BullMQ dispatcher retries', () => {
  const queues: Queue[] = [];
  const apps: INestApplication[] = [];

  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    for (const queue of queues.splice(0)) {
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  async function bootFlaky(attempts: number, failures: number) {
    const adapter = new GatedAdapter();
    const queueName = `inv-${randomUUID().slice(0, 8)}`;
    const url = sharedRedisUrl();
    const node = await boot(
      { adapter, namespace: uniqueNamespace('retry') },
      { connection: { url }, queueName, attempts, backoff: 20 },
    );
    apps.push(node.app);
    const queue = new Queue(queueName, { connection: { url } });
    queues.push(queue);
    await node.app.get(CacheService).set(keyOf(42, 1), 'feed');
    adapter.failDeletes = failures;
    return { ...node, adapter, queue };
  }

  it('retries a failing job with exponential back-off until it succeeds', async () => {
    const { app, queue, adapter } = await bootFlaky(5, 2);
    await app.get(CacheInvalidator).publish('post.created', { authorId: 42 });
    await eventually(async () => (await queue.getCompletedCount()) === 1);
    const [job] = await queue.getCompleted();
    expect(job.attemptsMade).toBe(3);
    expect(job.opts.backoff).toEqual({ type: 'exponential', delay: 20 });
    expect(adapter.events.filter((e) => e.startsWith('fail'))).toHaveLength(2);
    expect(await app.get(CacheService).has(keyOf(42, 1))).toBe(false);
  });

  it('keeps a job that used up its attempts in the failed set for inspection', async () => {
    const { app, dispatcher } = await bootFlaky(2, 100);
    await app.get(CacheInvalidator).publish('post.created', { authorId: 42 });
    await eventually(async () => (await dispatcher.failedJobs()).length === 1);
    const [failed] = await dispatcher.failedJobs();
    expect(failed.attemptsMade).toBe(2);
    expect(failed.failedReason).toMatch(/injected failure: deleteByPrefix feeds:userId=42:/);
    expect(failed.data).toEqual({
      event: 'post.created',
      keys: [],
      prefixes: ['feeds:userId=42:'],
      namespace: expect.stringMatching(/^retry-/),
    });
    expect(await app.get(CacheService).has(keyOf(42, 1))).toBe(true);
  });
});
