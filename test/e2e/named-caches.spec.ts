import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheArgumentError,
  CacheConfigError,
  CacheEvict,
  CacheHealthIndicator,
  CacheInvalidator,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
  InjectCache,
  InvalidationRule,
  KeyConstructor,
  argField,
  cacheResult,
  getCacheToken,
  type CacheEventMap,
  type CacheModuleOptions,
} from '../../lib';

// Issue 17, part 3: named caches. Each is its own stack (TTL, namespace, store, events, stats)
// inheriting the root options; @InjectCache, `cache:` on decorators and cacheResult reach it;
// an unknown name fails startup with a message naming who used it.

@Injectable()
class SessionStore {
  constructor(
    @InjectCache('sessions') readonly sessions: CacheService,
    @InjectCache('catalog') readonly catalog: CacheService,
    @InjectCache('default') readonly own: CacheService,
    readonly cache: CacheService,
  ) {}
}

let loads = 0;

@Injectable()
class Accounts {
  @Cacheable({ key: 'user:{id}', cache: 'sessions', tags: ['user:{id}'] })
  async user(id: number): Promise<{ id: number; load: number }> {
    return { id, load: ++loads };
  }

  @Cacheable('user:{id}')
  async ownUser(id: number): Promise<{ id: number; load: number }> {
    return { id, load: ++loads };
  }

  @CachePut({ key: 'user:{id}', cache: 'sessions' })
  async rename(id: number): Promise<{ id: number; load: number }> {
    return { id, load: -1 };
  }

  @CacheEvict({ key: 'user:{id}', cache: 'sessions' })
  async logout(id: number): Promise<void> {
    void id;
  }

  @CacheEvict({ tags: ['user:{id}'], cache: 'sessions' })
  async revoke(id: number): Promise<void> {
    void id;
  }

  @CacheEvict({ allEntries: true, cache: 'sessions' })
  async logoutEveryone(): Promise<void> {}

  @Cacheable({ key: 'both:{id}', cache: 'catalog' })
  @CacheEvict({ key: 'user:{id}', cache: 'sessions' })
  async mixed(id: number): Promise<string> {
    return `both ${id}`;
  }
}

const ProductKey = KeyConstructor.define({ namespace: 'product', fields: [argField('id')] });
let productLoads = 0;
// Bound to every application of this file: each configures `catalog`.
const getProduct = cacheResult(async (id: number) => ({ id, load: ++productLoads }), {
  key: ProductKey,
  name: 'getProduct',
  cache: 'catalog',
  invalidateOn: [InvalidationRule({ event: 'product.changed', fieldMapping: { id: 'id' } })],
});

const CACHES: CacheModuleOptions['caches'] = {
  sessions: { ttl: 1800 },
  catalog: { ttl: 60, namespace: 'catalog' },
};

async function boot(
  options: CacheModuleOptions,
  providers: Array<new (...args: never[]) => unknown> = [SessionStore, Accounts],
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
    providers,
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}

/** Starts an app expected to fail; resolves the error (the app is closed either way). */
async function failure(
  imports: unknown[],
  providers: Array<new (...args: never[]) => unknown>,
): Promise<Error> {
  let app: INestApplication | undefined;
  try {
    const moduleRef = await Test.createTestingModule({
      imports: imports as never[],
      providers,
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  } catch (error) {
    await app?.close().catch(() => undefined);
    return error as Error;
  }
  await app.close();
  throw new Error('startup succeeded');
}

describe('named caches (memory)', () => {
  let app: INestApplication;
  let store: SessionStore;

  beforeAll(async () => {
    app = await boot({ ttl: 300, grace: 30, caches: CACHES });
    store = app.get(SessionStore);
  });
  afterAll(() => app.close());
  beforeEach(async () => {
    for (const cache of [store.cache, store.sessions, store.catalog]) await cache.clear();
  });

  it('injects a CacheService per name, each with its own TTL and namespace', () => {
    expect(store.sessions).toBeInstanceOf(CacheService);
    expect(store.sessions).not.toBe(store.cache);
    expect(store.own).toBe(store.cache);
    expect(app.get(getCacheToken('sessions'))).toBe(store.sessions);
    expect(store.cache.defaultTtl).toBe(300);
    expect(store.sessions.defaultTtl).toBe(1800);
    expect(store.catalog.defaultTtl).toBe(60);
    expect(store.cache.namespace).toBe('cache');
    expect(store.sessions.namespace).toBe('cache.sessions');
    expect(store.catalog.namespace).toBe('catalog');
    expect(store.sessions.stats().name).toBe('sessions');
    expect(store.cache.stats().name).toBe('default');
  });

  it('keeps entries apart, and clear() of one cache leaves the others', async () => {
    await store.cache.set('k', 'default');
    await store.sessions.set('k', 'sessions');
    await store.catalog.set('k', 'catalog');
    expect(await store.cache.get('k')).toBe('default');
    expect(await store.sessions.get('k')).toBe('sessions');
    await store.sessions.clear();
    expect(await store.sessions.get('k')).toBeUndefined();
    expect(await store.cache.get('k')).toBe('default');
    expect(await store.catalog.get('k')).toBe('catalog');
    await store.cache.clear();
    expect(await store.catalog.get('k')).toBe('catalog');
  });

  it("emits each cache's events with its name", async () => {
    const seen: Array<CacheEventMap['set']> = [];
    const off = store.sessions.events.on('set', (event) => seen.push(event));
    await store.sessions.set('e', 1);
    await store.cache.set('e', 1);
    off();
    expect(seen.map((event) => event.cache)).toEqual(['sessions']);
  });

  it('sends @Cacheable, @CachePut and every @CacheEvict form to the named cache', async () => {
    const accounts = app.get(Accounts);
    const first = await accounts.user(1);
    expect(await accounts.user(1)).toEqual(first);
    expect(await store.sessions.get('user:1')).toEqual(first);
    expect(await store.cache.get('user:1')).toBeUndefined();
    // The same key on the module's own cache is another entry.
    const own = await accounts.ownUser(1);
    expect(own.load).not.toBe(first.load);
    expect(await store.cache.get('user:1')).toEqual(own);

    await accounts.rename(1);
    expect(await store.sessions.get('user:1')).toEqual({ id: 1, load: -1 });
    await accounts.logout(1);
    expect(await store.sessions.has('user:1')).toBe(false);
    expect(await store.cache.get('user:1')).toEqual(own);

    await accounts.user(2);
    await accounts.revoke(2);
    expect(await store.sessions.has('user:2')).toBe(false);

    await accounts.user(3);
    await accounts.logoutEveryone();
    expect(await store.sessions.has('user:3')).toBe(false);
    expect(await store.cache.get('user:1')).toEqual(own);

    await accounts.user(4);
    expect(await accounts.mixed(4)).toBe('both 4');
    expect(await store.catalog.get('both:4')).toBe('both 4');
    expect(await store.sessions.has('user:4')).toBe(false);
  });

  it('sends cacheResult with cache: to the named cache, and its rules drop entries there', async () => {
    const first = await getProduct(7);
    expect(await getProduct(7)).toEqual(first);
    expect(await store.catalog.get(ProductKey.render({ id: 7 }))).toEqual(first);
    expect(await store.cache.has(ProductKey.render({ id: 7 }))).toBe(false);
    await app.get(CacheInvalidator).publish('product.changed', { id: 7 });
    expect(await store.catalog.has(ProductKey.render({ id: 7 }))).toBe(false);
    await getProduct(7);
    expect(await getProduct.invalidate(7)).toBe(true);
  });

  it('reports the health of every cache', async () => {
    const result = await app.get(CacheHealthIndicator).isHealthy('cache');
    expect(result.cache.status).toBe('up');
    expect(Object.keys(result.cache.caches ?? {})).toEqual(['sessions', 'catalog']);
    const one = await app.get(CacheHealthIndicator).isHealthy('s', { cache: 'sessions' });
    expect(one.s.status).toBe('up');
    await expect(app.get(CacheHealthIndicator).isHealthy('x', { cache: 'nope' })).rejects.toThrow(
      /unknown cache "nope"; configured caches: default, sessions, catalog/,
    );
  });
});

describe('named caches: options', () => {
  it('inherits the root options it does not set', async () => {
    const app = await boot(
      { ttl: 42, namespace: 'shop', enabled: true, caches: { a: {}, catalog: {} } },
      [],
    );
    const a = app.get<CacheService>(getCacheToken('a'));
    expect(a.defaultTtl).toBe(42);
    expect(a.namespace).toBe('shop.a');
    await app.close();
  });

  it('keeps a cache switched off by enabled: false while the others cache', async () => {
    const app = await boot({ caches: { sessions: { enabled: false }, catalog: {} } });
    const accounts = app.get(Accounts);
    const first = await accounts.user(10);
    expect((await accounts.user(10)).load).not.toBe(first.load);
    const own = await accounts.ownUser(10);
    expect(await accounts.ownUser(10)).toEqual(own);
    await app.close();
  });

  it.each<[string, CacheModuleOptions, RegExp]>([
    ['a bad option', { caches: { sessions: { ttl: -1 } } }, /option "caches\.sessions\.ttl": -1/],
    ['an unknown option', { caches: { sessions: { tll: 1 } as never } }, /"caches\.sessions\.tll"/],
    ['a module-wide option', { caches: { s: { metrics: true } as never } }, /"caches\.s\.metrics"/],
    ['the name default', { caches: { default: {} } }, /Invalid cache name "default"/],
    ['a name with a dot', { caches: { 'a.b': {} } }, /Invalid cache name "a\.b"/],
    ['a cache that is not an object', { caches: { a: 3 as never } }, /"caches\.a": 3/],
    ['a bad namespace', { caches: { a: { namespace: 'x:y' } } }, /"caches\.a\.namespace"/],
    ['l1 on memory', { caches: { a: { l1: true } } }, /"caches\.a\.l1"/],
  ])('refuses %s naming caches.<name>.<option>', async (_, options, message) => {
    const error = await failure([CacheModule.forRoot(options)], []);
    expect(error).toBeInstanceOf(CacheConfigError);
    expect(error.message).toMatch(message);
  });

  it('refuses a bad cache name on a decorator or @InjectCache when the class is defined', () => {
    expect(() => Cacheable({ cache: 'no such' })).toThrow(CacheArgumentError);
    expect(() => InjectCache('')).toThrow(CacheArgumentError);
  });
});

describe('named caches: forRootAsync', () => {
  it('provides the named caches the factory configures', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRootAsync({
          useFactory: async () => ({ ttl: 10, caches: { sessions: { ttl: 20 }, catalog: {} } }),
        }),
      ],
      providers: [SessionStore, Accounts],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    const store = app.get(SessionStore);
    expect(store.sessions.defaultTtl).toBe(20);
    expect(store.catalog.defaultTtl).toBe(10);
    await app.get(Accounts).user(1);
    expect(await store.sessions.has('user:1')).toBe(true);
    await app.close();
  });

  it('fails startup when the factory lacks an injected cache', async () => {
    const error = await failure(
      [CacheModule.forRootAsync({ useFactory: () => ({ caches: { catalog: {} } }) })],
      [SessionStore],
    );
    expect(error.message).toMatch(
      /Unknown cache 'sessions' \(injected into SessionStore\); configured caches: default, catalog\./,
    );
  });

  it('provides a name listed in cacheNames', async () => {
    @Module({})
    class Empty {}
    const moduleRef = await Test.createTestingModule({
      imports: [
        Empty,
        CacheModule.forRootAsync({
          useFactory: () => ({ caches: { late: { ttl: 5 }, catalog: {} } }),
          cacheNames: ['late'],
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    expect(app.get<CacheService>(getCacheToken('late')).defaultTtl).toBe(5);
    await app.close();
  });
});

describe('named caches: unknown names fail startup', () => {
  it('names the class that injects an unknown cache', async () => {
    const error = await failure([CacheModule.forRoot({ caches: { catalog: {} } })], [SessionStore]);
    expect(error).toBeInstanceOf(CacheConfigError);
    expect(error.message).toMatch(
      /Unknown cache 'sessions' \(injected into SessionStore\); configured caches: default, catalog\./,
    );
  });

  it('names the method whose decorator uses an unknown cache', async () => {
    @Injectable()
    class Reports {
      @Cacheable({ cache: 'reports' })
      async daily(): Promise<number> {
        return 1;
      }
    }
    const error = await failure([CacheModule.forRoot({ caches: CACHES })], [Reports]);
    expect(error).toBeInstanceOf(CacheConfigError);
    expect(error.message).toMatch(
      /Unknown cache 'reports' \(used by Reports\.daily\); configured caches: default, sessions, catalog\./,
    );
  });

  it('names the cacheResult function that uses an unknown cache', async () => {
    // Last: a cacheResult function is registered for the rest of the process.
    const orphan = cacheResult(async (id: number) => id, {
      key: (id) => `orphan:${id}`,
      cache: 'orphans',
      name: 'loadOrphan',
    });
    const error = await failure([CacheModule.forRoot({ caches: CACHES })], []);
    expect(error).toBeInstanceOf(CacheConfigError);
    expect(error.message).toMatch(
      /Unknown cache 'orphans' \(used by cacheResult\(loadOrphan\)\); configured caches: default, sessions, catalog\./,
    );
    // Outside a running application it calls through.
    expect(await orphan(3)).toBe(3);
  });
});
