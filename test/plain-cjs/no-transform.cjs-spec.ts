/** Run by `npm test` with test/plain-cjs/jest.config.js (see scripts/test-matrix.js). */
import { Test } from '@nestjs/testing';
import { CacheModule, CacheService, CacheConfigError } from '../../lib';

describe('a CommonJS Jest without the devalue transform', () => {
  it('imports the library and caches with json', async () => {
    const ref = await Test.createTestingModule({ imports: [CacheModule.forRoot({})] }).compile();
    const app = ref.createNestApplication({ logger: false });
    await app.init();
    const cache = app.get(CacheService);
    await cache.set('a', { b: 1 });
    expect(await cache.get('a')).toEqual({ b: 1 });
    await app.close();
  });
  it("'rich' fails at startup with a clear error", async () => {
    const error = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ serializer: 'rich' })],
    })
      .compile()
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(error).toBeInstanceOf(CacheConfigError);
    expect(error?.message).toMatch(/serializer 'rich' needs the package devalue/);
    expect(error?.message).toMatch(/transformIgnorePatterns/);
  });
});
