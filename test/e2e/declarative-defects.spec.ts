import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheEvict,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
  cacheResult,
  type CacheModuleOptions,
} from '../../lib';
import { CapturingLogger } from '../support/logs';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/** What the "database" answers; a test swaps in values JSON cannot hold. */
let current: unknown = { v: 1 };
let runs = 0;

/** A predicate that is (wrongly) async and rejects. */
const rejecting = async (): Promise<boolean> => {
  throw new Error('predicate lookup failed');
};
/** A predicate that returns a hand-made thenable that rejects. */
const thenable = (): boolean =>
  ({
    then: (_resolve: unknown, reject: (error: Error) => void) => reject(new Error('thenable')),
  }) as unknown as boolean;

@Injectable()
class ItemService {
  @CachePut({ key: 'item:{id}', ttl: 60 })
  async update(id: number): Promise<unknown> {
    runs += id > 0 ? 1 : 0;
    return current;
  }

  @Cacheable({ key: 'cond:{id}', condition: rejecting as unknown as () => boolean })
  async asyncCondition(id: number): Promise<number> {
    runs++;
    return id;
  }

  @Cacheable({ key: 'unless:{id}', unless: rejecting as unknown as () => boolean })
  async asyncUnless(id: number): Promise<number> {
    runs++;
    return id;
  }

  @Cacheable({ key: 'thenable:{id}', unless: thenable })
  async thenableUnless(id: number): Promise<number> {
    runs++;
    return id;
  }

  @CachePut({ key: 'put-cond:{id}', condition: rejecting as unknown as () => boolean })
  async putAsyncCondition(id: number): Promise<number> {
    runs++;
    return id;
  }

  @CachePut({ key: 'put-unless:{id}', unless: rejecting as unknown as () => boolean })
  async putAsyncUnless(id: number): Promise<number> {
    runs++;
    return id;
  }

  @CacheEvict({ key: 'evict:{id}', condition: rejecting as unknown as () => boolean })
  async evictAsyncCondition(id: number): Promise<number> {
    runs++;
    return id;
  }
}

const refreshable = cacheResult(async (_id: number) => current, {
  key: (id: number) => `fn:${id}`,
  ttl: 60,
});
const asyncUnlessFn = cacheResult(async (id: number) => id, {
  key: (id: number) => `fn-unless:${id}`,
  unless: rejecting as unknown as () => boolean,
});

/** How far each test moves the clock the rate-limited logger sees. */
let shift = 0;

const backends: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({ namespace: uniqueNamespace('defects') })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('defects'),
    }),
  ],
];

describe.each(backends)('declarative caching defects on %s', (_backend, optionsFor) => {
  let app: INestApplication;
  let cache: CacheService;
  let service: ItemService;
  let logger: CapturingLogger;

  // Warnings are rate-limited per topic for 10 s, process-wide: each test runs a minute after
  // the previous one, as far as the logger can tell, so each sees its own lines.
  beforeEach(async () => {
    shift += 60_000;
    const now = Date.now.bind(Date);
    const offset = shift;
    jest.spyOn(Date, 'now').mockImplementation(() => now() + offset);
    current = { v: 1 };
    runs = 0;
    logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot(optionsFor())],
      providers: [ItemService],
    }).compile();
    app = moduleRef.createNestApplication({ logger });
    await app.init();
    cache = app.get(CacheService);
    service = app.get(ItemService);
  });

  afterEach(async () => {
    await cache.clear();
    await app.close();
    jest.restoreAllMocks();
  });

  describe('a new result that cannot be stored deletes the old, now stale, entry', () => {
    it.each([
      ['a BigInt', 10n],
      ['a Map', new Map([['a', 1]])],
      ['NaN', NaN],
    ])('@CachePut returning %s', async (_name, value) => {
      await service.update(1);
      expect(await cache.get('item:1')).toEqual({ v: 1 });
      current = value;
      expect(await service.update(1)).toBe(value);
      expect(await cache.has('item:1')).toBe(false);
      expect(logger.warnings().join('\n')).toMatch(/not stored under "item:1", entry deleted/);
    });

    it('cacheResult(...).refresh', async () => {
      await refreshable(1);
      expect(await cache.get('fn:1')).toEqual({ v: 1 });
      current = 10n;
      expect(await refreshable.refresh(1)).toBe(10n);
      expect(await cache.has('fn:1')).toBe(false);
      expect(logger.warnings().join('\n')).toMatch(/not stored, entry "fn:1" deleted/);
    });
  });

  describe('an async condition or unless that rejects is logged, never unhandled', () => {
    let unhandled: unknown[];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    beforeEach(() => {
      unhandled = [];
      process.on('unhandledRejection', onUnhandled);
    });
    afterEach(() => {
      process.off('unhandledRejection', onUnhandled);
    });
    const settled = async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      await new Promise((resolve) => setImmediate(resolve));
    };

    it('@Cacheable condition: the call runs uncached', async () => {
      expect(await service.asyncCondition(1)).toBe(1);
      expect(await service.asyncCondition(1)).toBe(1);
      await settled();
      expect(unhandled).toEqual([]);
      expect(runs).toBe(2);
      expect(await cache.has('cond:1')).toBe(false);
      expect(logger.warnings().join('\n')).toMatch(/condition returned a Promise/);
    });

    it.each([
      ['asyncUnless', 'unless:1'],
      ['thenableUnless', 'thenable:1'],
    ] as const)('@Cacheable %s: the result is returned, not stored', async (method, key) => {
      expect(await service[method](1)).toBe(1);
      await settled();
      expect(unhandled).toEqual([]);
      expect(await cache.has(key)).toBe(false);
      expect(logger.warnings().join('\n')).toMatch(/unless returned a Promise/);
    });

    it('@CachePut condition and unless', async () => {
      await cache.set('put-cond:1', 'old');
      expect(await service.putAsyncCondition(1)).toBe(1);
      expect(await service.putAsyncUnless(1)).toBe(1);
      await settled();
      expect(unhandled).toEqual([]);
      expect(await cache.get('put-cond:1')).toBe('old');
      expect(await cache.has('put-unless:1')).toBe(false);
    });

    it('@CacheEvict condition: nothing evicted', async () => {
      await cache.set('evict:1', 'kept');
      expect(await service.evictAsyncCondition(1)).toBe(1);
      await settled();
      expect(unhandled).toEqual([]);
      expect(await cache.get('evict:1')).toBe('kept');
    });

    it('cacheResult unless, on a call and on refresh', async () => {
      expect(await asyncUnlessFn(1)).toBe(1);
      expect(await asyncUnlessFn.refresh(2)).toBe(2);
      await settled();
      expect(unhandled).toEqual([]);
      expect(await cache.has('fn-unless:1')).toBe(false);
      expect(await cache.has('fn-unless:2')).toBe(false);
    });

    it('CacheService.wrap unless', async () => {
      const result = await cache.wrap('wrap-unless', () => 5, {
        unless: rejecting as unknown as () => boolean,
      });
      expect(result).toBe(5);
      await settled();
      expect(unhandled).toEqual([]);
      expect(await cache.has('wrap-unless')).toBe(false);
    });
  });
});
