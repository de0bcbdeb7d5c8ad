import { Cluster, Redis } from 'ioredis';
import { FailoverCacheAdapter, MemoryCacheAdapter, RedisCacheAdapter } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { CachePartialError } from '../../lib/utils/cache.errors';
import { boot, waitForState, type BootedApp } from '../support/failover';
import { eventually } from '../support/eventually';
import { RedisCluster } from '../support/redis-cluster';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const calculateSlot = require('cluster-key-slot') as (key: string | Buffer) => number;

/** `calls` of each command in `INFO commandstats` (lower-case names). */
async function commandCalls(node: Redis): Promise<Record<string, number>> {
  const info = await node.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    calls[match[1]] = Number(match[2]);
  }
  return calls;
}

/** `INFO errorstats` error kinds seen (CROSSSLOT, MOVED, ...). */
async function errorKinds(node: Redis): Promise<string[]> {
  const info = await node.info('errorstats');
  return [...info.matchAll(/^errorstat_([A-Z]+):/gm)].map((match) => match[1]);
}

/** Counts the pipelines an adapter's client sends (the real ones: only counted). */
function countPipelines(client: Redis | Cluster): { readonly count: number; restore(): void } {
  const spy = jest.spyOn(client, 'pipeline');
  return {
    get count() {
      return spy.mock.calls.length;
    },
    restore: () => spy.mockRestore(),
  };
}

const keysOf = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('Bulk operations on a real redis-server', () => {
  let server: RedisServer;
  let raw: Redis;
  let adapter: RedisCacheAdapter;
  let namespace: string;

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    await raw.quit();
    await server.stop();
  });
  beforeEach(async () => {
    namespace = uniqueNamespace('bulk');
    adapter = new RedisCacheAdapter({ redis: { url: server.url }, namespace });
    await adapter.onModuleInit();
  });
  afterEach(async () => {
    await adapter.onApplicationShutdown();
  });

  it('getMany is one MGET, setMany one pipeline of SET ... PX, deleteMany one UNLINK', async () => {
    const keys = keysOf('k:', 50);
    const pipelines = countPipelines(adapter.client);
    await raw.config('RESETSTAT');
    await adapter.setMany(keys.map((key, i) => ({ key, value: { i }, ttl: i % 2 ? 60 : 0 })));
    expect(pipelines.count).toBe(1);
    let calls = await commandCalls(raw);
    expect(calls.set).toBe(50);

    await raw.config('RESETSTAT');
    expect(await adapter.getMany([...keys, 'missing', 'k:3'])).toEqual([
      ...keys.map((_, i) => ({ i })),
      undefined,
      { i: 3 },
    ]);
    calls = await commandCalls(raw);
    expect(calls.mget).toBe(1);
    expect(calls.get).toBeUndefined();
    expect(pipelines.count).toBe(2);

    // ttl 0: no expiry; otherwise PX.
    expect(await raw.pttl(`${namespace}:k:0`)).toBe(-1);
    expect(await raw.pttl(`${namespace}:k:1`)).toBeGreaterThan(59_000);

    await raw.config('RESETSTAT');
    expect(await adapter.deleteMany([...keys, 'missing'])).toBe(50);
    calls = await commandCalls(raw);
    expect(calls.unlink).toBe(1);
    expect(calls.del).toBeUndefined();
    expect(await raw.exists(`${namespace}:k:7`)).toBe(0);
    pipelines.restore();
  });

  it('reads corrupt data as a miss and keeps the other keys', async () => {
    await adapter.setMany([
      { key: 'good', value: 1, ttl: 60 },
      { key: 'other', value: 2, ttl: 60 },
    ]);
    await raw.set(`${namespace}:bad`, '{not json');
    await raw.hset(`${namespace}:hash`, 'f', 'v');
    expect(await adapter.getMany(['good', 'bad', 'hash', 'other'])).toEqual([
      1,
      undefined,
      undefined,
      2,
    ]);
  });

  it('writes the same injective keys as set (lone surrogates as CESU-8 bytes)', async () => {
    const keys = ['\uD800', '\uDC00', '\uFFFD'];
    await adapter.setMany(keys.map((key, i) => ({ key, value: i, ttl: 60 })));
    expect(await Promise.all(keys.map((key) => adapter.get(key)))).toEqual([0, 1, 2]);
    await adapter.set('\uD800', 'single', 60);
    expect(await adapter.getMany(keys)).toEqual(['single', 1, 2]);
  });

  describe('through two tiers (l1)', () => {
    const apps: BootedApp[] = [];
    afterEach(async () => {
      await Promise.all(apps.splice(0).map(({ app }) => app.close()));
    });

    it('L1 hits never reach Redis; the misses are one MGET that fills the L1', async () => {
      const booted = await boot({
        provider: 'redis',
        redis: { url: server.url },
        namespace,
        l1: true,
      });
      apps.push(booted);
      const stack = booted.app.get(CacheStack);
      await eventually(async () => stack.busState === 'live', 5000, 10);
      const twoTier = stack.tiers.twoTier;
      if (!twoTier) throw new Error('no two tiers');
      const keys = keysOf('t:', 20);
      await twoTier.setMany(keys.map((key, i) => ({ key, value: i, ttl: 60 })));

      await raw.config('RESETSTAT');
      const reads = await twoTier.readMany(keys);
      expect(reads.map((read) => read.value)).toEqual(keys.map((_, i) => i));
      expect(reads.every((read) => read.tier === 0)).toBe(true);
      let calls = await commandCalls(raw);
      expect(calls.mget).toBeUndefined();
      expect(calls.get).toBeUndefined();
      expect(calls.pttl).toBeUndefined();

      // Half of them gone from this L1: one MGET (with their PTTLs) for those only.
      keys.slice(10).forEach((key) => twoTier.forget(key));
      await raw.set(`${namespace}:t:15`, JSON.stringify('changed'));
      await raw.config('RESETSTAT');
      const mixed = await twoTier.readMany([...keys, 'nothing']);
      expect(mixed.map((read) => read.value)).toEqual([
        ...keys.map((_, i) => (i === 15 ? 'changed' : i)),
        undefined,
      ]);
      expect(mixed.map((read) => read.tier)).toEqual([...keys.map((_, i) => (i < 10 ? 0 : 1)), 1]);
      calls = await commandCalls(raw);
      expect(calls.mget).toBe(1);
      expect(calls.pttl).toBe(11);
      expect(calls.get).toBeUndefined();
      // The L2 hits filled the L1 (no longer than the entry lives).
      expect(stack.peek('t:15')).toBe('changed');
      expect(stack.peek('t:19')).toBe(19);
      await raw.config('RESETSTAT');
      await twoTier.getMany(keys);
      expect((await commandCalls(raw)).mget).toBeUndefined();
    });

    it('setMany and deleteMany reach the other instances through the bus', async () => {
      const start = async () => {
        const booted = await boot({
          provider: 'redis',
          redis: { url: server.url },
          namespace,
          l1: true,
        });
        apps.push(booted);
        const stack = booted.app.get(CacheStack);
        await eventually(async () => stack.busState === 'live', 5000, 10);
        return stack;
      };
      const a = await start();
      const b = await start();
      const keys = keysOf('s:', 5);
      await a.tiers.twoTier?.setMany(keys.map((key) => ({ key, value: 'v1', ttl: 60 })));
      // b's read may overlap a's message (its fill is then skipped, by design): read again.
      await eventually(async () => {
        const values = await b.tiers.twoTier?.getMany(keys);
        return values?.every((value) => value === 'v1') === true && b.peek('s:0') === 'v1';
      }, 5000);
      await a.tiers.twoTier?.setMany(keys.map((key) => ({ key, value: 'v2', ttl: 60 })));
      await eventually(async () => b.peek('s:0') === undefined, 5000, 10);
      expect(await b.tiers.twoTier?.getMany(keys)).toEqual(keys.map(() => 'v2'));
      expect(await a.tiers.twoTier?.deleteMany(keys)).toBe(5);
      await eventually(async () => b.peek('s:4') === undefined, 5000, 10);
      expect(await b.tiers.twoTier?.getMany(keys)).toEqual(keys.map(() => undefined));
    });
  });

  describe('failover with Redis killed', () => {
    it('answers from the fallback, journals writes and deletes, never throws', async () => {
      const own = await RedisServer.start();
      const primary = new RedisCacheAdapter({
        redis: { url: own.url, retryStrategy: () => 60_000 },
        namespace,
      });
      const failover = new FailoverCacheAdapter(primary, new MemoryCacheAdapter(), {
        timeout: 0.5,
        failureThreshold: 100,
      });
      await failover.onModuleInit();
      try {
        await failover.setMany([
          { key: 'a', value: 1, ttl: 60 },
          { key: 'b', value: 2, ttl: 60 },
        ]);
        await own.kill();
        expect(await failover.getMany(['a', 'b', 'c'])).toEqual([1, 2, undefined]);
        await expect(failover.setMany([{ key: 'c', value: 3, ttl: 60 }])).resolves.toBeUndefined();
        expect(await failover.getMany(['a', 'c'])).toEqual([1, 3]);
        expect(await failover.deleteMany(['a'])).toBe(1);
        expect(await failover.getMany(['a', 'b', 'c'])).toEqual([undefined, 2, 3]);
        expect(failover.stats.primaryFailures).toBeGreaterThan(0);
        // Written and deleted while Redis was away: untrusted until recovery deletes them there.
        expect(failover.stats.pendingReconciliation).toBe(2);
      } finally {
        await failover.onApplicationShutdown();
        await own.stop();
      }
    });
    it('while the circuit is open, bulk writes and deletes are journaled and reconciled', async () => {
      const own = await RedisServer.start();
      const primary = new RedisCacheAdapter({ redis: { url: own.url }, namespace });
      const failover = new FailoverCacheAdapter(primary, new MemoryCacheAdapter(), {
        timeout: 0.3,
        failureThreshold: 1,
        cooldown: 0.5,
      });
      await failover.onModuleInit();
      try {
        await failover.setMany([
          { key: 'x', value: 'old', ttl: 60 },
          { key: 'y', value: 'old', ttl: 60 },
        ]);
        own.freeze();
        expect(await failover.getMany(['x'])).toEqual(['old']); // times out: the circuit opens
        expect(failover.state).toBe('open');
        const skipped = failover.stats.primarySkipped;
        await failover.setMany([{ key: 'x', value: 'new', ttl: 60 }]);
        expect(await failover.deleteMany(['y'])).toBe(1);
        expect(failover.stats.primarySkipped).toBe(skipped + 2);
        expect(failover.stats.pendingReconciliation).toBe(2);
        own.thaw();
        await waitForState(failover, 'closed');
        // Recovery deleted both from Redis: its stale 'old' never answers again.
        expect(await failover.getMany(['x', 'y'])).toEqual(['new', undefined]);
        expect(await primary.getMany(['x', 'y'])).toEqual([undefined, undefined]);
      } finally {
        own.thaw();
        await failover.onApplicationShutdown();
        await own.stop();
      }
    });
  });
});

describe('Bulk operations on a real Redis Cluster (3 masters)', () => {
  let redisCluster: RedisCluster;
  let nodes: Redis[];
  let adapter: RedisCacheAdapter;
  let namespace: string;

  beforeAll(async () => {
    redisCluster = await RedisCluster.start(3);
    nodes = redisCluster.nodes.map(
      // No reconnection: one of them loses its node for good in the last test.
      (node) =>
        new Redis(node.port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => null }),
    );
  }, 60_000);
  afterAll(async () => {
    await Promise.all((nodes ?? []).map((node) => node.quit().catch(() => node.disconnect())));
    await redisCluster?.stop();
  });
  beforeEach(async () => {
    namespace = uniqueNamespace('bulk-cluster');
    adapter = new RedisCacheAdapter({ redis: { cluster: redisCluster.seeds }, namespace });
    await adapter.onModuleInit();
  });
  afterEach(async () => {
    await adapter.onApplicationShutdown();
  });

  const resetStats = () => Promise.all(nodes.map((node) => node.config('RESETSTAT')));
  const statsPerNode = () => Promise.all(nodes.map(commandCalls));

  it('one pipeline per node, one MGET per hash slot, never CROSSSLOT', async () => {
    const keys = [...keysOf('c:', 200), '\uD800', '{tag}a', '{tag}b'];
    await adapter.setMany(keys.map((key, i) => ({ key, value: i, ttl: 60 })));
    const slots = new Set(keys.map((key) => calculateSlot(`${namespace}:${key}`)));

    await resetStats();
    const pipelines = countPipelines(adapter.client);
    expect(await adapter.getMany([...keys, 'missing'])).toEqual([
      ...keys.map((_, i) => i),
      undefined,
    ]);
    expect(pipelines.count).toBe(3);
    pipelines.restore();
    const stats = await statsPerNode();
    // Every master served some keys, with one MGET per slot it owns among them.
    expect(stats.every((calls) => (calls.mget ?? 0) > 0)).toBe(true);
    expect(stats.reduce((sum, calls) => sum + (calls.mget ?? 0), 0)).toBe(
      new Set([...slots, calculateSlot(`${namespace}:missing`)]).size,
    );
    for (const node of nodes) expect(await errorKinds(node)).toEqual([]);

    await resetStats();
    expect(await adapter.deleteMany(keys)).toBe(keys.length);
    const unlinks = (await statsPerNode()).reduce((sum, calls) => sum + (calls.unlink ?? 0), 0);
    expect(unlinks).toBe(slots.size);
    for (const node of nodes) expect(await errorKinds(node)).toEqual([]);
  });

  it('follows a slot that moved to another master (MOVED)', async () => {
    const keys = keysOf('m:', 30);
    await adapter.setMany(keys.map((key, i) => ({ key, value: i, ttl: 60 })));
    // Move the slot of m:0 to another master behind the client's back.
    const slot = calculateSlot(`${namespace}:m:0`);
    const ids = await Promise.all(nodes.map((node) => node.call('CLUSTER', 'MYID')));
    const owners = await Promise.all(
      nodes.map(async (node) => Number(await node.call('CLUSTER', 'COUNTKEYSINSLOT', slot))),
    );
    const from = owners.findIndex((count) => count > 0);
    const to = (from + 1) % nodes.length;
    await nodes[to].call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids[from] as string);
    await nodes[from].call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', ids[to] as string);
    const moving = (await nodes[from].call('CLUSTER', 'GETKEYSINSLOT', slot, 1000)) as string[];
    await nodes[from].call(
      'MIGRATE',
      '127.0.0.1',
      redisCluster.nodes[to].port,
      '',
      0,
      5000,
      'KEYS',
      ...moving,
    );
    for (const node of nodes)
      await node.call('CLUSTER', 'SETSLOT', slot, 'NODE', ids[to] as string);

    await nodes[from].config('RESETSTAT');
    expect(await adapter.getMany(keys)).toEqual(keys.map((_, i) => i));
    expect(await errorKinds(nodes[from])).toContain('MOVED');
    expect(await adapter.deleteMany(keys)).toBe(keys.length);
  });

  // Last: it kills a master (the cluster stays broken for the rest of this file).
  it('a master down: its keys fail, the others are read (CachePartialError); failover serves all', async () => {
    const keys = keysOf('p:', 60);
    const failover = new FailoverCacheAdapter(adapter, new MemoryCacheAdapter(), {
      timeout: 2,
      failureThreshold: 100,
    });
    await failover.setMany(keys.map((key, i) => ({ key, value: i, ttl: 60 })));
    const slotsTable = (adapter.client as Cluster).slots;
    const victim = redisCluster.nodes[0];
    const onVictim = keys.map((key) =>
      slotsTable[calculateSlot(`${namespace}:${key}`)][0].endsWith(`:${victim.port}`),
    );
    expect(onVictim.some(Boolean)).toBe(true);
    expect(onVictim.every(Boolean)).toBe(false);
    await victim.kill();

    const error = await adapter.getMany(keys).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(CachePartialError);
    const partial = error as CachePartialError<number>;
    expect(partial.failed).toEqual(keys.flatMap((_, i) => (onVictim[i] ? [i] : [])));
    expect(partial.results).toEqual(keys.map((_, i) => (onVictim[i] ? undefined : i)));

    // The failover answers every key: the primary those it could read, the fallback the rest.
    expect(await failover.getMany(keys)).toEqual(keys.map((_, i) => i));
    const read = await failover.tier.readMany(keys);
    expect(read.map((r) => r.tier)).toEqual(keys.map((_, i) => (onVictim[i] ? 0 : 1)));
    expect(failover.stats.primaryFailures).toBeGreaterThan(0);
  }, 60_000);
});
