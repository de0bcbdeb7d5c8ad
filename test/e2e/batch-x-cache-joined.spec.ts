import { Controller, Get, Module, Query, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { CacheModule, Cacheable } from '../../lib';
import { CapturingLogger } from '../support/logs';
import { deferred } from '../support/deferred';
import { eventually } from '../support/eventually';

/**
 * Review finding 3: a batch call whose ids were all being loaded by another request joins that
 * load (it waits for the database) but answered `X-Cache: HIT`. The single form answers such a
 * joined load `MISS` (status `shared`), and README says the batch form is `HIT` only "when no id
 * had to be loaded".
 */
@Controller('products')
class ProductsController {
  gate: Promise<void> | undefined;
  readonly calls: string[][] = [];

  @Get()
  @Cacheable('xc:product:{ids}', { batch: true })
  async list(@Query('ids') ids: string[]): Promise<string[]> {
    this.calls.push(ids);
    if (this.gate) await this.gate;
    return ids.map((id) => `P${id}`);
  }

  @Get('one')
  @Cacheable('xc:one:{id}')
  async one(@Query('id') id: string): Promise<string> {
    this.calls.push([id]);
    if (this.gate) await this.gate;
    return `P${id}`;
  }
}

@Module({ controllers: [ProductsController] })
class ProductsModule {}

describe('@Cacheable batch form: X-Cache of a request that joined another one’s load', () => {
  let app: INestApplication;
  let controller: ProductsController;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ isGlobal: true, provider: 'memory' }), ProductsModule],
    }).compile();
    app = moduleRef.createNestApplication({ logger: new CapturingLogger() });
    await app.init();
    controller = app.get(ProductsController);
  });

  afterEach(() => app.close());

  async function overlapping(path: string) {
    const gate = deferred<void>();
    controller.gate = gate.promise;
    const server = app.getHttpServer();
    const first = request(server)
      .get(path)
      .then((r) => r);
    await eventually(async () => controller.calls.length === 1, 5000);
    const second = request(server)
      .get(path)
      .then((r) => r);
    await new Promise((resolve) => setTimeout(resolve, 50));
    gate.resolve();
    const [a, b] = await Promise.all([first, second]);
    expect(controller.calls).toHaveLength(1); // the second joined the first's load
    return [a.headers['x-cache'], b.headers['x-cache'], b.body] as const;
  }

  it('single form (reference): the joined request is a MISS', async () => {
    const [a, b] = await overlapping('/products/one?id=1');
    expect([a, b]).toEqual(['MISS', 'MISS']);
  });

  it('batch form: the joined request is a MISS, not a HIT', async () => {
    const [a, b, body] = await overlapping('/products?ids=1&ids=2');
    expect(body).toEqual(['P1', 'P2']);
    expect([a, b]).toEqual(['MISS', 'MISS']);
  });

  it('batch form: a later request answered from the cache is a HIT', async () => {
    await overlapping('/products?ids=1&ids=2');
    const third = await request(app.getHttpServer()).get('/products?ids=2&ids=1');
    expect(third.headers['x-cache']).toBe('HIT');
  });
});
