import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { CacheModule, CacheService, type CacheModuleOptions } from '../../lib';
import { ProductsModule } from '../../sample-app/products/products.module';
import { AppModule } from '../../sample-app/app.module';
import { ProductsService, SEED } from '../../sample-app/products/products.service';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

const backends: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({ provider: 'memory' })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('sample'),
    }),
  ],
];

const combos = PLATFORMS.flatMap((platform) =>
  backends.map(([backend, options]) => [platform, backend, options] as const),
);

describe.each(combos)("sample app's product catalog (%s, %s)", (platform, _backend, optionsFor) => {
  let app: INestApplication;
  let products: ProductsService;
  let cache: CacheService;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    // The sample app's ProductsModule, with the module options of this backend.
    app = await createHttpApp(platform, {
      imports: [CacheModule.forRoot({ isGlobal: true, ...optionsFor() }), ProductsModule],
    });
    products = app.get(ProductsService);
    cache = app.get(CacheService);
  });

  afterEach(async () => {
    await cache.clear();
    await app.close();
  });

  it("runs the PyFly seed's Usage Flow over HTTP", async () => {
    // 1. Create a product (always executes, caches the result).
    const created = await http()
      .post('/products')
      .send({ productId: 'p1', name: 'Widget', price: 29.99, category: 'gadgets' })
      .expect(201);
    expect(created.body).toEqual({
      productId: 'p1',
      name: 'Widget',
      price: 29.99,
      category: 'gadgets',
    });
    expect(await cache.get('product:p1')).toEqual(created.body);

    // 2. Get the product (cache hit: the method body does not execute).
    const got = await http().get('/products/p1').expect(200);
    expect(got.body).toEqual(created.body);
    expect(got.headers['x-cache']).toBe('HIT');
    expect(products.dbReads).toBe(0);

    // 3. Update the product (always executes, refreshes the cache).
    await http().patch('/products/p1').send({ price: 24.99 }).expect(200);

    // 4. Get again (cache hit with the updated value).
    const updated = await http().get('/products/p1').expect(200);
    expect(updated.body.price).toBe(24.99);
    expect(updated.headers['x-cache']).toBe('HIT');
    expect(products.dbReads).toBe(0);

    // 5. Delete (removes from the database and evicts from the cache).
    await http().delete('/products/p1').expect(204);
    expect(await cache.has('product:p1')).toBe(false);

    // 6. Get again (cache miss, the database has nothing).
    const gone = await http().get('/products/p1').expect(404);
    expect(gone.headers['x-cache']).toBeUndefined();
    expect(products.dbReads).toBe(1);
  });

  it('starts with a seeded catalog, served from the cache with X-Cache on every cached route', async () => {
    const ids = (body: Array<{ productId: string }>) => body.map((p) => p.productId).sort();
    for (const url of ['/products', '/products?category=gadgets', '/products/p1']) {
      const first = await http().get(url).expect(200);
      const second = await http().get(url).expect(200);
      expect(second.body).toEqual(first.body);
      expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    }
    expect(ids((await http().get('/products').expect(200)).body)).toEqual(['p1', 'p2', 'p3']);
    expect(ids((await http().get('/products?category=gadgets').expect(200)).body)).toEqual([
      'p1',
      'p3',
    ]);
    expect((await http().get('/products/p1').expect(200)).body).toEqual(SEED[0]);
    expect(products.dbReads).toBe(3);
  });

  it('caches lists and drops them on every write', async () => {
    const widget = { productId: 'p10', name: 'Widget', price: 29.99, category: 'tools' };
    const lamp = { productId: 'p11', name: 'Lamp', price: 15, category: 'garden' };
    await http().post('/products').send(widget).expect(201);
    await http().post('/products').send(lamp).expect(201);

    const first = await http().get('/products?category=tools').expect(200);
    const second = await http().get('/products?category=tools').expect(200);
    expect(first.body).toEqual([widget]);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    await http().get('/products').expect(200);
    await http().get('/products').expect(200);
    expect(products.dbReads).toBe(2);

    // PUT moves the lamp to another category: both lists must forget it.
    await http()
      .put('/products/p11')
      .send({ name: 'Lamp', price: 15, category: 'tools' })
      .expect(200);
    const moved = await http().get('/products?category=tools').expect(200);
    expect(moved.body.map((p: { productId: string }) => p.productId).sort()).toEqual([
      'p10',
      'p11',
    ]);
    expect((await http().get('/products?category=garden').expect(200)).body).toEqual([]);
  });

  it('DELETE /products clears the catalog and the cache', async () => {
    await http()
      .post('/products')
      .send({ productId: 'p1', name: 'Widget', price: 1, category: 'gadgets' })
      .expect(201);
    await http().get('/products').expect(200);
    await http().delete('/products').expect(204);
    expect(await cache.has('product:p1')).toBe(false);
    expect(await cache.has('products:all')).toBe(false);
    await http().get('/products/p1').expect(404);
    expect((await http().get('/products').expect(200)).body).toEqual([]);
  });

  it('an update of a missing product is a 404 and caches nothing', async () => {
    await http().patch('/products/nope').send({ price: 1 }).expect(404);
    expect(await cache.has('product:nope')).toBe(false);
  });
});

describe.each(PLATFORMS)('the sample app as `npm start` boots it (%s)', (platform) => {
  let app: INestApplication;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    app = await createHttpApp(platform, { imports: [AppModule] });
  });

  afterEach(() => app.close());

  it('answers every cached route with seeded data and X-Cache: MISS, then HIT', async () => {
    const cached = [
      '/products',
      '/products?category=home',
      '/products/p2',
      '/models/count',
      '/users/1',
      '/users/2?view=full',
      '/users/3/stats',
      '/rates/EUR',
    ];
    for (const url of cached) {
      const first = await http().get(url).expect(200);
      const second = await http().get(url).expect(200);
      expect([url, first.headers['x-cache'], second.headers['x-cache']]).toEqual([
        url,
        'MISS',
        'HIT',
      ]);
      expect(second.body).toEqual(first.body);
      expect(JSON.stringify(first.body)).not.toMatch(/^\[\]$|^\{\}$/);
    }
    expect((await http().get('/models/count').expect(200)).body).toEqual({ count: 3 });
    expect((await http().get('/users/3').expect(200)).body.name).toBe('Grace Hopper');
  });

  it('creating a model drops the cached count', async () => {
    await http().get('/models/count').expect(200);
    await http().post('/models').send({ name: 'llama' }).expect(201);
    const after = await http().get('/models/count').expect(200);
    expect(after.body).toEqual({ count: 4 });
    expect(after.headers['x-cache']).toBe('MISS');
  });
});
