import {
  Inject,
  Injectable,
  Module,
  Scope,
  type INestApplication,
  type OnModuleInit,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { firstValueFrom, isObservable, Observable, of } from 'rxjs';
import {
  CacheEvict,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
  KeyConstructor,
  argField,
  type CacheModuleOptions,
} from '../../lib';
import { CacheMetadataAccessor } from '../../lib/discovery/cache-metadata.accessor';
import { CapturingLogger } from '../support/logs';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

const tick = (ms = 20) => new Promise((resolve) => setTimeout(resolve, ms));

interface Product {
  id: string;
  name: string;
  price: number;
}

const SearchKey = KeyConstructor.define({
  namespace: 'search',
  fields: [argField('query'), argField('page')],
});

@Injectable()
class ProductService {
  readonly db = new Map<string, Product>();
  calls: Record<string, number> = {};

  private count(name: string): void {
    this.calls[name] = (this.calls[name] ?? 0) + 1;
  }

  @Cacheable('product:{id}', { ttl: 60 })
  async get(id: string): Promise<Product | null> {
    this.count('get');
    await tick(5);
    return this.db.get(id) ?? null;
  }

  @Cacheable('sync:{id}')
  getSync(id: string): string {
    this.count('getSync');
    return `sync-${id}`;
  }

  @Cacheable('obs:{id}')
  getObservable(id: string): Observable<string> {
    this.count('getObservable');
    return of(`obs-${id}`);
  }

  @Cacheable({ key: 'search:{query}:page:{page}' })
  async search(query: string, page = 1): Promise<string[]> {
    this.count('search');
    return [`${query}@${page}`];
  }

  @Cacheable({ key: SearchKey })
  async searchByConstructor(query: string, page = 1): Promise<string[]> {
    this.count('searchByConstructor');
    return [`${query}#${page}`];
  }

  @Cacheable({ key: (a: string, b: string) => `fn:${a}|${b}` })
  async byFunction(a: string, b: string): Promise<string> {
    this.count('byFunction');
    return a + b;
  }

  @Cacheable({ key: 'pair:{a}:{b}' })
  async pair(a: string, b: string): Promise<string> {
    this.count('pair');
    return `${a}+${b}`;
  }

  @Cacheable({ key: 'filter:{filter}' })
  async filtered(filter: Record<string, unknown>): Promise<number> {
    this.count('filtered');
    return Object.keys(filter).length;
  }

  @Cacheable({ key: 'cond:{id}', condition: (id: string) => !id.startsWith('nocache') })
  async conditional(id: string): Promise<string> {
    this.count('conditional');
    return id;
  }

  @Cacheable({ key: 'unless:{id}', unless: (value: string | null) => value === null })
  async maybe(id: string): Promise<string | null> {
    this.count('maybe');
    return this.db.has(id) ? id : null;
  }

  @Cacheable('fails:{id}')
  async failing(id: string): Promise<string> {
    this.count('failing');
    // Long enough that every concurrent caller's read has answered before the failure lands,
    // even on a loaded machine (a caller arriving after it starts a new load, rightly).
    await tick(50);
    throw new Error(`boom ${id}`);
  }

  @Cacheable()
  async defaultKey(a: string, b: number): Promise<string> {
    this.count('defaultKey');
    return `${a}${b}`;
  }

  /** Cached under the same key as `get`, which it calls: must not wait for itself. */
  @Cacheable('product:{id}')
  async getTwoLayers(id: string): Promise<Product | null> {
    this.count('getTwoLayers');
    return this.get(id);
  }

  @CachePut({ key: 'product:{product.id}', ttl: 60 })
  async create(product: Product): Promise<Product> {
    this.count('create');
    this.db.set(product.id, { ...product });
    return { ...product };
  }

  @CachePut('product:{result.id}')
  async createWithGeneratedId(name: string): Promise<Product> {
    const product = { id: `gen-${this.db.size + 1}`, name, price: 1 };
    this.db.set(product.id, product);
    return product;
  }

  @CachePut({ key: 'product:{id}' })
  async update(id: string, data: Partial<Product>): Promise<Product> {
    this.count('update');
    const existing = this.db.get(id);
    if (!existing) throw new Error(`no product ${id}`);
    Object.assign(existing, data);
    return { ...existing };
  }

  @CacheEvict({ key: 'product:{id}' })
  @CacheEvict({ prefix: 'search:' })
  @CacheEvict({ key: 'unless:{id}' })
  async remove(id: string): Promise<void> {
    this.count('remove');
    this.db.delete(id);
  }

  @CacheEvict({ key: 'product:{id}' })
  async removeButFail(id: string): Promise<void> {
    await tick(1);
    throw new Error(`cannot remove ${id}`);
  }

  @CacheEvict({ key: 'product:{id}', beforeInvocation: true })
  async removeBeforeAndFail(id: string): Promise<void> {
    await tick(1);
    throw new Error(`cannot remove ${id}`);
  }

  @CacheEvict({ allEntries: true })
  async clearAll(): Promise<void> {
    this.count('clearAll');
    this.db.clear();
  }
}

/** Calls the cached service from another provider, as application code does. */
@Injectable()
class ProductFacade {
  constructor(readonly products: ProductService) {}
  show(id: string): Promise<Product | null> {
    return this.products.get(id);
  }
}

@Module({ providers: [ProductService, ProductFacade], exports: [ProductService] })
class ProductModule {}

async function start(options: CacheModuleOptions, logger = new CapturingLogger()) {
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot({ isGlobal: true, ...options }), ProductModule],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return {
    app,
    service: app.get(ProductService),
    facade: app.get(ProductFacade),
    cache: app.get(CacheService),
    logger,
  };
}

describe.each([
  ['memory', (): CacheModuleOptions => ({ provider: 'memory' })],
  [
    'redis',
    (): CacheModuleOptions => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('decorators'),
    }),
  ],
])('decorated service methods (%s)', (_name, optionsFor) => {
  let app: INestApplication;
  let service: ProductService;
  let facade: ProductFacade;
  let cache: CacheService;

  beforeEach(async () => {
    ({ app, service, facade, cache } = await start(optionsFor()));
    service.db.set('1', { id: '1', name: 'Widget', price: 29.99 });
  });

  afterEach(async () => {
    await cache.clear();
    await app.close();
  });

  it('runs the body once for two calls from another provider', async () => {
    expect(await facade.show('1')).toEqual({ id: '1', name: 'Widget', price: 29.99 });
    expect(await facade.show('1')).toEqual({ id: '1', name: 'Widget', price: 29.99 });
    expect(service.calls.get).toBe(1);
    expect(await cache.get('product:1')).toEqual({ id: '1', name: 'Widget', price: 29.99 });
  });

  it('caches sync methods (which then return a Promise)', async () => {
    await expect(service.getSync('a')).resolves.toBe('sync-a');
    await expect(service.getSync('a')).resolves.toBe('sync-a');
    expect(service.calls.getSync).toBe(1);
  });

  it('caches Observable-returning methods and returns an Observable on hits', async () => {
    const first = service.getObservable('a');
    expect(isObservable(first)).toBe(true);
    expect(await firstValueFrom(first)).toBe('obs-a');
    const second = service.getObservable('a');
    expect(isObservable(second)).toBe(true);
    expect(await firstValueFrom(second)).toBe('obs-a');
    expect(service.calls.getObservable).toBe(1);
    expect(await cache.get('obs:a')).toBe('obs-a');
  });

  it('applies default values in keys (the PyFly search example)', async () => {
    await service.search('shoes');
    expect(await cache.get('search:shoes:page:1')).toEqual(['shoes@1']);
    await service.search('shoes', 1);
    expect(service.calls.search).toBe(1);
    await service.search('shoes', 3);
    expect(await cache.get('search:shoes:page:3')).toEqual(['shoes@3']);
    expect(service.calls.search).toBe(2);
  });

  it('takes a KeyConstructor or a key function as the key', async () => {
    await service.searchByConstructor('boots');
    expect(await cache.get('search:query=boots:page=1')).toEqual(['boots#1']);
    await service.byFunction('a', 'b');
    await service.byFunction('a', 'b');
    expect(service.calls.byFunction).toBe(1);
    expect(await cache.get('fn:a|b')).toBe('ab');
  });

  it('keeps arguments containing separators apart (injective keys)', async () => {
    expect(await service.pair('a:b', 'c')).toBe('a:b+c');
    expect(await service.pair('a', 'b:c')).toBe('a+b:c');
    expect(service.calls.pair).toBe(2);
  });

  it('hits for the same object argument whatever its property order', async () => {
    await service.filtered({ color: 'red', size: 42 });
    await service.filtered({ size: 42, color: 'red' });
    expect(service.calls.filtered).toBe(1);
  });

  it('uses a default key from the class, method and arguments', async () => {
    await service.defaultKey('x', 1);
    await service.defaultKey('x', 1);
    expect(service.calls.defaultKey).toBe(1);
    expect(await cache.get('ProductService:defaultKey:x:1')).toBe('x1');
  });

  it('skips the cache when condition is false and skips storing when unless is true', async () => {
    await service.conditional('nocache-1');
    await service.conditional('nocache-1');
    expect(service.calls.conditional).toBe(2);
    await service.conditional('ok');
    await service.conditional('ok');
    expect(service.calls.conditional).toBe(3);

    expect(await service.maybe('404')).toBeNull();
    expect(await service.maybe('404')).toBeNull();
    expect(service.calls.maybe).toBe(2);
    expect(await cache.has('unless:404')).toBe(false);
  });

  it('caches nothing when the method throws', async () => {
    await expect(service.failing('x')).rejects.toThrow('boom x');
    expect(await cache.has('fails:x')).toBe(false);
    await expect(service.failing('x')).rejects.toThrow('boom x');
    expect(service.calls.failing).toBe(2);
  });

  it('runs the body once for 50 concurrent calls on a cold key', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => service.get('1')));
    expect(service.calls.get).toBe(1);
    expect(new Set(results.map((r) => JSON.stringify(r))).size).toBe(1);
  });

  it('shares one failure among concurrent callers and caches nothing', async () => {
    const settled = await Promise.allSettled(
      Array.from({ length: 10 }, () => service.failing('y')),
    );
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    expect(service.calls.failing).toBe(1);
    expect(await cache.has('fails:y')).toBe(false);
  });

  it('does not deadlock when a cached method calls another cached under the same key', async () => {
    expect(await service.getTwoLayers('1')).toEqual({ id: '1', name: 'Widget', price: 29.99 });
    expect(await service.getTwoLayers('1')).toEqual({ id: '1', name: 'Widget', price: 29.99 });
    expect(service.calls.getTwoLayers).toBe(1);
    expect(service.calls.get).toBe(1);
    expect(await cache.wrap('nested', () => cache.wrap('nested', () => 'inner'))).toBe('inner');
  });

  it('lets a loader re-enter its own key after an await, load after load', async () => {
    const nested = (key: string, ms: number) =>
      cache.wrap(key, async () => {
        await new Promise((resolve) => setTimeout(resolve, ms));
        return cache.wrap(key, () => `inner ${key}`);
      });
    // One after another: the guard is switched off between loads and on again.
    expect(await nested('a', 1)).toBe('inner a');
    expect(await nested('b', 1)).toBe('inner b');
    // Overlapping: 'c' ends while 'slow' still runs, whose guard must stay on.
    const slow = nested('slow', 40);
    expect(await nested('c', 1)).toBe('inner c');
    expect(await slow).toBe('inner slow');
  });

  it('@CachePut always runs and refreshes what @Cacheable reads', async () => {
    await service.create({ id: '2', name: 'Gadget', price: 10 });
    await service.create({ id: '2', name: 'Gadget', price: 10 });
    expect(service.calls.create).toBe(2);
    expect(await service.get('2')).toEqual({ id: '2', name: 'Gadget', price: 10 });
    expect(service.calls.get).toBeUndefined();

    await service.update('2', { price: 8 });
    expect(await service.get('2')).toEqual({ id: '2', name: 'Gadget', price: 8 });
    expect(service.calls.get).toBeUndefined();
  });

  it('@CachePut can key by the result', async () => {
    const created = await service.createWithGeneratedId('Thing');
    expect(await cache.get(`product:${created.id}`)).toEqual(created);
  });

  it('@CachePut stores nothing when the method throws', async () => {
    await service.get('1');
    await expect(service.update('missing', { price: 1 })).rejects.toThrow('no product');
    expect(await cache.has('product:missing')).toBe(false);
    expect(await cache.get('product:1')).toEqual({ id: '1', name: 'Widget', price: 29.99 });
  });

  it('stacked @CacheEvict delete a key, a prefix and another key after the call', async () => {
    await service.get('1');
    await service.search('shoes');
    await service.search('boots', 2);
    await cache.set('unless:1', '1');
    await cache.set('other', 'kept');
    await service.remove('1');
    expect(await cache.has('product:1')).toBe(false);
    expect(await cache.has('search:shoes:page:1')).toBe(false);
    expect(await cache.has('search:boots:page:2')).toBe(false);
    expect(await cache.has('unless:1')).toBe(false);
    expect(await cache.get('other')).toBe('kept');
    expect(await service.get('1')).toBeNull();
  });

  it('@CacheEvict evicts nothing when the method throws, unless beforeInvocation', async () => {
    await service.get('1');
    await expect(service.removeButFail('1')).rejects.toThrow('cannot remove');
    expect(await cache.has('product:1')).toBe(true);
    await expect(service.removeBeforeAndFail('1')).rejects.toThrow('cannot remove');
    expect(await cache.has('product:1')).toBe(false);
  });

  it('@CacheEvict({ allEntries: true }) clears the namespace', async () => {
    await service.get('1');
    await cache.set('manual', 1);
    await service.clearAll();
    expect(await cache.has('product:1')).toBe(false);
    expect(await cache.has('manual')).toBe(false);
  });

  it('an evict while a load is in flight keeps the stale load out of the cache', async () => {
    const load = service.get('1');
    await tick(1);
    service.db.set('1', { id: '1', name: 'Widget', price: 1 });
    await service.remove('1');
    service.db.set('1', { id: '1', name: 'Widget', price: 1 });
    await load;
    expect(await service.get('1')).toEqual({ id: '1', name: 'Widget', price: 1 });
  });
});

describe('binding decorated instances to their own application', () => {
  it('two applications with different CacheModule configs each use their own cache', async () => {
    const redisNamespace = uniqueNamespace('app-b');
    const a = await start({ provider: 'memory', namespace: 'app-a' });
    const b = await start({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: redisNamespace,
    });
    try {
      a.service.db.set('1', { id: '1', name: 'From A', price: 1 });
      b.service.db.set('1', { id: '1', name: 'From B', price: 2 });
      expect((await a.service.get('1'))?.name).toBe('From A');
      expect((await b.service.get('1'))?.name).toBe('From B');
      // Each entry sits in its own backend only.
      expect((await a.cache.get<Product>('product:1'))?.name).toBe('From A');
      expect((await b.cache.get<Product>('product:1'))?.name).toBe('From B');
      await a.service.remove('1');
      expect(await a.cache.has('product:1')).toBe(false);
      expect(await b.cache.has('product:1')).toBe(true);
      expect(a.service.calls.get).toBe(1);
      expect(b.service.calls.get).toBe(1);
    } finally {
      await b.cache.clear();
      await a.app.close();
      await b.app.close();
    }
  });

  it('answers with an awaitable Observable while the return type is unknown', async () => {
    @Injectable()
    class Untyped {
      calls = 0;
      // `unknown` is emitted as `Object`: nothing says this returns an Observable until it runs.
      @Cacheable('untyped:{id}')
      get(id: string): unknown {
        this.calls++;
        return of(`untyped-${id}`);
      }
    }
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot()],
      providers: [Untyped],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    try {
      const untyped = app.get(Untyped);
      const first = untyped.get('a') as Observable<string> & PromiseLike<string>;
      expect(isObservable(first)).toBe(true);
      expect(await first).toBe('untyped-a');
      // Learned from the first run: a plain Observable from now on.
      const second = untyped.get('a') as Observable<string>;
      expect(isObservable(second)).toBe(true);
      expect(await firstValueFrom(second)).toBe('untyped-a');
      expect(untyped.calls).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('enabled: false turns every decorator into a plain call', async () => {
    const { app, service, cache } = await start({ enabled: false });
    try {
      service.db.set('1', { id: '1', name: 'Widget', price: 1 });
      await service.get('1');
      await service.get('1');
      expect(service.calls.get).toBe(2);
      // A sync method stays sync.
      expect(service.getSync('a')).toBe('sync-a');
      await service.create({ id: '3', name: 'x', price: 1 });
      expect(await cache.has('product:3')).toBe(false);
    } finally {
      await app.close();
    }
  });

  it('an instance no application manages runs uncached and logs once', async () => {
    const logger = new CapturingLogger();
    const { app } = await start({}, logger);
    try {
      const loose = new ProductService();
      loose.db.set('1', { id: '1', name: 'Loose', price: 1 });
      await loose.get('1');
      await loose.get('1');
      expect(loose.calls.get).toBe(2);
      const warnings = logger
        .warnings()
        .filter((w) => w.includes('ProductService.get ran uncached'));
      expect(warnings.length).toBeLessThanOrEqual(1);
    } finally {
      await app.close();
    }
  });

  it('binds in time for a call made from another provider’s onModuleInit (cache warming)', async () => {
    @Injectable()
    class Warmer implements OnModuleInit {
      constructor(readonly products: ProductService) {}
      async onModuleInit(): Promise<void> {
        this.products.db.set('w', { id: 'w', name: 'Warm', price: 1 });
        await this.products.get('w');
      }
    }
    @Module({ imports: [ProductModule], providers: [Warmer] })
    class WarmModule {}
    // Warmer's module is initialised before CacheModule's explorer runs.
    const moduleRef = await Test.createTestingModule({
      imports: [WarmModule, CacheModule.forRoot()],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    try {
      const cache = app.get(CacheService);
      expect(await cache.get('product:w')).toEqual({ id: 'w', name: 'Warm', price: 1 });
      await app.get(ProductService).get('w');
      expect(app.get(ProductService).calls.get).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('a compiled module used without init still caches (bound on first call)', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot(), ProductModule],
    }).compile();
    try {
      const service = moduleRef.get(ProductService);
      service.db.set('1', { id: '1', name: 'Widget', price: 1 });
      await service.get('1');
      await service.get('1');
      expect(service.calls.get).toBe(1);
    } finally {
      await moduleRef.close();
    }
  });

  it('binds transient providers, skips aliases, warns on request-scoped ones', async () => {
    @Injectable({ scope: Scope.TRANSIENT })
    class TransientCounter {
      calls = 0;
      @Cacheable('transient:{id}')
      async load(id: string): Promise<string> {
        this.calls++;
        return id;
      }
    }
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @Cacheable('per-request:{id}')
      async load(id: string): Promise<string> {
        return id;
      }
    }
    @Injectable()
    class UsesTransient {
      constructor(
        readonly counter: TransientCounter,
        @Inject('ALIAS') readonly alias: ProductService,
      ) {}
    }
    const logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ isGlobal: true }), ProductModule],
      providers: [
        TransientCounter,
        PerRequest,
        UsesTransient,
        { provide: 'ALIAS', useExisting: ProductService },
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger });
    await app.init();
    try {
      const { counter, alias } = app.get(UsesTransient);
      await counter.load('a');
      await counter.load('a');
      expect(counter.calls).toBe(1);
      // The alias is the same instance as ProductService, bound once through it.
      expect(alias).toBe(app.get(ProductService));
      alias.db.set('1', { id: '1', name: 'Widget', price: 1 });
      await alias.get('1');
      await alias.get('1');
      expect(alias.calls.get).toBe(1);
      expect(logger.warnings().join('\n')).toMatch(/PerRequest is request-scoped/);
    } finally {
      await app.close();
    }
  });

  it('logs instead of failing when one provider cannot be bound', async () => {
    @Injectable()
    class Fragile {
      calls = 0;
      @Cacheable('fragile')
      async load(): Promise<number> {
        return ++this.calls;
      }
    }
    const logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot(), ProductModule],
      providers: [Fragile],
    }).compile();
    const fragile = moduleRef.get(Fragile);
    const accessor = moduleRef.get(CacheMetadataAccessor, { strict: false });
    const real = accessor.hasCacheOperations.bind(accessor);
    jest.spyOn(accessor, 'hasCacheOperations').mockImplementation((instance: object) => {
      if (instance === fragile) throw new Error('cannot inspect Fragile');
      return real(instance);
    });
    const app = moduleRef.createNestApplication({ logger });
    await app.init();
    try {
      expect(logger.text).toMatch(/Could not bind Fragile to the cache.*cannot inspect Fragile/);
      // The broken one runs uncached; the others are bound as usual.
      expect([await fragile.load(), await fragile.load()]).toEqual([1, 2]);
      const service = app.get(ProductService);
      service.db.set('1', { id: '1', name: 'Widget', price: 1 });
      await service.get('1');
      await service.get('1');
      expect(service.calls.get).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('after the application closes, its instances are unbound', async () => {
    const { app, service } = await start({});
    service.db.set('1', { id: '1', name: 'Widget', price: 1 });
    await service.get('1');
    await app.close();
    await service.get('1');
    expect(service.calls.get).toBe(2);
  });
});
