import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheConfigError,
  CacheModule,
  CacheService,
  InjectCache,
  MemoryCacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { uniqueNamespace } from '../support/redis';

@Injectable()
class Svc {
  constructor(@InjectCache('legacy') readonly legacy: CacheService) {}
}

async function boot(options: CacheModuleOptions) {
  const ref = await Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
    providers: [Svc],
  }).compile();
  const app = ref.createNestApplication({ logger: false });
  await app.init();
  return app;
}

// README: a named cache does not inherit `adapter` ("an instance serves one cache"), and "an
// adapter you pass as `adapter` writes with its own serializer ... the module's serializer must
// then be left out". A named cache given its own adapter still inherits the root's
// `serializer: 'rich'`, and startup fails on an option the cache never set, with a message
// naming the root's "serializer" and no cache.
describe('a named cache with an adapter of its own', () => {
  it("boots under a root with serializer: 'rich', writing with its adapter's serializer", async () => {
    const app = await boot({
      namespace: uniqueNamespace('own'),
      serializer: 'rich',
      caches: { legacy: { adapter: new MemoryCacheAdapter() } },
    });
    try {
      const { legacy } = app.get(Svc);
      await legacy.set('d', { at: new Date(0) });
      expect(await legacy.get('d')).toEqual({ at: '1970-01-01T00:00:00.000Z' });
    } finally {
      await app.close();
    }
  });

  it('names the cache when the adapter conflicts with an option it inherits', async () => {
    const error = await boot({
      namespace: uniqueNamespace('own'),
      provider: 'redis',
      redis: { url: 'redis://127.0.0.1:1' },
      l1: true,
      caches: { legacy: { adapter: new MemoryCacheAdapter() } },
    }).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(CacheConfigError);
    expect(error?.message).toContain('caches.legacy');
  });
});
