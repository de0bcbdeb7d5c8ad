import { Controller, Get, Injectable, Module, Param, UseInterceptors } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import {
  CacheEvict,
  CacheInterceptor,
  CacheInvalidator,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
  KeyConstructor,
  argField,
  cacheResult,
} from '../../lib';
import { Test } from '@nestjs/testing';
import { CacheStack } from '../../lib/core/cache-stack';
import { CapturingLogger } from '../support/logs';
import { createHttpApp, PLATFORMS, type Platform } from '../support/http-platforms';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 10, item 5: without failover, a Redis that hangs (SIGSTOP: connections stay open, nothing
 * answers) costs every cache call at most one command timeout of waiting — CacheService methods,
 * wrap, the decorators on services and controllers, CacheInterceptor and cacheResult. A loaded
 * value is returned without waiting for its cache write; after the thaw, Redis holds the values
 * the calls meant to leave, in the order they were made.
 */

const TIMEOUT_MS = 500;
// One command timeout plus room for a busy machine; two timeouts would exceed it.
const LIMIT_MS = 1.8 * TIMEOUT_MS;

const loads = { count: 0 };

@Injectable()
class ProductsService {
  @Cacheable('product:{id}')
  async find(id: string): Promise<{ id: string; n: number }> {
    return { id, n: ++loads.count };
  }

  @CachePut('product:{id}')
  async update(id: string): Promise<{ id: string; n: number }> {
    return { id, n: ++loads.count };
  }

  @CacheEvict({ key: 'product:{id}' })
  @CacheEvict({ prefix: 'list:' })
  @CacheEvict({ key: 'featured' })
  async remove(id: string): Promise<string> {
    return `removed ${id}`;
  }

  @CacheEvict({ prefix: 'list:', beforeInvocation: true })
  @CachePut('product:{id}')
  async replace(id: string): Promise<{ id: string; n: number }> {
    return { id, n: ++loads.count };
  }

  @CacheEvict({ key: 'product:{id}', beforeInvocation: true })
  @Cacheable('product:{id}')
  async reload(id: string): Promise<{ id: string; n: number }> {
    return { id, n: ++loads.count };
  }

  @Cacheable('product:{id}')
  @CacheEvict({ prefix: 'list:' })
  async findAndForgetLists(id: string): Promise<{ id: string; n: number }> {
    return { id, n: ++loads.count };
  }
}

@Controller('products')
class ProductsController {
  @Get('decorated/:id')
  @Cacheable('route:{id}')
  decorated(@Param('id') id: string): { id: string; n: number } {
    return { id, n: ++loads.count };
  }

  @Get('intercepted/:id')
  @UseInterceptors(CacheInterceptor)
  intercepted(@Param('id') id: string): { id: string; n: number } {
    return { id, n: ++loads.count };
  }
}

const PayloadKey = KeyConstructor.define({
  namespace: 'payload',
  fields: [argField('userId', { partition: true })],
});
const payload = cacheResult(async (userId: number) => ({ userId, n: ++loads.count }), {
  key: PayloadKey,
});

describe('a frozen Redis costs each call at most one command timeout', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await RedisServer.start();
  });

  afterAll(async () => {
    await server.stop();
  });

  describe.each(PLATFORMS)('on %s', (platform: Platform) => {
    let app: INestApplication;
    let cache: CacheService;
    let stack: CacheStack;
    let products: ProductsService;
    let logger: CapturingLogger;

    beforeAll(async () => {
      @Module({
        imports: [
          CacheModule.forRoot({
            provider: 'redis',
            redis: { url: server.url, commandTimeout: TIMEOUT_MS },
            namespace: uniqueNamespace('frozen'),
          }),
        ],
        controllers: [ProductsController],
        providers: [ProductsService],
      })
      class AppModule {}
      logger = new CapturingLogger();
      app = await createHttpApp(platform, { imports: [AppModule] }, logger);
      cache = app.get(CacheService);
      stack = app.get(CacheStack);
      products = app.get(ProductsService);
      payload.attach(app.get(CacheInvalidator));
    });

    afterAll(async () => {
      payload.attach(undefined);
      server.thaw();
      await app.close();
    });

    afterEach(async () => {
      server.thaw();
      // The server answers what it buffered, then this: the connection is in step again.
      await cache.has('after-thaw');
    });

    /** Runs `call` with Redis frozen; resolves what it returned and how long the caller waited. */
    async function whileFrozen<T>(call: () => Promise<T>): Promise<{ value: T; ms: number }> {
      server.freeze();
      const started = performance.now();
      const value = await call();
      return { value, ms: performance.now() - started };
    }

    /** The same with Redis already frozen (several calls in one outage). */
    async function timed<T>(call: () => Promise<T>): Promise<{ value: T; ms: number }> {
      const started = performance.now();
      const value = await call();
      return { value, ms: performance.now() - started };
    }

    function thaw(): Promise<boolean> {
      server.thaw();
      return cache.has('after-thaw');
    }

    it('wrap: a miss returns the loaded value without waiting for the write', async () => {
      const { value, ms } = await whileFrozen(() => cache.wrap('w1', () => 'loaded'));
      expect(value).toBe('loaded');
      expect(ms).toBeLessThan(LIMIT_MS);
      await thaw();
      // Redis ran the write it had buffered.
      expect(await cache.get('w1')).toBe('loaded');
    });

    it('wrap: while the write is pending, new callers get the loaded value as a hit', async () => {
      let runs = 0;
      const loader = () => `run ${++runs}`;
      const first = await whileFrozen(() => stack.wrap('w2', loader));
      expect(first.value).toEqual({ value: 'run 1', status: 'miss' });
      const second = await timed(() => stack.wrap('w2', loader));
      expect(second.value).toEqual({ value: 'run 1', status: 'hit' });
      expect(second.ms).toBeLessThan(TIMEOUT_MS / 2);
      expect(runs).toBe(1);
    });

    it('wrap: a delete during the pending write wins over it', async () => {
      let runs = 0;
      const loader = () => `run ${++runs}`;
      await whileFrozen(() => cache.wrap('w3', loader));
      const deleted = await timed(() => cache.delete('w3'));
      expect(deleted.ms).toBeLessThan(LIMIT_MS);
      // No longer shared: the next caller loads afresh.
      const next = await timed(() => cache.wrap('w3', loader));
      expect(next.value).toBe('run 2');
      expect(next.ms).toBeLessThan(LIMIT_MS);
      await cache.delete('w3');
      await thaw();
      expect(await cache.get('w3')).toBeUndefined();
    });

    it('wrap: a set during the pending write wins over it', async () => {
      await whileFrozen(() => cache.wrap('w4', () => 'loaded'));
      const set = await timed(() => cache.set('w4', 'newer'));
      expect(set.ms).toBeLessThan(LIMIT_MS);
      await thaw();
      expect(await cache.get('w4')).toBe('newer');
    });

    it.each<[string, (cache: CacheService) => Promise<unknown>]>([
      ['get', (c) => c.get('k')],
      ['set', (c) => c.set('k', 1)],
      ['delete', (c) => c.delete('k')],
      ['has', (c) => c.has('k')],
      ['clear', (c) => c.clear()],
      ['deleteByPrefix', (c) => c.deleteByPrefix('list:')],
      [
        'invalidate of 20 keys and 3 prefixes',
        (c) =>
          c
            .invalidate({
              keys: Array.from({ length: 20 }, (_, i) => `key:${i}`),
              prefixes: ['a:', 'b:', 'c:'],
            })
            .catch((error: unknown) => error),
      ],
    ])('CacheService.%s', async (_name, call) => {
      const { ms } = await whileFrozen(() => call(cache));
      expect(ms).toBeLessThan(LIMIT_MS);
    });

    it('invalidate rejects when the backend fails (a durable job retries it)', async () => {
      const { value, ms } = await whileFrozen(() =>
        cache.invalidate({ keys: ['a', 'b', 'c'] }).then(
          () => 'resolved',
          (error: Error) => error.message,
        ),
      );
      expect(value).toMatch(/timed out/i);
      expect(ms).toBeLessThan(LIMIT_MS);
    });

    it('@Cacheable on a service: a miss costs one timeout; the value is cached after the thaw', async () => {
      const { value, ms } = await whileFrozen(() => products.find('p1'));
      expect(ms).toBeLessThan(LIMIT_MS);
      await thaw();
      expect(await cache.get('product:p1')).toEqual(value);
      expect(await products.find('p1')).toEqual(value);
    });

    it('@CachePut costs one timeout; its value is stored after the thaw', async () => {
      const { value, ms } = await whileFrozen(() => products.update('p2'));
      expect(ms).toBeLessThan(LIMIT_MS);
      await thaw();
      expect(await cache.get('product:p2')).toEqual(value);
    });

    it('three @CacheEvict on one method cost one timeout together', async () => {
      await cache.set('product:p3', 'old');
      await cache.set('list:1', 'old');
      await cache.set('featured', 'old');
      const { value, ms } = await whileFrozen(() => products.remove('p3'));
      expect(value).toBe('removed p3');
      expect(ms).toBeLessThan(LIMIT_MS);
      await thaw();
      // Key evictions were buffered by Redis and applied at the thaw. (A prefix eviction needs
      // SCAN replies first: it is lost with the outage, the README's caveat.)
      expect(await cache.get('product:p3')).toBeUndefined();
      expect(await cache.get('featured')).toBeUndefined();
    });

    it('@CacheEvict before the call and @CachePut after it cost one timeout together', async () => {
      const { value, ms } = await whileFrozen(() => products.replace('p4'));
      expect(ms).toBeLessThan(LIMIT_MS);
      await thaw();
      expect(await cache.get('product:p4')).toEqual(value);
    });

    it('@CacheEvict before a @Cacheable call costs one timeout, and the call still loads', async () => {
      await cache.set('product:p5', { id: 'p5', n: -1 });
      const { value, ms } = await whileFrozen(() => products.reload('p5'));
      expect(value).not.toEqual({ id: 'p5', n: -1 });
      expect(ms).toBeLessThan(LIMIT_MS);
      await thaw();
      expect(await cache.get('product:p5')).toEqual(value);
    });

    it('@Cacheable with a @CacheEvict after it costs one timeout', async () => {
      const { value, ms } = await whileFrozen(() => products.findAndForgetLists('p6'));
      expect(ms).toBeLessThan(LIMIT_MS);
      await thaw();
      expect(await cache.get('product:p6')).toEqual(value);
    });

    it('@Cacheable on a controller handler costs one timeout', async () => {
      const { value, ms } = await whileFrozen(() =>
        request(app.getHttpServer()).get('/products/decorated/r1'),
      );
      expect(value.status).toBe(200);
      expect(value.headers['x-cache']).toBe('MISS');
      expect(ms).toBeLessThan(LIMIT_MS);
      await thaw();
      expect(await cache.get('route:r1')).toEqual(value.body);
    });

    it('CacheInterceptor: a miss costs one timeout', async () => {
      const { value, ms } = await whileFrozen(() =>
        request(app.getHttpServer()).get('/products/intercepted/r2'),
      );
      expect(value.status).toBe(200);
      expect(ms).toBeLessThan(LIMIT_MS);
      await thaw();
      const hit = await request(app.getHttpServer()).get('/products/intercepted/r2');
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(hit.body).toEqual(value.body);
    });

    it('cacheResult: a call, refresh, invalidate and invalidatePartition cost one timeout each', async () => {
      const call = await whileFrozen(() => payload(7));
      expect(call.value).toMatchObject({ userId: 7 });
      expect(call.ms).toBeLessThan(LIMIT_MS);
      const refreshed = await timed(() => payload.refresh(7));
      expect(refreshed.ms).toBeLessThan(LIMIT_MS);
      await thaw();
      expect(await cache.get(payload.keyFor(7))).toEqual(refreshed.value);
      server.freeze();
      expect((await timed(() => payload.invalidate(7))).ms).toBeLessThan(LIMIT_MS);
      expect((await timed(() => payload.invalidatePartition({ userId: 7 }))).ms).toBeLessThan(
        LIMIT_MS,
      );
      await thaw();
      expect(await cache.get(payload.keyFor(7))).toBeUndefined();
    });
  });

  it('logs the background write that failed', async () => {
    const logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url, commandTimeout: TIMEOUT_MS },
          namespace: uniqueNamespace('frozen-log'),
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication({ logger });
    await app.init();
    try {
      server.freeze();
      await app.get(CacheService).wrap('w5', () => 'loaded');
      // The write times out one command timeout after it was issued.
      await new Promise((resolve) => setTimeout(resolve, LIMIT_MS));
      expect(logger.text).toMatch(/Cache SET "w5" failed.*timed out/i);
    } finally {
      server.thaw();
      await app.close();
    }
  });
});
