import { Injectable } from '@nestjs/common';
import {
  CacheLoaderTimeoutError,
  Cacheable,
  type CacheEventMap,
  type CacheEventName,
  type CacheModuleOptions,
  type CacheService,
} from '../../lib';
import { CACHE_EVENT_NAMES } from '../../lib/core/cache-events';
import { GET_HIT, GET_MISS, HAS_HIT, HAS_MISS } from '../../lib/core/cache-counters';
import { CacheStack } from '../../lib/core/cache-stack';
import { deferred } from '../support/deferred';
import { boot, type BootedApp } from '../support/failover';
import { FlakyAdapter } from '../support/flaky-adapter';
import { CapturingLogger } from '../support/logs';

/**
 * Issue 15, items 1 and 2 on the memory provider: every typed event of `CacheService.events`,
 * with its exact payload, and every counter of `stats()` after known operations.
 */

type Recorded = { [E in CacheEventName]: { name: E; event: CacheEventMap[E] } }[CacheEventName];

/** Listens to every event of `cache` and keeps them in order. */
function record(cache: CacheService): Recorded[] {
  const seen: Recorded[] = [];
  for (const name of CACHE_EVENT_NAMES) {
    cache.events.on(name, (event: CacheEventMap[typeof name]) => {
      seen.push({ name, event } as Recorded);
    });
  }
  return seen;
}

/** The recorded events, without the timing fields whose value a test cannot know. */
function shapes(seen: Recorded[]): unknown[] {
  return seen.map(({ name, event }) => {
    const copy: Record<string, unknown> = { ...event };
    if ('durationMs' in copy) {
      expect(typeof copy.durationMs).toBe('number');
      expect(copy.durationMs).toBeGreaterThanOrEqual(0);
      delete copy.durationMs;
    }
    return { name, ...copy };
  });
}

/**
 * The recorded events as a multiset: a get-or-load's `miss` is reported when its caller is
 * answered, which may come before or after its load's `loader.done` and `set`.
 */
function unordered(events: unknown[]): string[] {
  return events.map((event) => JSON.stringify(event, Object.keys(event as object).sort())).sort();
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('cache events and stats (memory provider)', () => {
  const apps: BootedApp[] = [];
  const start = async (options: CacheModuleOptions = {}, logger?: CapturingLogger) => {
    const booted = await boot({ namespace: 'events', jitter: 0, ...options }, logger);
    apps.push(booted);
    return { ...booted, stack: booted.app.get(CacheStack) };
  };
  afterEach(async () => {
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
  });

  describe('reads: get and has', () => {
    it('get: a miss then a hit of tier l1, one event and one count each', async () => {
      const { cache } = await start();
      const seen = record(cache);
      expect(await cache.get('k')).toBeUndefined();
      await cache.set('k', 'v', 60);
      seen.length = 0;
      expect(await cache.get('k')).toBe('v');
      expect(shapes(seen)).toEqual([
        { name: 'hit', cache: 'default', key: 'k', operation: 'get', tier: 'l1' },
      ]);
      const stats = cache.stats();
      expect(stats).toMatchObject({
        name: 'default',
        namespace: 'events',
        hits: 1,
        misses: 1,
        stale: 0,
        shared: 0,
        sets: 1,
        deletes: 0,
        clears: 0,
        errors: 0,
      });
      expect(stats.tiers.l1?.hits).toBe(1);
      expect(stats.tiers.l2).toBeUndefined();
      expect(stats.bus).toEqual({
        state: 'off',
        connected: false,
        published: 0,
        received: 0,
        gaps: 0,
        buffered: 0,
      });
    });

    it('get: the miss event names the read', async () => {
      const { cache } = await start();
      const seen = record(cache);
      await cache.get('absent');
      expect(shapes(seen)).toEqual([
        { name: 'miss', cache: 'default', key: 'absent', operation: 'get', shared: false },
      ]);
    });

    it('has is counted as has, not as get', async () => {
      const { cache, stack } = await start();
      await cache.set('k', 1, 60);
      const seen = record(cache);
      expect(await cache.has('k')).toBe(true);
      expect(await cache.has('nope')).toBe(false);
      expect(shapes(seen)).toEqual([
        { name: 'hit', cache: 'default', key: 'k', operation: 'has', tier: 'l1' },
        { name: 'miss', cache: 'default', key: 'nope', operation: 'has', shared: false },
      ]);
      const requests = stack.counters.requests;
      expect(requests[HAS_HIT[0]]).toBe(1);
      expect(requests[HAS_MISS]).toBe(1);
      expect(requests[GET_HIT[0]]).toBe(0);
      expect(requests[GET_MISS]).toBe(0);
      expect(cache.stats()).toMatchObject({ hits: 1, misses: 1 });
    });

    it('an expired entry is a miss (get) and a stale one is not a hit', async () => {
      const { cache } = await start();
      await cache.set('k', 'v', { ttl: 60, grace: 60 });
      await cache.expire('k');
      const seen = record(cache);
      expect(await cache.get('k')).toBeUndefined();
      expect(await cache.has('k')).toBe(false);
      expect(shapes(seen).map((e) => (e as { name: string }).name)).toEqual(['miss', 'miss']);
      expect(cache.stats()).toMatchObject({ hits: 0, misses: 2, stale: 0 });
    });
  });

  describe('writes and removals', () => {
    it('set: its TTL (grace included) and source', async () => {
      const { cache } = await start({ grace: 5 });
      const seen = record(cache);
      await cache.set('a', 1, 10);
      await cache.set('b', 2, 0);
      await cache.set('c', 3, { ttl: 20, grace: 0 });
      expect(shapes(seen)).toEqual([
        { name: 'set', cache: 'default', key: 'a', ttl: 15, source: 'set' },
        { name: 'set', cache: 'default', key: 'b', ttl: 0, source: 'set' },
        { name: 'set', cache: 'default', key: 'c', ttl: 20, source: 'set' },
      ]);
      expect(cache.stats().sets).toBe(3);
    });

    it('a set the cache refuses (invalid value) is neither reported nor counted', async () => {
      const { cache } = await start();
      const seen = record(cache);
      await expect(cache.set('k', () => 1)).rejects.toThrow();
      expect(seen).toEqual([]);
      expect(cache.stats().sets).toBe(0);
    });

    it('delete, expire, deleteByPrefix, deleteByTag, invalidate: each one event, one count', async () => {
      const { cache } = await start({ grace: 60 });
      await cache.set('user:1', 1, 60);
      await cache.set('user:2', 2, 60);
      await cache.set('t', 3, { ttl: 60, tags: ['red'] });
      const seen = record(cache);
      expect(await cache.delete('user:1')).toBe(true);
      expect(await cache.delete('never')).toBe(false);
      expect(await cache.expire('t')).toBe(true);
      expect(await cache.deleteByPrefix('user:')).toBe(1);
      await cache.deleteByTag(['red', 'blue']);
      await cache.invalidate({ keys: ['x'], prefixes: ['p:'] });
      const base = { cache: 'default', keys: [], prefixes: [], tags: [] };
      expect(shapes(seen)).toEqual([
        { name: 'delete', ...base, operation: 'delete', keys: ['user:1'] },
        { name: 'delete', ...base, operation: 'delete', keys: ['never'] },
        { name: 'delete', ...base, operation: 'expire', keys: ['t'] },
        { name: 'delete', ...base, operation: 'deleteByPrefix', prefixes: ['user:'] },
        { name: 'delete', ...base, operation: 'deleteByTag', tags: ['red', 'blue'] },
        { name: 'delete', ...base, operation: 'invalidate', keys: ['x'], prefixes: ['p:'] },
      ]);
      expect(cache.stats()).toMatchObject({ deletes: 6, clears: 0, sets: 3, errors: 0 });
    });

    it('clear: one event; the counters survive it, the L1 is empty after it', async () => {
      const { cache } = await start();
      await cache.set('a', 'x'.repeat(100), 60);
      await cache.set('b', 2, 60);
      await cache.get('a');
      await cache.get('zz');
      const before = cache.stats();
      expect(before.tiers.l1?.entries).toBe(2);
      expect(before.tiers.l1?.bytes).toBeGreaterThan(100);
      const seen = record(cache);
      await cache.clear();
      expect(shapes(seen)).toEqual([{ name: 'clear', cache: 'default' }]);
      const after = cache.stats();
      expect(after).toMatchObject({ hits: 1, misses: 1, sets: 2, clears: 1, deletes: 0 });
      expect(after.tiers.l1).toMatchObject({ hits: 1, entries: 0, bytes: 0 });
    });

    it('tiers.l1 reports its bounds, entries and bytes', async () => {
      const { cache } = await start({ memory: { maxEntries: 5, maxSize: 10_000 } });
      await cache.set('ab', 'xyz', 60);
      const l1 = cache.stats().tiers.l1;
      // key (2) + JSON of the value ('"xyz"': 5), as maxSize counts them.
      expect(l1).toEqual({ hits: 0, entries: 1, bytes: 7, maxEntries: 5, maxBytes: 10_000 });
      await cache.delete('ab');
      expect(cache.stats().tiers.l1).toMatchObject({ entries: 0, bytes: 0 });
    });

    it('tiers.l1 bytes without a byte bound: measured', async () => {
      const { cache } = await start();
      await cache.set('ab', 'xyz', 60);
      expect(cache.stats().tiers.l1).toMatchObject({ entries: 1, bytes: 7, maxBytes: undefined });
    });
  });

  describe('get-or-load (wrap)', () => {
    it('a miss, its load and its write; then a hit of tier l1', async () => {
      const { cache } = await start();
      const seen = record(cache);
      expect(await cache.wrap('k', () => 'v', 30)).toBe('v');
      const loaded = unordered(shapes(seen));
      seen.length = 0;
      expect(await cache.wrap('k', () => 'other', 30)).toBe('v');
      expect(loaded).toEqual(
        unordered([
          { name: 'miss', cache: 'default', key: 'k', operation: 'wrap', shared: false },
          { name: 'loader.done', cache: 'default', key: 'k', background: false },
          { name: 'set', cache: 'default', key: 'k', ttl: 30, source: 'load' },
        ]),
      );
      expect(shapes(seen)).toEqual([
        { name: 'hit', cache: 'default', key: 'k', operation: 'wrap', tier: 'l1' },
      ]);
      const stats = cache.stats();
      expect(stats).toMatchObject({ hits: 1, misses: 1, sets: 1, stale: 0, shared: 0 });
      expect(stats.loader).toMatchObject({ runs: 1, errors: 0, timeouts: 0, inFlight: 0 });
      expect(stats.loader.totalMs).toBeGreaterThanOrEqual(0);
      expect(stats.tiers.l1?.hits).toBe(1);
    });

    it('callers that join a load in flight are misses with shared: true', async () => {
      const { cache } = await start();
      const gate = deferred<string>();
      const seen = record(cache);
      const first = cache.wrap('k', () => gate.promise, 30);
      const second = cache.wrap('k', () => 'not run', 30);
      const third = cache.wrap('k', () => 'not run', 30);
      expect(cache.stats().loader.inFlight).toBe(1);
      gate.resolve('v');
      expect(await Promise.all([first, second, third])).toEqual(['v', 'v', 'v']);
      const misses = shapes(seen).filter((e) => (e as { name: string }).name === 'miss');
      expect(misses).toEqual([
        { name: 'miss', cache: 'default', key: 'k', operation: 'wrap', shared: false },
        { name: 'miss', cache: 'default', key: 'k', operation: 'wrap', shared: true },
        { name: 'miss', cache: 'default', key: 'k', operation: 'wrap', shared: true },
      ]);
      expect(cache.stats()).toMatchObject({ hits: 0, misses: 3, shared: 2, sets: 1 });
      expect(cache.stats().loader).toMatchObject({ runs: 1, inFlight: 0 });
    });

    it('a loader that throws: loader.error, a miss, nothing stored', async () => {
      const { cache } = await start();
      const seen = record(cache);
      const boom = new Error('boom');
      await expect(cache.wrap('k', () => Promise.reject(boom), 30)).rejects.toBe(boom);
      expect(shapes(seen)).toEqual(
        expect.arrayContaining([
          { name: 'miss', cache: 'default', key: 'k', operation: 'wrap', shared: false },
          {
            name: 'loader.error',
            cache: 'default',
            key: 'k',
            error: boom,
            stale: false,
            background: false,
          },
        ]),
      );
      expect(seen).toHaveLength(2);
      expect(cache.stats()).toMatchObject({ hits: 0, misses: 1, sets: 0 });
      expect(cache.stats().loader).toMatchObject({ runs: 1, errors: 1, inFlight: 0 });
    });

    it('timeouts.hard without a stale value: loader.timeout, then the late value is stored', async () => {
      const { cache } = await start();
      const gate = deferred<string>();
      const seen = record(cache);
      await expect(
        cache.wrap('k', () => gate.promise, { ttl: 30, timeouts: { hard: 0.05 } }),
      ).rejects.toBeInstanceOf(CacheLoaderTimeoutError);
      expect(unordered(shapes(seen))).toEqual(
        unordered([
          { name: 'miss', cache: 'default', key: 'k', operation: 'wrap', shared: false },
          {
            name: 'loader.timeout',
            cache: 'default',
            key: 'k',
            timeout: 'hard',
            seconds: 0.05,
            stale: false,
          },
        ]),
      );
      expect(cache.stats().loader).toMatchObject({ runs: 1, timeouts: 1, inFlight: 1 });
      seen.length = 0;
      gate.resolve('late');
      await tick();
      await tick();
      expect(shapes(seen)).toEqual([
        { name: 'loader.done', cache: 'default', key: 'k', background: false },
        { name: 'set', cache: 'default', key: 'k', ttl: 30, source: 'load' },
      ]);
      expect(cache.stats()).toMatchObject({ misses: 1, sets: 1 });
      expect(cache.stats().loader).toMatchObject({ runs: 1, errors: 0, inFlight: 0 });
    });

    describe('grace: stale answers', () => {
      const staleEntry = async (cache: CacheService) => {
        await cache.set('k', 'old', { ttl: 60, grace: 600 });
        await cache.expire('k');
      };

      it('reason error, then backoff while the failed refresh backs off', async () => {
        const { cache } = await start({ graceBackoff: 60 });
        await staleEntry(cache);
        const seen = record(cache);
        const boom = new Error('down');
        expect(await cache.wrap('k', () => Promise.reject(boom), 60)).toBe('old');
        expect(await cache.wrap('k', () => 'not run', 60)).toBe('old');
        expect(shapes(seen)).toEqual([
          {
            name: 'loader.error',
            cache: 'default',
            key: 'k',
            error: boom,
            stale: true,
            background: false,
          },
          { name: 'stale', cache: 'default', key: 'k', tier: 'l1', reason: 'error' },
          { name: 'stale', cache: 'default', key: 'k', tier: 'l1', reason: 'backoff' },
        ]);
        const stats = cache.stats();
        expect(stats).toMatchObject({ hits: 0, misses: 0, stale: 2, shared: 0 });
        expect(stats.loader).toMatchObject({ runs: 1, errors: 1 });
        expect(stats.tiers.l1?.hits).toBe(2);
      });

      it('reason timeout (timeouts.soft): the load goes on and is stored', async () => {
        const { cache } = await start();
        await staleEntry(cache);
        const gate = deferred<string>();
        const seen = record(cache);
        expect(
          await cache.wrap('k', () => gate.promise, { ttl: 60, timeouts: { soft: 0.05 } }),
        ).toBe('old');
        expect(shapes(seen)).toEqual([
          {
            name: 'loader.timeout',
            cache: 'default',
            key: 'k',
            timeout: 'soft',
            seconds: 0.05,
            stale: true,
          },
          { name: 'stale', cache: 'default', key: 'k', tier: 'l1', reason: 'timeout' },
        ]);
        seen.length = 0;
        gate.resolve('new');
        await tick();
        await tick();
        expect(shapes(seen)).toEqual([
          { name: 'loader.done', cache: 'default', key: 'k', background: false },
          { name: 'set', cache: 'default', key: 'k', ttl: 60, source: 'load' },
        ]);
        expect(await cache.get('k')).toBe('new');
        expect(cache.stats()).toMatchObject({ hits: 1, misses: 0, stale: 1, sets: 2 });
        expect(cache.stats().loader).toMatchObject({ runs: 1, timeouts: 1, inFlight: 0 });
      });

      it('timeouts.hard with a stale value: stale, reason timeout, stale: true', async () => {
        const { cache } = await start();
        await staleEntry(cache);
        const gate = deferred<string>();
        const seen = record(cache);
        expect(
          await cache.wrap('k', () => gate.promise, { ttl: 60, timeouts: { hard: 0.05 } }),
        ).toBe('old');
        expect(shapes(seen)).toEqual([
          {
            name: 'loader.timeout',
            cache: 'default',
            key: 'k',
            timeout: 'hard',
            seconds: 0.05,
            stale: true,
          },
          { name: 'stale', cache: 'default', key: 'k', tier: 'l1', reason: 'timeout' },
        ]);
        gate.resolve('new');
        await tick();
        expect(cache.stats()).toMatchObject({ stale: 1, misses: 0 });
      });

      it('a caller joining a load that falls back on the stale value is counted stale once', async () => {
        const { cache } = await start({ graceBackoff: 60 });
        await staleEntry(cache);
        const gate = deferred<string>();
        const seen = record(cache);
        const first = cache.wrap('k', () => gate.promise, 60);
        const second = cache.wrap('k', () => 'not run', 60);
        gate.reject(new Error('down'));
        expect(await Promise.all([first, second])).toEqual(['old', 'old']);
        const stale = shapes(seen).filter((e) => (e as { name: string }).name === 'stale');
        expect(stale).toEqual([
          { name: 'stale', cache: 'default', key: 'k', tier: 'l1', reason: 'error' },
          { name: 'stale', cache: 'default', key: 'k', tier: 'l1', reason: 'error' },
        ]);
        expect(cache.stats()).toMatchObject({ stale: 2, misses: 0, shared: 0 });
        expect(cache.stats().loader).toMatchObject({ runs: 1, errors: 1 });
      });
    });

    it('refresh-ahead: the hit that starts it is counted once; the background load is no request', async () => {
      const { cache } = await start();
      expect(await cache.wrap('k', () => 'v1', { ttl: 60, refreshAhead: 0.0001 })).toBe('v1');
      await new Promise((resolve) => setTimeout(resolve, 20));
      const gate = deferred<string>();
      const seen = record(cache);
      expect(await cache.wrap('k', () => gate.promise, { ttl: 60, refreshAhead: 0.0001 })).toBe(
        'v1',
      );
      gate.resolve('v2');
      await tick();
      await tick();
      expect(shapes(seen)).toEqual([
        { name: 'hit', cache: 'default', key: 'k', operation: 'wrap', tier: 'l1' },
        { name: 'loader.done', cache: 'default', key: 'k', background: true },
        { name: 'set', cache: 'default', key: 'k', ttl: 60, source: 'load' },
      ]);
      expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, shared: 0, sets: 2 });
      expect(cache.stats().loader).toMatchObject({ runs: 2, inFlight: 0 });
    });

    it('a failed refresh-ahead: loader.error background: true, not counted as a request', async () => {
      const { cache } = await start();
      await cache.wrap('k', () => 'v1', { ttl: 60, refreshAhead: 0.0001 });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const seen = record(cache);
      const boom = new Error('refresh failed');
      expect(
        await cache.wrap('k', () => Promise.reject(boom), { ttl: 60, refreshAhead: 0.0001 }),
      ).toBe('v1');
      await tick();
      expect(shapes(seen)).toEqual([
        { name: 'hit', cache: 'default', key: 'k', operation: 'wrap', tier: 'l1' },
        {
          name: 'loader.error',
          cache: 'default',
          key: 'k',
          error: boom,
          stale: false,
          background: true,
        },
      ]);
      expect(cache.stats()).toMatchObject({ hits: 1, misses: 1 });
      expect(cache.stats().loader).toMatchObject({ runs: 2, errors: 1 });
    });

    it('an `unless` veto: loaded but not stored, no set', async () => {
      const { cache } = await start();
      const seen = record(cache);
      expect(await cache.wrap('k', () => 'v', { ttl: 30, unless: () => true })).toBe('v');
      expect(
        shapes(seen)
          .map((e) => (e as { name: string }).name)
          .sort(),
      ).toEqual(['loader.done', 'miss']);
      expect(cache.stats().sets).toBe(0);
    });
  });

  describe('a backend that fails (error)', () => {
    it('is reported with its operation and key, counted once, and read as a miss', async () => {
      const flaky = new FlakyAdapter();
      const { cache } = await start({ adapter: flaky });
      const seen = record(cache);
      flaky.mode = 'down';
      expect(await cache.get('k')).toBeUndefined();
      const events = shapes(seen) as Array<Record<string, unknown>>;
      expect(events.map((e) => e.name)).toEqual(['error', 'miss']);
      expect(events[0]).toMatchObject({ cache: 'default', operation: 'GET', key: 'k' });
      expect((events[0] as { error: unknown }).error).toBeInstanceOf(Error);
      expect(events[1]).toEqual({
        name: 'miss',
        cache: 'default',
        key: 'k',
        operation: 'get',
        shared: false,
      });
      await cache.set('k', 1);
      expect(cache.stats()).toMatchObject({ errors: 2, misses: 1, sets: 0, hits: 0 });
      expect(cache.stats().tiers.l2).toEqual({
        hits: 0,
        circuit: undefined,
        pendingReconciliation: 0,
      });
      expect(cache.stats().tiers.l1).toBeUndefined();
    });

    it('a delete that fails is an error, not a delete', async () => {
      const flaky = new FlakyAdapter();
      const { cache } = await start({ adapter: flaky });
      const seen = record(cache);
      flaky.mode = 'down';
      await cache.delete('k');
      expect(shapes(seen).map((e) => (e as { name: string }).name)).toEqual(['error']);
      expect(cache.stats()).toMatchObject({ errors: 1, deletes: 0 });
    });

    it('a custom remote store: hits are of tier l2', async () => {
      const flaky = new FlakyAdapter();
      const { cache } = await start({ adapter: flaky });
      await cache.set('k', 1, 60);
      const seen = record(cache);
      expect(await cache.get('k')).toBe(1);
      expect(await cache.wrap('k', () => 2, 60)).toBe(1);
      expect(shapes(seen)).toEqual([
        { name: 'hit', cache: 'default', key: 'k', operation: 'get', tier: 'l2' },
        { name: 'hit', cache: 'default', key: 'k', operation: 'wrap', tier: 'l2' },
      ]);
      expect(cache.stats().tiers.l2?.hits).toBe(2);
    });
  });

  describe('@Cacheable on a memory app', () => {
    @Injectable()
    class Users {
      runs = 0;
      @Cacheable({ key: 'user:{id}', ttl: 60 })
      async find(id: number) {
        this.runs++;
        return { id };
      }
    }

    it('a hit answered by the synchronous peek is counted exactly once', async () => {
      const booted = await boot({ namespace: 'events', jitter: 0 }, undefined, [Users]);
      apps.push(booted);
      const users = booted.app.get(Users);
      const seen = record(booted.cache);
      expect(await users.find(1)).toEqual({ id: 1 });
      expect(await users.find(1)).toEqual({ id: 1 });
      expect(await users.find(1)).toEqual({ id: 1 });
      expect(users.runs).toBe(1);
      expect(unordered(shapes(seen))).toEqual(
        unordered([
          { name: 'miss', cache: 'default', key: 'user:1', operation: 'wrap', shared: false },
          { name: 'loader.done', cache: 'default', key: 'user:1', background: false },
          { name: 'set', cache: 'default', key: 'user:1', ttl: 60, source: 'load' },
          { name: 'hit', cache: 'default', key: 'user:1', operation: 'wrap', tier: 'l1' },
          { name: 'hit', cache: 'default', key: 'user:1', operation: 'wrap', tier: 'l1' },
        ]),
      );
      expect(booted.cache.stats()).toMatchObject({ hits: 2, misses: 1, sets: 1 });
    });
  });

  describe('the listener API', () => {
    it('on returns an off; listenerCount follows on, once and off', async () => {
      const { cache } = await start();
      const calls: string[] = [];
      const a = () => calls.push('a');
      const b = () => calls.push('b');
      const offA = cache.events.on('hit', a);
      cache.events.on('hit', b);
      cache.events.on('hit', b);
      expect(cache.events.listenerCount('hit')).toBe(3);
      expect(cache.events.listenerCount('miss')).toBe(0);
      await cache.set('k', 1);
      await cache.get('k');
      expect(calls).toEqual(['a', 'b', 'b']);
      offA();
      offA(); // twice: harmless
      cache.events.off('hit', b); // one registration of it
      expect(cache.events.listenerCount('hit')).toBe(1);
      calls.length = 0;
      await cache.get('k');
      expect(calls).toEqual(['b']);
      cache.events.off('hit', () => undefined); // unknown: ignored
      expect(cache.events.listenerCount('hit')).toBe(1);
    });

    it('once: called for the next event only, then removed', async () => {
      const { cache } = await start();
      const keys: string[] = [];
      cache.events.once('miss', ({ key }) => keys.push(key));
      expect(cache.events.listenerCount('miss')).toBe(1);
      await cache.get('a');
      await cache.get('b');
      expect(keys).toEqual(['a']);
      expect(cache.events.listenerCount('miss')).toBe(0);
    });

    it('once: its returned function removes it before it fires', async () => {
      const { cache } = await start();
      const keys: string[] = [];
      const off = cache.events.once('miss', ({ key }) => keys.push(key));
      off();
      await cache.get('a');
      expect(keys).toEqual([]);
      expect(cache.events.listenerCount('miss')).toBe(0);
    });

    it('off(event, listener) removes a listener added with once (as EventEmitter does)', async () => {
      const { cache } = await start();
      const keys: string[] = [];
      const listener = ({ key }: { key: string }) => keys.push(key);
      cache.events.once('miss', listener);
      cache.events.off('miss', listener);
      expect(cache.events.listenerCount('miss')).toBe(0);
      await cache.get('a');
      expect(keys).toEqual([]);
    });

    it('unknown event names and non-function listeners throw TypeError', async () => {
      const { cache } = await start();
      const events = cache.events as unknown as {
        on(event: string, listener: unknown): unknown;
        once(event: string, listener: unknown): unknown;
        off(event: string, listener: unknown): unknown;
        listenerCount(event: string): number;
      };
      const ok = () => undefined;
      expect(() => events.on('hits', ok)).toThrow(TypeError);
      expect(() => events.on('hits', ok)).toThrow(/Unknown cache event "hits"/);
      expect(() => events.once('cachekit.hit', ok)).toThrow(TypeError);
      expect(() => events.off('nope', ok)).toThrow(TypeError);
      expect(() => events.listenerCount('nope')).toThrow(TypeError);
      expect(() => events.on('hit', 'not a function')).toThrow(TypeError);
      expect(() => events.once('hit', undefined)).toThrow(TypeError);
      expect(() => events.once('nope', undefined)).toThrow(TypeError);
      expect(cache.events.listenerCount('hit')).toBe(0);
    });

    it('a listener added while an event is emitted does not get that event', async () => {
      const { cache } = await start();
      const calls: string[] = [];
      cache.events.on('miss', () => {
        calls.push('first');
        cache.events.on('miss', () => calls.push('late'));
      });
      await cache.get('a');
      expect(calls).toEqual(['first']);
    });
  });

  describe('listeners that fail', () => {
    it('a throwing listener never breaks the call; it is logged and later listeners run', async () => {
      const logger = new CapturingLogger();
      const { cache } = await start({}, logger);
      const after: string[] = [];
      cache.events.on('set', () => {
        throw new Error('listener exploded');
      });
      cache.events.on('set', ({ key }) => after.push(key));
      cache.events.on('hit', () => {
        throw new Error('hit listener exploded');
      });
      cache.events.on('miss', () => {
        throw new Error('miss listener exploded');
      });
      cache.events.on('loader.done', () => {
        throw new Error('done listener exploded');
      });
      await expect(cache.set('k', 1)).resolves.toBeUndefined();
      await expect(cache.get('k')).resolves.toBe(1);
      await expect(cache.wrap('w', () => 'v', 30)).resolves.toBe('v');
      await expect(cache.wrap('w', () => 'other', 30)).resolves.toBe('v');
      expect(after).toEqual(['k', 'w']);
      expect(logger.text).toContain('A listener of cache event "set" failed');
      expect(logger.text).toContain('listener exploded');
      expect(logger.text).toContain('A listener of cache event "hit" failed');
      expect(logger.text).toContain('A listener of cache event "loader.done" failed');
      expect(cache.stats()).toMatchObject({ hits: 2, misses: 1, sets: 2 });
    });

    it('an async listener that rejects is logged and never an unhandled rejection', async () => {
      const logger = new CapturingLogger();
      const { cache } = await start({}, logger);
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        // An async listener is what this test is about (its rejection must be caught).
        cache.events.on('miss', async () => {
          await Promise.resolve();
          throw new Error('async listener rejected');
        });
        await expect(cache.get('k')).resolves.toBeUndefined();
        await tick();
        await tick();
        expect(logger.text).toContain('A listener of cache event "miss" failed');
        expect(logger.text).toContain('async listener rejected');
        expect(unhandled).toEqual([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    });

    it('a throwing listener of a loader event does not turn a hit into an error', async () => {
      const { cache } = await start();
      cache.events.on('loader.error', () => {
        throw new Error('listener');
      });
      const boom = new Error('loader');
      await expect(cache.wrap('k', () => Promise.reject(boom))).rejects.toBe(boom);
    });
  });

  describe('no listener: no event is built', () => {
    it('emit is never called by reads, writes, loads or removals', async () => {
      const { cache, stack } = await start({ grace: 60 });
      const emit = jest.spyOn(stack.events, 'emit');
      await cache.get('a');
      await cache.set('a', 1);
      await cache.get('a');
      await cache.has('a');
      await cache.wrap('w', () => 2);
      await cache.wrap('w', () => 3);
      await cache.expire('a');
      await cache.wrap('a', () => Promise.reject(new Error('x')));
      await cache.delete('w');
      await cache.deleteByPrefix('p');
      await cache.deleteByTag('t');
      await cache.invalidate({ keys: ['a'] });
      await cache.clear();
      expect(emit).not.toHaveBeenCalled();
      // get miss, get hit, has hit, wrap miss, wrap hit, then the stale answer of the expired 'a'.
      expect(cache.stats()).toMatchObject({ hits: 3, misses: 2, stale: 1, sets: 2, deletes: 5 });
    });

    it('nor once every listener has been removed (off, once fired)', async () => {
      const { cache, stack } = await start();
      const off = cache.events.on('hit', () => undefined);
      cache.events.once('miss', () => undefined);
      await cache.get('a'); // fires the once
      off();
      const emit = jest.spyOn(stack.events, 'emit');
      await cache.set('a', 1);
      await cache.get('a');
      await cache.get('b');
      expect(emit).not.toHaveBeenCalled();
    });
  });

  describe('enabled: false', () => {
    it('stats() answers, counts nothing, reports no event', async () => {
      const { cache } = await start({ enabled: false });
      const seen = record(cache);
      await cache.set('k', 1);
      expect(await cache.get('k')).toBeUndefined();
      expect(await cache.has('k')).toBe(false);
      expect(await cache.wrap('k', () => 'v')).toBe('v');
      await cache.delete('k');
      await cache.clear();
      expect(seen).toEqual([]);
      const stats = cache.stats();
      expect(stats).toMatchObject({
        name: 'default',
        hits: 0,
        misses: 0,
        stale: 0,
        shared: 0,
        sets: 0,
        deletes: 0,
        clears: 0,
        errors: 0,
      });
      expect(stats.loader).toMatchObject({ runs: 0, errors: 0, timeouts: 0, inFlight: 0 });
      expect(stats.lock).toEqual({ waits: 0, acquired: 0, found: 0, timeouts: 0, unavailable: 0 });
      expect(stats.bus.state).toBe('off');
      expect(JSON.parse(JSON.stringify(stats))).toBeTruthy();
    });
  });

  it('stats() is a plain object a route can return as JSON', async () => {
    const { cache } = await start();
    await cache.set('k', 1);
    const stats = cache.stats();
    const json = JSON.parse(JSON.stringify(stats)) as Record<string, unknown>;
    expect(json).toMatchObject({ name: 'default', namespace: 'events', sets: 1 });
    expect(Object.keys(json).sort()).toEqual(
      [
        'name',
        'namespace',
        'hits',
        'misses',
        'stale',
        'shared',
        'sets',
        'deletes',
        'clears',
        'errors',
        'loader',
        'lock',
        'tiers',
        'bus',
      ].sort(),
    );
  });
});
