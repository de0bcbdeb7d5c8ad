import { Logger } from '@nestjs/common';
import { CacheArgumentError, FailoverCacheAdapter } from '../../lib';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import type { CacheStack } from '../../lib/core/cache-stack';
import { createCacheStack } from '../../lib/core/create-stack';
import { CacheHealthIndicator } from '../../lib/diagnostics/cache-health.indicator';
import { FlakyAdapter } from '../support/flaky-adapter';

/**
 * Issue 15, item 4: `CacheHealthIndicator` over an in-process cache (no Redis): the result's
 * shape, the argument checks, and that it loads and works without `@nestjs/terminus`. The
 * Redis states under real terminus and a real redis-server are in test/redis/health-terminus.spec.ts;
 * here a fault-injecting store stands in for the shapes themselves.
 */

const OPTIONS = { enabled: true, ttl: 60, namespace: 'health' };

/** A shared store that refuses every call, with a password in its error (as a driver might). */
class RefusingStore extends FlakyAdapter {
  override ping(): Promise<string> {
    return Promise.reject(new Error('connect to redis://:hunter2-pa55@10.0.0.1:6379 refused'));
  }
}
describe('CacheHealthIndicator (memory)', () => {
  let stack: CacheStack;
  let indicator: CacheHealthIndicator;

  beforeEach(() => {
    stack = createCacheStack(new MemoryCacheAdapter(), {
      enabled: true,
      ttl: 60,
      namespace: 'health',
    });
    indicator = new CacheHealthIndicator(stack);
  });

  it("answers terminus's shape under 'cache': up, serving the L1, with its size", async () => {
    expect(await indicator.isHealthy()).toEqual({
      cache: { status: 'up', l1: { entries: 0, bytes: 0 }, serving: 'l1' },
    });
    await stack.set('user:1', { name: 'Ada' });
    const { cache } = await indicator.isHealthy();
    expect(cache.l1?.entries).toBe(1);
    expect(cache.l1?.bytes).toBeGreaterThan(0);
    expect(cache).not.toHaveProperty('reason');
    expect(cache).not.toHaveProperty('degraded');
  });

  it('reports under the key it is given, with either shape option', async () => {
    const result = await indicator.isHealthy('sessions', { timeout: 50, degraded: 'degraded' });
    expect(Object.keys(result)).toEqual(['sessions']);
    expect(result.sessions.status).toBe('up');
    expect((await indicator.isHealthy('s', { degraded: 'up' })).s.status).toBe('up');
  });

  it.each([
    ['an empty key', '', undefined],
    ['a key that is not a string', 42, undefined],
    ['a zero timeout', 'cache', { timeout: 0 }],
    ['a negative timeout', 'cache', { timeout: -5 }],
    ['a NaN timeout', 'cache', { timeout: Number.NaN }],
    ['an infinite timeout', 'cache', { timeout: Number.POSITIVE_INFINITY }],
    ['a timeout beyond what a timer holds', 'cache', { timeout: 2 ** 31 }],
    ['a timeout given as a string', 'cache', { timeout: '1000' }],
    ['an unknown degraded shape', 'cache', { degraded: 'warn' }],
  ])('rejects %s with a CacheArgumentError naming it', async (_what, key, options) => {
    const call = (indicator.isHealthy as (key: unknown, options: unknown) => Promise<unknown>).bind(
      indicator,
    );
    const rejection = call(key, options);
    await expect(rejection).rejects.toThrow(CacheArgumentError);
    await expect(rejection).rejects.toThrow(
      /CacheHealthIndicator\.isHealthy: (key|timeout|degraded)/,
    );
  });

  it('loads and answers without @nestjs/terminus installed', async () => {
    // Only a missing package can be shown this way: the module registry stands in for it.
    const missing = () => {
      throw Object.assign(new Error("Cannot find module '@nestjs/terminus'"), {
        code: 'MODULE_NOT_FOUND',
      });
    };
    let answer: unknown;
    await jest.isolateModulesAsync(async () => {
      jest.doMock('@nestjs/terminus', missing);
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const lib = require('../../lib') as typeof import('../../lib');
        expect(lib.CacheModule).toBeDefined();
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const isolated = require('../../lib/diagnostics/cache-health.indicator') as {
          CacheHealthIndicator: typeof CacheHealthIndicator;
        };
        answer = await new isolated.CacheHealthIndicator(stack).isHealthy('cache');
      } finally {
        jest.dontMock('@nestjs/terminus');
      }
    });
    expect(answer).toEqual({
      cache: { status: 'up', l1: { entries: 0, bytes: 0 }, serving: 'l1' },
    });
  });
});

describe('CacheHealthIndicator (a shared store that refuses)', () => {
  const primary = new RefusingStore();

  beforeEach(() => {
    primary.mode = 'down';
    // The failover layer warns that the primary is unreachable: expected here, kept off the console.
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });
  afterEach(() => jest.restoreAllMocks());

  it('without failover: down, with the reason and the failed ping, never the password', async () => {
    const indicator = new CacheHealthIndicator(createCacheStack(primary, OPTIONS));
    const { cache } = await indicator.isHealthy('cache', { timeout: 200 });
    expect(cache).toEqual({
      status: 'down',
      reason: expect.stringContaining('no failover'),
      l2: { status: 'down', error: expect.stringContaining('refused') },
      serving: 'l2',
    });
    expect(JSON.stringify(cache)).not.toContain('hunter2-pa55');
  });

  describe('with failover: degraded, serving the fallback', () => {
    let adapter: FailoverCacheAdapter;
    let indicator: CacheHealthIndicator;

    beforeEach(async () => {
      adapter = new FailoverCacheAdapter(primary, new MemoryCacheAdapter({ sweepInterval: 0 }), {
        failureThreshold: 1,
        cooldown: 60,
        timeout: 0.1,
      });
      await adapter.onModuleInit();
      indicator = new CacheHealthIndicator(createCacheStack(adapter, OPTIONS));
    });
    afterEach(() => adapter.onApplicationShutdown());

    const degradedShape = {
      degraded: true,
      reason: expect.stringContaining('in-process tier'),
      l2: { status: 'down', error: expect.any(String) },
      serving: 'l1',
    };

    it("{ degraded: 'degraded' }: status degraded (terminus 12 and later)", async () => {
      const { cache } = await indicator.isHealthy('cache', { degraded: 'degraded' });
      expect(cache).toMatchObject({ status: 'degraded', ...degradedShape });
    });

    it("{ degraded: 'up' }: status up with degraded: true (terminus 11 keeps it)", async () => {
      const { cache } = await indicator.isHealthy('cache', { degraded: 'up' });
      expect(cache).toMatchObject({ status: 'up', ...degradedShape });
    });

    it('no option: degraded but up (status up, degraded: true), whatever terminus is installed', async () => {
      const { cache } = await indicator.isHealthy();
      expect(cache.status).toBe('up');
      expect(cache).toMatchObject(degradedShape);
      expect(JSON.stringify(cache)).not.toContain('hunter2-pa55');
    });
  });
});
