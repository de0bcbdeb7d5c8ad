import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CacheModule, CacheService, CacheSerializationError, InjectCache } from '../../lib';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

@Injectable()
class Both {
  constructor(
    readonly own: CacheService,
    @InjectCache('rich') readonly rich: CacheService,
  ) {}
}

describe('a serializer per named cache', () => {
  it.each(['memory', 'redis'] as const)('root json, named rich (%s)', async (provider) => {
    const ref = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider,
          redis: { url: sharedRedisUrl() },
          namespace: uniqueNamespace('ser'),
          l1: provider === 'redis',
          caches: { rich: { serializer: 'rich' } },
        }),
      ],
      providers: [Both],
    }).compile();
    const app = ref.createNestApplication({ logger: false });
    await app.init();
    try {
      const { own, rich } = app.get(Both);
      await rich.set('m', new Map([[1, new Date(3)]]));
      expect(await rich.get('m')).toEqual(new Map([[1, new Date(3)]]));
      await expect(own.set('m', new Map())).rejects.toBeInstanceOf(CacheSerializationError);
      await rich.setMany([
        { key: 'a', value: 1 },
        { key: 'b', value: 2 },
      ] as never);
      await expect(
        rich.setMany([
          { key: 'a', value: 10 },
          { key: 'b', value: () => 1 },
        ] as never),
      ).rejects.toBeInstanceOf(CacheSerializationError);
      expect(await rich.getMany(['a', 'b'])).toEqual([1, 2]);
    } finally {
      await app.close();
    }
  });
});
