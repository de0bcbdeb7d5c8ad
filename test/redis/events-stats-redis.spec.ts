import { Redis } from 'ioredis';
import {
  CacheAdapter,
  type CacheEventMap,
  type CacheEventName,
  type CacheModuleOptions,
  type CacheService,
  type FailoverCacheAdapter,
} from '../../lib';
import { CACHE_EVENT_NAMES } from '../../lib/core/cache-events';
import { CacheStack } from '../../lib/core/cache-stack';
import { deferred } from '../support/deferred';
import { eventually } from '../support/eventually';
import { boot, redisOf, waitForState, type BootedApp } from '../support/failover';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 15, items 1 and 2 on a real redis-server: events and counters of a plain Redis cache,
 * of failover (circuit, errors, hits from the in-process fallback), of two tiers with the bus
 * (two Nest applications in this process sharing the Redis and namespace), of the fleet-wide
 * lock and of grace.
 */

type Recorded = { [E in CacheEventName]: { name: E; event: CacheEventMap[E] } }[CacheEventName];

function record(cache: CacheService, only?: readonly CacheEventName[]): Recorded[] {
  const seen: Recorded[] = [];
  for (const name of only ?? CACHE_EVENT_NAMES) {
    cache.events.on(name, (event: CacheEventMap[typeof name]) => {
      seen.push({ name, event } as Recorded);
    });
  }
  return seen;
}

const named = (seen: Recorded[], name: CacheEventName) =>
  seen.filter((r) => r.name === name).map((r) => r.event as unknown as Record<string, unknown>);

describe('events and stats on a real redis-server', () => {
  let server: RedisServer;
  let raw: Redis;
  let namespace: string;
  const apps: BootedApp[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    raw.disconnect();
    await server.stop();
  });
  beforeEach(() => {
    namespace = uniqueNamespace('evts');
  });
  afterEach(async () => {
    if (!server.running) await server.restart();
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
  });

  const instance = async (
    options: CacheModuleOptions = {},
    redis: Record<string, unknown> = {},
  ) => {
    const booted = await boot({
      provider: 'redis',
      redis: { url: server.url, ...redis },
      namespace,
      jitter: 0,
      ...options,
    });
    apps.push(booted);
    const stack = booted.app.get(CacheStack);
    if (options.l1 && options.bus !== false) {
      await eventually(async () => stack.busState === 'live', 5000, 10);
    }
    return { ...booted, stack };
  };

  describe('plain redis', () => {
    it('hits are of tier l2; no l1 tier; no circuit', async () => {
      const { cache } = await instance();
      const seen = record(cache, ['hit', 'miss', 'set']);
      expect(await cache.get('k')).toBeUndefined();
      await cache.set('k', 'v', 60);
      expect(await cache.get('k')).toBe('v');
      expect(await cache.has('k')).toBe(true);
      expect(await cache.wrap('k', () => 'other', 60)).toBe('v');
      expect(await cache.wrap('w', () => 'loaded', 60)).toBe('loaded');
      await eventually(async () => cache.stats().sets === 2, 5000, 5);
      expect(await cache.wrap('w', () => 'other', 60)).toBe('loaded');
      expect(seen.map((r) => ({ name: r.name, ...r.event }))).toEqual([
        { name: 'miss', cache: 'default', key: 'k', operation: 'get', shared: false },
        { name: 'set', cache: 'default', key: 'k', ttl: 60, source: 'set' },
        { name: 'hit', cache: 'default', key: 'k', operation: 'get', tier: 'l2' },
        { name: 'hit', cache: 'default', key: 'k', operation: 'has', tier: 'l2' },
        { name: 'hit', cache: 'default', key: 'k', operation: 'wrap', tier: 'l2' },
        { name: 'miss', cache: 'default', key: 'w', operation: 'wrap', shared: false },
        { name: 'set', cache: 'default', key: 'w', ttl: 60, source: 'load' },
        { name: 'hit', cache: 'default', key: 'w', operation: 'wrap', tier: 'l2' },
      ]);
      const stats = cache.stats();
      expect(stats).toMatchObject({ hits: 4, misses: 2, sets: 2, errors: 0, namespace });
      expect(stats.tiers).toEqual({
        l2: { hits: 4, circuit: undefined, pendingReconciliation: 0 },
      });
      expect(stats.bus.state).toBe('off');
    });

    it('Redis down: each failed command is one error event and one count; reads miss', async () => {
      const { cache, stack } = await instance();
      await cache.set('k', 'v', 60);
      const seen = record(cache, ['error', 'miss', 'hit', 'delete']);
      await server.kill();
      await eventually(
        async () => {
          const client = (stack.tiers.remote as unknown as { client: Redis }).client;
          return client.status !== 'ready';
        },
        5000,
        10,
      );
      expect(await cache.get('k')).toBeUndefined();
      await cache.delete('k');
      const errors = named(seen, 'error');
      expect(errors.map((e) => [e.operation, e.key])).toEqual([
        ['GET', 'k'],
        ['DELETE', 'k'],
      ]);
      expect(named(seen, 'miss')).toHaveLength(1);
      expect(named(seen, 'delete')).toHaveLength(0);
      expect(cache.stats()).toMatchObject({ errors: 2, misses: 1, hits: 0, deletes: 0, sets: 1 });
    });
  });

  describe('failover', () => {
    it('kill: circuit closed → open, errors counted, hits from the fallback are tier l1; restart: closed', async () => {
      const { cache, app } = await instance({
        failover: { failureThreshold: 1, cooldown: 0.3, timeout: 0.5 },
      });
      const adapter = app.get<FailoverCacheAdapter>(CacheAdapter);
      await cache.set('k', 'v', 60);
      expect(await cache.get('k')).toBe('v');
      expect(cache.stats().tiers.l2).toEqual({
        hits: 1,
        circuit: 'closed',
        pendingReconciliation: 0,
      });
      expect(cache.stats().tiers.l1).toMatchObject({ entries: 1 });
      const seen = record(cache, ['circuit', 'error', 'hit', 'miss']);
      await server.kill();
      await eventually(async () => redisOf(adapter).client.status !== 'ready', 5000, 10);
      // Down: the fallback answers, and says so.
      expect(await cache.get('k')).toBe('v');
      await waitForState(adapter, 'open');
      expect(await cache.get('k')).toBe('v');
      await cache.set('during', 1, 60);
      const circuit = named(seen, 'circuit');
      expect(circuit[0]).toMatchObject({ cache: 'default', from: 'closed', to: 'open' });
      expect(typeof circuit[0]?.reason).toBe('string');
      expect(named(seen, 'hit')).toEqual([
        { cache: 'default', key: 'k', operation: 'get', tier: 'l1' },
        { cache: 'default', key: 'k', operation: 'get', tier: 'l1' },
      ]);
      const errors = named(seen, 'error');
      expect(errors.length).toBeGreaterThanOrEqual(1);
      const stats = cache.stats();
      expect(stats.errors).toBe(errors.length);
      expect(stats.tiers.l2).toMatchObject({ hits: 1, circuit: 'open' });
      expect(stats.tiers.l2?.pendingReconciliation).toBeGreaterThanOrEqual(1);
      expect(stats.tiers.l1?.hits).toBe(2);
      expect(stats).toMatchObject({ hits: 3, misses: 0 });
      await server.restart();
      await waitForState(adapter, 'closed', 15_000);
      const last = named(seen, 'circuit').at(-1);
      expect(last).toMatchObject({ to: 'closed' });
      expect(cache.stats().tiers.l2).toMatchObject({ circuit: 'closed', pendingReconciliation: 0 });
      // Each transition is reported from the state the previous one reached.
      const transitions = named(seen, 'circuit');
      for (let i = 1; i < transitions.length; i++) {
        expect(transitions[i]?.from).toBe(transitions[i - 1]?.to);
      }
    });
  });

  describe('two tiers and the bus: two applications on one Redis and namespace', () => {
    it('bus.message out on one, in on the other; l2 then l1 hits; stats.bus counts', async () => {
      const a = await instance({ l1: true });
      const b = await instance({ l1: true });
      const seenA = record(a.cache, ['bus.message', 'hit', 'set']);
      const seenB = record(b.cache, ['bus.message', 'hit']);
      await a.cache.set('k', 'v1', 60);
      // b hears it first (its L1 has nothing to drop), so what follows does not race it.
      await eventually(async () => named(seenB, 'bus.message').length === 1, 5000, 5);
      expect(await b.cache.get('k')).toBe('v1'); // from Redis
      expect(await b.cache.get('k')).toBe('v1'); // from its L1
      expect(await b.cache.wrap('k', () => 'x', 60)).toBe('v1'); // L1
      await a.cache.set('k', 'v2', 60);
      await eventually(async () => named(seenB, 'bus.message').length === 2, 5000, 5);
      const message = { cache: 'default', keys: ['k'], prefixes: [], tags: [], clear: false };
      expect(named(seenA, 'bus.message')).toEqual([
        { ...message, direction: 'out' },
        { ...message, direction: 'out' },
      ]);
      expect(named(seenB, 'bus.message')).toEqual([
        { ...message, direction: 'in' },
        { ...message, direction: 'in' },
      ]);
      expect(await b.cache.get('k')).toBe('v2'); // dropped from L1: Redis again
      expect(named(seenB, 'hit')).toEqual([
        { cache: 'default', key: 'k', operation: 'get', tier: 'l2' },
        { cache: 'default', key: 'k', operation: 'get', tier: 'l1' },
        { cache: 'default', key: 'k', operation: 'wrap', tier: 'l1' },
        { cache: 'default', key: 'k', operation: 'get', tier: 'l2' },
      ]);
      const statsB = b.cache.stats();
      expect(statsB).toMatchObject({ hits: 4, misses: 0, sets: 0 });
      expect(statsB.tiers.l1?.hits).toBe(2);
      expect(statsB.tiers.l2?.hits).toBe(2);
      expect(statsB.bus).toEqual({
        state: 'live',
        connected: true,
        published: 0,
        received: 2,
        gaps: 0,
        buffered: 0,
      });
      const statsA = a.cache.stats();
      expect(statsA.bus).toMatchObject({ state: 'live', published: 2, received: 0, gaps: 0 });
      expect(statsA).toMatchObject({ sets: 2, hits: 0 });
      expect(statsA.tiers.l1?.entries).toBe(1);
    });

    it('deletes, prefixes and clear are carried on the bus events', async () => {
      const a = await instance({ l1: true });
      const b = await instance({ l1: true });
      const seenB = record(b.cache, ['bus.message']);
      await a.cache.delete('k');
      await eventually(async () => named(seenB, 'bus.message').length === 1, 5000, 5);
      await a.cache.deleteByPrefix('p:');
      await eventually(async () => named(seenB, 'bus.message').length === 2, 5000, 5);
      await a.cache.clear();
      await eventually(async () => named(seenB, 'bus.message').length === 3, 5000, 5);
      expect(named(seenB, 'bus.message')).toEqual([
        { cache: 'default', direction: 'in', keys: ['k'], prefixes: [], tags: [], clear: false },
        { cache: 'default', direction: 'in', keys: [], prefixes: ['p:'], tags: [], clear: false },
        { cache: 'default', direction: 'in', keys: [], prefixes: [], tags: [], clear: true },
      ]);
      expect(b.cache.stats().bus.received).toBe(3);
      expect(a.cache.stats().bus.published).toBe(3);
    });

    it('a killed subscriber link: bus.state deaf then live, one bus.gap, stats.bus.gaps 1', async () => {
      const a = await instance({ l1: true });
      const b = await instance({ l1: true }, { retryStrategy: () => 500 });
      const seen = record(b.cache, ['bus.state', 'bus.gap']);
      await a.cache.set('k', 'v1', 60);
      await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await eventually(async () => b.stack.busState === 'deaf', 5000, 5);
      expect(b.cache.stats().bus).toMatchObject({ state: 'deaf', connected: false });
      await eventually(async () => b.stack.busState === 'live', 10_000, 10);
      const states = named(seen, 'bus.state');
      expect(states.map((s) => s.state)).toEqual(['deaf', 'live']);
      for (const s of states) {
        expect(s.cache).toBe('default');
        expect(typeof s.reason).toBe('string');
      }
      const gaps = named(seen, 'bus.gap');
      expect(gaps).toHaveLength(1);
      expect(gaps[0]?.durationMs).toEqual(expect.any(Number));
      expect(gaps[0]?.durationMs as number).toBeGreaterThanOrEqual(0);
      expect(b.cache.stats().bus).toMatchObject({ state: 'live', connected: true, gaps: 1 });
    });

    it('a frozen server: the heartbeat reports deaf, then a gap and live once thawed', async () => {
      const b = await instance({ l1: true, bus: { heartbeat: 0.2 } });
      const seen = record(b.cache, ['bus.state', 'bus.gap']);
      server.freeze();
      try {
        await eventually(async () => b.stack.busState === 'deaf', 5000, 10);
      } finally {
        server.thaw();
      }
      await eventually(async () => b.stack.busState === 'live', 10_000, 10);
      expect(named(seen, 'bus.state').map((s) => s.state)).toEqual(['deaf', 'live']);
      expect(named(seen, 'bus.gap')).toHaveLength(1);
      expect(b.cache.stats().bus.gaps).toBe(1);
    });

    it('a message that could not be sent is buffered, not counted as published', async () => {
      const a = await instance(
        { l1: true, failover: { failureThreshold: 1, cooldown: 0.3, timeout: 0.5 } },
        { retryStrategy: () => 300 },
      );
      await server.kill();
      await eventually(async () => a.stack.busState === 'deaf', 5000, 10);
      await a.cache.set('k', 1, 60);
      // The PUBLISH is sent on the next tick and fails a moment later: then it is buffered.
      await eventually(async () => a.cache.stats().bus.buffered >= 1, 5000, 10);
      const stats = a.cache.stats();
      expect(stats.bus.published).toBe(0);
      expect(stats.tiers.l2?.circuit).not.toBe('closed');
      await server.restart();
      await eventually(async () => a.stack.busState === 'live', 15_000, 10);
      await eventually(async () => a.cache.stats().bus.buffered === 0, 10_000, 10);
    });
  });

  describe('lock: true across two applications', () => {
    it('the first acquires and loads; the second waits and finds its value', async () => {
      const a = await instance({ lock: { ttl: 10, wait: 10 } });
      const b = await instance({ lock: { ttl: 10, wait: 10 } });
      const seenA = record(a.cache, ['lock.wait', 'hit', 'miss', 'loader.done']);
      const seenB = record(b.cache, ['lock.wait', 'hit', 'miss', 'loader.done']);
      const gate = deferred<string>();
      let runsB = 0;
      const first = a.cache.wrap('k', () => gate.promise, 60);
      await eventually(async () => named(seenA, 'lock.wait').length === 1, 5000, 5);
      const second = b.cache.wrap(
        'k',
        () => {
          runsB++;
          return 'from b';
        },
        60,
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      gate.resolve('from a');
      expect(await Promise.all([first, second])).toEqual(['from a', 'from a']);
      expect(runsB).toBe(0);
      const waitA = named(seenA, 'lock.wait');
      const waitB = named(seenB, 'lock.wait');
      expect(waitA).toEqual([
        { cache: 'default', key: 'k', waitedMs: expect.any(Number), outcome: 'acquired' },
      ]);
      expect(waitB).toEqual([
        { cache: 'default', key: 'k', waitedMs: expect.any(Number), outcome: 'found' },
      ]);
      expect(a.cache.stats().lock).toEqual({
        waits: 1,
        acquired: 1,
        found: 0,
        timeouts: 0,
        unavailable: 0,
      });
      expect(b.cache.stats().lock).toEqual({
        waits: 1,
        acquired: 0,
        found: 1,
        timeouts: 0,
        unavailable: 0,
      });
      expect(a.cache.stats()).toMatchObject({ misses: 1, hits: 0 });
      expect(a.cache.stats().loader.runs).toBe(1);
      // b's caller got the value another instance stored: a hit, and no loader of its own.
      expect(b.cache.stats()).toMatchObject({ hits: 1, misses: 0 });
      expect(b.cache.stats().loader.runs).toBe(0);
      expect(named(seenB, 'hit')).toEqual([
        { cache: 'default', key: 'k', operation: 'wrap', tier: 'l2' },
      ]);
      expect(named(seenB, 'loader.done')).toEqual([]);
    });

    it('lock.wait passes: outcome timeout, counted; the waiter loads itself', async () => {
      const a = await instance({ lock: { ttl: 10, wait: 10 } });
      const b = await instance({ lock: { ttl: 10, wait: 0.1 } });
      const seenB = record(b.cache, ['lock.wait']);
      const gate = deferred<string>();
      const first = a.cache.wrap('k', () => gate.promise, 60);
      await eventually(async () => a.cache.stats().lock.acquired === 1, 5000, 5);
      expect(await b.cache.wrap('k', () => 'from b', 60)).toBe('from b');
      gate.resolve('from a');
      await first;
      expect(named(seenB, 'lock.wait').map((e) => e.outcome)).toEqual(['timeout']);
      expect(b.cache.stats().lock).toMatchObject({ waits: 1, timeouts: 1, acquired: 0 });
      expect(b.cache.stats().loader.runs).toBe(1);
    });

    it('Redis down: outcome unavailable (plain redis)', async () => {
      const a = await instance({ lock: true });
      const seen = record(a.cache, ['lock.wait']);
      await server.kill();
      await eventually(
        async () => {
          const client = (a.stack.tiers.remote as unknown as { client: Redis }).client;
          return client.status !== 'ready';
        },
        5000,
        10,
      );
      // The read fails first: that caller loads without the lock (no event expected for it).
      expect(await a.cache.wrap('k', () => 'v', 60)).toBe('v');
      const outcomes = named(seen, 'lock.wait').map((e) => e.outcome);
      expect(outcomes.every((o) => o === 'unavailable')).toBe(true);
      expect(a.cache.stats().lock.unavailable).toBe(outcomes.length);
      expect(a.cache.stats().lock.waits).toBe(outcomes.length);
    });
  });

  describe('grace on Redis: stale answers of tier l2', () => {
    const staleEntry = async (cache: CacheService) => {
      await cache.set('k', 'old', { ttl: 60, grace: 600 });
      await cache.expire('k');
    };

    it('reason error, then backoff', async () => {
      const { cache } = await instance({ graceBackoff: 60 });
      await staleEntry(cache);
      const seen = record(cache, ['stale', 'loader.error', 'miss', 'hit']);
      expect(await cache.wrap('k', () => Promise.reject(new Error('down')), 60)).toBe('old');
      expect(await cache.wrap('k', () => 'not run', 60)).toBe('old');
      expect(named(seen, 'stale')).toEqual([
        { cache: 'default', key: 'k', tier: 'l2', reason: 'error' },
        { cache: 'default', key: 'k', tier: 'l2', reason: 'backoff' },
      ]);
      expect(named(seen, 'loader.error')).toMatchObject([{ stale: true, background: false }]);
      expect(named(seen, 'miss')).toEqual([]);
      expect(named(seen, 'hit')).toEqual([]);
      const stats = cache.stats();
      expect(stats).toMatchObject({ stale: 2, hits: 0, misses: 0 });
      expect(stats.tiers.l2?.hits).toBe(2);
    });

    it('reason timeout (soft); the late value is stored', async () => {
      const { cache } = await instance();
      await staleEntry(cache);
      const seen = record(cache, ['stale', 'loader.timeout', 'set']);
      const gate = deferred<string>();
      expect(await cache.wrap('k', () => gate.promise, { ttl: 60, timeouts: { soft: 0.05 } })).toBe(
        'old',
      );
      expect(named(seen, 'stale')).toEqual([
        { cache: 'default', key: 'k', tier: 'l2', reason: 'timeout' },
      ]);
      expect(named(seen, 'loader.timeout')).toEqual([
        { cache: 'default', key: 'k', timeout: 'soft', seconds: 0.05, stale: true },
      ]);
      gate.resolve('new');
      await eventually(async () => named(seen, 'set').length === 1, 5000, 5);
      expect(named(seen, 'set')).toEqual([{ cache: 'default', key: 'k', ttl: 60, source: 'load' }]);
      expect(await cache.get('k')).toBe('new');
      expect(cache.stats()).toMatchObject({ stale: 1, hits: 1, misses: 0 });
      expect(cache.stats().loader).toMatchObject({ timeouts: 1, runs: 1, inFlight: 0 });
    });

    it('with l1: a stale value held in the L1 is tier l1', async () => {
      const { cache } = await instance({ l1: true, graceBackoff: 60 });
      await staleEntry(cache);
      const seen = record(cache, ['stale']);
      expect(await cache.wrap('k', () => Promise.reject(new Error('down')), 60)).toBe('old');
      expect(await cache.wrap('k', () => 'not run', 60)).toBe('old');
      const tiers = named(seen, 'stale').map((e) => [e.reason, e.tier]);
      expect(tiers[0]?.[0]).toBe('error');
      expect(tiers[1]?.[0]).toBe('backoff');
      const stats = cache.stats();
      expect(stats.stale).toBe(2);
      expect((stats.tiers.l1?.hits ?? 0) + (stats.tiers.l2?.hits ?? 0)).toBe(2);
    });
  });
});
