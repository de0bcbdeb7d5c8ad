import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { CacheModule, CacheService, InjectCache } from '../../lib';
import { freePort, RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

@Injectable()
class Svc {
  constructor(@InjectCache('sessions') readonly sessions: CacheService) {}
}

// README, Named caches: "A named cache starts from the root options and overrides what it
// sets". A cache that sets only `redis: { db: 3 }` (or a keyPrefix, a commandTimeout) loses the
// root's URL as a whole and silently connects to CACHE_REDIS_URL or redis://127.0.0.1:6379 —
// another server — instead of database 3 of the root's Redis.
describe('a named cache that sets redis fields but not the server', () => {
  let server: RedisServer;
  let saved: string | undefined;
  beforeAll(async () => {
    server = await RedisServer.start();
    saved = process.env.CACHE_REDIS_URL;
    // What the module falls back to when the URL is lost: a closed port here (never a real Redis).
    process.env.CACHE_REDIS_URL = `redis://127.0.0.1:${await freePort()}`;
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env.CACHE_REDIS_URL;
    else process.env.CACHE_REDIS_URL = saved;
    await server.stop();
  });

  it("keeps the root's server and uses the database it names", async () => {
    const namespace = uniqueNamespace('part');
    const ref = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace,
          caches: { sessions: { redis: { db: 3 } } },
        }),
      ],
      providers: [Svc],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    await app.init();
    const raw = new Redis(server.url, { db: 3, maxRetriesPerRequest: 1 });
    try {
      await app.get(Svc).sessions.set('s1', 'alice');
      expect(await raw.get(`${namespace}.sessions:s1`)).toBe('"alice"');
    } finally {
      raw.disconnect();
      await app.close();
    }
  });
});
