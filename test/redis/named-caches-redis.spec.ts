import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MeterProvider, type MetricData } from '@opentelemetry/sdk-metrics';
import { Redis } from 'ioredis';
import {
  CacheConfigError,
  CacheConnectionError,
  CacheModule,
  CacheService,
  InjectCache,
  type CacheEventMap,
  type CacheModuleOptions,
} from '../../lib';
import { CapturingLogger } from '../support/logs';
import { eventually } from '../support/eventually';
import { collect, TestReader } from '../support/metrics';
import { freePort, RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

// Issue 17, part 3, on a real redis-server: named caches share one connection where their Redis
// settings match, close it once at shutdown, never reach each other's keys, and report (stats,
// events, metrics) under their own names.

@Injectable()
class Caches {
  constructor(
    readonly own: CacheService,
    @InjectCache('sessions') readonly sessions: CacheService,
    @InjectCache('reports') readonly reports: CacheService,
    @InjectCache('local') readonly local: CacheService,
  ) {}
}

describe('named caches on a real redis-server', () => {
  let server: RedisServer;
  let raw: Redis;
  let rawId: number;
  let namespace: string;
  const apps: INestApplication[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
    rawId = Number(await raw.client('ID'));
  });
  afterAll(async () => {
    raw.disconnect();
    await server.stop();
  });
  beforeEach(() => {
    namespace = uniqueNamespace('named');
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  /** The server's client connections other than the inspector, as data / subscriber. */
  async function connections(): Promise<{ data: number; subscribers: number }> {
    const list = String(await raw.client('LIST'))
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith(`id=${rawId} `));
    const subscribed = (line: string) => /\b(sub|psub)=[1-9]/.test(line);
    return {
      data: list.filter((line) => !subscribed(line)).length,
      subscribers: list.filter(subscribed).length,
    };
  }

  async function boot(
    options: CacheModuleOptions,
    logger: CapturingLogger | false = false,
  ): Promise<{ app: INestApplication; caches: Caches }> {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot(options)],
      providers: [Caches],
    }).compile();
    const app = moduleRef.createNestApplication({ logger });
    await app.init();
    apps.push(app);
    return { app, caches: app.get(Caches) };
  }

  const options = (): CacheModuleOptions => ({
    provider: 'redis',
    redis: { url: server.url },
    namespace,
    caches: {
      sessions: { ttl: 1800, l1: true },
      reports: { ttl: 60 },
      local: { provider: 'memory' },
    },
  });

  it('shares one connection among the caches of one Redis, and closes it once at shutdown', async () => {
    expect(await connections()).toEqual({ data: 0, subscribers: 0 });
    const logger = new CapturingLogger();
    const { app, caches } = await boot(options(), logger);
    await eventually(async () => (await connections()).subscribers === 1, 5000, 10);
    // The default cache, sessions and reports: one data connection; the bus of sessions' L1
    // subscribes on its own.
    expect(await connections()).toEqual({ data: 1, subscribers: 1 });
    await caches.own.set('k', 1);
    await caches.sessions.set('k', 2);
    await caches.reports.set('k', 3);
    expect(await caches.sessions.get('k')).toBe(2);

    await app.close();
    apps.splice(0);
    await eventually(async () => (await connections()).data === 0, 5000, 10);
    expect(await connections()).toEqual({ data: 0, subscribers: 0 });
    // Nothing used the shared connection after it was closed.
    expect(logger.text).not.toMatch(/Connection is closed|connection error|not connected/i);
  });

  it('opens one connection per distinct Redis settings', async () => {
    await boot({
      ...options(),
      caches: { sessions: {}, reports: { redis: { url: `${server.url}/1` } }, local: {} },
    });
    expect(await connections()).toEqual({ data: 2, subscribers: 0 });
  });

  it("never touches another cache's keys: clear() of one scans its own namespace only", async () => {
    const { caches } = await boot(options());
    for (const cache of [caches.own, caches.sessions, caches.reports]) {
      await cache.set('a', cache.namespace);
      await cache.set('b:c', cache.namespace);
    }
    await caches.local.set('a', 'local');
    expect((await raw.keys(`${namespace}:*`)).sort()).toEqual([
      `${namespace}:a`,
      `${namespace}:b:c`,
    ]);
    expect((await raw.keys(`${namespace}.sessions:*`)).length).toBe(2);

    await caches.sessions.clear();
    expect(await raw.keys(`${namespace}.sessions:*`)).toEqual([]);
    expect((await raw.keys(`${namespace}:*`)).length).toBe(2);
    expect((await raw.keys(`${namespace}.reports:*`)).length).toBe(2);
    expect(await caches.local.get('a')).toBe('local');

    await caches.own.clear();
    expect(await raw.keys(`${namespace}:*`)).toEqual([]);
    expect((await raw.keys(`${namespace}.reports:*`)).length).toBe(2);
    expect(await caches.reports.deleteByPrefix('')).toBe(2);
  });

  it('gives each cache its own tiers, stats and events', async () => {
    const { caches } = await boot(options());
    expect(caches.sessions.stats()).toMatchObject({
      name: 'sessions',
      namespace: `${namespace}.sessions`,
    });
    await eventually(async () => caches.sessions.stats().bus.state === 'live', 5000, 10);
    expect(caches.sessions.stats().tiers.l1).toBeDefined();
    expect(caches.own.stats().tiers.l1).toBeUndefined();
    expect(caches.own.stats().bus.state).toBe('off');
    expect(caches.local.stats().name).toBe('local');
    const seen: Array<CacheEventMap['hit']> = [];
    for (const cache of [caches.own, caches.sessions, caches.reports, caches.local]) {
      cache.events.on('hit', (event) => seen.push(event));
      await cache.set('h', 1);
      await cache.get('h');
    }
    expect(seen.map((event) => event.cache)).toEqual(['default', 'sessions', 'reports', 'local']);
  });

  it('reports the metrics of every cache under its name', async () => {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const { caches } = await boot({ ...options(), metrics: { meterProvider } });
    await caches.own.get('m');
    await caches.sessions.get('m');
    await caches.local.get('m');
    const requests = (await collect(reader)).get('cache.requests') as MetricData;
    const names = new Set(
      requests.dataPoints
        .filter((point) => (point.value as number) > 0)
        .map((point) => point.attributes['cache.name']),
    );
    expect([...names].sort()).toEqual(['default', 'local', 'sessions']);
    await meterProvider.shutdown();
  });

  it('refuses two caches of one store with the same namespace, naming both', async () => {
    const error = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace,
          caches: { a: {}, b: { namespace: `${namespace}.a` } },
        }),
      ],
    })
      .compile()
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(error).toBeInstanceOf(CacheConfigError);
    expect(error?.message).toMatch(
      /options "caches\.a\.namespace" and "caches\.b\.namespace" are both/,
    );
    // Nothing was connected for a configuration refused.
    expect(await connections()).toEqual({ data: 0, subscribers: 0 });
  });

  it('fails startup with strict: true when a shared connection cannot reach Redis', async () => {
    const port = await freePort();
    const error = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace,
          caches: { down: { redis: { url: `redis://127.0.0.1:${port}` }, strict: true } },
        }),
      ],
    })
      .compile()
      .then(async (moduleRef) => {
        // The shared connections open at init: a failed build leaves none open.
        const app = moduleRef.createNestApplication({ logger: false });
        await app.init();
        return app;
      })
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(error).toBeInstanceOf(CacheConnectionError);
    expect(error?.message).toMatch(
      /Cannot reach Redis at startup for cache 'down' \(strict: true\)/,
    );
    // The connection that did open (the default cache's) was closed again.
    await eventually(async () => (await connections()).data === 0, 5000, 10);
  });

  it('refuses the same namespace on another Redis database, or in memory', async () => {
    // Within one application a namespace names the cache an invalidation job applies to.
    for (const caches of <Array<CacheModuleOptions['caches']>>[
      { sessions: { namespace, redis: { url: `${server.url}/2` } } },
      { local: { provider: 'memory' as const, namespace } },
    ]) {
      const error = await Test.createTestingModule({
        imports: [CacheModule.forRoot({ ...options(), caches })],
      })
        .compile()
        .then(
          () => undefined,
          (e: unknown) => e as Error,
        );
      expect(error).toBeInstanceOf(CacheConfigError);
    }
  });
});
