import {
  CacheConnectionError,
  FailoverCacheAdapter,
  MemoryCacheAdapter,
  RedisCacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { boot, raceTimer, redisOf, until, waitForState, type BootedApp } from '../support/failover';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/** GET through a fresh raw connection: the stored JSON text, or null. */
async function rawGet(server: RedisServer, key: string): Promise<string | null> {
  const reply = await server.command('GET', key);
  if (reply.startsWith('$-1')) return null;
  const match = /^\$\d+\r\n([\s\S]*)\r\n$/.exec(reply);
  if (!match) throw new Error(`unexpected reply to GET ${key}: ${JSON.stringify(reply)}`);
  return match[1];
}

describe('Failover on a real redis-server', () => {
  let server: RedisServer;
  let booted: BootedApp | undefined;
  let namespace: string;

  const failoverApp = async (
    failover: CacheModuleOptions['failover'],
    redis: Record<string, unknown> = {},
  ) => {
    booted = await boot({
      provider: 'redis',
      redis: { url: server.url, ...redis },
      namespace,
      failover,
    });
    const adapter = booted.adapter as FailoverCacheAdapter;
    return { ...booted, adapter, redis: redisOf(adapter) };
  };
  const disconnected = (redis: RedisCacheAdapter) =>
    until(() => redis.client.status !== 'ready', 5000, 'ioredis noticing the dead server');

  beforeEach(async () => {
    namespace = uniqueNamespace('failover');
    server = await RedisServer.start();
  });

  afterEach(async () => {
    await booted?.app.close();
    booted = undefined;
    await server.stop();
  });

  describe('fail fast', () => {
    // The reconnect interval is what a call would wait for if ioredis queued it offline.
    const RECONNECT_MS = 1000;

    it('Redis killed: a read returns from the fallback before the next reconnect attempt', async () => {
      // No circuit, no per-call timeout and a long commandTimeout: only the client's
      // fail-fast setting (no offline queue) can make this read quick.
      const { cache, redis } = await failoverApp(
        { failureThreshold: 1_000_000, timeout: 0 },
        { retryStrategy: () => RECONNECT_MS, commandTimeout: 10 * RECONNECT_MS },
      );
      await cache.set('user:123', { name: 'alice' });
      await server.kill();
      await disconnected(redis);
      expect(await raceTimer(cache.get('user:123'), RECONNECT_MS)).toEqual({
        value: { name: 'alice' },
      });
      expect(await raceTimer(cache.get('never-set'), RECONNECT_MS)).toEqual({ value: undefined });
    });

    it('Redis killed, no failover: a read is a miss before the next reconnect attempt', async () => {
      booted = await boot({
        provider: 'redis',
        redis: {
          url: server.url,
          retryStrategy: () => RECONNECT_MS,
          commandTimeout: 10 * RECONNECT_MS,
        },
        namespace,
      });
      const redis = booted.adapter as RedisCacheAdapter;
      await booted.cache.set('k', 1);
      await server.kill();
      await disconnected(redis);
      expect(await raceTimer(booted.cache.get('k'), RECONNECT_MS)).toEqual({ value: undefined });
      const loaded = await raceTimer(
        booted.cache.wrap('k', () => 'loaded'),
        RECONNECT_MS,
      );
      expect(loaded).toEqual({ value: 'loaded' });
    });

    it('Redis frozen: a read returns from the fallback long before the client gives up', async () => {
      const COMMAND_TIMEOUT_MS = 10_000;
      const { cache, adapter } = await failoverApp(
        { failureThreshold: 3, timeout: 0.2 },
        { commandTimeout: COMMAND_TIMEOUT_MS },
      );
      await cache.set('k', 'v');
      server.freeze();
      // Without the failover timeout this read would wait for ioredis's commandTimeout.
      expect(await raceTimer(cache.get('k'), COMMAND_TIMEOUT_MS / 2)).toEqual({ value: 'v' });
      for (let i = 0; i < 3; i++) await cache.get('k');
      expect(adapter.state).toBe('open');
      // Open: the primary is not even called.
      const skipped = adapter.stats.primarySkipped;
      const failures = adapter.stats.primaryFailures;
      expect(await cache.get('k')).toBe('v');
      expect(adapter.stats.primarySkipped).toBe(skipped + 1);
      expect(adapter.stats.primaryFailures).toBe(failures);
      server.thaw();
    });
  });

  describe('no stale reads after recovery', () => {
    it('Redis frozen (SIGSTOP keeps data and buffers commands) then thawed', async () => {
      const { cache, adapter, logger } = await failoverApp(
        { failureThreshold: 2, cooldown: 0.3, timeout: 0.2 },
        { commandTimeout: 5000 },
      );
      await cache.set('a', 'v1', 0);
      await cache.set('b', 'v1', 0);
      await cache.set('c', 'v1', 0);
      server.freeze();
      // Reach the frozen server's socket: they time out here, and run when it thaws.
      await cache.set('a', 'v2', 0);
      await cache.set('c', 'v2', 0);
      expect(adapter.state).toBe('open');
      // Circuit open: fallback only.
      await cache.set('a', 'v3', 0);
      await cache.delete('b');
      expect(await cache.get('a')).toBe('v3');
      expect(await cache.get('b')).toBeUndefined();

      server.thaw();
      await waitForState(adapter, 'closed');
      // Every key changed during the outage was deleted from Redis before reads returned to it:
      // without that, Redis would serve a=v2 (the buffered SET) and b=v1 (never deleted there).
      expect(await rawGet(server, `${namespace}:a`)).toBeNull();
      expect(await rawGet(server, `${namespace}:b`)).toBeNull();
      expect(await cache.get('a')).toBe('v3');
      expect(await cache.get('b')).toBeUndefined();
      expect(await cache.get('c')).toBe('v2');
      // And Redis is the primary again.
      await cache.set('d', 'after', 0);
      expect(await rawGet(server, `${namespace}:d`)).toBe('"after"');
      const primaryHits = adapter.stats.primaryHits;
      expect(await cache.get('d')).toBe('after');
      expect(adapter.stats.primaryHits).toBe(primaryHits + 1);

      const text = logger.text;
      expect(text).toContain('Primary cache failed for SET "a", using fallback only');
      expect(text).toContain('Primary cache circuit opened (2 consecutive failures, last: ');
      // The three keys were deleted from Redis before it served reads again: by the recovery
      // that closed the circuit, or (under load, when the first failed write's reconciliation
      // was already waiting on the frozen socket) by that reconciliation, just before.
      const closed = text.indexOf('Primary cache circuit closed: primary answers again');
      const byRecovery = text.indexOf(
        'Primary cache circuit closed: primary answers again; 3 keys changed during the outage',
      );
      const byReconciliation = text.indexOf('Primary cache: 3 keys whose write had failed deleted');
      expect(closed).toBeGreaterThan(-1);
      expect(byRecovery === closed || (byReconciliation > -1 && byReconciliation < closed)).toBe(
        true,
      );
    });

    it('Redis killed and restarted with its data (AOF), so old values come back', async () => {
      await server.stop();
      server = await RedisServer.start({
        args: ['--appendonly', 'yes', '--appendfsync', 'always'],
      });
      const { cache, adapter, redis } = await failoverApp({
        failureThreshold: 2,
        cooldown: 0.3,
        timeout: 0.2,
      });
      await cache.set('a', 'v1', 0);
      await cache.set('b', 'v1', 0);
      await server.kill();
      await disconnected(redis);
      await cache.set('a', 'v2', 0);
      await cache.delete('b');
      expect(adapter.state).toBe('open');

      await server.restart();
      // The restarted Redis holds the values from before the outage.
      expect(await rawGet(server, `${namespace}:a`)).toBe('"v1"');
      expect(await rawGet(server, `${namespace}:b`)).toBe('"v1"');
      await waitForState(adapter, 'closed');
      expect(await rawGet(server, `${namespace}:a`)).toBeNull();
      expect(await rawGet(server, `${namespace}:b`)).toBeNull();
      expect(await cache.get('a')).toBe('v2');
      expect(await cache.get('b')).toBeUndefined();
    });

    it('a clear() during the outage clears the namespace in Redis on recovery', async () => {
      const { cache, adapter } = await failoverApp({
        failureThreshold: 1,
        cooldown: 0.3,
        timeout: 0.2,
      });
      await cache.set('x', 1, 0);
      await cache.set('y', 2, 0);
      server.freeze();
      await cache.get('x');
      expect(adapter.state).toBe('open');
      await cache.clear();
      server.thaw();
      await waitForState(adapter, 'closed');
      expect(await rawGet(server, `${namespace}:x`)).toBeNull();
      expect(await cache.get('x')).toBeUndefined();
      expect(await cache.get('y')).toBeUndefined();
    });
  });

  describe('startup', () => {
    it('failover: true wires a Redis primary and a memory fallback, both started and stopped', async () => {
      const { adapter, redis } = await failoverApp(true);
      expect(adapter).toBeInstanceOf(FailoverCacheAdapter);
      expect(adapter.primary).toBeInstanceOf(RedisCacheAdapter);
      expect(adapter.fallback).toBeInstanceOf(MemoryCacheAdapter);
      expect(redis.client.status).toBe('ready');
      expect(adapter.state).toBe('closed');
      await booted?.app.close();
      booted = undefined;
      expect(redis.client.status).toBe('end');
    });

    it('with failover: boots while Redis is down, serves from the fallback, moves to Redis when it appears', async () => {
      await server.kill();
      const { cache, adapter, logger } = await failoverApp({ cooldown: 0.2 });
      expect(adapter.state).toBe('open');
      const warnings = logger.warnings().join('\n');
      expect(warnings).toContain(
        `Cannot reach Redis at redis://127.0.0.1:${server.port} at startup (`,
      );
      expect(warnings).toContain(
        'the in-memory fallback serves cache calls until it answers. Reconnecting in the background.',
      );
      expect(warnings).toMatch(/Primary cache circuit opened \(unreachable at startup: .*\)/);
      await cache.set('during', 'outage', 0);
      expect(await cache.get('during')).toBe('outage');
      expect(await cache.wrap('loaded', () => 42)).toBe(42);

      await server.restart();
      await waitForState(adapter, 'closed');
      await cache.set('after', 'up', 0);
      expect(await rawGet(server, `${namespace}:after`)).toBe('"up"');
      expect(await cache.get('during')).toBe('outage');
      expect(logger.text).toContain('Primary cache circuit closed: primary answers again');
    });

    it('without failover: boots with a warning, misses and calls through, then uses Redis', async () => {
      await server.kill();
      booted = await boot({
        provider: 'redis',
        redis: { url: server.url, retryStrategy: () => 100 },
        namespace,
      });
      const { cache, logger } = booted;
      expect(logger.warnings().join('\n')).toContain(
        'cache calls miss and call through until it answers. Reconnecting in the background.',
      );
      await cache.set('k', 1);
      expect(await cache.get('k')).toBeUndefined();
      let loads = 0;
      expect(await cache.wrap('w', () => ++loads)).toBe(1);
      expect(await cache.wrap('w', () => ++loads)).toBe(2);

      await server.restart();
      const redis = booted.adapter as RedisCacheAdapter;
      await until(() => redis.client.status === 'ready', 5000, 'reconnection');
      await cache.set('k', 1);
      expect(await cache.get('k')).toBe(1);
    });

    it('without failover, strict: true fails startup with a clear error', async () => {
      await server.kill();
      const attempt = boot({
        provider: 'redis',
        redis: { url: server.url },
        namespace,
        strict: true,
      });
      await expect(attempt).rejects.toThrow(CacheConnectionError);
      await expect(
        boot({ provider: 'redis', redis: { url: server.url }, namespace, strict: true }),
      ).rejects.toThrow(/Cannot reach Redis at .* at startup .*drop strict: true/);
    });
  });

  describe('startup, strict', () => {
    it('strict: true also refuses to boot without Redis when failover is on', async () => {
      await server.kill();
      await expect(
        boot({
          provider: 'redis',
          redis: { url: server.url },
          namespace,
          strict: true,
          failover: true,
        }),
      ).rejects.toThrow(CacheConnectionError);
    });
  });

  describe('corrupt data through the failover path', () => {
    it('a wrong-type or non-JSON key is a miss plus a WARN, never an error; wrap heals it', async () => {
      const { cache, adapter, logger } = await failoverApp(true);
      await server.command('SET', `${namespace}:broken`, '{"half": ');
      await server.command('LPUSH', `${namespace}:list`, 'x');
      await expect(cache.get('broken')).resolves.toBeUndefined();
      await expect(cache.get('list')).resolves.toBeUndefined();
      // `has` agrees with `get` (issue 10): foreign data is absent for both.
      await expect(cache.has('list')).resolves.toBe(false);
      await expect(cache.has('broken')).resolves.toBe(false);
      expect(await cache.wrap('list', () => ['fresh'])).toEqual(['fresh']);
      expect(await rawGet(server, `${namespace}:list`)).toBe('["fresh"]');
      const warnings = logger.warnings().join('\n');
      expect(warnings).toContain(`"${namespace}:broken" holds data that is not valid JSON`);
      expect(warnings).toContain(`"${namespace}:list" holds a non-string Redis type`);
      // Corrupt data is not an outage.
      expect(adapter.state).toBe('closed');
      expect(adapter.stats.primaryFailures).toBe(0);
    });
  });
});
