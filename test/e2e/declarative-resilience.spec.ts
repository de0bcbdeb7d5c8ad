import {
  Controller,
  Get,
  Injectable,
  Param,
  UseInterceptors,
  type INestApplication,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  CacheEvict,
  CacheInterceptor,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
} from '../../lib';
import { CapturingLogger } from '../support/logs';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

@Injectable()
class PriceService {
  computed = 0;

  @Cacheable('price:{sku}', { ttl: 60 })
  async price(sku: string): Promise<{ sku: string; price: number }> {
    this.computed++;
    return { sku, price: sku.length * 10 };
  }

  @CachePut('price:{sku}')
  async reprice(sku: string, price: number): Promise<{ sku: string; price: number }> {
    return { sku, price };
  }

  @CacheEvict({ key: 'price:{sku}' })
  async forget(sku: string): Promise<string> {
    return `forgot ${sku}`;
  }
}

@Controller('prices')
class PricesController {
  constructor(private readonly prices: PriceService) {}

  @Get('decorated/:sku')
  @Cacheable('route:{sku}')
  decorated(@Param('sku') sku: string): Promise<{ sku: string; price: number }> {
    return this.prices.price(sku);
  }

  @Get('url/:sku')
  @UseInterceptors(CacheInterceptor)
  byUrl(@Param('sku') sku: string): { sku: string } {
    return { sku };
  }
}

describe('declarative caching when Redis fails', () => {
  let server: RedisServer;
  let app: INestApplication;
  let logger: CapturingLogger;
  let prices: PriceService;

  beforeAll(async () => {
    server = await RedisServer.start();
  });

  afterAll(async () => {
    await server.stop();
  });

  beforeEach(async () => {
    if (!server.running) await server.restart();
    logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace: uniqueNamespace('resilience'),
        }),
      ],
      controllers: [PricesController],
      providers: [PriceService],
    }).compile();
    app = moduleRef.createNestApplication({ logger });
    await app.init();
    prices = app.get(PriceService);
  });

  afterEach(async () => {
    await app.close();
  });

  it('works against the live server first (so the failure below is the outage)', async () => {
    await prices.price('abc');
    await prices.price('abc');
    expect(prices.computed).toBe(1);
    expect(await app.get(CacheService).get('price:abc')).toEqual({ sku: 'abc', price: 30 });
  });

  it('returns the method’s own results and logs a WARN when Redis is down', async () => {
    await prices.price('abc');
    // The write of that load goes on in the background: let it land before the outage, or the
    // next call would share the value being written instead of calling the method.
    expect(await app.get(CacheService).get('price:abc')).toEqual({ sku: 'abc', price: 30 });
    await server.kill();

    expect(await prices.price('abcd')).toEqual({ sku: 'abcd', price: 40 });
    expect(await prices.price('abc')).toEqual({ sku: 'abc', price: 30 });
    expect(await prices.reprice('abc', 1)).toEqual({ sku: 'abc', price: 1 });
    expect(await prices.forget('abc')).toBe('forgot abc');
    expect(prices.computed).toBe(3);

    const warnings = logger.warnings().join('\n');
    expect(warnings).toMatch(/Cache GET "price:abcd" failed, calling through/);
    expect(logger.lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('keeps HTTP routes answering, decorated or URL-cached', async () => {
    await server.kill();
    const decorated = await request(app.getHttpServer()).get('/prices/decorated/xy').expect(200);
    expect(decorated.body).toEqual({ sku: 'xy', price: 20 });
    expect(decorated.headers['x-cache']).toBe('MISS');
    const byUrl = await request(app.getHttpServer()).get('/prices/url/xy').expect(200);
    expect(byUrl.body).toEqual({ sku: 'xy' });
    expect(logger.warnings().length).toBeGreaterThan(0);
  });
});
