import { MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import type { CacheModuleOptions, RedisCacheAdapter } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { eventually } from '../support/eventually';
import { collect, TestReader } from '../support/metrics';
import { boot, until, type BootedApp } from '../support/failover';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/** Data points of `name` as `attribute values joined by /` → value (cache.name left out). */
function points(collected: Map<string, MetricData>, name: string): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const point of collected.get(name)?.dataPoints ?? []) {
    const { 'cache.name': cacheName, ...rest } = point.attributes;
    expect(cacheName).toBe('default');
    result[Object.values(rest).join('/')] = point.value;
  }
  return result;
}

/**
 * The OpenTelemetry instruments of a Redis-backed cache on a real redis-server: the circuit
 * gauge through a real outage and recovery, backend errors, L1 gauges and tiers of two-tier
 * reads, bus messages between two instances, and the fleet-wide lock.
 */
describe('OpenTelemetry metrics on a real redis-server', () => {
  let server: RedisServer;
  let namespace: string;
  const running: BootedApp[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(() => {
    namespace = uniqueNamespace('metrics');
  });
  afterEach(async () => {
    if (!server.running) await server.restart();
    await Promise.all(running.splice(0).map(({ app }) => app.close()));
  });

  const instance = async (options: CacheModuleOptions = {}) => {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const booted = await boot({
      provider: 'redis',
      redis: { url: server.url },
      namespace,
      metrics: { meterProvider },
      ...options,
    });
    running.push(booted);
    const stack = booted.app.get(CacheStack);
    if (options.l1 && options.bus !== false) {
      await eventually(async () => stack.stats().bus.state === 'live', 5000, 10);
    }
    return { ...booted, stack, reader, collect: () => collect(reader) };
  };

  it('l1 + failover: cache.circuit.state follows a real outage and recovery', async () => {
    const a = await instance({
      l1: true,
      failover: { failureThreshold: 2, cooldown: 0.3, timeout: 0.3 },
    });
    await a.cache.set('k', 'v');
    expect(points(await a.collect(), 'cache.circuit.state')).toEqual({
      closed: 1,
      open: 0,
      'half-open': 0,
    });
    await server.kill();
    let probe = 0;
    await eventually(async () => {
      await a.cache.get(`probe:${probe++}`); // keys the L1 does not hold: they go to Redis
      return points(await a.collect(), 'cache.circuit.state').open === 1;
    }, 10_000);
    expect(points(await a.collect(), 'cache.circuit.state')).toEqual({
      closed: 0,
      open: 1,
      'half-open': 0,
    });
    // The L1 (the failover fallback) keeps serving, and says so by tier.
    expect(await a.cache.get('k')).toBe('v');
    expect(points(await a.collect(), 'cache.requests')['get/hit/l1']).toBeGreaterThanOrEqual(1);
    await server.restart();
    await eventually(async () => {
      await a.cache.get(`probe:${probe++}`);
      return points(await a.collect(), 'cache.circuit.state').closed === 1;
    }, 10_000);
    expect(points(await a.collect(), 'cache.circuit.state')).toEqual({
      closed: 1,
      open: 0,
      'half-open': 0,
    });
  });

  it('counts backend failures in cache.errors by operation', async () => {
    const a = await instance({ redis: { url: server.url, retryStrategy: () => 1000 } });
    await a.cache.set('k', 'v');
    expect(points(await a.collect(), 'cache.errors')).toEqual({});
    await server.kill();
    const client = (a.adapter as RedisCacheAdapter).client;
    await until(() => client.status !== 'ready', 5000, 'ioredis noticing the dead server');
    expect(await a.cache.get('k')).toBeUndefined(); // answered as a miss
    expect(await a.cache.get('k')).toBeUndefined();
    await a.cache.deleteByPrefix('user:'); // a no-op
    const collected = await a.collect();
    expect(points(collected, 'cache.errors')).toEqual({ get: 2, delete_by_prefix: 1 });
    expect(a.stack.stats().errors).toBe(3);
    // A failed write is counted with result "error".
    expect(points(collected, 'cache.requests')).toEqual({
      'set/ok': 1,
      'get/miss': 2,
      'delete_by_prefix/error': 1,
    });
  });

  it('two tiers: L1 gauges equal the entries held, reads by tier, bus messages both ways', async () => {
    const a = await instance({ l1: true });
    const b = await instance({ l1: true });
    for (let i = 0; i < 3; i++) await a.cache.set(`k${i}`, { i });
    const fromA = await a.collect();
    expect(points(fromA, 'cache.l1.entries')).toEqual({ '': 3 });
    expect(points(fromA, 'cache.l1.entries')['']).toBe(a.stack.stats().tiers.l1?.entries);
    expect(points(fromA, 'cache.l1.size')['']).toBe(a.stack.stats().tiers.l1?.bytes);
    expect(points(fromA, 'cache.bus.connected')).toEqual({ '': 1 });
    expect(points(fromA, 'cache.circuit.state')).toEqual({}); // no failover: no breaker
    expect(points(await b.collect(), 'cache.l1.entries')).toEqual({ '': 0 });

    expect(await b.cache.get('k0')).toEqual({ i: 0 }); // from Redis, then kept in B's L1
    expect(await b.cache.get('k0')).toEqual({ i: 0 });
    const fromB = await b.collect();
    expect(points(fromB, 'cache.requests')).toEqual({ 'get/hit/l2': 1, 'get/hit/l1': 1 });
    expect(points(fromB, 'cache.l1.entries')).toEqual({ '': 1 });

    await a.cache.set('k0', { i: 'changed' });
    await eventually(
      async () => (await b.cache.get<{ i: unknown }>('k0'))?.i === 'changed',
      5000,
      10,
    );
    const published = a.stack.stats().bus.published;
    expect(published).toBeGreaterThan(0);
    expect(points(await a.collect(), 'cache.bus.messages')).toMatchObject({ out: published });
    await eventually(
      async () => Number(points(await b.collect(), 'cache.bus.messages').in) > 0,
      5000,
      10,
    );
    expect(points(await b.collect(), 'cache.bus.messages').in).toBe(b.stack.stats().bus.received);
  });

  it('counts fleet-wide lock waits by outcome', async () => {
    const a = await instance();
    expect(await a.cache.wrap('locked', () => 'v', { lock: true })).toBe('v');
    await eventually(async () => a.stack.loadsInFlight === 0, 2000, 5);
    expect(points(await a.collect(), 'cache.lock.waits')).toEqual({ acquired: 1 });
  });
});
