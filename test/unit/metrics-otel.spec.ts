import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { metrics } from '@opentelemetry/api';
import {
  DataPointType,
  MeterProvider,
  type Histogram,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import { Test } from '@nestjs/testing';
import { CacheConfigError, CacheModule, type CacheModuleOptions } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import {
  CACHE_METER_NAME,
  LOADER_DURATION_BUCKETS,
  startCacheMetrics,
  type CacheMetricsHandle,
} from '../../lib/diagnostics/cache-metrics';
import { eventually } from '../support/eventually';
import { collect, TestReader } from '../support/metrics';
import { boot, type BootedApp } from '../support/failover';

/** `operation/result/tier` → count of `cache.requests`. */
function requestCounts(collected: Map<string, MetricData>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const point of collected.get('cache.requests')?.dataPoints ?? []) {
    const a = point.attributes;
    expect(a['cache.name']).toBe('default');
    const label = [a['cache.operation'], a['cache.result'], a['cache.tier']].filter(Boolean);
    counts[label.join('/')] = point.value as number;
  }
  return counts;
}

/** The value of the one data point of `name` whose attributes include `attributes`. */
function valueOf(
  collected: Map<string, MetricData>,
  name: string,
  attributes: Record<string, unknown> = {},
): unknown {
  const matching = (collected.get(name)?.dataPoints ?? []).filter((point) =>
    Object.entries(attributes).every(([key, value]) => point.attributes[key] === value),
  );
  if (matching.length !== 1) {
    throw new Error(
      `${matching.length} data points of ${name} match ${JSON.stringify(attributes)}`,
    );
  }
  return matching[0]?.value;
}

/** `get` hits the L1 answered, as `cache.requests` counts them. */
const hits = (collected: Map<string, MetricData>) => requestCounts(collected)['get/hit/l1'] ?? 0;

/** Loads recorded in `cache.loader.duration`, all attributes together. */
const loads = (collected: Map<string, MetricData>) =>
  (collected.get('cache.loader.duration')?.dataPoints ?? []).reduce(
    (sum, point) => sum + (point.value as Histogram).count,
    0,
  );

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The OpenTelemetry instruments of an in-process cache (memory provider), read through the SDK's
 * own MeterProvider and a pull reader: counts exact after known operations, the loader histogram,
 * the L1 gauges, stop(), the global provider, and the configuration errors.
 */
describe('OpenTelemetry metrics (memory provider)', () => {
  let booted: BootedApp | undefined;
  let handle: CacheMetricsHandle | undefined;

  afterEach(async () => {
    handle?.stop();
    handle = undefined;
    await booted?.app.close();
    booted = undefined;
    metrics.disable();
  });

  /** An application with `metrics: { meterProvider }`, its stack and the provider's reader. */
  const start = async (options: CacheModuleOptions = {}) => {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    booted = await boot({ namespace: 'metrics', metrics: { meterProvider }, ...options });
    return { ...booted, stack: booted.app.get(CacheStack), reader, meterProvider };
  };

  it('counts requests by operation, result and tier, exactly', async () => {
    const { cache, reader } = await start();
    await cache.set('a', 1);
    expect(await cache.get('a')).toBe(1);
    expect(await cache.get('b')).toBeUndefined();
    expect(await cache.has('a')).toBe(true);
    expect(await cache.has('b')).toBe(false);
    let loads = 0;
    const slow = async () => {
      await sleep(20);
      return ++loads;
    };
    expect(await cache.wrap('c', slow)).toBe(1);
    expect(await cache.wrap('c', slow)).toBe(1);
    const [first, second] = await Promise.all([cache.wrap('d', slow), cache.wrap('d', slow)]);
    expect(first).toBe(second);
    await cache.delete('a');
    await cache.deleteByPrefix('x');
    expect(requestCounts(await collect(reader))).toEqual({
      'set/ok': 1,
      'get/hit/l1': 1,
      'get/miss': 1,
      'has/hit/l1': 1,
      'has/miss': 1,
      'wrap/miss': 2,
      'wrap/hit/l1': 1,
      'wrap/shared': 1,
      'delete/ok': 1,
      'delete_by_prefix/ok': 1,
    });
    // Cumulative: a later collection adds to what was counted.
    await cache.get('c');
    expect(requestCounts(await collect(reader))['get/hit/l1']).toBe(2);
  });

  it('names the meter nestjs-cachekit with the package version, and the units', async () => {
    const { reader, cache } = await start();
    await cache.wrap('k', () => sleep(5).then(() => 'v'));
    const { resourceMetrics } = await reader.collect();
    const scope = resourceMetrics.scopeMetrics.find((s) => s.scope.name === CACHE_METER_NAME);
    const pkg = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as {
      version: string;
    };
    expect(scope?.scope.version).toBe(pkg.version);
    const units = Object.fromEntries(
      scope?.metrics.map((m) => [m.descriptor.name, m.descriptor.unit]) ?? [],
    );
    expect(units).toMatchObject({
      'cache.requests': '{request}',
      'cache.loader.duration': 's',
      'cache.loader.active': '{load}',
      'cache.l1.entries': '{entry}',
      'cache.l1.size': 'By',
    });
  });

  it('records each load in cache.loader.duration (seconds), by result', async () => {
    const { cache, stack, reader } = await start();
    for (const key of ['a', 'b', 'c']) await cache.wrap(key, () => sleep(5).then(() => key));
    await expect(
      cache.wrap('boom', async () => {
        await sleep(5);
        throw new Error('loader failed');
      }),
    ).rejects.toThrow('loader failed');
    const collected = await collect(reader);
    const histogram = collected.get('cache.loader.duration');
    expect(histogram?.dataPointType).toBe(DataPointType.HISTOGRAM);
    const success = valueOf(collected, 'cache.loader.duration', {
      'cache.name': 'default',
      'cache.loader.result': 'success',
      'cache.loader.background': false,
    }) as Histogram;
    expect(success.count).toBe(3);
    expect(success.sum).toBeGreaterThan(0);
    expect(success.buckets.boundaries).toEqual(LOADER_DURATION_BUCKETS);
    const failed = valueOf(collected, 'cache.loader.duration', {
      'cache.loader.result': 'error',
      'cache.loader.background': false,
    }) as Histogram;
    expect(failed.count).toBe(1);
    expect(failed.sum).toBeGreaterThan(0);
    // Seconds: the same durations stats() sums in milliseconds.
    expect((success.sum ?? 0) + (failed.sum ?? 0)).toBeCloseTo(
      stack.stats().loader.totalMs / 1000,
      9,
    );
  });

  it('marks refresh-ahead loads as background', async () => {
    const { cache, reader } = await start();
    let loads = 0;
    const loader = () => sleep(2).then(() => ++loads);
    expect(await cache.wrap('r', loader, { ttl: 2, refreshAhead: 0.05 })).toBe(1);
    await sleep(150); // past the refresh point (100 ms), long before expiry (2 s)
    expect(await cache.wrap('r', loader, { ttl: 2, refreshAhead: 0.05 })).toBe(1);
    await eventually(async () => loads === 2, 2000, 5);
    await eventually(async () => {
      const points = (await collect(reader)).get('cache.loader.duration')?.dataPoints ?? [];
      return points.some((point) => point.attributes['cache.loader.background'] === true);
    }, 2000);
    const collected = await collect(reader);
    const counts = (background: boolean) =>
      (
        valueOf(collected, 'cache.loader.duration', {
          'cache.loader.result': 'success',
          'cache.loader.background': background,
        }) as Histogram
      ).count;
    expect(counts(false)).toBe(1);
    expect(counts(true)).toBe(1);
  });

  it('shows loads in flight in cache.loader.active', async () => {
    const { cache, reader } = await start();
    let release: (value: string) => void = () => undefined;
    const loading = cache.wrap('slow', () => new Promise<string>((resolve) => (release = resolve)));
    await sleep(5);
    expect(valueOf(await collect(reader), 'cache.loader.active')).toBe(1);
    release('done');
    expect(await loading).toBe('done');
    await sleep(5);
    expect(valueOf(await collect(reader), 'cache.loader.active')).toBe(0);
  });

  it('reports the L1 entries and bytes the cache holds', async () => {
    const { cache, stack, reader } = await start();
    for (let i = 0; i < 5; i++) await cache.set(`k${i}`, { i, text: 'x'.repeat(100) });
    await cache.delete('k0');
    const collected = await collect(reader);
    expect(valueOf(collected, 'cache.l1.entries', { 'cache.name': 'default' })).toBe(4);
    const bytes = valueOf(collected, 'cache.l1.size') as number;
    expect(bytes).toBeGreaterThan(4 * 100);
    expect(bytes).toBe(stack.stats().tiers.l1?.bytes);
    // No shared store, no bus: their instruments have no data point.
    expect(collected.get('cache.circuit.state')?.dataPoints ?? []).toEqual([]);
    expect(collected.get('cache.bus.connected')?.dataPoints ?? []).toEqual([]);
  });

  it('stop() records nothing more and removes its listeners', async () => {
    booted = await boot({ namespace: 'metrics' });
    const { cache } = booted;
    const stack = booted.app.get(CacheStack);
    const reader = new TestReader();
    expect(stack.events.listenerCount('loader.done')).toBe(0);
    handle = startCacheMetrics(stack, { meterProvider: new MeterProvider({ readers: [reader] }) });
    expect(stack.events.listenerCount('loader.done')).toBe(1);
    expect(stack.events.listenerCount('loader.error')).toBe(1);
    await cache.wrap('a', () => sleep(2).then(() => 1));
    await cache.get('a');
    const before = await collect(reader);
    handle.stop();
    handle.stop(); // idempotent
    expect(stack.events.listenerCount('loader.done')).toBe(0);
    expect(stack.events.listenerCount('loader.error')).toBe(0);
    await cache.get('a');
    await cache.wrap('b', () => sleep(2).then(() => 2));
    const after = await collect(reader);
    expect(hits(before)).toBe(1);
    expect(hits(after)).toBeLessThanOrEqual(1);
    expect(loads(before)).toBe(1);
    expect(loads(after)).toBe(1);
  });

  it('starts with the application (metrics option) and stops at its shutdown', async () => {
    const { cache, stack, reader } = await start();
    expect(stack.events.listenerCount('loader.done')).toBe(1);
    await cache.wrap('a', () => sleep(2).then(() => 1));
    await cache.get('a');
    const before = await collect(reader);
    expect(hits(before)).toBe(1);
    expect(loads(before)).toBe(1);
    await booted?.app.close();
    booted = undefined;
    expect(stack.events.listenerCount('loader.done')).toBe(0);
    expect(stack.events.listenerCount('loader.error')).toBe(0);
    const after = await collect(reader);
    expect(hits(after)).toBeLessThanOrEqual(1);
    expect(loads(after)).toBe(1);
  });

  it('metrics: true records on the global meter provider of @opentelemetry/api', async () => {
    const reader = new TestReader();
    expect(metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))).toBe(true);
    booted = await boot({ namespace: 'metrics', metrics: true });
    await booted.cache.get('nothing');
    expect(requestCounts(await collect(reader))).toEqual({ 'get/miss': 1 });
  });

  it('metrics: false (the default) creates no instrument', async () => {
    const reader = new TestReader();
    expect(metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))).toBe(true);
    booted = await boot({ namespace: 'metrics' });
    await booted.cache.get('nothing');
    expect([...(await collect(reader)).keys()]).toEqual([]);
    expect(booted.app.get(CacheStack).events.listenerCount('loader.done')).toBe(0);
  });

  it('fails with CacheConfigError naming "metrics" when @opentelemetry/api cannot be loaded', async () => {
    booted = await boot({ namespace: 'metrics' });
    const stack = booted.app.get(CacheStack);
    let thrown: unknown;
    let withProvider: CacheMetricsHandle | undefined;
    const reader = new TestReader();
    jest.isolateModules(() => {
      // A fault a real install cannot produce on demand: the optional peer is missing.
      jest.doMock('@opentelemetry/api', () => {
        throw new Error("Cannot find module '@opentelemetry/api'");
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const isolated = require('../../lib/diagnostics/cache-metrics') as {
        startCacheMetrics: typeof startCacheMetrics;
      };
      try {
        isolated.startCacheMetrics(stack, {});
      } catch (error) {
        thrown = error;
      }
      // A provider of the application's own needs nothing from the peer.
      withProvider = isolated.startCacheMetrics(stack, {
        meterProvider: new MeterProvider({ readers: [reader] }),
      });
    });
    jest.dontMock('@opentelemetry/api');
    expect(thrown).toBeInstanceOf(Error);
    expect((thrown as Error).name).toBe('CacheConfigError');
    expect((thrown as Error).message).toMatch(
      /^Invalid CacheModule option "metrics": true needs the optional peer @opentelemetry\/api \(npm install @opentelemetry\/api\)/,
    );
    expect((thrown as Error).message).toContain('Cannot find module');
    await booted.cache.get('x');
    expect(requestCounts(await collect(reader))).toEqual({ 'get/miss': 1 });
    withProvider?.stop();
  });

  it('metrics: true without @opentelemetry/api fails startup, naming the option', async () => {
    let starting: Promise<unknown> | undefined;
    jest.isolateModules(() => {
      // The optional peer missing (a fault a real install cannot produce on demand).
      jest.doMock('@opentelemetry/api', () => {
        throw new Error("Cannot find module '@opentelemetry/api'");
      });
      /* eslint-disable @typescript-eslint/no-require-imports */
      const lib = require('../../lib') as typeof import('../../lib');
      const testing = require('@nestjs/testing') as typeof import('@nestjs/testing');
      /* eslint-enable @typescript-eslint/no-require-imports */
      starting = testing.Test.createTestingModule({
        imports: [lib.CacheModule.forRoot({ namespace: 'metrics', metrics: true })],
      })
        .compile()
        .then(async (moduleRef) => {
          const app = moduleRef.createNestApplication({ logger: false });
          try {
            await app.init();
          } finally {
            await app.close();
          }
        });
    });
    try {
      // The peer is required at module init, after compile(): the mock must outlive the callback.
      await expect(starting).rejects.toThrow(
        /Invalid CacheModule option "metrics": true needs the optional peer @opentelemetry\/api/,
      );
      await expect(starting).rejects.toMatchObject({ name: 'CacheConfigError' });
    } finally {
      jest.dontMock('@opentelemetry/api');
    }
  });

  it.each([
    [
      'metrics: "yes"',
      'yes',
      /option "metrics": "yes" \(expected a boolean or \{ meterProvider \}\)/,
    ],
    [
      'metrics: { meterProvider: {} }',
      { meterProvider: {} },
      /option "metrics.meterProvider".*an OpenTelemetry MeterProvider/,
    ],
    ['metrics: { provider }', { provider: {} }, /Unknown CacheModule option "metrics\.provider"/],
  ])('%s fails startup with CacheConfigError naming the option', async (_label, value, message) => {
    const compile = () =>
      Test.createTestingModule({
        imports: [CacheModule.forRoot({ metrics: value as CacheModuleOptions['metrics'] })],
      }).compile();
    await expect(compile()).rejects.toThrow(CacheConfigError);
    await expect(compile()).rejects.toThrow(message);
  });
});
