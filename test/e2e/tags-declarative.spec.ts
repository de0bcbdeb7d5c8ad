import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Injectable,
  Param,
  ParseIntPipe,
  Post,
  Put,
  Query,
  type INestApplication,
} from '@nestjs/common';
import request from 'supertest';
import {
  CacheEvict,
  CacheInvalidator,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
  InvalidationRule,
} from '../../lib';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';

interface Product {
  id: number;
  name: string;
  shop: string;
}

/** The data source: every read counts, so the tests see what the cache answered. */
@Injectable()
class ProductStore {
  readonly rows = new Map<number, Product>([
    [1, { id: 1, name: 'lamp', shop: 'north' }],
    [2, { id: 2, name: 'desk', shop: 'north' }],
    [3, { id: 3, name: 'sofa', shop: 'south' }],
  ]);
  reads = 0;
  nextId = 100;
}

@Injectable()
class ProductService {
  constructor(
    private readonly store: ProductStore,
    private readonly invalidator: CacheInvalidator,
  ) {}

  @Cacheable({
    key: 'product:{id}:{view}',
    tags: ['product:{id}', 'products'],
    invalidateOn: [InvalidationRule({ event: 'product.renamed', tags: ['product:{id}'] })],
  })
  async get(id: number, view: string): Promise<Product & { view: string }> {
    this.store.reads++;
    const row = this.store.rows.get(id);
    return Promise.resolve({ ...(row ?? { id, name: '?', shop: '?' }), view });
  }

  @Cacheable({ key: 'shop:{shop}:list', tags: ['shop:{shop}', 'products'] })
  async list(shop: string): Promise<string[]> {
    this.store.reads++;
    return Promise.resolve(
      [...this.store.rows.values()].filter((p) => p.shop === shop).map((p) => p.name),
    );
  }

  @CacheEvict({ tags: ['product:{id}', 'shop:{result.shop}'] })
  async rename(id: number, name: string): Promise<Product> {
    const row = { ...this.store.rows.get(id)!, name };
    this.store.rows.set(id, row);
    return Promise.resolve(row);
  }

  /** Renames without evicting; the rule on 'product.renamed' does it. */
  async renameQuietly(id: number, name: string): Promise<void> {
    this.store.rows.set(id, { ...this.store.rows.get(id)!, name });
    await this.invalidator.publish('product.renamed', { id });
  }

  @CachePut({ key: 'product:{result.id}:full', tags: ['product:{result.id}', 'products'] })
  async create(name: string, shop: string): Promise<Product & { view: string }> {
    const row = { id: this.store.nextId++, name, shop };
    this.store.rows.set(row.id, row);
    return Promise.resolve({ ...row, view: 'full' });
  }
}

@Controller('products')
class ProductController {
  constructor(
    private readonly products: ProductService,
    private readonly store: ProductStore,
  ) {}

  @Get('reads')
  reads(): { reads: number } {
    return { reads: this.store.reads };
  }

  @Get(':id')
  get(@Param('id', ParseIntPipe) id: number, @Query('view') view = 'full') {
    return this.products.get(id, view);
  }

  @Get()
  list(@Query('shop') shop: string) {
    return this.products.list(shop);
  }

  @Put(':id')
  rename(@Param('id', ParseIntPipe) id: number, @Body() body: { name: string }) {
    return this.products.rename(id, body.name);
  }

  @Put(':id/quiet')
  @HttpCode(204)
  renameQuietly(@Param('id', ParseIntPipe) id: number, @Body() body: { name: string }) {
    return this.products.renameQuietly(id, body.name);
  }

  @Post()
  create(@Body() body: { name: string; shop: string }) {
    return this.products.create(body.name, body.shop);
  }

  // The controller's own tagged eviction: the whole catalog, before the handler runs.
  @Delete()
  @HttpCode(204)
  @CacheEvict({ tags: ['products'], beforeInvocation: true })
  async reset(): Promise<void> {
    this.store.rows.set(1, { id: 1, name: 'reset-lamp', shop: 'north' });
    await Promise.resolve();
  }

  // A cached handler with tags: it is answered from the cache until its tag is invalidated.
  @Get('shop/:shop/count')
  @Cacheable({ key: 'count:{shop}', tags: ['shop:{shop}'] })
  async count(@Param('shop') shop: string): Promise<{ shop: string; count: number }> {
    this.store.reads++;
    const count = [...this.store.rows.values()].filter((p) => p.shop === shop).length;
    return Promise.resolve({ shop, count });
  }
}

describe.each(PLATFORMS)('declarative tags over HTTP (%s)', (platform) => {
  let app: INestApplication;
  let store: ProductStore;

  beforeEach(async () => {
    app = await createHttpApp(platform, {
      imports: [CacheModule.forRoot({ provider: 'memory', ttl: 600 })],
      controllers: [ProductController],
      providers: [ProductService, ProductStore],
    });
    store = app.get(ProductStore);
  });

  afterEach(async () => {
    await app.close();
  });

  const http = () => request(app.getHttpServer());

  it('a PUT evicting a product tag refreshes every view of it and its shop list, nothing else', async () => {
    await http()
      .get('/products/1')
      .expect(200, { id: 1, name: 'lamp', shop: 'north', view: 'full' });
    await http().get('/products/1?view=card').expect(200);
    await http().get('/products/3').expect(200);
    await http().get('/products?shop=north').expect(200, ['lamp', 'desk']);
    expect(store.reads).toBe(4);
    await http().get('/products/1').expect(200);
    await http().get('/products?shop=north').expect(200);
    expect(store.reads).toBe(4);

    await http().put('/products/1').send({ name: 'bulb' }).expect(200);
    await http()
      .get('/products/1')
      .expect(200, { id: 1, name: 'bulb', shop: 'north', view: 'full' });
    const card = await http().get('/products/1?view=card').expect(200);
    expect(card.body).toMatchObject({ name: 'bulb', view: 'card' });
    await http().get('/products?shop=north').expect(200, ['bulb', 'desk']);
    expect(store.reads).toBe(7);
    // Product 3 (another tag) is still answered from the cache.
    await http().get('/products/3').expect(200);
    expect(store.reads).toBe(7);
  });

  it('an invalidation rule with tags drops the entries when the service publishes', async () => {
    await http().get('/products/2').expect(200);
    await http().put('/products/2/quiet').send({ name: 'table' }).expect(204);
    const after = await http().get('/products/2').expect(200);
    expect(after.body).toMatchObject({ name: 'table' });
    expect(store.reads).toBe(2);
  });

  it('a POST with @CachePut tags is served, then dropped by the tag', async () => {
    const created = await http()
      .post('/products')
      .send({ name: 'chair', shop: 'south' })
      .expect(201);
    const id = (created.body as Product).id;
    await http().get(`/products/${id}`).expect(200);
    expect(store.reads).toBe(0);
    await app.get(CacheService).deleteByTag(`product:${id}`);
    await http().get(`/products/${id}`).expect(200);
    expect(store.reads).toBe(1);
  });

  it("a controller's @CacheEvict({ tags, beforeInvocation }) and a tagged cached handler", async () => {
    await http().get('/products/shop/north/count').expect(200, { shop: 'north', count: 2 });
    await http().get('/products/shop/north/count').expect(200);
    expect(store.reads).toBe(1);
    await http().get('/products/1').expect(200);
    await http().delete('/products').expect(204);
    const after = await http().get('/products/1').expect(200);
    expect(after.body).toMatchObject({ name: 'reset-lamp' });
    // 'shop:north' was not evicted: the count is still cached.
    await http().get('/products/shop/north/count').expect(200);
    expect(store.reads).toBe(3);
    await http().put('/products/2').send({ name: 'bench' }).expect(200); // evicts shop:north
    await http().get('/products/shop/north/count').expect(200);
    expect(store.reads).toBe(4);
  });
});
