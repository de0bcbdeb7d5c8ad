import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { CacheConnectionError, CacheModule } from '../../lib';
import { freePort, RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

// Nest runs the init hooks of a module's providers concurrently. When a named cache with
// `strict: true` cannot reach its Redis, startup fails — but the module's own cache (l1 + bus on
// another, reachable Redis) has already started its bus meanwhile. A failed init runs no
// shutdown hook, so that subscriber connection stays open, PINGing forever (a process that
// keeps going, a Jest run that never exits) — what test/redis/named-di-failure-leak.spec.ts
// guards against for a failed build.
describe('a strict named cache that fails startup leaves no connection open', () => {
  let server: RedisServer;
  let raw: Redis;
  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    raw.disconnect();
    await server.stop();
  });

  const others = async (): Promise<number> =>
    String(await raw.client('LIST'))
      .split('\n')
      .filter((line) => line.trim() !== '').length - 1;

  it('closes the bus of the default cache too', async () => {
    const dead = `redis://127.0.0.1:${await freePort()}`;
    const ref = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace: uniqueNamespace('sleak'),
          l1: true,
          caches: { sessions: { redis: { url: dead }, strict: true } },
        }),
      ],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    try {
      const error = await app.init().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(CacheConnectionError);
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(await others()).toBe(0);
    } finally {
      await app.close().catch(() => undefined);
    }
  });
});
