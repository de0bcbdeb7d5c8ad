import { CacheService } from '../../lib';
import { boot, type BootedApp } from '../support/failover';
import { RedisCluster } from '../support/redis-cluster';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/** Review of issue 17 item 2 on real Redis: wrapMany with the fleet lock. */
const keysOf = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

async function loaderCalls(cache: CacheService, keys: string[], options: object) {
  const calls: string[][] = [];
  const values = await cache.wrapMany(
    keys,
    async (missing) => {
      calls.push(missing);
      return missing.map((key) => `v-${key}`);
    },
    options,
  );
  expect(values).toEqual(keys.map((key) => `v-${key}`));
  return calls;
}

describe('wrapMany with lock on a single redis-server', () => {
  let server: RedisServer;
  let booted: BootedApp | undefined;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  afterEach(async () => {
    await booted?.app.close();
  });

  it('40 cold keys with lock: true call the loader once', async () => {
    booted = await boot({
      provider: 'redis',
      redis: { url: server.url },
      namespace: uniqueNamespace('wm-lock'),
      ttl: 60,
    });
    const calls = await loaderCalls(booted.cache, keysOf('k:', 40), { lock: true });
    expect(calls.map((c) => c.length)).toEqual([40]);
  });
});

describe('wrapMany with lock on a Redis Cluster (3 masters)', () => {
  let cluster: RedisCluster;
  let booted: BootedApp | undefined;
  beforeAll(async () => {
    cluster = await RedisCluster.start(3);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  afterEach(async () => {
    await booted?.app.close();
  });

  it('60 cold keys over 3 masters with lock: true call the loader once', async () => {
    booted = await boot({
      provider: 'redis',
      redis: { cluster: cluster.seeds },
      namespace: uniqueNamespace('wm-lock-c'),
      ttl: 60,
    });
    const calls = await loaderCalls(booted.cache, keysOf('c:', 60), { lock: true });
    expect(calls.map((c) => c.length)).toEqual([60]);
  });

  it('60 cold keys over 3 masters without the lock call the loader once', async () => {
    booted = await boot({
      provider: 'redis',
      redis: { cluster: cluster.seeds },
      namespace: uniqueNamespace('wm-c'),
      ttl: 60,
    });
    const calls = await loaderCalls(booted.cache, keysOf('c:', 60), {});
    expect(calls.map((c) => c.length)).toEqual([60]);
  });
});
