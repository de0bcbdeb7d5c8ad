import { Redis } from 'ioredis';
import {
  CacheAdapter,
  FailoverCacheAdapter,
  MemoryCacheAdapter,
  type CacheModuleOptions,
  type RedisCacheAdapter,
} from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { boot, redisOf, waitForState, type BootedApp } from '../support/failover';
import { eventually } from '../support/eventually';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Two tiers on one real redis-server, several Nest applications in this process standing for
 * instances of one service: reads L1 → L2, writes L2 → L1 → bus, and what every other instance
 * sees. An L1 copy is told apart from Redis by changing Redis behind the cache's back (a raw
 * SET, which publishes nothing): an instance still answering the old value answers from its L1.
 */
describe('Two tiers (l1 + bus) on a real redis-server', () => {
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
    namespace = uniqueNamespace('tiers');
  });
  afterEach(async () => {
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
      l1: true,
      ...options,
    });
    apps.push(booted);
    const stack = booted.app.get(CacheStack);
    if (options.bus !== false) await eventually(async () => stack.busState === 'live', 5000, 10);
    return { ...booted, stack };
  };
  /** Changes Redis without the cache (no bus message). */
  const behindTheBack = (key: string, value: unknown) =>
    raw.set(`${namespace}:${key}`, JSON.stringify(value));
  const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

  describe('reads and writes', () => {
    it('fills the L1 from an L2 hit and answers from it afterwards', async () => {
      const a = await instance();
      await raw.set(`${namespace}:user:1`, JSON.stringify({ name: 'Ada' }));
      expect(await a.cache.get('user:1')).toEqual({ name: 'Ada' });
      await behindTheBack('user:1', { name: 'changed in Redis' });
      expect(await a.cache.get('user:1')).toEqual({ name: 'Ada' });
      expect(a.stack.peek('user:1')).toEqual({ name: 'Ada' });
    });

    it('writes L2 then L1: Redis holds the value and the L1 answers it', async () => {
      const a = await instance();
      await a.cache.set('k', 'v1', 60);
      expect(JSON.parse((await raw.get(`${namespace}:k`)) as string)).toBe('v1');
      const pttl = await raw.pttl(`${namespace}:k`);
      expect(pttl).toBeGreaterThan(59_000);
      await behindTheBack('k', 'changed in Redis');
      expect(await a.cache.get('k')).toBe('v1');
    });

    it('keeps an L1 copy no longer than the shared entry has left', async () => {
      const a = await instance();
      await raw.set(`${namespace}:short`, JSON.stringify('soon gone'), 'PX', 300);
      expect(await a.cache.get('short')).toBe('soon gone');
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await a.cache.get('short')).toBeUndefined();
      await a.cache.set('own', 'short too', 0.3);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(a.stack.peek('own')).toBeUndefined();
      expect(await a.cache.get('own')).toBeUndefined();
    });

    it('a read in flight during a write never leaves the older value in the L1', async () => {
      const a = await instance();
      for (let round = 0; round < 40; round++) {
        const key = `rw:${round}`;
        await raw.set(`${namespace}:${key}`, JSON.stringify('old'));
        const reading = a.cache.get(key);
        const writing = a.cache.set(key, 'new');
        await Promise.all([reading, writing]);
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(a.stack.peek(key) ?? 'not in L1').not.toBe('old');
        expect(await a.cache.get(key)).toBe('new');
      }
    });

    it('bounds staleness by l1.ttl even when no invalidation arrives', async () => {
      const a = await instance({ l1: { ttl: 0.3 } });
      await a.cache.set('k', 'old', 60);
      await behindTheBack('k', 'new');
      expect(await a.cache.get('k')).toBe('old');
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await a.cache.get('k')).toBe('new');
    });

    it('answers wrap hits from the L1 and loads once per key', async () => {
      const a = await instance();
      let calls = 0;
      const loader = () => ++calls;
      expect(await a.cache.wrap('w', loader)).toBe(1);
      await settle();
      await behindTheBack('w', 'changed in Redis');
      expect(await a.cache.wrap('w', loader)).toBe(1);
      expect(calls).toBe(1);
    });
  });

  describe('coherence across instances', () => {
    it('a write on one instance drops the key from the others’ L1', async () => {
      const a = await instance();
      const b = await instance();
      const c = await instance();
      await a.cache.set('k', 'v1');
      expect(await b.cache.get('k')).toBe('v1');
      expect(await c.cache.get('k')).toBe('v1');
      await a.cache.set('k', 'v2');
      await eventually(async () => (await b.cache.get('k')) === 'v2', 2000, 5);
      await eventually(async () => (await c.cache.get('k')) === 'v2', 2000, 5);
      expect(await a.cache.get('k')).toBe('v2');
    });

    it.each([
      ['delete', (cache: BootedApp['cache']) => cache.delete('user:1')],
      ['deleteByPrefix', (cache: BootedApp['cache']) => cache.deleteByPrefix('user:')],
      ['clear', (cache: BootedApp['cache']) => cache.clear()],
    ])('%s on one instance drops the entries from the others’ L1', async (_, change) => {
      const a = await instance();
      const b = await instance();
      await a.cache.set('user:1', 'cached');
      await a.cache.set('other', 'kept');
      expect(await b.cache.get('user:1')).toBe('cached');
      await change(a.cache);
      await eventually(async () => (await b.cache.get('user:1')) === undefined, 2000, 5);
      expect(await a.cache.get('user:1')).toBeUndefined();
    });

    it('an invalidation rule (stack.invalidate) reaches the others', async () => {
      const a = await instance();
      const b = await instance();
      await a.cache.set('orders:1', 1);
      await a.cache.set('users:1', 1);
      expect(await b.cache.get('orders:1')).toBe(1);
      expect(await b.cache.get('users:1')).toBe(1);
      await a.stack.invalidate({ keys: ['orders:1'], prefixes: ['users:'] });
      await eventually(
        async () =>
          (await b.cache.get('orders:1')) === undefined &&
          (await b.cache.get('users:1')) === undefined,
        2000,
        5,
      );
    });

    it('an instance ignores its own messages (its fresh L1 copy stays)', async () => {
      const a = await instance();
      await instance();
      await a.cache.set('k', 'mine');
      await settle();
      await behindTheBack('k', 'changed in Redis');
      expect(await a.cache.get('k')).toBe('mine');
    });

    it('keys that differ only in unicode or glob characters stay apart on the bus', async () => {
      const a = await instance();
      const b = await instance();
      const keys = ['u:\uD800', 'u:\uDC00', 'u:\uFFFD', 'g:*', 'g:a', 'g:[a]'];
      for (const key of keys) await a.cache.set(key, key);
      for (const key of keys) expect(await b.cache.get(key)).toBe(key);
      await a.cache.set('u:\uD800', 'changed');
      await a.cache.deleteByPrefix('g:*');
      await eventually(async () => (await b.cache.get('u:\uD800')) === 'changed', 2000, 5);
      await eventually(async () => (await b.cache.get('g:*')) === undefined, 2000, 5);
      for (const key of ['u:\uDC00', 'u:\uFFFD', 'g:a', 'g:[a]']) {
        await behindTheBack(key, 'changed in Redis');
        expect(await b.cache.get(key)).toBe(key);
      }
    });

    it('a value loaded before another instance’s write is never written back', async () => {
      const a = await instance();
      const b = await instance();
      let release!: (value: string) => void;
      const loading = b.cache.wrap('k', () => new Promise<string>((r) => (release = r)));
      await eventually(async () => release !== undefined, 1000, 5);
      await a.cache.set('k', 'new');
      // The loader read its source before the write and returns what it read.
      await eventually(async () => b.stack.loadsInFlight === 0, 2000, 5);
      release('old');
      expect(await loading).toBe('old');
      await settle();
      expect(JSON.parse((await raw.get(`${namespace}:k`)) as string)).toBe('new');
      expect(await b.cache.get('k')).toBe('new');
      expect(await a.cache.get('k')).toBe('new');
    });

    it('a load this instance invalidated itself is not undone by another instance’s later write', async () => {
      const a = await instance();
      const b = await instance();
      expect(await a.cache.wrap('k', () => 'loaded by a')).toBe('loaded by a');
      await eventually(async () => (await raw.get(`${namespace}:k`)) !== null, 1000, 5);
      await a.cache.delete('k');
      await b.cache.set('k', 'written by b');
      await settle();
      expect(JSON.parse((await raw.get(`${namespace}:k`)) as string)).toBe('written by b');
      expect(await a.cache.get('k')).toBe('written by b');
    });

    it('a load whose write races another instance’s write is deleted again, never left old', async () => {
      const a = await instance();
      const b = await instance();
      // Many rounds: the two writes reach Redis in either order; the old value must never stay.
      for (let round = 0; round < 30; round++) {
        const key = `race:${round}`;
        const loading = b.cache.wrap(key, () => 'old');
        const writing = a.cache.set(key, 'new');
        await Promise.all([loading, writing]);
        await settle();
        const stored = await raw.get(`${namespace}:${key}`);
        expect(stored === null ? null : JSON.parse(stored)).not.toBe('old');
        expect(await b.cache.get(key)).not.toBe('old');
      }
    });
  });

  describe('gaps: a bus that was deaf may have missed messages', () => {
    const subscriberIds = async () => {
      const list = (await raw.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
      return list
        .split('\n')
        .filter(Boolean)
        .map((line) => /id=(\d+)/.exec(line)?.[1] as string);
    };

    it('CLIENT KILL TYPE pubsub: the L1 is bypassed while deaf and dropped on reconnect', async () => {
      const a = await instance();
      // b reconnects slowly, so a's write lands while b cannot hear it.
      const b = await instance({}, { retryStrategy: () => 1500 });
      await a.cache.set('k', 'v1');
      expect(await b.cache.get('k')).toBe('v1');
      expect((await subscriberIds()).length).toBe(2);
      await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await eventually(async () => b.stack.busState === 'deaf', 2000, 5);
      await a.cache.set('k', 'v2');
      // Deaf: b reads Redis, not its L1.
      expect(await b.cache.get('k')).toBe('v2');
      await behindTheBack('k', 'v3');
      expect(await b.cache.get('k')).toBe('v3');
      await eventually(async () => b.stack.busState === 'live', 5000, 10);
      expect(await b.cache.get('k')).toBe('v3');
    });

    it('entries cached before the gap are dropped when the bus is back', async () => {
      const a = await instance();
      const b = await instance({}, { retryStrategy: () => 1500 });
      await a.cache.set('k', 'v1');
      expect(await b.cache.get('k')).toBe('v1');
      await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await eventually(async () => b.stack.busState === 'deaf', 2000, 5);
      // Changed while b is deaf, without a message anyone could hear later.
      await behindTheBack('k', 'v2');
      await eventually(async () => b.stack.busState === 'live', 5000, 10);
      expect(await b.cache.get('k')).toBe('v2');
    });

    it('a Redis restart: no instance serves a value changed while it was deaf', async () => {
      const a = await instance();
      const b = await instance({}, { retryStrategy: () => 2000 });
      await a.cache.set('k', 'v1');
      expect(await b.cache.get('k')).toBe('v1');
      await server.restart();
      await eventually(async () => a.stack.busState === 'live', 10_000, 10);
      await eventually(async () => {
        await a.cache.set('k', 'v2');
        return JSON.parse((await raw.get(`${namespace}:k`)) ?? 'null') === 'v2';
      }, 10_000);
      // b may still be deaf (slow reconnect) or live again, and its command connection may
      // come back before or after its subscriber: a miss meanwhile, never its old L1 copy.
      const seen = new Set<unknown>();
      await eventually(async () => {
        const value = await b.cache.get('k');
        seen.add(value);
        return b.stack.busState === 'live' && value === 'v2';
      }, 15_000);
      expect(seen.has('v1')).toBe(false);
    });

    it('a frozen subscriber link is a gap: the heartbeat notices and the L1 is dropped', async () => {
      const b = await instance({ bus: { heartbeat: 0.2 } });
      await b.cache.set('k', 'v1');
      server.freeze();
      try {
        await eventually(async () => b.stack.busState === 'deaf', 5000, 10);
      } finally {
        server.thaw();
      }
      await eventually(async () => b.stack.busState === 'live', 10_000, 10);
      await behindTheBack('k', 'v2');
      expect(await b.cache.get('k')).toBe('v2');
    });
  });

  describe('bus: false (one instance)', () => {
    it('keeps an L1 without pub/sub: no subscriber connection', async () => {
      const a = await instance({ bus: false });
      expect(a.stack.busState).toBe('off');
      await a.cache.set('k', 'v1');
      await behindTheBack('k', 'changed in Redis');
      expect(await a.cache.get('k')).toBe('v1');
      const list = (await raw.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
      expect(list.trim()).toBe('');
    });
  });

  describe('with failover: the L1 is the fallback', () => {
    const failoverInstance = async (redis: Record<string, unknown> = {}) => {
      const booted = await instance(
        { failover: { failureThreshold: 1, cooldown: 0.3, timeout: 0.5 } },
        redis,
      );
      return { ...booted, adapter: booted.app.get<FailoverCacheAdapter>(CacheAdapter) };
    };

    it('keeps one memory copy: the failover fallback is the L1', async () => {
      const a = await failoverInstance();
      const fallback = a.adapter.fallback as MemoryCacheAdapter;
      await a.cache.set('k', 'v1');
      expect(fallback.getSync('k')).toBe('v1');
      expect(a.stack.tiers.twoTier?.l1.store).toBe(fallback);
    });

    it('serves from the L1 while Redis is down; no stale read after recovery on any instance', async () => {
      const a = await failoverInstance();
      const b = await failoverInstance();
      await a.cache.set('k', 'before');
      expect(await b.cache.get('k')).toBe('before');
      await server.kill();
      const redisA: RedisCacheAdapter = redisOf(a.adapter);
      await eventually(async () => redisA.client.status !== 'ready', 5000, 10);
      // Down: a writes, its L1 serves; b keeps serving what it had.
      await a.cache.set('k', 'during (a)');
      await waitForState(a.adapter, 'open');
      expect(await a.cache.get('k')).toBe('during (a)');
      await b.cache.set('k', 'during (b)');
      expect(await b.cache.get('k')).toBe('during (b)');
      await server.restart();
      await waitForState(a.adapter, 'closed', 15_000);
      await waitForState(b.adapter, 'closed', 15_000);
      await eventually(
        async () => a.stack.busState === 'live' && b.stack.busState === 'live',
        10_000,
        10,
      );
      // Redis lost everything; the outage writes were not replayed: both miss, agreeing.
      expect(await a.cache.get('k')).toBeUndefined();
      expect(await b.cache.get('k')).toBeUndefined();
      await a.cache.set('k', 'after');
      await eventually(async () => (await b.cache.get('k')) === 'after', 2000, 5);
    });
  });
});
