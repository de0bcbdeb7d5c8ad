import { Cluster, Redis } from 'ioredis';
import {
  FailoverCacheAdapter,
  RedisCacheAdapter,
  type CacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { boot, raceTimer, type BootedApp } from '../support/failover';
import { eventually } from '../support/eventually';
import { RedisCluster } from '../support/redis-cluster';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const calculateSlot = require('cluster-key-slot') as (key: string | Buffer) => number;

/**
 * Issue 17, bulk operations through CacheService in a Nest app on real Redis: getMany, setMany
 * and deleteMany are one round trip per node (counted with INFO commandstats and the client's
 * pipelines), L1 hits never reach Redis, a deleteMany reaches the other instances' L1 through the
 * bus, wrapMany loads its misses with one loader call, and a dead, frozen or corrupt Redis never
 * fails a bulk call.
 */

/** `calls` of each command in `INFO commandstats` (lower-case names). */
async function commandCalls(node: Redis): Promise<Record<string, number>> {
  const info = await node.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+)/gm)) {
    calls[match[1]] = Number(match[2]);
  }
  return calls;
}

/** The Redis adapter under the app's adapter (itself, or a failover's primary). */
function redisAdapterOf(adapter: CacheAdapter): RedisCacheAdapter {
  if (adapter instanceof RedisCacheAdapter) return adapter;
  if (adapter instanceof FailoverCacheAdapter) return adapter.primary as RedisCacheAdapter;
  throw new Error(`no Redis adapter under ${adapter.constructor.name}`);
}

/** Counts the pipelines (round trips of a bulk call) the client sends; the real ones run. */
function countPipelines(client: Redis | Cluster): { readonly count: number; restore(): void } {
  const spy = jest.spyOn(client, 'pipeline');
  return {
    get count() {
      return spy.mock.calls.length;
    },
    restore: () => spy.mockRestore(),
  };
}

/** The commands (and their calls) a call sent to `node`, from a RESETSTAT before it. */
async function commandsOf(node: Redis, call: () => Promise<unknown>) {
  await node.config('RESETSTAT');
  await call();
  const calls = await commandCalls(node);
  // The probes themselves.
  delete calls.info;
  delete calls['config|resetstat'];
  return calls;
}

const keysOf = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const READS = ['get', 'mget', 'pttl', 'exists', 'getex', 'hmget', 'hget'];

async function started(options: CacheModuleOptions): Promise<BootedApp & { stack: CacheStack }> {
  const booted = await boot(options);
  const stack = booted.app.get(CacheStack);
  // With `l1`, the L1 is read once the bus is subscribed.
  if (options.l1) await eventually(async () => stack.busState === 'live', 5000, 10);
  return { ...booted, stack };
}

describe('CacheService bulk operations on a real redis-server', () => {
  let server: RedisServer;
  let raw: Redis;
  const apps: BootedApp[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    await raw.quit();
    await server.stop();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
  });

  const variants: Array<[string, Partial<CacheModuleOptions>]> = [
    ['redis', {}],
    ['redis + l1', { l1: true }],
    ['redis + failover: true', { failover: true }],
  ];

  describe.each(variants)('%s', (variant, extra) => {
    const l1 = extra.l1 === true;
    let namespace: string;
    const start = async () => {
      const booted = await started({
        provider: 'redis',
        redis: { url: server.url },
        namespace,
        ttl: 60,
        ...extra,
      });
      apps.push(booted);
      return booted;
    };
    beforeEach(() => {
      namespace = uniqueNamespace(`bulk-service-${variant.replace(/\W+/g, '-')}`);
    });

    it('setMany, getMany and deleteMany are one round trip each (SETs, one MGET, one UNLINK)', async () => {
      const { cache, adapter } = await start();
      const pipelines = countPipelines(redisAdapterOf(adapter).client);
      try {
        const keys = keysOf('k:', 50);
        let calls = await commandsOf(raw, () =>
          cache.setMany(keys.map((key, i) => ({ key, value: { i } }))),
        );
        expect(calls.set).toBe(50);
        expect(pipelines.count).toBe(1);
        expect(await raw.pttl(`${namespace}:k:7`)).toBeGreaterThan(59_000);

        let values: unknown[] = [];
        calls = await commandsOf(raw, async () => {
          values = await cache.getMany([...keys, 'missing', 'k:3']);
        });
        expect(values).toEqual([...keys.map((_, i) => ({ i })), undefined, { i: 3 }]);
        // With l1 the 50 written keys answer from the L1 and only 'missing' is read.
        expect(calls.mget).toBe(1);
        expect(calls.get).toBeUndefined();
        expect(pipelines.count).toBe(2);

        let deleted = 0;
        calls = await commandsOf(raw, async () => {
          deleted = await cache.deleteMany([...keys, 'missing', 'k:3']);
        });
        expect(deleted).toBe(50);
        expect(calls.unlink).toBe(1);
        expect(calls.del).toBeUndefined();
        expect(pipelines.count).toBe(3);
        expect(await raw.exists(`${namespace}:k:0`, `${namespace}:k:49`)).toBe(0);
        expect(await cache.getMany(keys)).toEqual(keys.map(() => undefined));
      } finally {
        pipelines.restore();
      }
    });

    if (l1) {
      it('an all-L1-hit getMany never touches Redis; the rest is one MGET that fills the L1', async () => {
        const { cache, stack } = await start();
        const keys = keysOf('h:', 20);
        await cache.setMany(keys.map((key, i) => ({ key, value: i })));
        let values: unknown[] = [];
        let calls = await commandsOf(raw, async () => {
          values = await cache.getMany(keys);
        });
        expect(values).toEqual(keys.map((_, i) => i));
        for (const command of READS) expect(calls[command]).toBeUndefined();

        // Written behind this instance's back: not in its L1, read in one MGET.
        await raw.set(`${namespace}:other:1`, JSON.stringify('from redis'));
        await raw.set(`${namespace}:other:2`, JSON.stringify('also'));
        calls = await commandsOf(raw, async () => {
          values = await cache.getMany([...keys, 'other:1', 'other:2']);
        });
        expect(values).toEqual([...keys.map((_, i) => i), 'from redis', 'also']);
        expect(calls.mget).toBe(1);
        expect(calls.get).toBeUndefined();
        expect(stack.peek('other:1')).toBe('from redis');
        calls = await commandsOf(raw, () => cache.getMany(['other:1', 'other:2', 'h:3']));
        for (const command of READS) expect(calls[command]).toBeUndefined();
      });
    }

    it('wrapMany with 10 misses calls the loader once and writes the 10 values; another instance reads them', async () => {
      const a = await start();
      const keys = keysOf('p:', 100);
      await a.cache.setMany(keys.slice(0, 90).map((key) => ({ key, value: `cached ${key}` })));
      const calledWith: string[][] = [];
      let values: unknown[] = [];
      const calls = await commandsOf(raw, async () => {
        values = await a.cache.wrapMany(keys, (missing) => {
          calledWith.push(missing);
          return missing.map((key) => `loaded ${key}`);
        });
      });
      expect(calledWith).toEqual([keys.slice(90)]);
      expect(values).toEqual(keys.map((key, i) => (i < 90 ? `cached ${key}` : `loaded ${key}`)));
      // One read for all the keys it did not hold (with l1: the 10 misses only).
      expect(calls.mget).toBe(1);
      expect(calls.get).toBeUndefined();
      const written = keys.slice(90).map((key) => `${namespace}:${key}`);
      await eventually(async () => (await raw.exists(...written)) === 10, 5000, 10);

      const b = await start();
      let fromB: unknown[] = [];
      const read = await commandsOf(raw, async () => {
        fromB = await b.cache.getMany(keys.slice(90));
      });
      expect(fromB).toEqual(keys.slice(90).map((key) => `loaded ${key}`));
      expect(read.mget).toBe(1);
      // Cached now: no loader call on either instance.
      const again = await b.cache.wrapMany(keys, () => {
        throw new Error('loader called for cached keys');
      });
      expect(again).toEqual(values);
    });

    it('tagged setMany, then deleteByTag drops the tagged entries only', async () => {
      const a = await start();
      const b = await start();
      const keys = keysOf('t:', 10);
      await a.cache.setMany(
        keys.map((key, i) => ({ key, value: i, tags: i % 2 ? ['odd'] : ['even'] })),
      );
      expect(await b.cache.getMany(keys)).toEqual(keys.map((_, i) => i));
      await a.cache.deleteByTag('odd');
      const expected = keys.map((_, i) => (i % 2 ? undefined : i));
      expect(await a.cache.getMany(keys)).toEqual(expected);
      await eventually(async () => {
        const seen = await b.cache.getMany(keys);
        return JSON.stringify(seen) === JSON.stringify(expected);
      }, 5000);
    });

    it('corrupt data under one key: that key is a miss (warning logged), the others read', async () => {
      const { cache, logger } = await start();
      await cache.setMany([
        { key: 'good', value: 1 },
        { key: 'other', value: 2 },
      ]);
      await raw.set(`${namespace}:bad`, '{not json');
      expect(await cache.getMany(['good', 'bad', 'other'])).toEqual([1, undefined, 2]);
      const warning = logger.warnings().find((line) => line.includes(`${namespace}:bad`));
      expect(warning).toMatch(/not valid JSON; treated as a miss/);
      // wrapMany loads the corrupt key (once).
      const loaded = await cache.wrapMany(['good', 'bad'], (missing) => {
        expect(missing).toEqual(['bad']);
        return ['fixed'];
      });
      expect(loaded).toEqual([1, 'fixed']);
    });

    // With l1, a loaded value is written with SET NX (a write made meanwhile wins): refused by the
    // corrupt text, the two tiers read the key back and replace what they cannot read.
    it('a value loaded over corrupt data replaces it in Redis', async () => {
      const { cache } = await start();
      await raw.set(`${namespace}:bad`, '{not json');
      expect(await cache.wrapMany(['bad'], (missing) => missing.map(() => 'fixed'))).toEqual([
        'fixed',
      ]);
      await eventually(async () => (await raw.get(`${namespace}:bad`)) === '"fixed"', 2000, 10);
      let runs = 0;
      expect(
        await cache.wrapMany(['bad'], (missing) => missing.map(() => `run ${++runs}`)),
      ).toEqual(['fixed']);
      expect(runs).toBe(0);
    });
  });

  it('deleteMany on one instance drops the keys from another instance’s L1 (bus)', async () => {
    const namespace = uniqueNamespace('bulk-service-bus');
    const options: CacheModuleOptions = {
      provider: 'redis',
      redis: { url: server.url },
      namespace,
      ttl: 60,
      l1: true,
    };
    const a = await started(options);
    apps.push(a);
    const b = await started(options);
    apps.push(b);
    const keys = keysOf('u:', 10);
    await a.cache.setMany(keys.map((key) => ({ key, value: 'v1' })));
    // b's read fills its L1 (a read overlapping a's message skips the fill: read again).
    await eventually(async () => {
      const values = await b.cache.getMany(keys);
      return values.every((v) => v === 'v1') && keys.every((key) => b.stack.peek(key) === 'v1');
    }, 5000);
    const calls = await commandsOf(raw, () => b.cache.getMany(keys));
    for (const command of READS) expect(calls[command]).toBeUndefined();

    expect(await a.cache.deleteMany(keys)).toBe(10);
    await eventually(async () => keys.every((key) => b.stack.peek(key) === undefined), 5000, 10);
    expect(await b.cache.getMany(keys)).toEqual(keys.map(() => undefined));
  });
});

describe('CacheService bulk operations when Redis dies or hangs', () => {
  const TIMEOUT_MS = 500;
  // One command timeout plus room for a busy machine.
  const LIMIT_MS = 3 * TIMEOUT_MS;
  let server: RedisServer;
  let booted: BootedApp | undefined;

  beforeEach(async () => {
    server = await RedisServer.start();
  });
  afterEach(async () => {
    server.thaw();
    await booted?.app.close();
    booted = undefined;
    await server.stop();
  });

  const app = async (extra: Partial<CacheModuleOptions>) => {
    booted = await started({
      provider: 'redis',
      redis: { url: server.url, commandTimeout: TIMEOUT_MS, retryStrategy: () => 60_000 },
      namespace: uniqueNamespace('bulk-service-fault'),
      ttl: 60,
      ...extra,
    });
    return booted;
  };

  it.each([
    ['redis', {}],
    ['redis + l1', { l1: true }],
  ] as Array<[string, Partial<CacheModuleOptions>]>)(
    'Redis killed (%s): getMany misses, setMany/deleteMany resolve, wrapMany calls the loader',
    async (_, extra) => {
      const { cache } = await app(extra);
      await cache.setMany([
        { key: 'a', value: 1 },
        { key: 'b', value: 2 },
      ]);
      await server.kill();
      await eventually(
        async () => (await cache.getMany(['a', 'b'])).every((v) => v === undefined),
        5000,
        20,
      );
      await expect(cache.setMany([{ key: 'c', value: 3 }])).resolves.toBeUndefined();
      await expect(cache.deleteMany(['a', 'c'])).resolves.toBe(0);
      let runs = 0;
      const values = await cache.wrapMany(['a', 'b', 'c'], (missing) => {
        runs++;
        return missing.map((key) => `loaded ${key}`);
      });
      expect(runs).toBe(1);
      expect(values).toEqual(['loaded a', 'loaded b', 'loaded c']);
    },
  );

  it('Redis killed (failover: true): the memory fallback answers getMany; writes and deletes never throw', async () => {
    const { cache } = await app({ failover: true });
    await cache.setMany([
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
    ]);
    await server.kill();
    expect(await cache.getMany(['a', 'b', 'c'])).toEqual([1, 2, undefined]);
    await expect(cache.setMany([{ key: 'c', value: 3 }])).resolves.toBeUndefined();
    expect(await cache.getMany(['a', 'c'])).toEqual([1, 3]);
    expect(await cache.deleteMany(['a'])).toBe(1);
    expect(await cache.getMany(['a', 'b', 'c'])).toEqual([undefined, 2, 3]);
    let runs = 0;
    const values = await cache.wrapMany(['b', 'd', 'e'], (missing) => {
      runs++;
      expect(missing).toEqual(['d', 'e']);
      return missing.map((key) => `loaded ${key}`);
    });
    expect(runs).toBe(1);
    expect(values).toEqual([2, 'loaded d', 'loaded e']);
  });

  it('Redis frozen: getMany resolves misses within the command timeout; the bulk writes resolve', async () => {
    const { cache } = await app({});
    await cache.setMany([
      { key: 'a', value: 1 },
      { key: 'b', value: 2 },
    ]);
    server.freeze();
    expect(await raceTimer(cache.getMany(['a', 'b', 'c']), LIMIT_MS)).toEqual({
      value: [undefined, undefined, undefined],
    });
    expect(await raceTimer(cache.setMany([{ key: 'c', value: 3 }]), LIMIT_MS)).toEqual({
      value: undefined,
    });
    expect(await raceTimer(cache.deleteMany(['b']), LIMIT_MS)).toEqual({ value: 0 });
    let runs = 0;
    expect(
      await raceTimer(
        cache.wrapMany(['d', 'e'], (missing) => {
          runs++;
          return missing.map((key) => `loaded ${key}`);
        }),
        LIMIT_MS,
      ),
    ).toEqual({ value: ['loaded d', 'loaded e'] });
    expect(runs).toBe(1);
    server.thaw();
    // Redis ran what it had buffered: a is kept, c written.
    await eventually(async () => {
      const values = await cache.getMany(['a', 'c']);
      return values[0] === 1 && values[1] === 3;
    }, 5000);
  });
});

describe('CacheService bulk operations on a real Redis Cluster (3 masters)', () => {
  let redisCluster: RedisCluster;
  let nodes: Redis[];
  let booted: BootedApp | undefined;

  beforeAll(async () => {
    redisCluster = await RedisCluster.start(3);
    nodes = redisCluster.nodes.map((node) => new Redis(node.url, { maxRetriesPerRequest: 1 }));
  }, 60_000);
  afterAll(async () => {
    await Promise.all((nodes ?? []).map((node) => node.quit().catch(() => node.disconnect())));
    await redisCluster?.stop();
  });
  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
  });

  /** Each node's commands during `call`, summed over the nodes. */
  async function clusterCommands(call: () => Promise<unknown>) {
    await Promise.all(nodes.map((node) => node.config('RESETSTAT')));
    await call();
    const total: Record<string, number> = {};
    const perNode = await Promise.all(nodes.map(commandCalls));
    for (const calls of perNode) {
      for (const [name, count] of Object.entries(calls)) total[name] = (total[name] ?? 0) + count;
    }
    return total;
  }

  it('getMany, setMany, deleteMany: one pipeline per node, one MGET / UNLINK per slot', async () => {
    const namespace = uniqueNamespace('bulk-service-cluster');
    booted = await started({
      provider: 'redis',
      redis: { cluster: redisCluster.seeds },
      namespace,
      ttl: 60,
    });
    const { cache, adapter } = booted;
    const client = redisAdapterOf(adapter).client;
    const keys = keysOf('c:', 60);
    const slots = new Set(keys.map((key) => calculateSlot(`${namespace}:${key}`)));
    const nodeCount = new Set([...slots].map((slot) => (client as Cluster).slots[slot]?.join(',')))
      .size;
    expect(nodeCount).toBe(3);
    const pipelines = countPipelines(client);
    try {
      let calls = await clusterCommands(() =>
        cache.setMany(keys.map((key, i) => ({ key, value: i }))),
      );
      expect(calls.set).toBe(60);
      expect(pipelines.count).toBe(nodeCount);

      let values: unknown[] = [];
      calls = await clusterCommands(async () => {
        values = await cache.getMany([...keys, 'missing']);
      });
      expect(values).toEqual([...keys.map((_, i) => i), undefined]);
      const readSlots = new Set([...slots, calculateSlot(`${namespace}:missing`)]);
      expect(calls.mget).toBe(readSlots.size);
      expect(calls.get).toBeUndefined();
      expect(pipelines.count).toBeLessThanOrEqual(2 * nodeCount);

      let deleted = 0;
      calls = await clusterCommands(async () => {
        deleted = await cache.deleteMany(keys);
      });
      expect(deleted).toBe(60);
      expect(calls.unlink).toBe(slots.size);
      expect(calls.del).toBeUndefined();
      expect(pipelines.count).toBeLessThanOrEqual(3 * nodeCount);
      expect(await cache.getMany(keys)).toEqual(keys.map(() => undefined));

      // wrapMany: one loader call for the misses spread over the three masters.
      await cache.setMany(keys.slice(0, 50).map((key, i) => ({ key, value: i })));
      let runs = 0;
      const loaded = await cache.wrapMany(keys, (missing) => {
        runs++;
        expect(missing).toEqual(keys.slice(50));
        return missing.map((key) => `loaded ${key}`);
      });
      expect(runs).toBe(1);
      expect(loaded).toEqual(keys.map((key, i) => (i < 50 ? i : `loaded ${key}`)));
      await eventually(
        async () => (await cache.getMany(keys.slice(50))).every((v) => v !== undefined),
        5000,
      );
    } finally {
      pipelines.restore();
    }
  });
});
