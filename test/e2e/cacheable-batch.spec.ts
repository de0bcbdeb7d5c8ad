import { Controller, Get, Injectable, Module, Query, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { firstValueFrom, isObservable, Observable, of } from 'rxjs';
import request from 'supertest';
import {
  CacheModule,
  CacheService,
  Cacheable,
  CacheArgumentError,
  getCacheToken,
  type CacheModuleOptions,
} from '../../lib';
import { CapturingLogger } from '../support/logs';
import { deferred } from '../support/deferred';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/**
 * The batch form of `@Cacheable` (issue 17, item 2): a method taking a list of ids runs once
 * with only the ids that missed; each id is cached under its own key.
 */
interface Product {
  id: string;
  name: string;
}

@Injectable()
class Catalog {
  readonly db = new Map<string, Product>();
  /** The ids each method was called with, per call. */
  readonly calls: Record<string, unknown[][]> = {};
  gate: Promise<void> | undefined;

  private record(name: string, ids: unknown[]): void {
    (this.calls[name] ??= []).push(ids);
  }

  /** In order, same length; `null` for an unknown id (a value, cached). */
  @Cacheable({ key: 'product:{ids}', batch: true })
  async inOrder(ids: string[]): Promise<Array<Product | null>> {
    this.record('inOrder', ids);
    if (this.gate) await this.gate;
    return ids.map((id) => this.db.get(id) ?? null);
  }

  /** Like `SELECT ... WHERE id IN (...)`: found rows only, in any order. */
  @Cacheable('row:{ids}', { batch: { by: 'id' }, ttl: 60 })
  async rows(ids: string[]): Promise<Product[]> {
    this.record('rows', ids);
    return ids
      .map((id) => this.db.get(id))
      .filter((p): p is Product => p !== undefined)
      .reverse();
  }

  /** A Map by id, the list as the second parameter, the first part of every key. */
  @Cacheable('{locale}:name:{ids}', {
    batch: { param: 'ids', map: true },
    tags: ['names', 'name:{ids}'],
  })
  names(locale: string, ids: number[]): Map<number, string> {
    this.record('names', ids);
    return new Map(
      ids
        .filter((id) => this.db.has(String(id)))
        .map((id) => [id, `${locale}:${this.db.get(String(id))!.name}`]),
    );
  }

  /** Numeric ids from the database, string ids asked for. */
  @Cacheable('numeric:{ids}', { batch: { by: (row: { id: number }) => row.id } })
  async numeric(ids: string[]): Promise<Array<{ id: number; name: string }>> {
    this.record('numeric', ids);
    return ids
      .filter((id) => this.db.has(id))
      .map((id) => ({ id: Number(id), name: this.db.get(id)!.name }));
  }

  @Cacheable('obs:{ids}', { batch: true })
  observed(ids: string[]): Observable<string[]> {
    this.record('observed', ids);
    return of(ids.map((id) => `obs-${id}`));
  }

  /** Returns the wrong shape (one value short). */
  @Cacheable('broken:{ids}', { batch: true })
  async broken(ids: string[]): Promise<string[]> {
    this.record('broken', ids);
    return ids.slice(1);
  }

  @Cacheable('cond:{ids}', { batch: true, condition: (ids: string[]) => ids.length < 3 })
  async conditional(ids: string[]): Promise<string[]> {
    this.record('conditional', ids);
    return ids.map((id) => `c-${id}`);
  }

  @Cacheable('failing:{ids}', { batch: true })
  async failing(ids: string[]): Promise<string[]> {
    this.record('failing', ids);
    throw new Error(`db down for ${ids.join(',')}`);
  }
}

@Controller('products')
class ProductsController {
  constructor(private readonly catalog: Catalog) {}
  readonly calls: string[][] = [];

  @Get()
  @Cacheable('http:product:{ids}', { batch: true })
  async list(@Query('ids') ids: string[]): Promise<Array<Product | null>> {
    this.calls.push(ids);
    return ids.map((id) => this.catalog.db.get(id) ?? null);
  }
}

@Module({ controllers: [ProductsController], providers: [Catalog] })
class CatalogModule {}

async function start(options: CacheModuleOptions) {
  const logger = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot({ isGlobal: true, ...options }), CatalogModule],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  const catalog = app.get(Catalog);
  for (const id of ['1', '2', '3', '4']) catalog.db.set(id, { id, name: `P${id}` });
  return { app, catalog, cache: app.get(CacheService), logger };
}

describe.each([
  ['memory', (): CacheModuleOptions => ({ provider: 'memory' })],
  [
    'redis',
    (): CacheModuleOptions => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('batch'),
    }),
  ],
  [
    'redis + l1',
    (): CacheModuleOptions => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('batch-l1'),
      l1: true,
    }),
  ],
])('@Cacheable batch form (%s)', (_name, optionsFor) => {
  let app: INestApplication;
  let catalog: Catalog;
  let cache: CacheService;
  let logger: CapturingLogger;

  beforeEach(async () => {
    ({ app, catalog, cache, logger } = await start(optionsFor()));
  });

  afterEach(async () => {
    await cache.clear();
    await app.close();
  });

  it('calls the method once with only the ids that missed, and answers in order', async () => {
    await expect(catalog.inOrder(['1', '2'])).resolves.toEqual([
      { id: '1', name: 'P1' },
      { id: '2', name: 'P2' },
    ]);
    await expect(catalog.inOrder(['3', '1', 'x', '2', '3'])).resolves.toEqual([
      { id: '3', name: 'P3' },
      { id: '1', name: 'P1' },
      null,
      { id: '2', name: 'P2' },
      { id: '3', name: 'P3' },
    ]);
    expect(catalog.calls.inOrder).toEqual([
      ['1', '2'],
      ['3', 'x'],
    ]);
    // Each id under its own key; a null is a cached value.
    await expect(cache.getMany(['product:1', 'product:3', 'product:x'])).resolves.toEqual([
      { id: '1', name: 'P1' },
      { id: '3', name: 'P3' },
      null,
    ]);
    await catalog.inOrder(['x', '1', '2', '3']);
    expect(catalog.calls.inOrder).toHaveLength(2);
  });

  it('matches unordered rows by id; ids without a row are left out and not cached', async () => {
    await expect(catalog.rows(['3', 'nope', '1'])).resolves.toEqual([
      { id: '3', name: 'P3' },
      { id: '1', name: 'P1' },
    ]);
    await expect(catalog.rows(['1', 'nope', '2'])).resolves.toEqual([
      { id: '1', name: 'P1' },
      { id: '2', name: 'P2' },
    ]);
    expect(catalog.calls.rows).toEqual([
      ['3', 'nope', '1'],
      ['nope', '2'],
    ]);
    await expect(cache.get('row:nope')).resolves.toBeUndefined();
  });

  it('matches numeric ids returned for string ids', async () => {
    await expect(catalog.numeric(['2', '1'])).resolves.toEqual([
      { id: 2, name: 'P2' },
      { id: 1, name: 'P1' },
    ]);
    await expect(catalog.numeric(['1'])).resolves.toEqual([{ id: 1, name: 'P1' }]);
    expect(catalog.calls.numeric).toEqual([['2', '1']]);
  });

  it('takes the list from a named parameter, keeps the other arguments, returns a Map, and tags each entry', async () => {
    // A sync method: decorated, it returns a Promise.
    const names = (locale: string, ids: number[]) =>
      catalog.names(locale, ids) as unknown as Promise<Map<number, string>>;
    await expect(names('fr', [1, 2])).resolves.toEqual(
      new Map([
        [1, 'fr:P1'],
        [2, 'fr:P2'],
      ]),
    );
    const answer = await names('fr', [2, 9, 3]);
    expect(answer).toBeInstanceOf(Map);
    expect([...answer]).toEqual([
      [2, 'fr:P2'],
      [3, 'fr:P3'],
    ]);
    expect(catalog.calls.names).toEqual([
      [1, 2],
      [9, 3],
    ]);
    // Another locale: other keys.
    await names('de', [1]);
    expect(catalog.calls.names).toEqual([[1, 2], [9, 3], [1]]);
    await cache.deleteByTag('name:2');
    await names('fr', [1, 2, 3]);
    expect(catalog.calls.names.at(-1)).toEqual([2]);
    await cache.deleteByTag('names');
    await names('fr', [1, 3]);
    expect(catalog.calls.names.at(-1)).toEqual([1, 3]);
  });

  it('caches an Observable method by its last value, and answers with an Observable', async () => {
    const first = catalog.observed(['a', 'b']);
    expect(isObservable(first)).toBe(true);
    await expect(firstValueFrom(first)).resolves.toEqual(['obs-a', 'obs-b']);
    await expect(firstValueFrom(catalog.observed(['b', 'c']))).resolves.toEqual(['obs-b', 'obs-c']);
    expect(catalog.calls.observed).toEqual([['a', 'b'], ['c']]);
  });

  it('loads an id once when two calls overlap', async () => {
    const gate = deferred<void>();
    catalog.gate = gate.promise;
    const first = catalog.inOrder(['1', '2']);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = catalog.inOrder(['2', '3']);
    await new Promise((resolve) => setTimeout(resolve, 20));
    catalog.gate = undefined;
    gate.resolve();
    await expect(first).resolves.toEqual([
      { id: '1', name: 'P1' },
      { id: '2', name: 'P2' },
    ]);
    await expect(second).resolves.toEqual([
      { id: '2', name: 'P2' },
      { id: '3', name: 'P3' },
    ]);
    expect(catalog.calls.inOrder).toEqual([['1', '2'], ['3']]);
  });

  it('rejects a result of the wrong shape with a clear error, caching nothing', async () => {
    await expect(catalog.broken(['a', 'b'])).rejects.toThrow(CacheArgumentError);
    await expect(catalog.broken(['a', 'b'])).rejects.toThrow(
      /Catalog\.broken \(@Cacheable batch\) must return an array of 2 values/,
    );
    await expect(cache.getMany(['broken:a', 'broken:b'])).resolves.toEqual([undefined, undefined]);
  });

  it('passes the method error through and caches nothing', async () => {
    await expect(catalog.failing(['a'])).rejects.toThrow('db down for a');
    await expect(catalog.failing(['a'])).rejects.toThrow('db down for a');
    expect(catalog.calls.failing).toHaveLength(2);
  });

  it('calls through when the condition fails', async () => {
    await catalog.conditional(['a', 'b', 'c']);
    await catalog.conditional(['a', 'b', 'c']);
    expect(catalog.calls.conditional).toHaveLength(2);
    await catalog.conditional(['a']);
    await catalog.conditional(['a']);
    expect(catalog.calls.conditional).toHaveLength(3);
  });

  it('calls through when the list is not an array', async () => {
    await expect(catalog.inOrder('1' as never)).rejects.toThrow();
    expect(logger.warnings()).toEqual([]);
  });

  it('caches a controller handler per id and writes X-Cache', async () => {
    const server = app.getHttpServer();
    const first = await request(server).get('/products?ids=1&ids=2').expect(200);
    expect(first.body).toEqual([
      { id: '1', name: 'P1' },
      { id: '2', name: 'P2' },
    ]);
    expect(first.headers['x-cache']).toBe('MISS');
    const second = await request(server).get('/products?ids=2&ids=1').expect(200);
    expect(second.body).toEqual([
      { id: '2', name: 'P2' },
      { id: '1', name: 'P1' },
    ]);
    expect(second.headers['x-cache']).toBe('HIT');
    const controller = app.get(ProductsController);
    expect(controller.calls).toEqual([['1', '2']]);
  });
});

describe('@Cacheable batch options are checked when the class is defined', () => {
  it('names a parameter the method does not have', () => {
    expect(() => {
      class Bad {
        @Cacheable('k:{ids}', { batch: 'idz' })
        find(ids: string[]) {
          return ids;
        }
      }
      return Bad;
    }).toThrow(/batch.param 'idz' names no parameter \(parameters: ids\)/);
  });

  it('refuses unknown fields, by with map, and odd values', () => {
    const define = (batch: unknown) => () => {
      class Bad {
        @Cacheable('k:{ids}', { batch: batch as never })
        find(ids: string[]) {
          return ids;
        }
      }
      return Bad;
    };
    expect(define({ param: 0, colour: 1 })).toThrow(/unknown batch option "colour"/);
    expect(define({ by: 'id', map: true })).toThrow(/exclude each other/);
    expect(define([1])).toThrow(/batch must be true/);
    expect(define({ by: 3 })).toThrow(/batch.by must be/);
    expect(define({ param: -1 })).toThrow(/batch.param must be/);
  });
});

describe('@Cacheable batch form on a named cache', () => {
  @Injectable()
  class Named {
    readonly calls: string[][] = [];

    @Cacheable({ key: 'item:{ids}', batch: true, cache: 'catalog' })
    async items(ids: string[]): Promise<string[]> {
      this.calls.push(ids);
      return ids.map((id) => `item-${id}`);
    }
  }

  it('caches each id in that cache, not the default one', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ isGlobal: true, caches: { catalog: { ttl: 60 } } })],
      providers: [Named],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: new CapturingLogger() });
    await app.init();
    try {
      const named = app.get(Named);
      await expect(named.items(['1', '2'])).resolves.toEqual(['item-1', 'item-2']);
      await expect(named.items(['2', '3'])).resolves.toEqual(['item-2', 'item-3']);
      expect(named.calls).toEqual([['1', '2'], ['3']]);
      const catalog = app.get<CacheService>(getCacheToken('catalog'));
      await expect(catalog.getMany(['item:1', 'item:3'])).resolves.toEqual(['item-1', 'item-3']);
      await expect(app.get(CacheService).get('item:1')).resolves.toBeUndefined();
    } finally {
      await app.close();
    }
  });
});
