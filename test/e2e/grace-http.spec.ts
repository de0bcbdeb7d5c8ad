import {
  Controller,
  Get,
  Injectable,
  Param,
  ServiceUnavailableException,
  UseInterceptors,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import request from 'supertest';
import {
  CacheInterceptor,
  CacheKey,
  CacheModule,
  CacheService,
  Cacheable,
  type CacheModuleOptions,
} from '../../lib';
import { eventually } from '../support/eventually';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';
import { uniqueNamespace } from '../support/redis';

/**
 * Grace over HTTP (issue 13, item 1): once a cached response has expired, a handler whose
 * backend fails answers with the stale body and `X-Cache: STALE` — through `@Cacheable` on the
 * handler and through CacheInterceptor with the module's grace; without grace the error's status
 * comes back as before. On Express and Fastify.
 */

/** A backend that answers the first call for each key and fails from the second on. */
@Injectable()
class FlakySource {
  readonly calls = new Map<string, number>();

  fetch(key: string): { key: string; call: number } {
    const call = (this.calls.get(key) ?? 0) + 1;
    this.calls.set(key, call);
    if (call >= 2) throw new ServiceUnavailableException(`source down for ${key}`);
    return { key, call };
  }

  callsOf(key: string): number {
    return this.calls.get(key) ?? 0;
  }
}

const paramId = (context: ExecutionContext): string =>
  context.switchToHttp().getRequest<{ params: { id: string } }>().params.id;

@Controller('grace')
class GraceController {
  constructor(private readonly source: FlakySource) {}

  @Get('cacheable/:id')
  @Cacheable('cacheable:{id}', { ttl: 1, grace: 60 })
  async cacheable(@Param('id') id: string): Promise<{ key: string; call: number }> {
    return this.source.fetch(`cacheable:${id}`);
  }

  /** Its own grace of 0 switches a module grace off. */
  @Get('bare/:id')
  @Cacheable('bare:{id}', { ttl: 1, grace: 0 })
  async bare(@Param('id') id: string): Promise<{ key: string; call: number }> {
    return this.source.fetch(`bare:${id}`);
  }

  @Get('intercepted/:id')
  @UseInterceptors(CacheInterceptor)
  @CacheKey((context) => `intercepted:${paramId(context)}`)
  intercepted(@Param('id') id: string): { key: string; call: number } {
    return this.source.fetch(`intercepted:${id}`);
  }
}

describe.each(PLATFORMS)('grace over HTTP (%s)', (platform) => {
  let app: INestApplication;
  let cache: CacheService;
  let source: FlakySource;
  const server = () => app.getHttpServer() as Parameters<typeof request>[0];

  async function start(options: CacheModuleOptions): Promise<void> {
    app = await createHttpApp(platform, {
      imports: [CacheModule.forRoot({ namespace: uniqueNamespace('http'), ...options })],
      controllers: [GraceController],
      providers: [FlakySource],
    });
    cache = app.get(CacheService);
    source = app.get(FlakySource);
  }

  afterEach(async () => {
    await app?.close();
  });

  /** The first request (MISS), stored, then a HIT; then waits until the entry has expired. */
  async function warmAndExpire(path: string, key: string): Promise<unknown> {
    const first = await request(server()).get(path).expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    await eventually(async () => (await cache.get(key)) !== undefined, 5000, 10);
    const second = await request(server()).get(path).expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toEqual(first.body);
    await eventually(async () => (await cache.get(key)) === undefined, 5000, 20);
    return first.body;
  }

  describe('module grace 60', () => {
    beforeEach(() => start({ ttl: 1, grace: 60 }));

    it('@Cacheable({ ttl: 1, grace: 60 }) handler: the failing call answers the stale body, X-Cache: STALE', async () => {
      const body = await warmAndExpire('/grace/cacheable/1', 'cacheable:1');
      expect(body).toEqual({ key: 'cacheable:1', call: 1 });
      const stale = await request(server()).get('/grace/cacheable/1').expect(200);
      expect(stale.headers['x-cache']).toBe('STALE');
      expect(stale.body).toEqual(body);
      expect(source.callsOf('cacheable:1')).toBe(2);
      // Backed off: the next request is answered stale without calling the source again.
      const again = await request(server()).get('/grace/cacheable/1').expect(200);
      expect(again.headers['x-cache']).toBe('STALE');
      expect(again.body).toEqual(body);
      expect(source.callsOf('cacheable:1')).toBe(2);
    });

    it('CacheInterceptor route: the failing handler answers the stale response, X-Cache: STALE', async () => {
      const body = await warmAndExpire('/grace/intercepted/7', 'intercepted:7');
      expect(body).toEqual({ key: 'intercepted:7', call: 1 });
      const stale = await request(server()).get('/grace/intercepted/7').expect(200);
      expect(stale.headers['x-cache']).toBe('STALE');
      expect(stale.body).toEqual(body);
      expect(source.callsOf('intercepted:7')).toBe(2);
    });

    it('a handler whose own grace is 0: the error status comes back', async () => {
      await warmAndExpire('/grace/bare/1', 'bare:1');
      const failed = await request(server()).get('/grace/bare/1').expect(503);
      expect(failed.headers['x-cache']).not.toBe('STALE');
      expect(JSON.stringify(failed.body)).toContain('source down for bare:1');
    });
  });

  describe('no module grace', () => {
    beforeEach(() => start({ ttl: 1 }));

    it('CacheInterceptor route: the error status comes back', async () => {
      await warmAndExpire('/grace/intercepted/7', 'intercepted:7');
      const failed = await request(server()).get('/grace/intercepted/7').expect(503);
      expect(failed.headers['x-cache']).not.toBe('STALE');
      expect(JSON.stringify(failed.body)).toContain('source down for intercepted:7');
      expect(source.callsOf('intercepted:7')).toBe(2);
    });

    it('a @Cacheable handler keeps its own grace: stale body, X-Cache: STALE', async () => {
      const body = await warmAndExpire('/grace/cacheable/2', 'cacheable:2');
      const stale = await request(server()).get('/grace/cacheable/2').expect(200);
      expect(stale.headers['x-cache']).toBe('STALE');
      expect(stale.body).toEqual(body);
    });

    it('a @Cacheable handler without grace: the error status comes back', async () => {
      await warmAndExpire('/grace/bare/3', 'bare:3');
      await request(server()).get('/grace/bare/3').expect(503);
      expect(source.callsOf('bare:3')).toBe(2);
    });
  });
});
