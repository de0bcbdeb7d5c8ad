import {
  Controller,
  Get,
  Injectable,
  NotFoundException,
  UseInterceptors,
  type INestApplication,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  CacheAdapter,
  CacheEvict,
  CacheInterceptor,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
  cacheResult,
  type CacheEventMap,
  type CacheEventName,
  type CacheModuleOptions,
  type CacheStats,
} from '../../lib';
import { CACHE_EVENT_NAMES, CacheEvents } from '../../lib/core/cache-events';
import { CacheStack } from '../../lib/core/cache-stack';
import { deferred } from '../support/deferred';
import { boot, type BootedApp } from '../support/failover';
import { FlakyAdapter } from '../support/flaky-adapter';

/**
 * Issue 15, review: paths the first specs of events and stats did not walk (decorators,
 * cacheResult, tags, corrupt entries, two applications, listeners that change the listener
 * list or read the cache while an event is emitted), and the invariants of `stats()`: every
 * read is one hit, miss or stale, and the tiers' hits add up to the hits and stale answers of
 * the tiers the cache has.
 */

type Recorded = { [E in CacheEventName]: { name: E; event: CacheEventMap[E] } }[CacheEventName];

function record(cache: CacheService): Recorded[] {
  const seen: Recorded[] = [];
  for (const name of CACHE_EVENT_NAMES) {
    cache.events.on(name, (event: CacheEventMap[typeof name]) => {
      seen.push({ name, event } as Recorded);
    });
  }
  return seen;
}

const names = (seen: Recorded[]) => seen.map((r) => r.name);
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** The tiers' hits add up to the hits and stale answers; every tier named is one the cache has. */
function expectTiersAddUp(stats: CacheStats): void {
  const tierHits = (stats.tiers.l1?.hits ?? 0) + (stats.tiers.l2?.hits ?? 0);
  expect(tierHits).toBe(stats.hits + stats.stale);
}

describe('observability review: events and stats on every path', () => {
  const apps: BootedApp[] = [];
  const start = async (options: CacheModuleOptions = {}, providers: unknown[] = []) => {
    const booted = await boot(
      { namespace: 'obs-review', jitter: 0, ...options },
      undefined,
      providers as never[],
    );
    apps.push(booted);
    return { ...booted, stack: booted.app.get(CacheStack) };
  };
  afterEach(async () => {
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
  });

  describe('stats() invariants', () => {
    it('memory: hits + stale equal the tiers hits after a mix of reads', async () => {
      const { cache } = await start({ grace: 60, graceBackoff: 60 });
      await cache.set('a', 1, 60);
      await cache.get('a');
      await cache.get('zz');
      await cache.has('a');
      await cache.wrap('w', () => 2, 60);
      await cache.wrap('w', () => 3, 60);
      await cache.expire('a');
      await cache.wrap('a', () => Promise.reject(new Error('x')), 60);
      await cache.wrap('a', () => 'not run', 60);
      const stats = cache.stats();
      expect(stats).toMatchObject({ hits: 3, misses: 2, stale: 2 });
      expect(stats.tiers.l1?.hits).toBe(5);
      expectTiersAddUp(stats);
    });

    it('enabled: false — deleteByPrefix, deleteByTag, expire and invalidate count nothing', async () => {
      const { cache } = await start({ enabled: false });
      const seen = record(cache);
      await cache.deleteByPrefix('p');
      await cache.deleteByTag('t');
      await cache.expire('k');
      await cache.invalidate({ keys: ['k'], prefixes: ['p'] });
      expect(seen).toEqual([]);
      expect(cache.stats()).toMatchObject({ deletes: 0, errors: 0, clears: 0 });
    });
  });

  describe('a plain shared store (no in-process tier)', () => {
    // The loaded value is held in memory while its write to the store is pending; a caller that
    // arrives then is answered from it. On a cache without an in-process tier (`tiers.l1`
    // absent), that hit cannot be of tier `l1`.
    it('a caller joining a load whose write is pending: a hit of a tier the cache has', async () => {
      const flaky = new FlakyAdapter();
      const { cache } = await start({ adapter: flaky });
      const hits: Array<CacheEventMap['hit']> = [];
      cache.events.on('hit', (event) => hits.push(event));
      // The loader freezes the store as it returns: the write of its value hangs.
      const first = cache.wrap(
        'k',
        () => {
          flaky.mode = 'frozen';
          return 'v';
        },
        60,
      );
      expect(await first).toBe('v');
      expect(await cache.wrap('k', () => 'other', 60)).toBe('v');
      await flaky.thaw();
      const stats = cache.stats();
      expect(stats.tiers.l1).toBeUndefined();
      expect(stats).toMatchObject({ hits: 1, misses: 1 });
      expect(hits.map((h) => h.tier)).toEqual(['l2']);
      expectTiersAddUp(stats);
    });

    it('a read that fails is one error and one miss; wrap loads and counts one miss', async () => {
      const flaky = new FlakyAdapter();
      const { cache } = await start({ adapter: flaky });
      flaky.mode = 'down';
      const seen = record(cache);
      expect(await cache.wrap('k', () => 'v', 60)).toBe('v');
      await tick();
      const stats = cache.stats();
      // The GET and the SET of the loaded value failed.
      expect(stats).toMatchObject({ hits: 0, misses: 1, sets: 0, errors: 2 });
      expect(stats.loader.runs).toBe(1);
      expect(names(seen).filter((n) => n === 'miss')).toHaveLength(1);
      expect(names(seen).filter((n) => n === 'set')).toHaveLength(0);
    });
  });

  describe('failures: an error, never a delete, set or clear', () => {
    it('invalidate, deleteByPrefix, clear and set on a failing store', async () => {
      const flaky = new FlakyAdapter();
      const { cache } = await start({ adapter: flaky });
      const seen = record(cache);
      flaky.mode = 'down';
      await expect(cache.invalidate({ keys: ['a'], prefixes: ['p:'] })).rejects.toThrow();
      expect(await cache.deleteByPrefix('p:')).toBe(0);
      await cache.clear();
      await cache.set('k', 1, 60);
      const stats = cache.stats();
      expect(stats).toMatchObject({ deletes: 0, clears: 0, sets: 0 });
      // invalidate's failure is reported once, as INVALIDATE; then DELETE_BY_PREFIX, CLEAR, SET.
      expect(stats.errors).toBe(4);
      expect(names(seen)).toEqual(['error', 'error', 'error', 'error']);
    });
  });

  describe('loader time', () => {
    it('totalMs is the sum of the durations the loader events reported, failures included', async () => {
      const { cache } = await start();
      const durations: number[] = [];
      cache.events.on('loader.done', ({ durationMs }) => durations.push(durationMs));
      cache.events.on('loader.error', ({ durationMs }) => durations.push(durationMs));
      const slow = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      await cache.wrap('a', async () => (await slow(3), 'a'), 60);
      await expect(
        cache.wrap('b', async () => {
          await slow(3);
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(durations).toHaveLength(2);
      expect(durations.every((d) => d > 0)).toBe(true);
      expect(cache.stats().loader.totalMs).toBeCloseTo(durations[0] + durations[1], 6);
    });
  });

  describe('decorators and cacheResult', () => {
    @Injectable()
    class Users {
      runs = 0;
      @Cacheable({ key: 'user:{id}', ttl: 60, tags: ['users'] })
      async find(id: number) {
        this.runs++;
        return { id, run: this.runs };
      }

      @CachePut({ key: 'user:{id}', ttl: 60, tags: ['users'] })
      async save(id: number) {
        return { id, run: -1 };
      }

      @CacheEvict({ key: 'user:{id}' })
      async remove(id: number) {
        return id;
      }

      @CacheEvict({ tags: ['users'] })
      async removeAll() {
        return true;
      }

      @Cacheable({ key: 'both:{id}', ttl: 60 })
      @CacheEvict({ key: 'other:{id}', beforeInvocation: true })
      async both(id: number) {
        this.runs++;
        return id;
      }
    }

    it('@Cacheable, @CachePut, @CacheEvict (key and tags): each call counted once', async () => {
      const { cache, app } = await start({}, [Users]);
      const users = app.get(Users);
      const seen = record(cache);
      await users.find(1); // miss, load, set
      await users.find(1); // hit (peek)
      await users.save(1); // set
      await users.find(1); // hit: the put value
      await users.remove(1); // delete
      await users.find(1); // miss, load, set
      await users.removeAll(); // deleteByTag
      expect(await users.find(1)).toEqual({ id: 1, run: 3 }); // invalidated by tag: a miss
      await users.both(7); // evict (delete), then miss, load, set
      await users.both(7); // evict (delete), then hit
      const stats = cache.stats();
      expect(stats).toMatchObject({ hits: 3, misses: 4, sets: 5, deletes: 4, errors: 0 });
      expect(names(seen).filter((n) => n === 'hit')).toHaveLength(3);
      expect(names(seen).filter((n) => n === 'miss')).toHaveLength(4);
      expect(names(seen).filter((n) => n === 'delete')).toHaveLength(4);
      expect(stats.loader.runs).toBe(4);
      expectTiersAddUp(stats);
    });

    it('cacheResult: one miss then one hit; invalidate is one delete', async () => {
      const { cache } = await start();
      let runs = 0;
      const square = cacheResult((n: number) => ++runs * 0 + n * n, {
        key: (n: number) => `square:${n}`,
        ttl: 60,
      });
      const seen = record(cache);
      expect(await square(3)).toBe(9);
      expect(await square(3)).toBe(9);
      await square.invalidate(3);
      expect(runs).toBe(1);
      expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, sets: 1, deletes: 1 });
      expect(names(seen).sort()).toEqual(['delete', 'hit', 'loader.done', 'miss', 'set'].sort());
    });
  });

  describe('entries that cannot answer', () => {
    it('tagged entry invalidated by its tag: get, has and wrap are misses; wrap reloads', async () => {
      const { cache } = await start();
      await cache.set('t', 'old', { ttl: 60, tags: ['red'] });
      await cache.deleteByTag('red');
      const seen = record(cache);
      expect(await cache.get('t')).toBeUndefined();
      expect(await cache.has('t')).toBe(false);
      expect(await cache.wrap('t', () => 'new', { ttl: 60, tags: ['red'] })).toBe('new');
      expect(names(seen).filter((n) => n === 'hit')).toEqual([]);
      expect(cache.stats()).toMatchObject({ hits: 0, misses: 3, stale: 0, sets: 2 });
      expect(cache.stats().loader.runs).toBe(1);
    });

    it('a corrupt envelope: get misses, wrap misses and reloads (never a hit)', async () => {
      const { cache, app } = await start();
      const adapter = app.get<CacheAdapter>(CacheAdapter);
      // An envelope mark with nothing valid behind it.
      await adapter.set('bad', { '\u0000cachekit': 1, v: 'x', e: 'soon' }, 60);
      const seen = record(cache);
      expect(await cache.get('bad')).toBeUndefined();
      expect(await cache.wrap('bad', () => 'fresh', 60)).toBe('fresh');
      expect(await cache.wrap('bad', () => 'not run', 60)).toBe('fresh');
      expect(names(seen).filter((n) => n === 'hit' || n === 'miss')).toEqual([
        'miss',
        'miss',
        'hit',
      ]);
      expect(cache.stats()).toMatchObject({ hits: 1, misses: 2, sets: 1 });
    });
  });

  describe('two applications in one process', () => {
    it('keep their own counters and events', async () => {
      const a = await start({ namespace: 'obs-a' });
      const b = await start({ namespace: 'obs-b' });
      const seenA = record(a.cache);
      const seenB = record(b.cache);
      await a.cache.set('k', 1);
      await a.cache.get('k');
      await a.cache.get('k');
      await b.cache.get('k');
      expect(a.cache.stats()).toMatchObject({ namespace: 'obs-a', hits: 2, misses: 0, sets: 1 });
      expect(b.cache.stats()).toMatchObject({ namespace: 'obs-b', hits: 0, misses: 1, sets: 0 });
      expect(names(seenA)).toEqual(['set', 'hit', 'hit']);
      expect(names(seenB)).toEqual(['miss']);
    });
  });

  describe('listeners that change things while an event is emitted', () => {
    it('a listener that removes itself and the next one: the next still hears this event', async () => {
      const { cache } = await start();
      const calls: string[] = [];
      const second = () => calls.push('second');
      const offFirst = cache.events.on('miss', () => {
        calls.push('first');
        offFirst();
        cache.events.off('miss', second);
      });
      cache.events.on('miss', second);
      cache.events.on('miss', () => calls.push('third'));
      await cache.get('a');
      await cache.get('b');
      // As Node's EventEmitter: an emit calls the listeners it started with.
      expect(calls).toEqual(['first', 'second', 'third', 'third']);
      expect(cache.events.listenerCount('miss')).toBe(1);
    });

    it('a once listener that re-adds itself fires once per event, not in a loop', async () => {
      const { cache } = await start();
      let calls = 0;
      const again = () => {
        calls++;
        cache.events.once('miss', again);
      };
      cache.events.once('miss', again);
      await cache.get('a');
      await cache.get('b');
      expect(calls).toBe(2);
      expect(cache.events.listenerCount('miss')).toBe(1);
    });

    it('a hit listener that reads the cache: nested events, exact counts, no loop', async () => {
      const { cache } = await start();
      await cache.set('a', 1);
      await cache.set('b', 2);
      const order: string[] = [];
      cache.events.on('hit', ({ key }) => {
        order.push(`hit:${key}`);
        // Reads another key from inside the listener (synchronously emitted on memory).
        if (key === 'a') void cache.get('b');
      });
      expect(await cache.get('a')).toBe(1);
      await tick();
      expect(order).toEqual(['hit:a', 'hit:b']);
      expect(cache.stats()).toMatchObject({ hits: 2, misses: 0 });
    });

    it('a hit listener that reads the same key again and again ends (the stack unwinds)', async () => {
      const { cache } = await start();
      await cache.set('a', 1);
      let depth = 0;
      cache.events.on('hit', () => {
        depth++;
        if (depth < 50) void cache.get('a');
      });
      expect(await cache.get('a')).toBe(1);
      expect(depth).toBe(50);
      expect(cache.stats().hits).toBe(50);
    });

    it('a thousand listeners each hear an event once; removing them all stops emitting', async () => {
      const { cache, stack } = await start();
      let heard = 0;
      const offs = Array.from({ length: 1000 }, () => cache.events.on('miss', () => heard++));
      await cache.get('a');
      expect(heard).toBe(1000);
      for (const off of offs) off();
      expect(stack.events.listening.miss).toBe(false);
      await cache.get('a');
      expect(heard).toBe(1000);
    });

    it('listeners of another emitter are not shared (CacheEvents instances are separate)', () => {
      const a = new CacheEvents(() => undefined);
      const b = new CacheEvents(() => undefined);
      a.on('hit', () => undefined);
      expect(b.listenerCount('hit')).toBe(0);
      expect(b.listening.hit).toBe(false);
    });
  });

  describe('keys with unusual characters', () => {
    it('are reported as given', async () => {
      const { cache } = await start();
      const keys = ['ü/ñ:{x}', 'a b\tc', '*', 'k\u0000z', '🙂:1', 'a'.repeat(500)];
      const seen = record(cache);
      for (const key of keys) {
        await cache.set(key, 1);
        await cache.get(key);
      }
      const hitKeys = seen.flatMap((r) => (r.name === 'hit' ? [r.event.key] : []));
      expect(hitKeys).toEqual(keys);
      await cache.deleteByPrefix('a b');
      const deleted = seen.flatMap((r) => (r.name === 'delete' ? [r.event.prefixes] : []));
      expect(deleted).toEqual([['a b']]);
    });
  });

  describe('the loader of a re-entrant wrap', () => {
    it('an inner wrap of the key being loaded is one more miss; only the outer is stored', async () => {
      const { cache } = await start();
      const seen = record(cache);
      const value = await cache.wrap(
        'k',
        async () => `outer(${await cache.wrap('k', () => 'inner', 60)})`,
        60,
      );
      expect(value).toBe('outer(inner)');
      expect(cache.stats()).toMatchObject({ hits: 0, misses: 2, sets: 1 });
      expect(names(seen).filter((n) => n === 'set')).toHaveLength(1);
    });
  });

  describe('timeouts', () => {
    it('two callers that stop waiting (hard) are two loader.timeout events and two misses', async () => {
      const { cache } = await start();
      const gate = deferred<string>();
      const seen = record(cache);
      const options = { ttl: 30, timeouts: { hard: 0.02 } };
      const a = cache.wrap('k', () => gate.promise, options).catch((e: unknown) => e);
      const b = cache.wrap('k', () => 'not run', options).catch((e: unknown) => e);
      await Promise.all([a, b]);
      expect(names(seen).filter((n) => n === 'loader.timeout')).toHaveLength(2);
      expect(cache.stats()).toMatchObject({ misses: 2, shared: 1 });
      expect(cache.stats().loader).toMatchObject({ runs: 1, timeouts: 2, inFlight: 1 });
      gate.resolve('late');
      await tick();
      await tick();
      expect(cache.stats().loader.inFlight).toBe(0);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// CacheInterceptor: a request whose handler throws ran on a miss.

let handlerRuns = 0;

@Controller('obs')
@UseInterceptors(CacheInterceptor)
class Throwing {
  @Get('gone')
  gone() {
    handlerRuns++;
    throw new NotFoundException('gone');
  }

  @Get('ok')
  ok() {
    handlerRuns++;
    return { ok: true };
  }
}

describe('observability review: CacheInterceptor', () => {
  let app: INestApplication;
  let cache: CacheService;
  beforeEach(async () => {
    handlerRuns = 0;
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ namespace: 'obs-http' })],
      controllers: [Throwing],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    cache = app.get(CacheService);
  });
  afterEach(() => app.close());

  // A request the cache could not answer ran its handler: a miss, whether the handler returned
  // or threw (as a throwing @Cacheable method or wrap loader is counted: see cache-events.spec).
  it('a request whose handler throws is one miss', async () => {
    const misses: string[] = [];
    cache.events.on('miss', ({ key }) => misses.push(key));
    await request(app.getHttpServer() as Parameters<typeof request>[0])
      .get('/obs/gone')
      .expect(404);
    await tick();
    expect(handlerRuns).toBe(1);
    expect(cache.stats().loader).toMatchObject({ runs: 1, errors: 1 });
    expect(misses).toHaveLength(1);
    expect(cache.stats().misses).toBe(1);
  });

  it('a request answered by its handler then by the cache: one miss, one hit', async () => {
    const server = app.getHttpServer() as Parameters<typeof request>[0];
    await request(server).get('/obs/ok').expect(200);
    for (let i = 0; i < 50 && cache.stats().sets === 0; i++) await tick();
    await request(server).get('/obs/ok').expect(200);
    expect(handlerRuns).toBe(1);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 1, sets: 1 });
  });
});
