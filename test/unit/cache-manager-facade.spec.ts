import { EventEmitter } from 'node:events';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Cache } from 'cache-manager';
import type { Keyv } from 'keyv';
import { CacheArgumentError, CacheModule, CacheService, type CacheModuleOptions } from '../../lib';
import {
  createCacheManager,
  type CacheManagerCompatible,
  type CacheManagerFacadeOptions,
} from '../../lib/compat/cache-manager.facade';
import { CacheStack } from '../../lib/core/cache-stack';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 16, item 2: the CACHE_MANAGER object (cache-manager 7's API, TTLs in ms) over the
 * application's cache stack, on the memory provider with fake timers: every method's return
 * value and events as cache-manager's, the TTL units exact, and one set of entries with
 * CacheService.
 */

// The compatible object is a cache-manager `Cache` (stores typed as Keyv), checked by tsc.
const asCache = (cache: CacheManagerCompatible<Keyv>): Cache => cache;

const advance = (ms: number): Promise<void> => jest.advanceTimersByTimeAsync(ms);

interface Booted {
  app: INestApplication;
  service: CacheService;
  stack: CacheStack;
  cache: CacheManagerCompatible;
}

async function boot(
  options: CacheModuleOptions = {},
  facade: CacheManagerFacadeOptions = {},
): Promise<Booted> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      CacheModule.forRoot({
        namespace: uniqueNamespace('cm'),
        ttl: 60,
        memory: { sweepInterval: 0 },
        ...options,
      }),
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  const stack = app.get(CacheStack);
  return { app, service: app.get(CacheService), stack, cache: createCacheManager(stack, facade) };
}

/** Records every payload of `events` emitted by `cache`, in order. */
function record(
  cache: CacheManagerCompatible,
  events: readonly string[],
): Array<[string, unknown]> {
  const seen: Array<[string, unknown]> = [];
  for (const event of events) {
    cache.on(event as 'set', (data: unknown) => seen.push([event, data]));
  }
  return seen;
}

describe('CACHE_MANAGER compatible object on memory (fake timers)', () => {
  let booted: Booted;
  let cache: CacheManagerCompatible;
  let service: CacheService;

  beforeEach(async () => {
    jest.useFakeTimers();
    booted = await boot();
    ({ cache, service } = booted);
  });
  afterEach(async () => {
    await booted?.app.close();
    jest.useRealTimers();
  });

  it('is a cache-manager Cache: detached methods, cacheId, stores, disconnect', async () => {
    expect(asCache).toBeDefined();
    const { get, set, wrap } = cache;
    await expect(set('k', { a: 1 })).resolves.toEqual({ a: 1 });
    await expect(get('k')).resolves.toEqual({ a: 1 });
    await expect(wrap('k', () => 'loaded')).resolves.toEqual({ a: 1 });
    expect(typeof cache.cacheId()).toBe('string');
    expect(cache.cacheId()).toBe(cache.cacheId());
    expect(cache.stores).toEqual([]);
    const stores = [{ name: 'keyv' }];
    const given = createCacheManager(booted.stack, { stores, cacheId: 'mine' });
    expect(given.stores).toBe(stores);
    expect(given.cacheId()).toBe('mine');
    // Closes nothing: the cache still answers afterwards.
    await expect(cache.disconnect()).resolves.toBeUndefined();
    await expect(cache.set('after', 1)).resolves.toBe(1);
    await expect(service.get('after')).resolves.toBe(1);
  });

  it('set/get: returns the value, one set of entries with CacheService both ways', async () => {
    await expect(cache.set('from-cm', 'v', 10_000)).resolves.toBe('v');
    await expect(service.get('from-cm')).resolves.toBe('v');
    await service.set('from-service', { n: 2 }, 10);
    await expect(cache.get('from-service')).resolves.toEqual({ n: 2 });
    await expect(cache.get('absent')).resolves.toBeUndefined();
  });

  it('set: the TTL is in milliseconds, to the millisecond', async () => {
    await cache.set('ms', 'v', 1_500);
    await advance(1_499);
    await expect(cache.get('ms')).resolves.toBe('v');
    await expect(service.get('ms')).resolves.toBe('v');
    // Gone within the next millisecond (cache-manager's Keyv: once `Date.now() > expires`).
    await advance(2);
    await expect(cache.get('ms')).resolves.toBeUndefined();
    await expect(service.get('ms')).resolves.toBeUndefined();
  });

  it('set: no TTL is the module ttl; 0 never expires; a numeric string is read as ms', async () => {
    await cache.set('default', 'd');
    await cache.set('forever', 'f', 0);
    await cache.set('string', 's', '250' as unknown as number);
    await advance(249);
    await expect(cache.get('string')).resolves.toBe('s');
    await advance(2);
    await expect(cache.get('string')).resolves.toBeUndefined();
    await advance(60_000 - 252);
    await expect(cache.get('default')).resolves.toBe('d');
    await advance(2);
    await expect(cache.get('default')).resolves.toBeUndefined();
    await advance(10 * 86_400_000);
    await expect(cache.get('forever')).resolves.toBe('f');
  });

  it('set: a negative, NaN or non-numeric TTL is refused, naming milliseconds', async () => {
    for (const ttl of [-1, Number.NaN, Infinity, '1e3', 'soon']) {
      await expect(cache.set('bad', 1, ttl as number)).rejects.toThrow(CacheArgumentError);
    }
    await expect(cache.set('bad', 1, -1)).rejects.toThrow(/milliseconds/);
    await expect(cache.get('bad')).resolves.toBeUndefined();
  });

  it('ttl: the absolute expiry in ms; undefined on a miss and for an entry that never expires', async () => {
    const now = Date.now();
    await cache.set('t', 1, 2_500);
    await expect(cache.ttl('t')).resolves.toBe(now + 2_500);
    await service.set('s', 1, 3);
    await expect(cache.ttl('s')).resolves.toBe(now + 3_000);
    await cache.set('never', 1, 0);
    await expect(cache.ttl('never')).resolves.toBeUndefined();
    await expect(cache.ttl('absent')).resolves.toBeUndefined();
    await advance(2_500);
    await expect(cache.ttl('t')).resolves.toBeUndefined();
  });

  it('mget/mset: in order, mset resolves the list with each ttl resolved (module ttl in ms)', async () => {
    const list = [
      { key: 'm1', value: 'one', ttl: 1_000 },
      { key: 'm2', value: 'two' },
    ];
    await expect(cache.mset(list)).resolves.toEqual([
      { key: 'm1', value: 'one', ttl: 1_000 },
      { key: 'm2', value: 'two', ttl: 60_000 },
    ]);
    await expect(cache.mget(['m1', 'absent', 'm2'])).resolves.toEqual(['one', undefined, 'two']);
    await expect(service.get('m2')).resolves.toBe('two');
    await advance(1_001);
    await expect(cache.mget(['m1', 'm2'])).resolves.toEqual([undefined, 'two']);
  });

  it('del/mdel/clear: resolve true (present or not) and remove for CacheService too', async () => {
    await service.set('d1', 1);
    await service.set('d2', 2);
    await service.set('d3', 3);
    await expect(cache.del('d1')).resolves.toBe(true);
    await expect(cache.del('d1')).resolves.toBe(true);
    await expect(service.get('d1')).resolves.toBeUndefined();
    await expect(cache.mdel(['d2', 'absent'])).resolves.toBe(true);
    await expect(service.get('d2')).resolves.toBeUndefined();
    await expect(service.get('d3')).resolves.toBe(3);
    await expect(cache.clear()).resolves.toBe(true);
    await expect(service.get('d3')).resolves.toBeUndefined();
  });

  it('events: cache-manager payloads; on/off return the emitter', async () => {
    const names = ['get', 'mget', 'set', 'mset', 'del', 'mdel', 'clear'];
    const seen = record(cache, names);
    await cache.set('e', 'v', 1_000);
    await cache.get('e');
    await cache.get('absent'); // a miss emits nothing
    await cache.mget(['e', 'absent']);
    await cache.mset([{ key: 'f', value: 1 }]);
    await cache.del('e');
    await cache.mdel(['f']);
    await cache.clear();
    await expect(cache.set('bad', 1, -1)).rejects.toThrow(CacheArgumentError);
    expect(seen).toEqual([
      ['set', { key: 'e', value: 'v', store: 'primary' }],
      ['set', { key: 'e', value: 'v' }],
      ['get', { key: 'e', value: 'v', store: 'primary' }],
      ['mget', { keys: ['e', 'absent'], values: ['v', undefined] }],
      ['mset', { list: [{ key: 'f', value: 1, ttl: 60_000 }] }],
      ['del', { key: 'e' }],
      ['mdel', { keys: ['f'] }],
      ['clear', undefined],
      ['set', { key: 'bad', value: 1, error: expect.any(CacheArgumentError) }],
    ]);

    const listener = jest.fn();
    const emitter = cache.on('del', listener);
    expect(emitter).toBeInstanceOf(EventEmitter);
    expect(cache.off('del', listener)).toBe(emitter);
    await cache.del('x');
    expect(listener).not.toHaveBeenCalled();
  });

  describe('wrap', () => {
    it('miss: loads, stores for ttl ms, emits set; hit: no load; CacheService sees it', async () => {
      const seen = record(cache, ['set']);
      const loader = jest.fn(() => Promise.resolve({ id: 1 }));
      await expect(cache.wrap('w', loader, 2_000)).resolves.toEqual({ id: 1 });
      await expect(cache.wrap('w', loader, 2_000)).resolves.toEqual({ id: 1 });
      expect(loader).toHaveBeenCalledTimes(1);
      expect(seen).toEqual([
        ['set', { key: 'w', value: { id: 1 }, store: 'primary' }],
        ['set', { key: 'w', value: { id: 1 } }],
      ]);
      await expect(service.get('w')).resolves.toEqual({ id: 1 });
      await advance(1_999);
      await expect(service.wrap('w', () => 'other')).resolves.toEqual({ id: 1 });
      await advance(2);
      await expect(cache.get('w')).resolves.toBeUndefined();
    });

    it('options form and a TTL function of the value, in ms', async () => {
      await expect(cache.wrap('o', () => 'v', { ttl: 1_000 })).resolves.toBe('v');
      const ttl = jest.fn((value: { life: number }) => value.life);
      await expect(cache.wrap('f', () => ({ life: 700 }), { ttl })).resolves.toEqual({
        life: 700,
      });
      expect(ttl).toHaveBeenCalledWith({ life: 700 });
      await expect(cache.wrap('p', () => ({ life: 300 }), ttl)).resolves.toEqual({ life: 300 });
      await advance(299);
      await expect(service.get('p')).resolves.toEqual({ life: 300 });
      await advance(2);
      await expect(service.get('p')).resolves.toBeUndefined();
      await advance(400);
      await expect(service.get('f')).resolves.toBeUndefined();
      await expect(service.get('o')).resolves.toBe('v');
      await advance(300);
      await expect(service.get('o')).resolves.toBeUndefined();
    });

    it('raw: resolves the value with its absolute expiry', async () => {
      const now = Date.now();
      await expect(cache.wrap('r', () => 'v', { ttl: 1_000, raw: true })).resolves.toEqual({
        value: 'v',
        expires: now + 1_000,
      });
      await advance(100);
      await expect(cache.wrap('r', () => 'w', { ttl: 1_000, raw: true })).resolves.toEqual({
        value: 'v',
        expires: now + 1_000,
      });
    });

    it('single-flight: concurrent wraps (and CacheService.wrap) run the loader once', async () => {
      let release!: (value: string) => void;
      const loader = jest.fn(() => new Promise<string>((resolve) => (release = resolve)));
      const calls = [
        cache.wrap('sf', loader, 5_000),
        cache.wrap('sf', loader, { ttl: 5_000 }),
        service.wrap('sf', loader, 5),
      ];
      await advance(0);
      release('once');
      await expect(Promise.all(calls)).resolves.toEqual(['once', 'once', 'once']);
      expect(loader).toHaveBeenCalledTimes(1);

      const seen = record(cache, ['set']);
      const byValue = jest.fn(() => new Promise<string>((resolve) => (release = resolve)));
      const valued = [
        cache.wrap('sv', byValue, () => 5_000),
        cache.wrap('sv', byValue, { ttl: () => 5_000 }),
      ];
      await advance(0);
      release('once');
      await expect(Promise.all(valued)).resolves.toEqual(['once', 'once']);
      expect(byValue).toHaveBeenCalledTimes(1);
      // Stored once, by the one caller that loaded it.
      expect(seen).toEqual([
        ['set', { key: 'sv', value: 'once', store: 'primary' }],
        ['set', { key: 'sv', value: 'once' }],
      ]);
    });

    it('refreshThreshold: a hit within threshold ms of expiry refreshes in the background, once', async () => {
      const seen = record(cache, ['refresh']);
      let n = 0;
      let release: (() => void) | undefined;
      const loader = jest.fn(() => {
        const value = `v${++n}`;
        if (n === 1) return Promise.resolve(value);
        return new Promise<string>((resolve) => (release = () => resolve(value)));
      });
      await expect(cache.wrap('rt', loader, 10_000, 3_000)).resolves.toBe('v1');
      await advance(6_999); // 3001 ms left: not below the threshold
      await expect(cache.wrap('rt', loader, 10_000, 3_000)).resolves.toBe('v1');
      await advance(0);
      expect(loader).toHaveBeenCalledTimes(1);
      await advance(1); // 3000 ms left
      await expect(cache.wrap('rt', loader, 10_000, 3_000)).resolves.toBe('v1');
      const options = { ttl: 10_000, refreshThreshold: 3_000 };
      await expect(cache.wrap('rt', loader, options)).resolves.toBe('v1');
      await advance(0);
      expect(loader).toHaveBeenCalledTimes(2); // one refresh while it runs
      expect(seen).toEqual([]);
      release?.();
      await advance(0);
      expect(seen).toEqual([['refresh', { key: 'rt', value: 'v2' }]]);
      await expect(service.get('rt')).resolves.toBe('v2');
      await expect(cache.ttl('rt')).resolves.toBe(Date.now() + 10_000);
    });

    it('refreshThreshold: a failed refresh emits refresh with the error; the value stays', async () => {
      const seen = record(cache, ['refresh']);
      await cache.wrap('rf', () => 'v1', 1_000, 500);
      await advance(600);
      const error = new Error('down');
      await expect(cache.wrap('rf', () => Promise.reject(error), 1_000, 500)).resolves.toBe('v1');
      await advance(0);
      expect(seen).toEqual([['refresh', { key: 'rf', value: 'v1', error }]]);
      await expect(service.get('rf')).resolves.toBe('v1');
    });

    it('refreshThreshold of 0 never refreshes; one of at least the TTL refreshes every hit', async () => {
      const never = jest.fn(() => 'n');
      await cache.wrap('zero', never, 1_000, 0);
      await advance(999);
      await cache.wrap('zero', never, 1_000, 0);
      await advance(0);
      expect(never).toHaveBeenCalledTimes(1);

      const always = jest.fn(() => 'a');
      await cache.wrap('all', always, 1_000, 5_000);
      await advance(1);
      await cache.wrap('all', always, 1_000, 5_000);
      await advance(0);
      expect(always).toHaveBeenCalledTimes(2);
    });

    it('refreshThreshold as a function of the value, and the default given to the object', async () => {
      const seen = record(cache, ['refresh']);
      let n = 0;
      const loader = () => `v${++n}`;
      await cache.wrap('fn', loader, { ttl: 1_000, refreshThreshold: () => 400 });
      await advance(599);
      await cache.wrap('fn', loader, { ttl: 1_000, refreshThreshold: () => 400 });
      await advance(0);
      expect(seen).toEqual([]);
      await advance(2);
      await expect(
        cache.wrap('fn', loader, { ttl: 1_000, refreshThreshold: () => 400 }),
      ).resolves.toBe('v1');
      await advance(0);
      expect(seen).toEqual([['refresh', { key: 'fn', value: 'v2' }]]);
      await expect(service.get('fn')).resolves.toBe('v2');

      const defaulted = createCacheManager(booted.stack, { refreshThreshold: 400 });
      const loads = jest.fn(() => 'd');
      await defaulted.wrap('def', loads, 1_000);
      await advance(601);
      await defaulted.wrap('def', loads, 1_000);
      await advance(0);
      expect(loads).toHaveBeenCalledTimes(2);
    });

    it('refuses a negative or NaN ttl or threshold', async () => {
      await expect(cache.wrap('bad', () => 1, -5)).rejects.toThrow(CacheArgumentError);
      await expect(cache.wrap('bad', () => 1, Number.NaN)).rejects.toThrow(CacheArgumentError);
      await expect(cache.wrap('bad', () => 1, 1_000, -1)).rejects.toThrow(CacheArgumentError);
      await expect(cache.wrap('bad', () => 1, { ttl: () => -1 })).rejects.toThrow(
        CacheArgumentError,
      );
    });
  });
});
