import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CacheModule, CacheService, InjectCache, type CacheModuleOptions } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

@Injectable()
class Svc {
  constructor(@InjectCache('catalog') readonly catalog: CacheService) {}
}

// Root: Redis with an L1 and a tuned bus. One named cache switches its L1 off. It never set
// `bus`, yet it inherits the root's and startup fails with `caches.catalog.bus ... without l1`.
describe('a named cache that turns l1 off under a root with a tuned bus', () => {
  let server: RedisServer;
  const apps: INestApplication[] = [];
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => server.stop());
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  it.each([{ heartbeat: 5 }, true] as const)(
    'boots, the cache on Redis alone (bus: %p)',
    async (bus) => {
      const options: CacheModuleOptions = {
        provider: 'redis',
        redis: { url: server.url },
        namespace: uniqueNamespace('nbus'),
        l1: true,
        bus,
        caches: { catalog: { l1: false, ttl: 60 } },
      };
      const ref = await Test.createTestingModule({
        imports: [CacheModule.forRoot(options)],
        providers: [Svc],
      }).compile();
      const app = ref.createNestApplication({ logger: false });
      apps.push(app);
      await app.init();
      const { catalog } = app.get(Svc);
      await catalog.set('a', 1);
      expect(await catalog.get('a')).toBe(1);
      // The root keeps its L1 and bus.
      expect(app.get(CacheStack).busState).toBeDefined();
    },
  );
});
