import {
  Controller,
  Get,
  Inject,
  Injectable,
  Logger,
  Module,
  Post,
  UseInterceptors,
  type DynamicModule,
  type ExecutionContext,
  type INestApplication,
  type Type,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import KeyvRedis from '@keyv/redis';
import type { Cache } from 'cache-manager';
import { Redis } from 'ioredis';
import { Keyv } from 'keyv';
import request from 'supertest';
// The one line a migration changes: `from '@nestjs/cache-manager'` becomes this.
import {
  CACHE_MANAGER,
  CacheInterceptor,
  CacheKey,
  CacheModule,
  CacheTTL,
  type CacheModuleOptions,
  type CacheOptionsFactory,
} from '../../lib';
// Not part of @nestjs/cache-manager: this module's own names, for the checks around the port.
import { CacheService, type CacheManagerCompatible } from '../../lib';
import { eventually } from '../support/eventually';
import { createHttpApp, PLATFORMS, type Platform } from '../support/http-platforms';
import { CapturingLogger } from '../support/logs';
import { RedisServer } from '../support/redis-server';

/**
 * Issue 16, item 5: the shape of @nestjs/cache-manager's end-to-end scenarios and of the NestJS
 * caching sample, written for this module as a migrating user would port them — the fixtures
 * below use only what `@nestjs/cache-manager` exports, imported from this module instead. TTLs
 * given to `register`/`registerAsync` and to `CACHE_MANAGER` are milliseconds, as there.
 *
 * `@CacheTTL` is in milliseconds too in a module built by `register`/`registerAsync` (as
 * documented on the decorator), and in seconds with `forRoot`: both are tested.
 *
 * Where this module's documented behaviour differs, the test follows ours and says so: the
 * default TTL is 300 s (cache-manager's memory store keeps entries forever).
 *
 * TTL expiry runs on jest's fake clock (`nextTick` and `setImmediate` stay real, so HTTP and
 * Nest's bootstrap run); nothing here reads the wall clock.
 */

const NOW = 1_700_000_000_000;

/** Fake timers for TTL logic, with the I/O the HTTP stack needs left real. */
function useFakeClock(): void {
  jest.useFakeTimers({ now: NOW, doNotFake: ['nextTick', 'setImmediate'] });
}

const advance = (ms: number): Promise<void> => jest.advanceTimersByTimeAsync(ms);

/** Handler runs, per route, so a test can tell a cached response from a fresh one. */
const runs = new Map<string, number>();
function ran(route: string): { route: string; run: number } {
  const run = (runs.get(route) ?? 0) + 1;
  runs.set(route, run);
  return { route, run };
}

// --------------------------------------------------------------------------------------------
// Fixtures, as written for @nestjs/cache-manager
// --------------------------------------------------------------------------------------------

/** A service reading and writing the cache-manager object, typed as the NestJS docs type it. */
@Injectable()
class ItemsStore {
  constructor(@Inject(CACHE_MANAGER) readonly cache: Cache) {}

  remember(key: string, value: unknown, ttl?: number): Promise<unknown> {
    return this.cache.set(key, value, ttl);
  }

  recall<T>(key: string): Promise<T | undefined> {
    return this.cache.get<T>(key);
  }
}

/** The same, typed with this module's own type of the object. */
@Injectable()
class CompatStore {
  constructor(@Inject(CACHE_MANAGER) readonly cache: CacheManagerCompatible) {}
}

/** What `registerAsync({ useClass })` builds: `createCacheOptions()`, TTL in ms. */
@Injectable()
class CacheConfigService implements CacheOptionsFactory {
  createCacheOptions(): CacheModuleOptions {
    return { ttl: 1000 };
  }
}

/** A configuration module exporting the factory, for `registerAsync({ useExisting, imports })`. */
@Module({ providers: [CacheConfigService], exports: [CacheConfigService] })
class CacheConfigModule {}

/** A value the factory of `registerAsync({ extraProviders })` needs. */
@Injectable()
class TtlSettings {
  readonly ttl = 2000;
}

/** A feature module that does not import CacheModule: it needs `isGlobal`. */
@Module({ providers: [ItemsStore], exports: [ItemsStore] })
class FeatureModule {}

@Controller('items')
@UseInterceptors(CacheInterceptor)
class ItemsController {
  @Get()
  list() {
    return ran('list');
  }

  @Get('keyed')
  @CacheKey('k')
  keyed() {
    return ran('keyed');
  }

  // Milliseconds, as in @nestjs/cache-manager: the module is built by register().
  @Get('short')
  @CacheTTL(1000)
  short() {
    return ran('short');
  }

  @Get('factory-ttl')
  @CacheTTL(() => 2000)
  factoryTtl() {
    return ran('factory-ttl');
  }

  @Post()
  create() {
    return ran('create');
  }
}

/** Not a port: the same decorator under `forRoot`, where TTLs are seconds. */
@Controller('seconds')
@UseInterceptors(CacheInterceptor)
class SecondsController {
  @Get()
  @CacheTTL(1)
  get() {
    return ran('seconds');
  }
}

/**
 * The NestJS caching sample's interceptor: caches GET requests by URL, except excluded paths
 * (`override` added for this repository's `noImplicitOverride`).
 */
@Injectable()
class HttpCacheInterceptor extends CacheInterceptor {
  protected override trackBy(context: ExecutionContext): string | undefined {
    const request = context.switchToHttp().getRequest();
    const { httpAdapter } = this.httpAdapterHost;
    const isGetRequest = httpAdapter.getRequestMethod(request) === 'GET';
    const excludePaths = ['/excluded'];
    if (!isGetRequest || excludePaths.includes(httpAdapter.getRequestUrl(request))) {
      return undefined;
    }
    return httpAdapter.getRequestUrl(request);
  }
}

@Controller()
@UseInterceptors(HttpCacheInterceptor)
class SampleController {
  @Get()
  findAll() {
    return [{ id: 1, name: 'Nest', run: ran('sample').run }];
  }

  @Get('excluded')
  excluded() {
    return ran('excluded');
  }

  @Post()
  create() {
    return ran('sample-post');
  }
}

// --------------------------------------------------------------------------------------------
// Helpers
// --------------------------------------------------------------------------------------------

/** An application context over `imports` (+ `providers`), initialised, without HTTP. */
async function boot(
  imports: Array<DynamicModule | Type<unknown>>,
  providers: Array<Type<unknown>> = [ItemsStore],
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({ imports, providers }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}

/** `key` is still cached `ms - 1` ms after it was set, and gone 2 ms later. */
async function expectLifetime(cache: Cache, key: string, ms: number): Promise<void> {
  await advance(ms - 1);
  expect(await cache.get(key)).toBeDefined();
  await advance(2);
  expect(await cache.get(key)).toBeUndefined();
}

// --------------------------------------------------------------------------------------------
// 1. register / registerAsync
// --------------------------------------------------------------------------------------------

describe('Migration from @nestjs/cache-manager: register and registerAsync (TTLs in ms)', () => {
  let app: INestApplication | undefined;

  beforeEach(() => useFakeClock());
  afterEach(async () => {
    await app?.close();
    app = undefined;
    jest.useRealTimers();
  });

  it('register(): CACHE_MANAGER stores and reads; the default TTL is 300 s (documented)', async () => {
    app = await boot([CacheModule.register()]);
    const store = app.get(ItemsStore);
    await store.remember('k', { a: 1 });
    expect(await store.recall('k')).toEqual({ a: 1 });
    // cache-manager's memory store keeps entries forever; this module's default is 300 s.
    expect(await store.cache.ttl('k')).toBe(NOW + 300_000);
    await expectLifetime(store.cache, 'k', 300_000);
  });

  it('register({ ttl: 5000 }): the module TTL is 5000 milliseconds', async () => {
    app = await boot([CacheModule.register({ ttl: 5000 })]);
    const { cache } = app.get(ItemsStore);
    await cache.set('k', 'v');
    expect(await cache.ttl('k')).toBe(NOW + 5000);
    await expectLifetime(cache, 'k', 5000);
  });

  it('registerAsync({ useFactory }): the factory gives the options (ttl: 1000 ms)', async () => {
    app = await boot([CacheModule.registerAsync({ useFactory: () => ({ ttl: 1000 }) })]);
    const { cache } = app.get(ItemsStore);
    await cache.set('k', 'v');
    await expectLifetime(cache, 'k', 1000);
  });

  it('registerAsync({ useClass }): a class implementing createCacheOptions()', async () => {
    app = await boot([CacheModule.registerAsync({ useClass: CacheConfigService })]);
    const { cache } = app.get(ItemsStore);
    await cache.set('k', 'v');
    await expectLifetime(cache, 'k', 1000);
  });

  it('registerAsync({ useExisting, imports }): the factory provided by another module', async () => {
    app = await boot([
      CacheModule.registerAsync({ imports: [CacheConfigModule], useExisting: CacheConfigService }),
    ]);
    const { cache } = app.get(ItemsStore);
    await cache.set('k', 'v');
    await expectLifetime(cache, 'k', 1000);
  });

  it('registerAsync({ extraProviders }): the factory injects a provider of the module', async () => {
    app = await boot([
      CacheModule.registerAsync({
        extraProviders: [TtlSettings],
        inject: [TtlSettings],
        useFactory: (settings: TtlSettings) => ({ ttl: settings.ttl }),
      }),
    ]);
    const { cache } = app.get(ItemsStore);
    await cache.set('k', 'v');
    await expectLifetime(cache, 'k', 2000);
  });

  it.each([
    ['register({ isGlobal: true })', () => CacheModule.register({ isGlobal: true, ttl: 3000 })],
    [
      'registerAsync({ isGlobal: true })',
      () => CacheModule.registerAsync({ isGlobal: true, useFactory: () => ({ ttl: 3000 }) }),
    ],
  ])('%s: a module that does not import CacheModule injects CACHE_MANAGER', async (_, make) => {
    app = await boot([make(), FeatureModule], []);
    const store = app.get(ItemsStore);
    await store.remember('k', 'global');
    expect(await store.recall('k')).toBe('global');
    await expectLifetime(store.cache, 'k', 3000);
  });

  it('without isGlobal, a module that does not import CacheModule cannot inject it', async () => {
    await expect(boot([CacheModule.register(), FeatureModule], [])).rejects.toThrow(
      /CACHE_MANAGER/,
    );
  });
});

// --------------------------------------------------------------------------------------------
// 3. CACHE_MANAGER's API from a service, and CacheService on the same entries
// --------------------------------------------------------------------------------------------

describe('Migration from @nestjs/cache-manager: @Inject(CACHE_MANAGER) cache: Cache', () => {
  let app: INestApplication;
  let cache: Cache;
  let service: CacheService;

  beforeEach(async () => {
    useFakeClock();
    app = await boot([CacheModule.register({ ttl: 60_000 })]);
    cache = app.get(ItemsStore).cache;
    service = app.get(CacheService);
  });
  afterEach(async () => {
    await app.close();
    jest.useRealTimers();
  });

  it('get / set (ms) / del', async () => {
    expect(await cache.get('missing')).toBeUndefined();
    expect(await cache.set('k', { n: 1 }, 500)).toEqual({ n: 1 });
    expect(await cache.get('k')).toEqual({ n: 1 });
    expect(await cache.ttl('k')).toBe(NOW + 500);
    expect(await cache.del('k')).toBe(true);
    expect(await cache.get('k')).toBeUndefined();
    await cache.set('short', 1, 500);
    await expectLifetime(cache, 'short', 500);
  });

  it('set with 0 never expires; ttl() is undefined for it and for a miss', async () => {
    await cache.set('forever', 'v', 0);
    expect(await cache.ttl('forever')).toBeUndefined();
    expect(await cache.ttl('missing')).toBeUndefined();
    await advance(24 * 3600 * 1000);
    expect(await cache.get('forever')).toBe('v');
  });

  it('wrap: loads once, then answers from the cache for ttl ms', async () => {
    let loads = 0;
    const load = () => Promise.resolve({ load: ++loads });
    expect(await cache.wrap('w', load, 1000)).toEqual({ load: 1 });
    expect(await cache.wrap('w', load, 1000)).toEqual({ load: 1 });
    await advance(1001);
    expect(await cache.wrap('w', load, 1000)).toEqual({ load: 2 });
    // Concurrent callers of a cold key share one load.
    const [a, b] = await Promise.all([cache.wrap('c', load), cache.wrap('c', load)]);
    expect(a).toEqual({ load: 3 });
    expect(b).toEqual({ load: 3 });
  });

  it('mset / mget (ms TTLs per entry)', async () => {
    await cache.mset([
      { key: 'a', value: 1, ttl: 1000 },
      { key: 'b', value: 2 },
    ]);
    expect(await cache.mget(['a', 'b', 'c'])).toEqual([1, 2, undefined]);
    expect(await cache.ttl('a')).toBe(NOW + 1000);
    expect(await cache.ttl('b')).toBe(NOW + 60_000);
    await advance(1001);
    expect(await cache.mget(['a', 'b'])).toEqual([undefined, 2]);
  });

  it('the `Cache` class (exported by @nestjs/cache-manager 3) injects the same object', async () => {
    // In a module of its own, so that a missing export fails this test alone.
    const { ByClassModule, ByClassStore } = await import('./migration-fixtures/cache-class-token');
    const other = await boot([ByClassModule], []);
    try {
      const byClass = other.get(ByClassStore).cache;
      expect(byClass).toBe(other.get(CACHE_MANAGER));
      await byClass.set('k', 'by class');
      expect(await other.get(CacheService).get('k')).toBe('by class');
      expect(await byClass.ttl('k')).toBe(NOW + 4000);
    } finally {
      await other.close();
    }
  });

  it('typed as CacheManagerCompatible: the same object, wrap with options', async () => {
    const other = await boot([CacheModule.register({ ttl: 60_000 })], [ItemsStore, CompatStore]);
    try {
      const compat = other.get(CompatStore).cache;
      expect(compat).toBe(other.get(ItemsStore).cache);
      expect(compat.stores).toEqual([]);
      expect(await compat.wrap('o', () => 'loaded', { ttl: 700 })).toBe('loaded');
      expect(await compat.ttl('o')).toBe(NOW + 700);
    } finally {
      await other.close();
    }
  });

  it('CacheService sees the same entries, both ways (its TTLs in seconds)', async () => {
    await cache.set('from-manager', { by: 'manager' }, 2000);
    expect(await service.get('from-manager')).toEqual({ by: 'manager' });
    await service.set('from-service', { by: 'service' }, 2);
    expect(await cache.get('from-service')).toEqual({ by: 'service' });
    expect(await cache.ttl('from-service')).toBe(NOW + 2000);
    await service.delete('from-manager');
    expect(await cache.get('from-manager')).toBeUndefined();
    await cache.del('from-service');
    expect(await service.get('from-service')).toBeUndefined();
    const loaded = await service.wrap('shared', () => 'by service', 10);
    expect(await cache.wrap('shared', () => 'by manager', 10_000)).toBe(loaded);
  });
});

// --------------------------------------------------------------------------------------------
// 2. CacheInterceptor, @CacheKey, @CacheTTL, X-Cache — and 5. the NestJS caching sample
// --------------------------------------------------------------------------------------------

describe.each(PLATFORMS)('Migration from @nestjs/cache-manager over HTTP (%s)', (platform) => {
  let app: INestApplication;
  let cache: Cache;

  async function start(
    platformName: Platform,
    controller: Type<unknown>,
    cacheModule: DynamicModule = CacheModule.register({ ttl: 5000 }),
  ) {
    const created = await createHttpApp(platformName, {
      imports: [cacheModule],
      controllers: [controller],
      providers: [ItemsStore],
    });
    useFakeClock();
    return created;
  }

  function get(path: string) {
    return request(app.getHttpServer()).get(path);
  }

  /**
   * A GET whose response the interceptor stores, resolved once it is stored (that happens after
   * the response was sent: a request sent before would join the run still in flight).
   */
  async function getStored(path: string) {
    let off = (): void => undefined;
    const stored = new Promise<void>((resolve) => {
      off = app.get(CacheService).events.once('set', () => resolve());
    });
    const response = await get(path).expect(200);
    // Only a MISS stores (a HIT would wait for ever): the test's own assertion then fails.
    if (response.headers['x-cache'] === 'MISS') await stored;
    else off();
    return response;
  }

  beforeEach(() => runs.clear());
  afterEach(async () => {
    jest.useRealTimers();
    await app.close();
  });

  describe('@UseInterceptors(CacheInterceptor)', () => {
    beforeEach(async () => {
      app = await start(platform, ItemsController);
      cache = app.get(ItemsStore).cache;
    });

    it('caches GET responses: X-Cache MISS, then HIT with the same body', async () => {
      const first = await getStored('/items');
      expect(first.headers['x-cache']).toBe('MISS');
      expect(first.body).toEqual({ route: 'list', run: 1 });
      const second = await get('/items').expect(200);
      expect(second.headers['x-cache']).toBe('HIT');
      expect(second.body).toEqual({ route: 'list', run: 1 });
      expect(runs.get('list')).toBe(1);
    });

    it("the module's TTL (register({ ttl: 5000 }): 5 s) applies to routes without @CacheTTL", async () => {
      await getStored('/items');
      await advance(4999);
      expect((await get('/items')).headers['x-cache']).toBe('HIT');
      await advance(2);
      const fresh = await getStored('/items');
      expect(fresh.headers['x-cache']).toBe('MISS');
      expect(fresh.body).toEqual({ route: 'list', run: 2 });
    });

    it('@CacheKey("k"): the response is cached under "k", which CACHE_MANAGER can delete', async () => {
      await getStored('/items/keyed');
      expect(await cache.get('k')).toBeDefined();
      expect((await get('/items/keyed')).headers['x-cache']).toBe('HIT');
      await cache.del('k');
      const fresh = await getStored('/items/keyed');
      expect(fresh.headers['x-cache']).toBe('MISS');
      expect(fresh.body).toEqual({ route: 'keyed', run: 2 });
    });

    it('@CacheTTL(1000) is 1000 milliseconds under register(), as in cache-manager', async () => {
      await getStored('/items/short');
      await advance(999);
      expect((await get('/items/short')).headers['x-cache']).toBe('HIT');
      await advance(2);
      const fresh = await getStored('/items/short');
      expect(fresh.headers['x-cache']).toBe('MISS');
      expect(runs.get('short')).toBe(2);
    });

    it('@CacheTTL(factory) returns milliseconds too under register()', async () => {
      await getStored('/items/factory-ttl');
      await advance(1999);
      expect((await get('/items/factory-ttl')).headers['x-cache']).toBe('HIT');
      await advance(2);
      expect((await get('/items/factory-ttl')).headers['x-cache']).toBe('MISS');
      expect(runs.get('factory-ttl')).toBe(2);
    });

    it('other methods are not cached', async () => {
      await request(app.getHttpServer()).post('/items').expect(201);
      const second = await request(app.getHttpServer()).post('/items').expect(201);
      expect(second.body).toEqual({ route: 'create', run: 2 });
      expect(second.headers['x-cache']).toBeUndefined();
    });
  });

  describe('@CacheTTL under CacheModule.forRoot (not a port)', () => {
    beforeEach(async () => {
      app = await start(platform, SecondsController, CacheModule.forRoot({ ttl: 60 }));
    });

    it('@CacheTTL(1) is one second', async () => {
      await getStored('/seconds');
      await advance(999);
      expect((await get('/seconds')).headers['x-cache']).toBe('HIT');
      await advance(2);
      expect((await getStored('/seconds')).headers['x-cache']).toBe('MISS');
      expect(runs.get('seconds')).toBe(2);
    });
  });

  describe("the NestJS caching sample's HttpCacheInterceptor", () => {
    beforeEach(async () => {
      app = await start(platform, SampleController);
      cache = app.get(ItemsStore).cache;
    });

    it('caches GET / by URL, answers HIT until the TTL (5000 ms) runs out', async () => {
      const first = await getStored('/');
      expect(first.body).toEqual([{ id: 1, name: 'Nest', run: 1 }]);
      expect(first.headers['x-cache']).toBe('MISS');
      await advance(4999);
      const hit = await get('/').expect(200);
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(hit.body).toEqual([{ id: 1, name: 'Nest', run: 1 }]);
      await advance(2);
      const expired = await getStored('/');
      expect(expired.headers['x-cache']).toBe('MISS');
      expect(expired.body).toEqual([{ id: 1, name: 'Nest', run: 2 }]);
    });

    it("trackBy's key is the URL: CACHE_MANAGER deletes the entry by it", async () => {
      await getStored('/');
      expect(await cache.get('/')).toBeDefined();
      await cache.del('/');
      expect((await get('/')).headers['x-cache']).toBe('MISS');
      expect(runs.get('sample')).toBe(2);
    });

    it('an excluded path (trackBy: undefined) is never cached', async () => {
      await get('/excluded').expect(200);
      const second = await get('/excluded').expect(200);
      expect(second.body).toEqual({ route: 'excluded', run: 2 });
      expect(second.headers['x-cache']).not.toBe('HIT');
    });

    it('a POST (trackBy: undefined) is never cached', async () => {
      await request(app.getHttpServer()).post('/').expect(201);
      const second = await request(app.getHttpServer()).post('/').expect(201);
      expect(second.body).toEqual({ route: 'sample-post', run: 2 });
    });
  });
});

// --------------------------------------------------------------------------------------------
// 4. stores: Keyv instances, several stores on a real redis-server, nonBlocking
// --------------------------------------------------------------------------------------------

describe('Migration from @nestjs/cache-manager: stores (a real redis-server)', () => {
  let server: RedisServer;
  let raw: Redis;
  let app: INestApplication | undefined;

  /** Keys in Redis that hold `key` (whatever prefix the Keyv layers add). */
  async function redisKeysOf(key: string): Promise<string[]> {
    return (await raw.keys(`*${key}`)).filter((stored) => stored.endsWith(`:${key}`));
  }

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  beforeEach(async () => {
    Logger.overrideLogger(new CapturingLogger());
    await raw.flushdb();
  });
  afterEach(async () => {
    server.thaw();
    await app?.close();
    app = undefined;
    Logger.overrideLogger(new Logger());
  });
  afterAll(async () => {
    await raw.quit();
    await server.stop();
  });

  it('stores: a Keyv instance (in memory) is the store, exposed as cache.stores', async () => {
    const keyv = new Keyv();
    app = await boot([CacheModule.register({ stores: keyv, ttl: 60_000 })]);
    const { cache } = app.get(ItemsStore);
    expect(cache.stores).toEqual([keyv]);
    await cache.set('k', { a: 1 });
    expect(await cache.get('k')).toEqual({ a: 1 });
    expect(await app.get(CacheService).get('k')).toEqual({ a: 1 });
    // The entry is in that instance's storage, not in a memory store of the module's own.
    await keyv.clear();
    expect(await cache.get('k')).toBeUndefined();
  });

  it('stores: new Keyv({ store: new KeyvRedis(url) }) writes to Redis with the TTL in ms', async () => {
    app = await boot([
      CacheModule.register({ stores: new Keyv({ store: new KeyvRedis(server.url) }) }),
    ]);
    const { cache } = app.get(ItemsStore);
    await cache.set('user:1', { name: 'Ada' }, 30_000);
    const [stored] = await redisKeysOf('user:1');
    expect(stored).toBeDefined();
    const pttl = await raw.pttl(stored);
    expect(pttl).toBeGreaterThan(25_000);
    expect(pttl).toBeLessThanOrEqual(30_000);
    expect(await cache.get('user:1')).toEqual({ name: 'Ada' });
    expect(await app.get(CacheService).get('user:1')).toEqual({ name: 'Ada' });
  });

  it('stores: [memory Keyv, Redis Keyv]: written to both, read in order, deleted from both', async () => {
    const memory = new Keyv();
    const redis = new Keyv({ store: new KeyvRedis(server.url) });
    app = await boot([CacheModule.register({ stores: [memory, redis], ttl: 60_000 })]);
    const { cache } = app.get(ItemsStore);
    expect(cache.stores).toEqual([memory, redis]);
    await cache.set('k', 'both');
    expect(await redisKeysOf('k')).toHaveLength(1);
    // The first store answers first; without it, the second one does.
    await memory.clear();
    expect(await cache.get('k')).toBe('both');
    await cache.del('k');
    expect(await redisKeysOf('k')).toHaveLength(0);
    expect(await cache.get('k')).toBeUndefined();
  });

  it('nonBlocking: true with a slow secondary: writes and reads answer from the first store', async () => {
    const redis = new Keyv({ store: new KeyvRedis(server.url) });
    app = await boot([
      CacheModule.register({ stores: [new Keyv(), redis], nonBlocking: true, ttl: 60_000 }),
    ]);
    const { cache } = app.get(ItemsStore);
    await cache.set('warm', 'up'); // connects the Redis client while the server answers
    server.freeze();
    // The frozen secondary never answers: a blocking write would wait for it.
    expect(await cache.set('k', 'fast')).toBe('fast');
    expect(await cache.get('k')).toBe('fast');
    expect(await app.get(CacheService).get('k')).toBe('fast');
    server.thaw();
    await eventually(async () => (await redisKeysOf('k')).length === 1);
  });
});
