import { Test } from '@nestjs/testing';
import type { INestApplication } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  CacheInvalidator,
  CacheModule,
  CacheService,
  KeyConstructor,
  argField,
  constField,
} from '../../lib';
import type { CacheModuleOptions } from '../../lib';
import { inspector, sharedRedisUrl, uniqueNamespace } from '../support/redis';

const PayloadKey = KeyConstructor.define({
  namespace: 'users',
  fields: [argField('userId', { partition: true }), argField('view'), constField('v', 1)],
});

const backends: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({ provider: 'memory', namespace: uniqueNamespace('wipe') })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('wipe'),
    }),
  ],
];

describe.each(backends)('partition wipe on %s', (backend, optionsFor) => {
  let app: INestApplication;
  let cache: CacheService;
  let options: CacheModuleOptions;

  beforeEach(async () => {
    options = optionsFor();
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot(options)],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    cache = app.get(CacheService);
  });

  afterEach(async () => {
    await cache.clear();
    await app.close();
  });

  async function seed(userIds: unknown[]): Promise<string[]> {
    const keys: string[] = [];
    for (const userId of userIds) {
      for (const view of ['summary', 'full', 'a:b']) {
        const key = PayloadKey.render({ userId, view });
        await cache.set(key, { userId, view });
        keys.push(key);
      }
    }
    return keys;
  }

  it('deletes every entry of one partition with one call, and nothing else', async () => {
    await seed([42, 4, 420, 7]);
    const otherKey = 'users-other:userId=42:x';
    await cache.set(otherKey, 'not a payload');

    expect(await cache.deleteByPrefix(PayloadKey.partition({ userId: 42 }))).toBe(3);

    for (const view of ['summary', 'full', 'a:b']) {
      expect(await cache.has(PayloadKey.render({ userId: 42, view }))).toBe(false);
      for (const other of [4, 420, 7]) {
        expect(await cache.get(PayloadKey.render({ userId: other, view }))).toEqual({
          userId: other,
          view,
        });
      }
    }
    expect(await cache.get(otherKey)).toBe('not a payload');
  });

  it('wipes through the invalidator too', async () => {
    await seed([1, 2]);
    expect(await app.get(CacheInvalidator).wipePartition(PayloadKey, { userId: 1 })).toBe(3);
    expect(await cache.has(PayloadKey.render({ userId: 1, view: 'full' }))).toBe(false);
    expect(await cache.has(PayloadKey.render({ userId: 2, view: 'full' }))).toBe(true);
  });

  it('treats glob characters in partition values literally', async () => {
    const tricky = ['*', '4*', '?', '[42]', '4\\', 'a]b', '%2A'];
    await seed([...tricky, 42, 4, 'a']);
    for (const value of tricky) {
      expect(await cache.deleteByPrefix(PayloadKey.partition({ userId: value }))).toBe(3);
    }
    for (const survivor of [42, 4, 'a']) {
      expect(await cache.has(PayloadKey.render({ userId: survivor, view: 'full' }))).toBe(true);
    }
  });

  if (backend === 'redis') {
    it('writes readable keys under the namespace and leaves other namespaces alone', async () => {
      const redis: Redis = inspector();
      const foreign = `${uniqueNamespace('foreign')}:users:userId=42:view=full:v=1`;
      try {
        await redis.set(foreign, '"x"');
        await seed([42]);
        const keys = await redis.keys(`${options.namespace}:users:userId=42:*`);
        expect(keys.sort()).toEqual([
          `${options.namespace}:users:userId=42:view=a%3Ab:v=1`,
          `${options.namespace}:users:userId=42:view=full:v=1`,
          `${options.namespace}:users:userId=42:view=summary:v=1`,
        ]);
        await cache.deleteByPrefix(PayloadKey.partition({ userId: 42 }));
        expect(await redis.keys(`${options.namespace}:users:*`)).toEqual([]);
        expect(await redis.get(foreign)).toBe('"x"');
      } finally {
        await redis.del(foreign);
        redis.disconnect();
      }
    });
  }
});
