import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { CacheConnectionError, CacheModule, type CacheModuleOptions } from '../../lib';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * A `strict` cache that cannot reach Redis fails startup; Nest then runs no shutdown hook, and
 * the module's providers were started together. Nothing the module opened may stay behind: no
 * bus subscriber reconnecting for an application that never started (a process, or a Jest
 * worker, that would not exit). Seen by bringing the server back on the same port afterwards
 * and listing its clients.
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

  it.each<[string, CacheModuleOptions]>([
    ['l1 + bus', { l1: true }],
    ['l1 + bus under failover', { l1: true, failover: true }],
    ['l1 + bus, with a named cache', { l1: true, caches: { other: { ttl: 5 } } }],
  ])(
    '%s',
    async (_mode, extra) => {
      await server.kill();
      const ref = await Test.createTestingModule({
        imports: [
          CacheModule.forRoot({
            provider: 'redis',
            redis: { url: server.url },
            namespace: uniqueNamespace('strict-leak'),
            strict: true,
            ...extra,
          }),
        ],
      }).compile();
      const app = ref.createNestApplication({ logger: false });
      const failure = await app.init().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(CacheConnectionError);
      // The server is back: a connection left reconnecting (retries every ≤ 2 s) shows up.
      await server.restart();
      raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
      await sleep(3500);
      expect(await others()).toBe(0);
    },
    20_000,
  );
});
