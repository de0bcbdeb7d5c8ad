import {
  CacheAdapter,
  type CacheEventMap,
  type CacheModuleOptions,
  type FailoverCacheAdapter,
} from '../../lib';
import { eventually } from '../support/eventually';
import { boot, waitForState, type BootedApp } from '../support/failover';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 15, review on a real redis-server: which tier a read is counted against when two tiers
 * run with failover and Redis goes away (the L1, which is the failover fallback, answers).
 */
describe('observability review on a real redis-server', () => {
  let server: RedisServer;
  const apps: BootedApp[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  afterEach(async () => {
    if (!server.running) await server.restart();
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
  });

  const instance = async (options: CacheModuleOptions) => {
    const booted = await boot({
      provider: 'redis',
      redis: { url: server.url },
      namespace: uniqueNamespace('obsrev'),
      jitter: 0,
      ...options,
    });
    apps.push(booted);
    return booted;
  };

  it('two tiers with failover, Redis killed: reads answered by the L1 are tier l1', async () => {
    const { cache, app } = await instance({
      l1: true,
      failover: { failureThreshold: 1, cooldown: 30, timeout: 0.5 },
    });
    const adapter = app.get<FailoverCacheAdapter>(CacheAdapter);
    await cache.set('k', 'v', 60);
    const hits: Array<CacheEventMap['hit']> = [];
    cache.events.on('hit', (event) => hits.push(event));
    await server.kill();
    // Until the circuit opens, a read may still try Redis and fail: wait for it to open.
    await eventually(
      async () => {
        await cache.get('probe');
        return adapter.state === 'open';
      },
      10_000,
      20,
    );
    await waitForState(adapter, 'open');
    hits.length = 0;
    const before = cache.stats();
    expect(await cache.get('k')).toBe('v');
    expect(await cache.wrap('k', () => 'not run', 60)).toBe('v');
    expect(hits.map((h) => [h.operation, h.tier])).toEqual([
      ['get', 'l1'],
      ['wrap', 'l1'],
    ]);
    const after = cache.stats();
    expect((after.tiers.l1?.hits ?? 0) - (before.tiers.l1?.hits ?? 0)).toBe(2);
    expect(after.tiers.l2?.hits).toBe(before.tiers.l2?.hits);
    expect(after.tiers.l2?.circuit).toBe('open');
  });
});
