import { type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  BullMqDispatcher,
  CacheInvalidator,
  CacheModule,
  CacheService,
  type BullMqDispatcherOptions,
} from '../../lib';
import { Feeds, keyOf } from '../support/bullmq-feeds';
import { eventually } from '../support/eventually';
import { CapturingLogger } from '../support/logs';
import { RedisServer } from '../support/redis-server';
import { inspector, uniqueNamespace } from '../support/redis';

/**
 * A frozen Redis (SIGSTOP: connections stay open, nothing answers) costs `publish` with a BullMQ
 * rule at most one command timeout, like any cache call: the producer's add is bounded by the
 * cache's own timeout, and the inline fallback after it does not add a second wait.
 */

const TIMEOUT_MS = 500;
// One timeout plus room for a busy machine; two timeouts would exceed it.
const LIMIT_MS = 1.8 * TIMEOUT_MS;

describe('BullMQ dispatcher with Redis frozen', () => {
  let server: RedisServer;
  let app: INestApplication | undefined;

  beforeEach(async () => {
    server = await RedisServer.start();
  });

  afterEach(async () => {
    server.thaw();
    await app?.close();
    app = undefined;
    await server.stop();
  });

  async function boot(
    bullmq: Omit<BullMqDispatcherOptions, 'connection'>,
    logger: CapturingLogger,
  ) {
    const namespace = uniqueNamespace('frozen');
    const dispatcher = new BullMqDispatcher({ connection: { url: server.url }, ...bullmq });
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url, commandTimeout: TIMEOUT_MS },
          namespace,
          invalidation: { dispatchers: { bullmq: dispatcher } },
        }),
      ],
      providers: [Feeds],
    }).compile();
    app = moduleRef.createNestApplication({ logger });
    await app.init();
    const cache = app.get(CacheService);
    await cache.set(keyOf(42, 1), 'feed');
    await cache.set(keyOf(7, 1), 'feed');
    // The queue is set up (BullMQ reads the server version once) before the freeze.
    await dispatcher.counts();
    return { namespace, dispatcher, invalidator: app.get(CacheInvalidator) };
  }

  async function publishFrozen(invalidator: CacheInvalidator): Promise<number> {
    server.freeze();
    const started = performance.now();
    await invalidator.publish('post.created', { authorId: 42 });
    return performance.now() - started;
  }

  it.each([
    ['the default addTimeout (the cache command timeout)', {}],
    ['an addTimeout equal to the command timeout', { addTimeout: TIMEOUT_MS }],
  ])('publish waits at most one timeout with %s', async (_label, bullmq) => {
    const logger = new CapturingLogger();
    const { namespace, dispatcher, invalidator } = await boot({ worker: false, ...bullmq }, logger);

    const ms = await publishFrozen(invalidator);
    expect(ms).toBeLessThan(LIMIT_MS);
    expect(dispatcher.bufferedJobs).toBe(1);
    expect(logger.text).toMatch(
      /BullMQ did not take the invalidation job for "post.created" .*in the background/,
    );

    // After the thaw the job still reaches Redis (re-sent from the buffer).
    server.thaw();
    await eventually(async () => dispatcher.bufferedJobs === 0);
    expect((await dispatcher.counts()).waiting).toBeGreaterThanOrEqual(1);
    const redis = inspector(server.url);
    try {
      // The inline run sent its deletion before the freeze ended: Redis ran it on thaw.
      await eventually(async () => (await redis.exists(`${namespace}:${keyOf(42, 1)}`)) === 0);
      expect(await redis.exists(`${namespace}:${keyOf(7, 1)}`)).toBe(1);
    } finally {
      redis.disconnect();
    }
  });

  it('a publish when Redis refuses at once still runs the inline fallback before resolving', async () => {
    const logger = new CapturingLogger();
    const { invalidator, dispatcher } = await boot({ worker: false }, logger);
    await server.kill();
    await invalidator.publish('post.created', { authorId: 42 });
    // The fallback ran (and failed, Redis being gone) before publish resolved.
    expect(dispatcher.bufferedJobs).toBe(1);
    expect(logger.text).toMatch(/Cache invalidation for "post.created" failed/);
  });
});
