import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { CacheModule, CacheService, type CacheModuleOptions } from '../../lib';
import { ProductsModule } from '../../sample-app/products/products.module';
import { ProductsService, SEED } from '../../sample-app/products/products.service';
import { createHttpApp } from '../support/http-platforms';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/** The sample app's batch endpoint and bulk import (issue 17, item 6). */
describe.each<[string, () => CacheModuleOptions]>([
  ['memory', () => ({ provider: 'memory' })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('sample-batch'),
    }),
  ],
])("sample app's batch reads and bulk import (%s)", (_backend, optionsFor) => {
  let app: INestApplication;
  let products: ProductsService;
  let cache: CacheService;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    app = await createHttpApp('express', {
      imports: [CacheModule.forRoot({ isGlobal: true, ...optionsFor() }), ProductsModule],
    });
    products = app.get(ProductsService);
    cache = app.get(CacheService);
  });

  afterEach(async () => {
    await cache.clear();
    await app.close();
  });

  it('GET /products/batch reads the database once for the misses and shares entries with GET /products/:id', async () => {
    await http().get('/products/p1').expect(200);
    expect(products.dbReads).toBe(1);
    const first = await http().get('/products/batch?ids=p2,p1,nope,p3').expect(200);
    expect(first.body).toEqual([SEED[1], SEED[0], null, SEED[2]]);
    // One read for p2, nope and p3 together; p1 was cached by GET /products/p1.
    expect(products.dbReads).toBe(2);
    const again = await http().get('/products/batch?ids=p3,p2,p1').expect(200);
    expect(again.body).toEqual([SEED[2], SEED[1], SEED[0]]);
    expect(products.dbReads).toBe(2);
    // The unknown id is not cached: asked again.
    await http().get('/products/batch?ids=nope').expect(200);
    expect(products.dbReads).toBe(3);
    await http().get('/products/p3').expect(200);
    expect(products.dbReads).toBe(3);
  });

  it('GET /products/batch bounds its input', async () => {
    await http().get('/products/batch').expect(400);
    const many = Array.from({ length: 101 }, (_, i) => `p${i}`).join(',');
    await http().get(`/products/batch?ids=${many}`).expect(400);
  });

  it('POST /products/import caches every product with one setMany, and drops the lists', async () => {
    await http().get('/products').expect(200);
    const reads = products.dbReads;
    const imported = [
      { productId: 'i1', name: 'Imported 1', price: 1, category: 'new' },
      { productId: 'i2', name: 'Imported 2', price: 2, category: 'new' },
    ];
    await http().post('/products/import').send(imported).expect(201, { imported: 2 });
    await expect(cache.getMany(['product:i1', 'product:i2'])).resolves.toEqual(imported);
    await expect(cache.get('products:all')).resolves.toBeUndefined();
    const batch = await http().get('/products/batch?ids=i1,i2').expect(200);
    expect(batch.body).toEqual(imported);
    expect(products.dbReads).toBe(reads);
  });
});
