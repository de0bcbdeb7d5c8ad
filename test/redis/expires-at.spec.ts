import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CacheModule, CacheService, type CacheModuleOptions } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { eventually } from '../support/eventually';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/** `CacheStack.expiresAt` (cache-manager's `ttl(key)`): when an entry expires, per backend. */
describe('CacheStack.expiresAt', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(() => server.stop());

  const backends: Array<[string, () => CacheModuleOptions]> = [
    ['memory', () => ({})],
    ['redis', () => ({ provider: 'redis', redis: { url: server.url } })],
    ['redis + failover', () => ({ provider: 'redis', redis: { url: server.url }, failover: true })],
    ['redis + l1', () => ({ provider: 'redis', redis: { url: server.url }, l1: true })],
  ];

  describe.each(backends)('%s', (_name, optionsFor) => {
    let app: Awaited<ReturnType<typeof NestFactory.createApplicationContext>>;
    let cache: CacheService;
    let stack: CacheStack;

    beforeEach(async () => {
      @Module({
        imports: [CacheModule.forRoot({ namespace: uniqueNamespace('expires'), ...optionsFor() })],
      })
      class AppModule {}
      app = await NestFactory.createApplicationContext(AppModule, { logger: false });
      await app.init();
      cache = app.get(CacheService);
      stack = app.get(CacheStack);
      await eventually(async () => stack.busState !== 'deaf', 5000, 10);
    });
    afterEach(() => app.close());

    it('a plain entry: now + its TTL; a miss: undefined', async () => {
      const before = Date.now();
      await cache.set('k', { a: 1 }, 60);
      const after = Date.now();
      const at = await stack.expiresAt('k');
      expect(at).toBeGreaterThanOrEqual(before + 59_000);
      // The memory store's clock is read at most once per millisecond (coarse), and may lag a
      // busy event loop by a few: its entries expire by that clock, which this reports.
      expect(at).toBeLessThanOrEqual(after + 60_000 + 100);
      expect(await stack.expiresAt('missing')).toBeUndefined();
    });

    it('an entry that never expires: Infinity', async () => {
      await cache.set('forever', 1, 0);
      expect(await stack.expiresAt('forever')).toBe(Infinity);
    });

    it('an entry kept by grace: its logical expiry, and undefined once expired', async () => {
      const before = Date.now();
      await cache.set('g', 'v', { ttl: 30, grace: 600 });
      const after = Date.now();
      const at = await stack.expiresAt('g');
      expect(at).toBeGreaterThanOrEqual(before + 30_000);
      expect(at).toBeLessThanOrEqual(after + 30_000);
      await cache.expire('g');
      expect(await stack.expiresAt('g')).toBeUndefined();
    });

    it('an entry invalidated by a tag: undefined', async () => {
      await cache.set('t', 'v', { ttl: 60, tags: ['x'] });
      expect(await stack.expiresAt('t')).toBeGreaterThan(Date.now());
      await cache.deleteByTag('x');
      expect(await stack.expiresAt('t')).toBeUndefined();
    });
  });
});
