import type { Provider } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { CacheModuleOptions } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { boot, type BootedApp } from './failover';
import { eventually } from './eventually';
import type { CapturingLogger } from './logs';
import { RedisServer } from './redis-server';
import { uniqueNamespace } from './redis';

/** What {@link redisInstances} gives a describe block. */
export interface RedisInstances {
  /** The block's redis-server (started before its tests, stopped after). */
  readonly server: RedisServer;
  /** A raw client of it, to read and write behind the cache's back. */
  readonly raw: Redis;
  /** This test's namespace (a new one per test). */
  readonly namespace: string;
  /**
   * Boots an application on the server under this test's namespace (`defaults`, then
   * `options`), closed after the test; with `l1`, once its bus is live.
   */
  instance(options?: CacheModuleOptions): Promise<BootedApp & { stack: CacheStack }>;
  /** Boots an application on its own memory store (`defaults` but Redis's), closed after the test. */
  memory(options?: CacheModuleOptions): Promise<BootedApp>;
  /** Boots an application of exactly `options` (with `providers`), closed after the test. */
  app(
    options: CacheModuleOptions,
    logger?: CapturingLogger,
    providers?: Provider[],
  ): Promise<BootedApp>;
}

/**
 * One real redis-server for a describe block, and Nest applications on it standing for the
 * instances of one service: registers the hooks that start and stop it, give each test its own
 * namespace and close the applications a test booted.
 */
export function redisInstances(label: string, defaults: CacheModuleOptions = {}): RedisInstances {
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
    namespace = uniqueNamespace(label);
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
  });
  const started = async (booted: BootedApp): Promise<BootedApp> => {
    apps.push(booted);
    return booted;
  };
  return {
    get server() {
      return server;
    },
    get raw() {
      return raw;
    },
    get namespace() {
      return namespace;
    },
    async instance(options = {}) {
      const merged = { ...defaults, ...options };
      const booted = await started(
        await boot({ provider: 'redis', redis: { url: server.url }, namespace, ...merged }),
      );
      const stack = booted.app.get(CacheStack);
      if (merged.l1) await eventually(async () => stack.busState === 'live', 5000, 10);
      return { ...booted, stack };
    },
    async memory(options = {}) {
      const { serializer } = defaults;
      return started(await boot({ provider: 'memory', serializer, ...options }));
    },
    async app(options, logger, providers) {
      return started(await boot(options, logger, providers));
    },
  };
}
