import { type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Queue } from 'bullmq';
import { randomUUID } from 'node:crypto';
import {
  BullMqDispatcher,
  CacheConfigError,
  CacheInvalidator,
  CacheModule,
  CacheService,
  RedisCacheAdapter,
  type BullMqDispatcherOptions,
  type CacheModuleOptions,
  type InvalidationDispatcher,
  type InvalidationExecutor,
} from '../../lib';
import { Feeds, keyOf } from '../support/bullmq-feeds';
import { eventually } from '../support/eventually';
import { CapturingLogger } from '../support/logs';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * A BullMQ invalidation job is applied only in the cache namespace it was made for: two
 * applications with different namespaces on one Redis never process each other's jobs (by
 * default each namespace has its own queue), and on a queue they share on purpose a worker
 * hands a foreign job back instead of applying it. A namespace that would hold BullMQ's own keys
 * is refused at startup.
 */

const USERS = [1, 2, 3, 4, 5, 6, 7, 8];

describe('BullMQ dispatcher: jobs stay in their namespace', () => {
  let server: RedisServer;
  const apps: INestApplication[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });

  afterAll(async () => {
    await server.stop();
  });

  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  async function boot(
    namespace: string,
    bullmq: Omit<BullMqDispatcherOptions, 'connection'> = {},
    logger: CapturingLogger | false = false,
    cache: CacheModuleOptions = {},
  ): Promise<{ app: INestApplication; dispatcher: BullMqDispatcher; cache: CacheService }> {
    const dispatcher = new BullMqDispatcher({ connection: { url: server.url }, ...bullmq });
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace,
          ...cache,
          invalidation: { dispatchers: { bullmq: dispatcher } },
        }),
      ],
      providers: [Feeds],
    }).compile();
    const app = moduleRef.createNestApplication({ logger });
    await app.init();
    apps.push(app);
    return { app, dispatcher, cache: app.get(CacheService) };
  }

  async function fill(cache: CacheService): Promise<void> {
    for (const userId of USERS) await cache.set(keyOf(userId, 1), `feed ${userId}`);
  }

  async function stored(cache: CacheService): Promise<number[]> {
    const kept: number[] = [];
    for (const userId of USERS) if (await cache.has(keyOf(userId, 1))) kept.push(userId);
    return kept;
  }

  it('two applications with default options each run only their own jobs', async () => {
    const a = await boot(uniqueNamespace('appa'));
    const b = await boot(uniqueNamespace('appb'));
    await fill(a.cache);
    await fill(b.cache);

    // Several jobs, so that with one shared queue B's worker would take some of A's.
    for (const userId of USERS) {
      await a.app.get(CacheInvalidator).publish('post.created', { authorId: userId });
    }
    await eventually(async () => (await a.dispatcher.counts()).completed === USERS.length);
    expect(await stored(a.cache)).toEqual([]);
    expect(await stored(b.cache)).toEqual(USERS);
    expect((await b.dispatcher.counts()).completed ?? 0).toBe(0);

    // And the other way round.
    await b.app.get(CacheInvalidator).publish('post.created', { authorId: 3 });
    await eventually(async () => !(await b.cache.has(keyOf(3, 1))));
    await fill(a.cache);
    expect(await stored(a.cache)).toEqual(USERS);
  });

  it('the default queue is named after the namespace and the job carries the namespace', async () => {
    const namespace = uniqueNamespace('named');
    const node = await boot(namespace, { worker: false });
    expect(node.dispatcher.queueName).toBe(`cachekit-invalidation.${namespace}`);
    await node.app.get(CacheInvalidator).publish('post.created', { authorId: 42 });
    const queue = new Queue(node.dispatcher.queueName, { connection: { url: server.url } });
    try {
      const [job] = await queue.getWaiting();
      expect(job.data).toEqual({
        event: 'post.created',
        keys: [],
        prefixes: ['feeds:userId=42:'],
        namespace,
      });
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  it('on an explicitly shared queue, a foreign job is handed back, not applied', async () => {
    const queueName = `shared-${randomUUID().slice(0, 8)}`;
    const logger = new CapturingLogger();
    const nsA = uniqueNamespace('sharea');
    // Only B's worker runs at first: A's job can only reach it.
    const producerA = await boot(nsA, { queueName, worker: false });
    const workerB = await boot(uniqueNamespace('shareb'), { queueName }, logger);
    await fill(producerA.cache);
    await fill(workerB.cache);

    await producerA.app.get(CacheInvalidator).publish('post.created', { authorId: 2 });
    await eventually(async () => /handed back, not applied/.test(logger.text));
    expect(logger.text).toContain(`belongs to the namespace "${nsA}"`);
    expect(await stored(workerB.cache)).toEqual(USERS);
    expect(await stored(producerA.cache)).toEqual(USERS);

    // A worker of A's namespace comes up and gets the job. B's worker stops, so that the job's
    // next hand-out can only go to A (which worker BullMQ hands a job to is not ours to choose).
    await boot(nsA, { queueName });
    await workerB.dispatcher.close();
    await eventually(async () => !(await producerA.cache.has(keyOf(2, 1))));
    expect(await stored(producerA.cache)).toEqual(USERS.filter((u) => u !== 2));
    expect(await stored(workerB.cache)).toEqual(USERS);
  });

  it("an application's executor refuses a job of another namespace", async () => {
    let execute: InvalidationExecutor | undefined;
    const capture: InvalidationDispatcher = {
      start: (run) => {
        execute = run;
      },
      dispatch: (job, run) => run(job),
    };
    const namespace = uniqueNamespace('exec');
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace,
          invalidation: { dispatchers: { bullmq: capture } },
        }),
      ],
      providers: [Feeds],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    apps.push(app);
    const cache = app.get(CacheService);
    await cache.set(keyOf(5, 1), 'feed');

    const job = { event: 'post.created', keys: [], prefixes: ['feeds:'] };
    await expect(execute!({ ...job, namespace: 'someone-else' })).rejects.toThrow(
      /belongs to the cache namespace "someone-else"/,
    );
    expect(await cache.has(keyOf(5, 1))).toBe(true);
    await execute!({ ...job, namespace });
    expect(await cache.has(keyOf(5, 1))).toBe(false);
  });

  it("a cache namespace equal to BullMQ's prefix really would clear the queue", async () => {
    // Why the combination is refused below: the cache clears `bull:*`, where BullMQ lives.
    const queue = new Queue('victim', { connection: { url: server.url } });
    const cache = new RedisCacheAdapter({ redis: { url: server.url }, namespace: 'bull' });
    try {
      await cache.onModuleInit();
      await queue.add('job', { n: 1 });
      expect(await queue.getWaitingCount()).toBe(1);
      await cache.clear();
      expect(await queue.getWaitingCount()).toBe(0);
    } finally {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await cache.onApplicationShutdown();
    }
  });

  it.each([
    ['bull', {}, /"namespace" \("bull"\).*"prefix" \("bull", BullMQ's default\)/],
    ['jobs', { prefix: 'jobs' }, /"namespace" \("jobs"\).*"prefix" \("jobs"\)/],
    ['tenant', { prefix: 'tenant:queues' }, /"namespace" \("tenant"\).*"prefix"/],
  ])(
    'refuses at startup the namespace %p with BullMQ options %p',
    async (namespace, bullmq, message) => {
      const dispatcher = new BullMqDispatcher({ connection: { url: server.url }, ...bullmq });
      const moduleRef = await Test.createTestingModule({
        imports: [
          CacheModule.forRoot({
            provider: 'redis',
            redis: { url: server.url },
            namespace,
            invalidation: { dispatchers: { bullmq: dispatcher } },
          }),
        ],
        providers: [Feeds],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      const init = app.init();
      await expect(init).rejects.toThrow(CacheConfigError);
      await expect(init).rejects.toThrow(message);
      await app.close().catch(() => undefined);
      await dispatcher.close();
    },
  );

  it.each([
    [{ queueName: 'a:b' }, /"queueName": "a:b" \(expected a name without ':'/],
    [{ queueName: '' }, /"queueName": "" \(expected a non-empty string/],
    [{ prefix: 42 }, /"prefix": 42 \(expected a non-empty string/],
  ])('refuses the BullMqDispatcher options %p when built', (options, message) => {
    const build = () =>
      new BullMqDispatcher({ connection: { url: server.url }, ...(options as object) });
    expect(build).toThrow(CacheConfigError);
    expect(build).toThrow(message);
  });

  it('accepts a namespace that only starts like the prefix', async () => {
    const node = await boot(`bull-${randomUUID().slice(0, 8)}`, { worker: false });
    expect(node.dispatcher.queueName).toMatch(/^cachekit-invalidation\.bull-/);
  });
});
