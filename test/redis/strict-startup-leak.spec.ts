import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { CacheConnectionError, CacheModule, type CacheModuleOptions } from '../../lib';
import { freePort, RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * A `strict` cache that cannot reach Redis fails startup; Nest then runs no shutdown hook, and
 * the module's providers were started together. Nothing the module opened may stay behind: no
 * bus subscriber reconnecting for an application that never started (a process, or a Jest
 * worker, that would not exit). Seen on a live server's client list.
 */
describe('a strict cache that fails startup leaves no connection behind', () => {
  let server: RedisServer;
  let raw: Redis | undefined;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterEach(() => {
    raw?.disconnect();
    raw = undefined;
  });
  afterAll(async () => {
    await server.stop();
  });

  /** Clients of the server other than the one asking. */
  const others = async (): Promise<number> =>
    String(await raw?.client('LIST'))
      .split('\n')
      .filter((line) => line.trim() !== '').length - 1;

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Builds an application of `options` whose `init()` must fail with CacheConnectionError. */
  const failedStartup = async (options: CacheModuleOptions): Promise<void> => {
    const ref = await Test.createTestingModule({
      imports: [CacheModule.forRoot(options)],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    const failure = await app.init().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(CacheConnectionError);
  };

  it.each<[string, CacheModuleOptions]>([
    ['l1 + bus', { l1: true }],
    ['l1 + bus under failover', { l1: true, failover: true }],
    ['l1 + bus, with a named cache', { l1: true, caches: { other: { ttl: 5 } } }],
  ])(
    '%s: nothing reconnects once the server is back',
    async (_mode, extra) => {
      await server.kill();
      await failedStartup({
        provider: 'redis',
        redis: { url: server.url },
        namespace: uniqueNamespace('strict-leak'),
        strict: true,
        ...extra,
      });
      // The server is back on its port: a connection left reconnecting (every ≤ 2 s) shows up.
      await server.restart();
      raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
      await sleep(3500);
      expect(await others()).toBe(0);
    },
    20_000,
  );

  it('a strict named cache on a dead server: the default cache’s bus on a live one is closed too', async () => {
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
    await failedStartup({
      provider: 'redis',
      redis: { url: server.url },
      namespace: uniqueNamespace('strict-leak'),
      l1: true,
      caches: {
        sessions: { redis: { url: `redis://127.0.0.1:${await freePort()}` }, strict: true },
      },
    });
    await sleep(2500);
    expect(await others()).toBe(0);
  }, 20_000);
});
