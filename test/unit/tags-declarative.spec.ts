import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheArgumentError,
  CacheConfigError,
  CacheEvict,
  CacheInvalidator,
  CacheKeyError,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
  InvalidationRule,
  KeyConstructor,
  argField,
  cacheResult,
  type CachedFunction,
  type InvalidationDispatcher,
  type InvalidationExecutor,
  type InvalidationJob,
} from '../../lib';
import { CapturingLogger } from '../support/logs';

interface Product {
  id: number;
  name: string;
  locale: string;
  version: number;
}

const ProductKey = KeyConstructor.define({
  namespace: 'pk',
  fields: [argField('id', { partition: true })],
});

/** Records every job, then runs it (the inline dispatcher, observed). */
class RecordingDispatcher implements InvalidationDispatcher {
  readonly jobs: InvalidationJob[] = [];
  async dispatch(job: InvalidationJob, execute: InvalidationExecutor): Promise<void> {
    this.jobs.push(job);
    await execute(job);
  }
}

@Injectable()
class Catalog {
  version = 1;
  loads = 0;
  failTag = false;

  @Cacheable({
    key: 'product:{id}:{locale}',
    tags: ['product:{id}', 'products'],
    invalidateOn: [
      InvalidationRule({ event: 'product.updated', tags: ['product:{id}'] }),
      InvalidationRule({ event: 'shop.updated', tags: ['shop:{owner.shop}'], dispatcher: 'rec' }),
      InvalidationRule({
        event: 'catalog.reset',
        tags: [(p: { scope: string }) => `scope:${p.scope}`, 'products'],
        dispatcher: 'rec',
      }),
    ],
  })
  async product(id: number, locale = 'en'): Promise<Product> {
    this.loads++;
    return Promise.resolve({ id, name: `p${id}`, locale, version: this.version });
  }

  @Cacheable({ key: 'shopItem:{id}', tags: ['shop:{shop}'] })
  async shopItem(id: number, shop: string): Promise<string> {
    this.loads++;
    return Promise.resolve(`${shop}/${id}/v${this.version}`);
  }

  @Cacheable({ key: 'bare:{name}', tags: ['{name}'] })
  async bare(name: string): Promise<string> {
    this.loads++;
    return Promise.resolve(`bare:${name}`);
  }

  @Cacheable({ key: 'pair:{a}:{b}', tags: ['pair:{a}:{b}'] })
  async pair(a: string, b: string): Promise<string> {
    this.loads++;
    return Promise.resolve(`${a}|${b}|v${this.version}`);
  }

  @CacheEvict({ tags: ['pair:{a}:{b}'] })
  async dropPair(a: string, b: string): Promise<void> {
    await Promise.resolve([a, b]);
  }

  @Cacheable({
    key: 'fn:{id}',
    tags: (id: number) => [`fn:${id}`, 'fns'],
  })
  async byFunction(id: number): Promise<string> {
    this.loads++;
    return Promise.resolve(`fn${id}/v${this.version}`);
  }

  @Cacheable({
    key: 'maybe:{id}',
    tags: [
      'maybe:{id}',
      function (this: Catalog, id: number): string {
        if (this.failTag) throw new Error('no tag today');
        return `extra:${id}`;
      },
    ],
  })
  async maybe(id: number): Promise<string> {
    this.loads++;
    return Promise.resolve(`maybe${id}/v${this.version}`);
  }

  // Not a CacheEvict neighbour of a Cacheable: several decorators on one method go through the
  // general path (execute), which renders tags too.
  @Cacheable({ key: 'both:{id}', tags: ['both:{id}'] })
  @CacheEvict({ key: 'other:{id}' })
  async both(id: number): Promise<string> {
    this.loads++;
    return Promise.resolve(`both${id}/v${this.version}`);
  }

  @CachePut({ key: 'product:{result.id}:{result.locale}', tags: ['product:{result.id}'] })
  async save(input: { id: number; locale: string }): Promise<Product> {
    this.version++;
    return Promise.resolve({ ...input, name: `saved${input.id}`, version: this.version });
  }

  @CachePut({
    key: 'product:{result.id}:{result.locale}',
    tags: [(input: { id: number; tag?: unknown }) => input.tag as string],
  })
  async saveBadTag(input: { id: number; locale: string; tag?: unknown }): Promise<Product> {
    this.version++;
    return Promise.resolve({ ...input, name: `bad${input.id}`, version: this.version });
  }

  @CacheEvict({ tags: ['product:{id}'] })
  async update(id: number): Promise<void> {
    this.version++;
    await Promise.resolve(id);
  }

  @CacheEvict({ tags: ['products'], beforeInvocation: true })
  async reimport(fail: boolean): Promise<void> {
    this.version++;
    if (fail) throw new Error('import failed');
    await Promise.resolve();
  }

  @CacheEvict({ tags: ['product:{result}'] })
  async touch(): Promise<number> {
    this.version++;
    return Promise.resolve(2);
  }

  @CacheEvict({ tags: ['products'], condition: (really: boolean) => really })
  async maybeReset(really: boolean): Promise<boolean> {
    this.version++;
    return Promise.resolve(really);
  }

  @Cacheable({
    key: ProductKey,
    tags: ['pk:{id}'],
    invalidateOn: [
      InvalidationRule({ event: 'pk.tagged', tags: ['pk:{id}'] }),
      InvalidationRule({
        event: 'pk.both',
        fieldMapping: { id: 'id' },
        tags: ['shop:{shop}'],
        dispatcher: 'rec',
      }),
    ],
  })
  async keyed(id: number): Promise<string> {
    this.loads++;
    return Promise.resolve(`pk${id}/v${this.version}`);
  }
}

let loads = 0;
let version = 1;
const findProduct: CachedFunction<[number, string], Promise<string>> = cacheResult(
  async (id: number, locale: string) => {
    loads++;
    return Promise.resolve(`f${id}:${locale}/v${version}`);
  },
  {
    key: (id, locale) => `find:${id}:${locale}`,
    tags: ['product:{id}', (id: number) => `find:${id}`],
    invalidateOn: [InvalidationRule({ event: 'find.updated', tags: ['find:{productId}'] })],
    name: 'findProduct',
  },
);
const findAll = cacheResult(
  async (scope: string) => {
    loads++;
    return Promise.resolve(`all:${scope}/v${version}`);
  },
  {
    key: (scope) => `findAll:${scope}`,
    tags: (scope: string) => (scope === 'bad' ? [''] : [`scope:${scope}`]),
    name: 'findAll',
  },
);

describe('declarative tags (memory)', () => {
  let app: INestApplication;
  let catalog: Catalog;
  let cache: CacheService;
  let invalidator: CacheInvalidator;
  let recorder: RecordingDispatcher;
  let logger: CapturingLogger;

  beforeEach(async () => {
    recorder = new RecordingDispatcher();
    logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'memory',
          ttl: 600,
          invalidation: { dispatchers: { rec: recorder } },
        }),
      ],
      providers: [Catalog],
    }).compile();
    app = moduleRef.createNestApplication({ logger });
    await app.init();
    catalog = app.get(Catalog);
    cache = app.get(CacheService);
    invalidator = app.get(CacheInvalidator);
    loads = 0;
  });

  afterEach(async () => {
    await app.close();
  });

  describe('@Cacheable({ tags })', () => {
    it('stores entries with tags rendered from the arguments; deleteByTag drops them by tag', async () => {
      await catalog.product(1, 'en');
      await catalog.product(1, 'fr');
      await catalog.product(2, 'en');
      expect(catalog.loads).toBe(3);
      await catalog.product(1, 'en');
      expect(catalog.loads).toBe(3);

      catalog.version = 2;
      await cache.deleteByTag('product:1');
      // Both locales of product 1 are reloaded; product 2 is still served from the cache.
      expect(await catalog.product(1, 'en')).toMatchObject({ version: 2 });
      expect(await catalog.product(1, 'fr')).toMatchObject({ version: 2 });
      expect(await catalog.product(2, 'en')).toMatchObject({ version: 1 });
      expect(catalog.loads).toBe(5);

      catalog.version = 3;
      await cache.deleteByTag('products');
      expect(await catalog.product(2, 'en')).toMatchObject({ version: 3 });
    });

    it('renders the default value of an omitted argument, and reads a tag per call', async () => {
      await catalog.product(5);
      catalog.version = 2;
      await cache.deleteByTag('product:5');
      expect(await catalog.product(5)).toMatchObject({ version: 2, locale: 'en' });
    });

    it('renders tags injectively: separators inside values do not collide', async () => {
      expect(await catalog.pair('x:y', 'z')).toBe('x:y|z|v1');
      expect(await catalog.pair('x', 'y:z')).toBe('x|y:z|v1');
      catalog.version = 2;
      await catalog.dropPair('x:y', 'z');
      expect(await catalog.pair('x:y', 'z')).toBe('x:y|z|v2');
      expect(await catalog.pair('x', 'y:z')).toBe('x|y:z|v1');
    });

    it('takes a function of the arguments returning the tags', async () => {
      await catalog.byFunction(1);
      await catalog.byFunction(2);
      catalog.version = 2;
      await cache.deleteByTag('fn:1');
      expect(await catalog.byFunction(1)).toBe('fn1/v2');
      expect(await catalog.byFunction(2)).toBe('fn2/v1');
      await cache.deleteByTag(['fns']);
      expect(await catalog.byFunction(2)).toBe('fn2/v2');
    });

    it('a tag that cannot be rendered calls through uncached, logged', async () => {
      catalog.failTag = true;
      expect(await catalog.maybe(1)).toBe('maybe1/v1');
      expect(await catalog.maybe(1)).toBe('maybe1/v1');
      expect(catalog.loads).toBe(2);
      expect(await cache.has('maybe:1')).toBe(false);
      expect(logger.warnings().join('\n')).toMatch(
        /Catalog\.maybe: its tags could not be rendered, calling through: .*no tag today/,
      );

      catalog.failTag = false;
      await catalog.maybe(1);
      await catalog.maybe(1);
      expect(catalog.loads).toBe(3);
      catalog.version = 2;
      await cache.deleteByTag('extra:1');
      expect(await catalog.maybe(1)).toBe('maybe1/v2');
    });

    it('a lone-placeholder tag of an empty string is not a tag: the call runs uncached', async () => {
      await catalog.bare('');
      await catalog.bare('');
      expect(catalog.loads).toBe(2);
      expect(logger.warnings().join('\n')).toMatch(
        /Tag 0 of @Cacheable on Catalog.bare came out empty/,
      );
      await catalog.bare('x');
      await catalog.bare('x');
      expect(catalog.loads).toBe(3);
    });

    it('is honoured on a method carrying other cache decorators too', async () => {
      await catalog.both(1);
      await catalog.both(1);
      expect(catalog.loads).toBe(1);
      catalog.version = 2;
      await cache.deleteByTag('both:1');
      expect(await catalog.both(1)).toBe('both1/v2');
    });
  });

  describe('@CachePut({ tags })', () => {
    it('stores the result with tags that may read {result}', async () => {
      await catalog.save({ id: 3, locale: 'en' });
      expect(await catalog.product(3, 'en')).toMatchObject({ name: 'saved3', version: 2 });
      expect(catalog.loads).toBe(0);
      await cache.deleteByTag('product:3');
      expect(await catalog.product(3, 'en')).toMatchObject({ name: 'p3', version: 2 });
      expect(catalog.loads).toBe(1);
    });

    it('a tag that cannot be rendered stores nothing and deletes the old entry', async () => {
      await catalog.product(4, 'en');
      expect(await cache.has('product:4:en')).toBe(true);
      await catalog.saveBadTag({ id: 4, locale: 'en', tag: 42 });
      expect(await cache.has('product:4:en')).toBe(false);
      expect(logger.warnings().join('\n')).toMatch(
        /Catalog\.saveBadTag: its tags could not be rendered/,
      );

      await catalog.saveBadTag({ id: 4, locale: 'en', tag: 'good' });
      expect(await cache.get('product:4:en')).toMatchObject({ name: 'bad4' });
      await cache.deleteByTag('good');
      expect(await cache.get('product:4:en')).toBeUndefined();
    });
  });

  describe('@CacheEvict({ tags })', () => {
    it('invalidates the rendered tags after the method', async () => {
      await catalog.product(1, 'en');
      await catalog.product(2, 'en');
      await catalog.update(1);
      expect(await catalog.product(1, 'en')).toMatchObject({ version: 2 });
      expect(await catalog.product(2, 'en')).toMatchObject({ version: 1 });
    });

    it('with beforeInvocation, invalidates even when the method throws', async () => {
      await catalog.product(1, 'en');
      await expect(catalog.reimport(true)).rejects.toThrow('import failed');
      expect(await catalog.product(1, 'en')).toMatchObject({ version: 2 });
    });

    it('reads {result} after invocation, and honours condition', async () => {
      await catalog.product(2, 'en');
      await catalog.touch();
      expect(await catalog.product(2, 'en')).toMatchObject({ version: 2 });

      expect(await catalog.product(1, 'en')).toMatchObject({ version: 2 });
      await catalog.maybeReset(false); // runs (version 3), evicts nothing
      expect(await catalog.product(1, 'en')).toMatchObject({ version: 2 });
      await catalog.maybeReset(true); // version 4, evicts 'products'
      expect(await catalog.product(1, 'en')).toMatchObject({ version: 4 });
    });
  });

  describe('cacheResult({ tags })', () => {
    it('renders templates and functions of the arguments, passed to the store', async () => {
      expect(await findProduct(1, 'en')).toBe('f1:en/v1');
      expect(await findProduct(2, 'en')).toBe('f2:en/v1');
      await findProduct(1, 'en');
      expect(loads).toBe(2);
      version = 2;
      // The template tag it shares with Catalog.product.
      await cache.deleteByTag('product:1');
      expect(await findProduct(1, 'en')).toBe('f1:en/v2');
      expect(await findProduct(2, 'en')).toBe('f2:en/v1');
      version = 3;
      await cache.deleteByTag('find:2');
      expect(await findProduct(2, 'en')).toBe('f2:en/v3');
    });

    it('refresh() stores with the tags', async () => {
      version = 10;
      await findProduct.refresh(7, 'de');
      expect(await findProduct(7, 'de')).toBe('f7:de/v10');
      expect(loads).toBe(1);
      version = 11;
      await cache.deleteByTag('find:7');
      expect(await findProduct(7, 'de')).toBe('f7:de/v11');
    });

    it('a whole-tags function returning an invalid list calls through, logged', async () => {
      expect(await findAll('ok')).toBe(`all:ok/v${version}`);
      await findAll('ok');
      expect(loads).toBe(1);
      await findAll('bad');
      await findAll('bad');
      expect(loads).toBe(3);
      expect(await cache.has('findAll:bad')).toBe(false);
    });

    it('a tags-only rule works with a function key', async () => {
      version = 20;
      await findProduct(9, 'en');
      version = 21;
      await invalidator.publish('find.updated', { productId: 9 });
      expect(await findProduct(9, 'en')).toBe('f9:en/v21');
    });
  });

  describe('InvalidationRule({ tags })', () => {
    it('tags-only on a template-keyed method: renders tags from the payload and drops only them', async () => {
      await catalog.product(1, 'en');
      await catalog.product(1, 'fr');
      await catalog.product(2, 'en');
      catalog.version = 2;
      await invalidator.publish('product.updated', { id: 1 });
      expect(await catalog.product(1, 'en')).toMatchObject({ version: 2 });
      expect(await catalog.product(1, 'fr')).toMatchObject({ version: 2 });
      expect(await catalog.product(2, 'en')).toMatchObject({ version: 1 });
    });

    it('array payloads, nested paths and functions; the job carries the tags', async () => {
      await catalog.shopItem(1, 'a');
      await catalog.shopItem(2, 'b');
      await catalog.shopItem(3, 'c');
      catalog.version = 2;
      await invalidator.publish('shop.updated', [
        { owner: { shop: 'a' } },
        { owner: { shop: 'b' } },
      ]);
      expect(recorder.jobs).toHaveLength(1);
      expect(recorder.jobs[0]).toMatchObject({
        event: 'shop.updated',
        keys: [],
        prefixes: [],
        tags: ['shop:a', 'shop:b'],
      });
      expect(await catalog.shopItem(1, 'a')).toBe('a/1/v2');
      expect(await catalog.shopItem(2, 'b')).toBe('b/2/v2');
      expect(await catalog.shopItem(3, 'c')).toBe('c/3/v1');

      await catalog.product(1, 'en');
      catalog.version = 3;
      await invalidator.publish('catalog.reset', { scope: 'eu' });
      expect(recorder.jobs[1].tags).toEqual(['scope:eu', 'products']);
      expect(await catalog.product(1, 'en')).toMatchObject({ version: 3 });
    });

    it('a payload without the value a tag reads is logged (template key: nothing wider to drop)', async () => {
      await catalog.product(1, 'en');
      await invalidator.publish('product.updated', { name: 'no id' });
      expect(logger.text).toMatch(
        /Invalidation rule of Catalog\.product on "product.updated": tags\[0\] failed on the payload .*no value at "id"/,
      );
      expect(await catalog.product(1, 'en')).toMatchObject({ version: 1 });
    });

    it('with a KeyConstructor key, an unrenderable tag widens to the key namespace', async () => {
      await catalog.keyed(1);
      await catalog.keyed(2);
      catalog.version = 2;
      await invalidator.publish('pk.tagged', { id: 1 });
      expect(await catalog.keyed(1)).toBe('pk1/v2');
      expect(await catalog.keyed(2)).toBe('pk2/v1');
      catalog.version = 3;
      await invalidator.publish('pk.tagged', {});
      expect(await catalog.keyed(2)).toBe('pk2/v3');
      expect(logger.text).toMatch(/tags\[0\] failed on the payload .* drops every key under "pk:"/);
    });

    it('a rule with a fieldMapping and tags drops the key and the tags', async () => {
      await catalog.keyed(1);
      await catalog.keyed(2);
      await catalog.shopItem(1, 'a');
      catalog.version = 2;
      await invalidator.publish('pk.both', { id: 1, shop: 'a' });
      expect(recorder.jobs[0]).toMatchObject({ keys: ['pk:id=1:'], tags: ['shop:a'] });
      expect(await catalog.keyed(1)).toBe('pk1/v2');
      expect(await catalog.keyed(2)).toBe('pk2/v1');
      expect(await catalog.shopItem(1, 'a')).toBe('a/1/v2');
    });

    it('more than 100 tags from one array payload are all invalidated', async () => {
      const ids = Array.from({ length: 150 }, (_, i) => i + 1);
      for (const id of ids) await catalog.product(id, 'en');
      catalog.version = 2;
      await invalidator.publish(
        'product.updated',
        ids.map((id) => ({ id })),
      );
      expect(await catalog.product(1, 'en')).toMatchObject({ version: 2 });
      expect(await catalog.product(150, 'en')).toMatchObject({ version: 2 });
      expect(catalog.loads).toBe(152);
    });
  });
});

describe('declarative tags at class definition', () => {
  it('checks tag templates against the parameters, like keys', () => {
    expect(() => {
      class Bad {
        @Cacheable({ key: 'p:{id}', tags: ['p:{productId}'] })
        get(id: number) {
          return id;
        }
      }
      return Bad;
    }).toThrow(CacheKeyError);
    expect(() => {
      class Bad {
        @Cacheable({ key: 'p:{id}', tags: ['p:{result}'] })
        get(id: number) {
          return id;
        }
      }
      return Bad;
    }).toThrow(/no parameter "result"/);
    expect(() => {
      class Bad {
        @CacheEvict({ tags: ['p:{result}'], beforeInvocation: true })
        drop(id: number) {
          return id;
        }
      }
      return Bad;
    }).toThrow(CacheKeyError);
  });

  it('rejects malformed tags and tags combined with another eviction target', () => {
    expect(() => {
      class Bad {
        @Cacheable({ key: 'k', tags: 'products' as unknown as string[] })
        get() {
          return 1;
        }
      }
      return Bad;
    }).toThrow(CacheArgumentError);
    expect(() => {
      class Bad {
        @CachePut({ key: 'k', tags: [''] })
        put() {
          return 1;
        }
      }
      return Bad;
    }).toThrow(/Tag 0 of @CachePut on Bad.put must be a non-empty template/);
    expect(() => CacheEvict({ key: 'k', tags: ['t'] })).toThrow(
      /give only one of key, prefix, allEntries and tags \(got key and tags\)/,
    );
    expect(() => CacheEvict({ allEntries: true, tags: ['t'] })).toThrow(CacheArgumentError);
    expect(() => Cacheable({ key: 'k', tagz: ['t'] } as never)).toThrow(/unknown option "tagz"/);
  });

  it('validates rule tags; a rule that drops keys still needs a KeyConstructor', () => {
    expect(() => InvalidationRule({ event: 'e', tags: ['p:{0}'] })).toThrow(CacheConfigError);
    expect(() => InvalidationRule({ event: 'e', tags: ['p:{a}{b}'] })).toThrow(/side by side/);
    expect(() => InvalidationRule({ event: 'e', tags: [1 as unknown as string] })).toThrow(
      /tags\[0\] must be a non-empty tag template/,
    );
    expect(InvalidationRule({ event: 'e', tags: ['p:{id}'] })).toMatchObject({
      fieldMapping: undefined,
      tags: ['p:{id}'],
      dispatcher: 'inline',
    });
    expect(() => {
      class Bad {
        @Cacheable({
          key: 'p:{id}',
          invalidateOn: [InvalidationRule({ event: 'e', tags: ['p:{id}'], fieldMapping: {} })],
        })
        get(id: number) {
          return id;
        }
      }
      return Bad;
    }).toThrow(/invalidateOn needs a KeyConstructor key/);
    expect(() =>
      cacheResult((id: number) => id, {
        key: (id) => `k:${id}`,
        tags: ['k:{nope}'],
      }),
    ).toThrow(CacheConfigError);
  });
});
