import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { CacheConnectionError, CacheModule, type CacheModuleOptions } from '../../lib';
import { freePort, RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/** A provider that fails to build: the everyday "Nest can't resolve dependencies of ...". */
@Injectable()
class Broken {
  constructor() {
    throw new Error('a provider that fails to build');
  }
}

/**
 * An application that fails to start leaves no connection of the cache module behind: Nest runs
 * no shutdown hook then (a process, or a Jest worker, that would not exit). Seen on a live
 * server's client list.
 * - A failed build (another provider throws): the connections named caches share are opened at
 *   init, not while Nest builds the providers.
 * - A `strict` cache that cannot reach Redis fails init, while the module's providers were
 *   started together: no bus subscriber may be left reconnecting.
 */
describe('a failed startup leaves no connection behind', () => {
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
    ['without named caches', {}],
    ['with named caches', { caches: { sessions: {} } }],
  ])('a failed build, %s', async (_label, extra) => {
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const error = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace: uniqueNamespace('leak'),
          ...extra,
        }),
      ],
      providers: [Broken],
    })
      .compile()
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(error?.message).toMatch(/fails to build/);
    await sleep(300);
    expect(await others()).toBe(0);
  });

  it.each<[string, CacheModuleOptions]>([
    ['l1 + bus', { l1: true }],
    ['l1 + bus under failover', { l1: true, failover: true }],
    ['l1 + bus, with a named cache', { l1: true, caches: { other: { ttl: 5 } } }],
  ])(
    'strict, %s: nothing reconnects once the server is back',
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
