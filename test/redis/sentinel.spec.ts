import { randomUUID } from 'node:crypto';
import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import {
  CacheAdapter,
  CacheModule,
  CacheService,
  Cacheable,
  FailoverCacheAdapter,
  RedisCacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { eventually } from '../support/eventually';
import { CapturingLogger } from '../support/logs';
import { uniqueNamespace } from '../support/redis';
import { RedisSentinelGroup } from '../support/redis-sentinel';

/** Bound of every "after the failover, eventually ..." wait (never a speed assertion). */
// A bounded wait, not a speed claim: under a loaded CI machine a Sentinel election takes longer.
const RECOVERY_MS = 45_000;
/** Jest timeout of a test that fails the master over. */
const FAILOVER_TEST_MS = 120_000;

@Injectable()
class Catalog {
  loads = 0;

  @Cacheable('product:{id}', { ttl: 60 })
  async find(id: number): Promise<{ id: number; load: number }> {
    this.loads++;
    return Promise.resolve({ id, load: this.loads });
  }
}

interface Booted {
  app: INestApplication;
  cache: CacheService;
  catalog: Catalog;
  logger: CapturingLogger;
}

async function boot(options: CacheModuleOptions): Promise<Booted> {
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
    providers: [Catalog],
  }).compile();
  const logger = new CapturingLogger();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, cache: app.get(CacheService), catalog: app.get(Catalog), logger };
}

/** A plain ioredis client on one server of the group (not through Sentinel). */
function direct(port: number): Redis {
  return new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, lazyConnect: false });
}

/** {@link eventually} with the expectation named in the error. */
async function within(what: string, check: () => Promise<boolean>, every = 50): Promise<void> {
  try {
    await eventually(check, RECOVERY_MS, every);
  } catch (error) {
    throw new Error(`${what}: ${String(error)}`);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Clients reading and writing all the time: each worker sets its key, reads it back, runs a
 * `wrap` and a `@Cacheable` call, and records every call that rejected (a cache outage must
 * never fail a caller) and how many rounds in a row read back what they had just written.
 */
class Traffic {
  rounds = 0;
  /** Consecutive rounds (over all workers) whose read returned the value just written. */
  consistentStreak = 0;
  readonly rejections: unknown[] = [];
  private stopped = false;
  private readonly workers: Array<Promise<void>>;

  constructor(
    private readonly apps: Booted[],
    workers = 6,
  ) {
    this.workers = Array.from({ length: workers }, (_, w) => this.run(w));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }

  /** Resolves once `more` rounds in a row, all after now, read back what they wrote. */
  settled(more = 30): Promise<void> {
    const from = this.rounds;
    return within(`${more} rounds in a row reading back their writes`, () =>
      Promise.resolve(Math.min(this.consistentStreak, this.rounds - from) >= more),
    );
  }

  private async run(worker: number): Promise<void> {
    const { cache, catalog } = this.apps[worker % this.apps.length];
    for (let i = 0; !this.stopped; i++) {
      const value = `w${worker}-${i}`;
      try {
        await cache.set(`load:${worker}`, value, 60);
        const read = await cache.get(`load:${worker}`);
        this.consistentStreak = read === value ? this.consistentStreak + 1 : 0;
        await cache.wrap(`wrapped:${worker}:${i % 5}`, () => value, 60);
        await catalog.find(worker * 1000 + (i % 5));
        this.rounds++;
      } catch (error) {
        this.rejections.push(error);
      }
      // Yield to timers: while Redis is unreachable, every call fails within microtasks.
      await sleep(2);
    }
  }
}

/**
 * Writes a fresh value through `cache` until it is stored on the server on `port` (read there
 * with a direct client) and `cache` reads it back: the cache follows the master on `port`.
 */
async function writesLandOn(
  cache: CacheService,
  port: number,
  namespace: string,
  key = 'probe',
): Promise<void> {
  const raw = direct(port);
  let seen: string | null = null;
  try {
    await eventually(
      async () => {
        // Never written before: a replica may hold every earlier probe value.
        const value = `probe-${randomUUID()}`;
        await cache.set(key, value, 60);
        seen = await raw.get(`${namespace}:${key}`).catch(() => null);
        return seen === JSON.stringify(value) && (await cache.get(key)) === value;
      },
      RECOVERY_MS,
      100,
    );
  } catch (error) {
    throw new Error(
      `writes never landed on the master on port ${port} (it holds ${String(seen)}): ${String(error)}`,
    );
  } finally {
    raw.disconnect();
  }
}

describe('Redis Sentinel (a master, a replica, 3 sentinels)', () => {
  let group: RedisSentinelGroup;
  const booted: Booted[] = [];
  const name = 'cachekit-sentinel';

  const start = async (options: Partial<CacheModuleOptions> & { namespace: string }) => {
    const app = await boot({
      provider: 'redis',
      redis: { sentinels: group.sentinels, name },
      ...options,
    });
    booted.push(app);
    return app;
  };

  beforeAll(async () => {
    group = await RedisSentinelGroup.start({ name });
  }, 60_000);

  afterEach(async () => {
    await Promise.all(booted.splice(0).map(({ app }) => app.close()));
    // A test that killed the master brings the group back to a master and a replica.
    await group?.restoreReplica();
  }, 60_000);

  afterAll(async () => {
    await group?.stop();
  });

  describe('one tier (Redis through Sentinel)', () => {
    it('set, get, delete, deleteByPrefix, clear, wrap and @Cacheable work through Sentinel', async () => {
      const namespace = uniqueNamespace('sentinel');
      const { app, cache, catalog } = await start({ namespace });
      const adapter = app.get<RedisCacheAdapter>(CacheAdapter);
      expect(adapter).toBeInstanceOf(RedisCacheAdapter);
      const raw = direct(await group.masterPort());
      try {
        await cache.set('user:1', { name: 'alice' }, 60);
        expect(await cache.get('user:1')).toEqual({ name: 'alice' });
        // Stored on the master Sentinel names, as JSON under the namespace.
        expect(await raw.get(`${namespace}:user:1`)).toBe('{"name":"alice"}');
        expect(await raw.pttl(`${namespace}:user:1`)).toBeGreaterThan(50_000);

        expect(await cache.delete('user:1')).toBe(true);
        expect(await cache.get('user:1')).toBeUndefined();
        expect(await raw.exists(`${namespace}:user:1`)).toBe(0);

        await cache.set('user:2:a', 1);
        await cache.set('user:2:b', 2);
        await cache.set('order:1', 3);
        expect(await cache.deleteByPrefix('user:2:')).toBe(2);
        expect(await cache.get('order:1')).toBe(3);
        await cache.clear();
        expect(await cache.get('order:1')).toBeUndefined();

        let loads = 0;
        const loader = () => ++loads;
        expect(await cache.wrap('wrapped', loader, 60)).toBe(1);
        expect(await cache.wrap('wrapped', loader, 60)).toBe(1);
        expect(loads).toBe(1);

        const first = await Promise.all(Array.from({ length: 20 }, () => catalog.find(7)));
        expect(first.every((p) => p.id === 7 && p.load === 1)).toBe(true);
        expect(await catalog.find(7)).toEqual({ id: 7, load: 1 });
        expect(catalog.loads).toBe(1);
        expect(await raw.get(`${namespace}:product:7`)).toBe('{"id":7,"load":1}');
      } finally {
        raw.disconnect();
      }
    });

    // `failoverDetector` (ioredis): the client also listens for +switch-master on the sentinels
    // and moves at once, instead of when the demoted master closes its connections.
    it.each([
      ['', {}],
      [' (failoverDetector)', { failoverDetector: true }],
    ])(
      'SENTINEL FAILOVER under traffic%s: no call rejects, then writes land on the new master',
      async (_label, clientOptions) => {
        const namespace = uniqueNamespace('sentinel-fo');
        const app = await start({
          namespace,
          redis: { sentinels: group.sentinels, name, ...clientOptions },
        });
        await writesLandOn(app.cache, await group.masterPort(), namespace);
        const traffic = new Traffic([app]);
        try {
          await traffic.settled();
          const newMaster = await group.failover();
          await writesLandOn(app.cache, newMaster, namespace);
          await traffic.settled();
        } finally {
          await traffic.stop();
        }
        expect(traffic.rejections).toEqual([]);
        expect(traffic.rounds).toBeGreaterThan(0);
      },
      FAILOVER_TEST_MS,
    );

    it(
      'the master killed under traffic: no call rejects, then writes land on the promoted replica',
      async () => {
        const namespace = uniqueNamespace('sentinel-kill');
        const app = await start({ namespace });
        await writesLandOn(app.cache, await group.masterPort(), namespace);
        const traffic = new Traffic([app]);
        try {
          await traffic.settled();
          const newMaster = await group.killMaster();
          await writesLandOn(app.cache, newMaster, namespace);
          await traffic.settled();
        } finally {
          await traffic.stop();
        }
        expect(traffic.rejections).toEqual([]);
        // The outage was seen and logged, not silent.
        expect(app.logger.warnings().length).toBeGreaterThan(0);
      },
      FAILOVER_TEST_MS,
    );

    it(
      'with failover: the fallback serves during the switch, the circuit closes on the new master',
      async () => {
        const namespace = uniqueNamespace('sentinel-fallback');
        const app = await start({
          namespace,
          failover: { failureThreshold: 2, cooldown: 0.3, timeout: 0.5 },
        });
        const adapter = app.app.get<FailoverCacheAdapter>(CacheAdapter);
        expect(adapter).toBeInstanceOf(FailoverCacheAdapter);
        await writesLandOn(app.cache, await group.masterPort(), namespace);
        const traffic = new Traffic([app]);
        try {
          await traffic.settled();
          const newMaster = await group.killMaster();
          await writesLandOn(app.cache, newMaster, namespace);
          await within('the circuit closed', () => Promise.resolve(adapter.state === 'closed'));
          await traffic.settled();
          await group.restoreReplica();
          const next = await group.failover();
          await writesLandOn(app.cache, next, namespace);
          // Traffic still in flight from the switch may fail once more and open the circuit
          // again for a cool-down: it must close again (bounded), not stay open.
          await within('the circuit closed again', () =>
            Promise.resolve(adapter.state === 'closed'),
          );
          await traffic.settled();
        } finally {
          await traffic.stop();
        }
        expect(traffic.rejections).toEqual([]);
      },
      FAILOVER_TEST_MS,
    );
  });

  describe('two tiers (l1 + bus)', () => {
    /** The bus channel of a namespace (L1-SPEC: `cachekit:bus:<namespace>`). */
    const channel = (namespace: string) => `cachekit:bus:${namespace}`;

    const busState = (app: Booted) => app.app.get(CacheStack).busState;
    /** Both buses subscribed (the lead's test hook, `CacheStack.busState`). */
    const bothLive = (a: Booted, b: Booted) =>
      within('both buses live', () =>
        Promise.resolve(busState(a) === 'live' && busState(b) === 'live'),
      );

    const twoApps = async (namespace: string) => {
      const a = await start({ namespace, l1: { ttl: 60 } });
      const b = await start({ namespace, l1: { ttl: 60 } });
      await bothLive(a, b);
      return { a, b };
    };

    /** Subscribers of the namespace's bus channel connected to the server on `port`. */
    const subscribersOn = async (port: number, namespace: string): Promise<number> => {
      const raw = direct(port);
      try {
        const reply = (await raw.call('PUBSUB', 'NUMSUB', channel(namespace))) as [string, number];
        return Number(reply[1]);
      } finally {
        raw.disconnect();
      }
    };

    /**
     * Proves `reader` answers `key` from its L1: with the value in Redis, it reads `expected`;
     * then the value is changed in Redis behind the cache's back (no bus message) and it still
     * reads `expected`. Retried until the bus is live (while deaf, L1 is not read).
     */
    const heldInL1 = async (
      reader: Booted,
      key: string,
      expected: string,
      namespace: string,
    ): Promise<void> => {
      const raw = direct(await group.masterPort());
      try {
        await within(
          `${key} served from the L1`,
          async () => {
            await raw.set(`${namespace}:${key}`, JSON.stringify(expected), 'PX', 60_000);
            if ((await reader.cache.get(key)) !== expected) return false;
            await raw.set(`${namespace}:${key}`, JSON.stringify('behind-the-back'), 'PX', 60_000);
            return (await reader.cache.get(key)) === expected;
          },
          100,
        );
      } finally {
        raw.disconnect();
      }
    };

    /** B holds `key` in its L1, A writes a new value: B eventually reads A's value. */
    const writeInvalidatesOther = async (a: Booted, b: Booted, key: string, ns: string) => {
      await heldInL1(b, key, 'old', ns);
      await a.cache.set(key, 'new', 60);
      expect(await a.cache.get(key)).toBe('new');
      // Without the bus, B would serve 'old' from its L1 for its whole L1 TTL (60 s).
      await within(
        `the other app reads the new value of ${key}`,
        async () => (await b.cache.get(key)) === 'new',
      );
    };

    it('a write in app A drops the key from app B’s L1 (delete and clear too)', async () => {
      const namespace = uniqueNamespace('sentinel-l1');
      const { a, b } = await twoApps(namespace);
      await writeInvalidatesOther(a, b, 'item:1', namespace);

      await heldInL1(b, 'item:2', 'old', namespace);
      await a.cache.delete('item:2');
      await within(
        'delete reaches the other L1',
        async () => (await b.cache.get('item:2')) === undefined,
      );

      await heldInL1(b, 'item:3', 'old', namespace);
      await a.cache.clear();
      await within(
        'clear reaches the other L1',
        async () => (await b.cache.get('item:3')) === undefined,
      );
      expect(await subscribersOn(await group.masterPort(), namespace)).toBe(2);
    });

    it(
      'SENTINEL FAILOVER under traffic: no call rejects; the bus follows the new master',
      async () => {
        const namespace = uniqueNamespace('sentinel-l1-fo');
        const { a, b } = await twoApps(namespace);
        await writeInvalidatesOther(a, b, 'before', namespace);
        const traffic = new Traffic([a, b]);
        try {
          await traffic.settled();
          const newMaster = await group.failover();
          await writesLandOn(a.cache, newMaster, namespace, 'probe-a');
          await writesLandOn(b.cache, newMaster, namespace, 'probe-b');
          // Both subscribers moved to the new master (the demoted one's clients were closed).
          await within(
            'both bus subscribers on the new master',
            async () => (await subscribersOn(newMaster, namespace)) === 2,
          );
          await bothLive(a, b);
          await traffic.settled();
          await writeInvalidatesOther(a, b, 'after', namespace);
          await writeInvalidatesOther(b, a, 'after-reverse', namespace);
        } finally {
          await traffic.stop();
        }
        expect(traffic.rejections).toEqual([]);
      },
      FAILOVER_TEST_MS,
    );

    it(
      'the master killed under traffic: B’s subscriber reconnects to the promoted replica',
      async () => {
        const namespace = uniqueNamespace('sentinel-l1-kill');
        const { a, b } = await twoApps(namespace);
        await writeInvalidatesOther(a, b, 'before', namespace);
        const traffic = new Traffic([a, b]);
        try {
          await traffic.settled();
          const newMaster = await group.killMaster();
          await writesLandOn(a.cache, newMaster, namespace, 'probe-a');
          await writesLandOn(b.cache, newMaster, namespace, 'probe-b');
          await within(
            'both bus subscribers on the new master',
            async () => (await subscribersOn(newMaster, namespace)) === 2,
          );
          await bothLive(a, b);
          await traffic.settled();
          // The old master is gone: only a subscription on the new master can carry this.
          await writeInvalidatesOther(a, b, 'after', namespace);
        } finally {
          await traffic.stop();
        }
        expect(traffic.rejections).toEqual([]);
      },
      FAILOVER_TEST_MS,
    );
  });
});
