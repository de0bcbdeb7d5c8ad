import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Redis } from 'ioredis';
import { CacheModule, CacheService } from '../../lib';
import {
  createCacheManager,
  type CacheManagerCompatible,
} from '../../lib/compat/cache-manager.facade';
import { CacheStack } from '../../lib/core/cache-stack';
import { eventually } from '../support/eventually';
import { inspector, sharedRedisUrl, uniqueNamespace } from '../support/redis';

/**
 * Issue 16, item 2, on a real Redis: the CACHE_MANAGER object's TTLs in ms reach Redis as
 * `PX` (checked with PTTL), its entries are CacheService's and the other way round, `wrap`
 * loads once and `refreshThreshold` refreshes in the background.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('CACHE_MANAGER compatible object on Redis', () => {
  let app: INestApplication;
  let cache: CacheManagerCompatible;
  let service: CacheService;
  let raw: Redis;
  let namespace: string;

  beforeAll(() => {
    raw = inspector();
  });
  afterAll(() => raw.quit());

  beforeEach(async () => {
    namespace = uniqueNamespace('cm-redis');
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: sharedRedisUrl() },
          namespace,
          ttl: 60,
        }),
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    service = app.get(CacheService);
    cache = createCacheManager(app.get(CacheStack));
  });
  afterEach(() => app.close());

  it('set: the TTL in ms reaches Redis as PX; ttl() is its absolute expiry', async () => {
    await expect(cache.set('k', { a: 1 }, 30_000)).resolves.toEqual({ a: 1 });
    const pttl = await raw.pttl(`${namespace}:k`);
    expect(pttl).toBeGreaterThan(25_000);
    expect(pttl).toBeLessThanOrEqual(30_000);
    const before = Date.now();
    const expires = await cache.ttl('k');
    expect(expires).toBeGreaterThan(before + 25_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 30_000);

    await cache.set('sub-second', 1, 1_500);
    const short = await raw.pttl(`${namespace}:sub-second`);
    expect(short).toBeGreaterThan(1_000);
    expect(short).toBeLessThanOrEqual(1_500);

    await cache.set('default', 1);
    expect(await raw.pttl(`${namespace}:default`)).toBeGreaterThan(55_000);
    await cache.set('forever', 1, 0);
    await expect(raw.pttl(`${namespace}:forever`)).resolves.toBe(-1);
    await expect(cache.ttl('forever')).resolves.toBeUndefined();
    await expect(cache.ttl('absent')).resolves.toBeUndefined();
  });

  it('one set of entries with CacheService, both ways, for every method', async () => {
    await cache.set('a', 'from-cm', 10_000);
    await expect(service.get('a')).resolves.toBe('from-cm');
    await service.set('b', { from: 'service' }, 10);
    await expect(cache.get('b')).resolves.toEqual({ from: 'service' });

    await expect(
      cache.mset([
        { key: 'm1', value: 1, ttl: 10_000 },
        { key: 'm2', value: 2 },
      ]),
    ).resolves.toEqual([
      { key: 'm1', value: 1, ttl: 10_000 },
      { key: 'm2', value: 2, ttl: 60_000 },
    ]);
    await expect(service.get('m2')).resolves.toBe(2);
    expect(await raw.pttl(`${namespace}:m1`)).toBeLessThanOrEqual(10_000);
    await expect(cache.mget(['a', 'b', 'absent', 'm1'])).resolves.toEqual([
      'from-cm',
      { from: 'service' },
      undefined,
      1,
    ]);

    await expect(cache.del('a')).resolves.toBe(true);
    await expect(service.get('a')).resolves.toBeUndefined();
    await expect(cache.mdel(['m1', 'm2'])).resolves.toBe(true);
    await expect(service.has('m1')).resolves.toBe(false);
    await expect(cache.clear()).resolves.toBe(true);
    await expect(service.get('b')).resolves.toBeUndefined();
    await expect(raw.exists(`${namespace}:b`)).resolves.toBe(0);
  });

  it('wrap: one load for concurrent callers (CacheService.wrap too), stored with PX', async () => {
    let release!: (value: string) => void;
    const loader = jest.fn(() => new Promise<string>((resolve) => (release = resolve)));
    const calls = [
      cache.wrap('w', loader, 20_000),
      cache.wrap('w', loader, { ttl: 20_000 }),
      service.wrap('w', loader, 20),
    ];
    await eventually(() => Promise.resolve(loader.mock.calls.length > 0));
    release('once');
    await expect(Promise.all(calls)).resolves.toEqual(['once', 'once', 'once']);
    expect(loader).toHaveBeenCalledTimes(1);
    await eventually(async () => (await service.get('w')) === 'once');
    const pttl = await raw.pttl(`${namespace}:w`);
    expect(pttl).toBeGreaterThan(15_000);
    expect(pttl).toBeLessThanOrEqual(20_000);

    const byValue = await cache.wrap('v', () => ({ life: 7_000 }), { ttl: (v) => v.life });
    expect(byValue).toEqual({ life: 7_000 });
    const valued = await raw.pttl(`${namespace}:v`);
    expect(valued).toBeGreaterThan(5_000);
    expect(valued).toBeLessThanOrEqual(7_000);
  });

  it('wrap: refreshThreshold refreshes in the background, the caller gets the cached value', async () => {
    const refreshed: unknown[] = [];
    cache.on('refresh', (data) => refreshed.push(data));
    let n = 0;
    const loader = jest.fn(() => Promise.resolve(`v${++n}`));
    await expect(cache.wrap('r', loader, 2_000, 1_600)).resolves.toBe('v1');
    await eventually(async () => (await service.get('r')) === 'v1');
    await sleep(500); // under 1600 ms left
    await expect(cache.wrap('r', loader, 2_000, 1_600)).resolves.toBe('v1');
    await eventually(() => Promise.resolve(refreshed.length === 1));
    expect(refreshed).toEqual([{ key: 'r', value: 'v2' }]);
    await eventually(async () => (await service.get('r')) === 'v2');
    expect(loader).toHaveBeenCalledTimes(2);
    expect(await raw.pttl(`${namespace}:r`)).toBeGreaterThan(1_500);
  });
});
