import {
  Controller,
  Get,
  HttpException,
  Injectable,
  NotFoundException,
  Param,
  ServiceUnavailableException,
  UseInterceptors,
  type INestApplication,
} from '@nestjs/common';
import request from 'supertest';
import { CacheInterceptor, CacheModule, CacheService, Cacheable } from '../../lib';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';
import { uniqueNamespace } from '../support/redis';

/**
 * With `grace`, only a loader's failure falls back on the stale value: an HTTP client error
 * (404 — the thing was deleted —, 400, 403...) is an answer and reaches the caller, or a deleted
 * product would be served for the whole grace. A server error (503) still answers stale.
 * Through CacheService, `@Cacheable` on a service and on a handler, and `CacheInterceptor`.
 */

/** What the catalogue answers for each id, changed by the tests. */
@Injectable()
class Catalogue {
  readonly answers = new Map<string, () => { id: string; name: string }>();

  find(id: string): { id: string; name: string } {
    const answer = this.answers.get(id);
    if (!answer) throw new NotFoundException(`product ${id} not found`);
    return answer();
  }
}

@Injectable()
class ProductsService {
  constructor(private readonly catalogue: Catalogue) {}

  @Cacheable('service:product:{id}', { ttl: 1 })
  async product(id: string): Promise<{ id: string; name: string }> {
    return this.catalogue.find(id);
  }
}

@Controller('products')
class ProductsController {
  constructor(
    private readonly catalogue: Catalogue,
    private readonly service: ProductsService,
  ) {}

  @Get('decorated/:id')
  @Cacheable('route:product:{id}', { ttl: 1 })
  async decorated(@Param('id') id: string): Promise<{ id: string; name: string }> {
    return this.catalogue.find(id);
  }

  @Get('intercepted/:id')
  @UseInterceptors(CacheInterceptor)
  async intercepted(@Param('id') id: string): Promise<{ id: string; name: string }> {
    return this.catalogue.find(id);
  }

  @Get('service/:id')
  async viaService(@Param('id') id: string): Promise<{ id: string; name: string }> {
    return this.service.product(id);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(PLATFORMS)('grace: client errors are answers (%s)', (platform) => {
  let app: INestApplication;
  let catalogue: Catalogue;
  let cache: CacheService;

  beforeEach(async () => {
    app = await createHttpApp(platform, {
      imports: [
        CacheModule.forRoot({
          namespace: uniqueNamespace('answers'),
          ttl: 1,
          grace: 60,
          graceBackoff: 0.001,
        }),
      ],
      controllers: [ProductsController],
      providers: [Catalogue, ProductsService],
    });
    catalogue = app.get(Catalogue);
    cache = app.get(CacheService);
  });
  afterEach(async () => {
    await app.close();
  });

  it.each(['decorated', 'intercepted', 'service'])(
    '%s: a deleted product answers 404 after expiry; a failing backend answers STALE',
    async (route) => {
      catalogue.answers.set('42', () => ({ id: '42', name: 'Lamp' }));
      await request(app.getHttpServer()).get(`/products/${route}/42`).expect(200);
      await sleep(1100); // expired, kept by grace

      // The backend is down: the stale product answers.
      catalogue.answers.set('42', () => {
        throw new ServiceUnavailableException('catalogue down');
      });
      const stale = await request(app.getHttpServer()).get(`/products/${route}/42`).expect(200);
      expect(stale.body).toEqual({ id: '42', name: 'Lamp' });
      if (route !== 'service') expect(stale.headers['x-cache']).toBe('STALE');

      // The product is deleted (a 404 is an answer): no stale product, on every call (the
      // back-off after the failure above is 1 ms here).
      catalogue.answers.delete('42');
      await sleep(5);
      for (let i = 0; i < 3; i++) {
        await request(app.getHttpServer()).get(`/products/${route}/42`).expect(404);
      }
    },
  );

  it('CacheService.wrap: a 4xx HttpException reaches the caller, a 5xx or plain error answers stale', async () => {
    const options = { ttl: 1, grace: 60, graceBackoff: 0.001 };
    await cache.wrap('k', () => 'v1', options);
    await sleep(1100);
    await expect(
      cache.wrap('k', () => Promise.reject(new Error('db down')), options),
    ).resolves.toBe('v1');
    await sleep(5);
    await expect(
      cache.wrap('k', () => Promise.reject(new HttpException('bad gateway', 502)), options),
    ).resolves.toBe('v1');
    await sleep(5);
    await expect(
      cache.wrap('k', () => Promise.reject(new NotFoundException('gone')), options),
    ).rejects.toBeInstanceOf(NotFoundException);
    await expect(
      cache.wrap('k', () => Promise.reject(new HttpException('forbidden', 403)), options),
    ).rejects.toMatchObject({ status: 403 });
    // The stale value is still there for a later failure.
    await expect(
      cache.wrap('k', () => Promise.reject(new Error('db down again')), options),
    ).resolves.toBe('v1');
  });
});
