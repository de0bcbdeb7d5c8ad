import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheAdapter,
  CacheModule,
  CacheService,
  FailoverCacheAdapter,
  MemoryCacheAdapter,
  RedisCacheAdapter,
} from '../../lib';
import { resolveCacheOptions } from '../../lib/config/cache-options.resolver';
import { CacheStack, type CacheStackOptions } from '../../lib/core/cache-stack';
import { createCacheAdapter } from '../../lib/core/create-adapter';
import { createCacheStack } from '../../lib/core/create-stack';
import type { SyncCacheView } from '../../lib/interfaces/cache-adapter.interface';
import { FlakyAdapter } from '../support/flaky-adapter';

/**
 * The stack owns its tiers: built from the application's adapter, it holds the local tier
 * (a sync view), a plain remote store (failures through the stack's error policy), or the
 * failover policy over the remote tier (timeout, breaker, journal, recovery) and its fallback.
 */
const OPTIONS: CacheStackOptions = { enabled: true, ttl: 60, namespace: 'test' };

/** Lets background work (probe, reconciliation) and `ms` of fake time run. */
const advance = (ms = 0) => jest.advanceTimersByTimeAsync(ms);

let warnings: string[];
beforeEach(() => {
  warnings = [];
  jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => {
    warnings.push(String(message));
  });
  for (const level of ['log', 'debug', 'error'] as const) {
    jest.spyOn(Logger.prototype, level).mockImplementation(() => undefined);
  }
});
afterEach(() => {
  jest.restoreAllMocks();
  jest.useRealTimers();
});

describe('createCacheStack: the tiers per mode', () => {
  it('memory: the local tier alone, read and written synchronously', async () => {
    const memory = new MemoryCacheAdapter({ sweepInterval: 0 });
    const stack = createCacheStack(memory, OPTIONS);
    expect(stack.tiers.local?.store).toBe(memory);
    expect(stack.tiers.remote).toBeUndefined();
    expect(stack.tiers.failover).toBeUndefined();
    const written = stack.set('k', { v: 1 });
    // Written in the caller's turn: the next synchronous peek sees it.
    expect(stack.peek('k')).toEqual({ v: 1 });
    await written;
    expect(await stack.delete('k')).toBe(true);
    expect(await memory.has('k')).toBe(false);
  });

  it('a custom adapter with a sync view is the local tier', () => {
    const entries = new Map<string, unknown>();
    const view: SyncCacheView = {
      getSync: <T>(key: string) => entries.get(key) as T | undefined,
      setSync: (key, value) => void entries.set(key, value),
    };
    const custom: CacheAdapter = Object.assign(new FlakyAdapter(), { syncView: () => view });
    const stack = createCacheStack(custom, OPTIONS);
    expect(stack.tiers.local?.store).toBe(custom);
    void stack.set('k', 1);
    expect(entries.get('k')).toBe(1);
    expect(stack.peek('k')).toBe(1);
  });

  it('a custom adapter without one is a plain remote store: failures through the error policy', async () => {
    const remote = new FlakyAdapter();
    const stack = createCacheStack(remote, OPTIONS);
    expect(stack.tiers.remote).toBe(remote);
    expect(stack.peek('k')).toBeUndefined();
    remote.mode = 'down';
    // No breaker: every call reaches the store, each failure answered as a miss and counted.
    for (let i = 0; i < 10; i++) expect(await stack.get('k')).toBeUndefined();
    expect(remote.dataCalls()).toHaveLength(10);
    expect(stack.failures).toBe(10);
    expect(warnings.join('\n')).toMatch(/Cache GET "k" failed, calling through/);
  });

  it("provider 'redis': a plain remote store (the Redis adapter, no breaker)", async () => {
    const resolved = resolveCacheOptions({
      provider: 'redis',
      redis: { url: 'redis://127.0.0.1:1' },
    });
    const adapter = createCacheAdapter(resolved);
    try {
      expect(adapter).toBeInstanceOf(RedisCacheAdapter);
      const tiers = createCacheStack(adapter, resolved).tiers;
      expect(tiers.remote).toBe(adapter);
      // The stack checked the value already: it writes through the adapter's unchecked path.
      expect(tiers.remote && tiers.write).toEqual(expect.any(Function));
    } finally {
      await adapter.onApplicationShutdown?.();
    }
  });

  it('a RedisCacheAdapter whose set is overridden is written through that set', async () => {
    class Counting extends RedisCacheAdapter {
      sets = 0;
      override set(key: string, value: unknown, ttl: number): Promise<void> {
        this.sets++;
        return super.set(key, value, ttl);
      }
    }
    const adapter = new Counting({ redis: { url: 'redis://127.0.0.1:1' } });
    try {
      const tiers = createCacheStack(adapter, OPTIONS).tiers;
      expect(tiers.remote).toBe(adapter);
      expect(tiers.remote && tiers.write).toBeUndefined();
    } finally {
      await adapter.onApplicationShutdown?.();
    }
  });

  it("provider 'redis' + failover: the failover policy over the Redis remote tier and one memory fallback", async () => {
    const resolved = resolveCacheOptions({
      provider: 'redis',
      redis: { url: 'redis://127.0.0.1:1' },
      failover: true,
    });
    const adapter = createCacheAdapter(resolved) as FailoverCacheAdapter;
    try {
      const stack = createCacheStack(adapter, resolved);
      const failover = stack.tiers.failover!;
      expect(failover).toBe(adapter.tier);
      expect(failover.remote.store).toBe(adapter.primary);
      expect(failover.remote.store).toBeInstanceOf(RedisCacheAdapter);
      // One memory copy: the stack's fallback is the adapter's.
      expect(failover.fallback).toBe(adapter.fallback);
      expect(failover.fallback).toBeInstanceOf(MemoryCacheAdapter);
      expect(stack.tiers.local).toBeUndefined();
    } finally {
      await adapter.onApplicationShutdown();
    }
  });

  it('a FailoverCacheAdapter subclass (it may override a method) is called as a plain store', async () => {
    class Counting extends FailoverCacheAdapter {
      gets = 0;
      override get<T>(key: string): Promise<T | undefined> {
        this.gets++;
        return super.get<T>(key);
      }
    }
    const adapter = new Counting(new FlakyAdapter(), new MemoryCacheAdapter({ sweepInterval: 0 }));
    const stack = createCacheStack(adapter, OPTIONS);
    expect(stack.tiers.remote).toBe(adapter);
    await stack.get('k');
    expect(adapter.gets).toBe(1);
    await adapter.onApplicationShutdown();
  });
});

describe('the stack over a failover adapter: breaker and recovery through the stack', () => {
  let primary: FlakyAdapter;
  let fallback: MemoryCacheAdapter;
  let adapter: FailoverCacheAdapter;
  let stack: CacheStack;

  beforeEach(async () => {
    jest.useFakeTimers();
    primary = new FlakyAdapter();
    fallback = new MemoryCacheAdapter({ sweepInterval: 0 });
    adapter = new FailoverCacheAdapter(primary, fallback, {
      failureThreshold: 3,
      cooldown: 1,
      timeout: 0.1,
    });
    await adapter.onModuleInit();
    stack = createCacheStack(adapter, OPTIONS);
  });

  afterEach(() => adapter.onApplicationShutdown());

  it('writes go to the fallback, then the remote tier', async () => {
    await stack.set('k', { v: 1 });
    expect(await fallback.get('k')).toEqual({ v: 1 });
    expect(await primary.store.get('k')).toEqual({ v: 1 });
    expect(adapter.stats.primaryHits).toBe(0);
    expect(await stack.get('k')).toEqual({ v: 1 });
    expect(adapter.stats.primaryHits).toBe(1);
  });

  it('opens after the threshold, serves the fallback, then recovers after the cool-down', async () => {
    await stack.set('k', 'before');
    primary.mode = 'down';
    for (let i = 0; i < 3; i++) await stack.get('other');
    expect(adapter.state).toBe('open');
    // Errors never reach the stack's own policy: the remote tier answers them.
    expect(stack.failures).toBe(0);

    const calls = primary.calls.length;
    await stack.set('k', 'during');
    expect(await stack.get('k')).toBe('during'); // the fallback, primary skipped
    expect(primary.calls.length).toBe(calls);
    expect(adapter.stats.pendingReconciliation).toBe(1);

    primary.mode = 'up';
    await advance(1_000);
    expect(adapter.state).toBe('closed');
    // Recovery deleted the key written during the outage from the primary first.
    expect(primary.calls).toContain('delete k');
    expect(await primary.store.get('k')).toBeUndefined();
    expect(adapter.stats.pendingReconciliation).toBe(0);
    expect(await stack.get('k')).toBe('during');
  });

  it('a hung primary costs the timeout, then the fallback answers', async () => {
    await stack.set('k', 'v');
    primary.mode = 'frozen';
    const read = stack.get('k');
    await advance(100);
    expect(await read).toBe('v');
    expect(adapter.stats.primaryFailures).toBe(1);
    await primary.thaw();
  });
});

describe('CacheModule: the stack uses a FailoverCacheAdapter through its tiers, lifecycle once', () => {
  const lifecycle = (primary: FlakyAdapter, fallback: MemoryCacheAdapter) => {
    const counts = { primaryInit: 0, primaryShutdown: 0, fallbackInit: 0, fallbackShutdown: 0 };
    primary.onModuleInit = () => void counts.primaryInit++;
    primary.onApplicationShutdown = () => void counts.primaryShutdown++;
    const init = fallback.onModuleInit?.bind(fallback);
    const shutdown = fallback.onApplicationShutdown?.bind(fallback);
    fallback.onModuleInit = () => {
      counts.fallbackInit++;
      return init?.();
    };
    fallback.onApplicationShutdown = () => {
      counts.fallbackShutdown++;
      return shutdown?.();
    };
    return counts;
  };

  it.each(['adapter option', 'overridden provider'] as const)('given as %s', async (how) => {
    const primary = new FlakyAdapter();
    const fallback = new MemoryCacheAdapter({ sweepInterval: 0 });
    const counts = lifecycle(primary, fallback);
    const adapter = new FailoverCacheAdapter(primary, fallback);
    const builder = Test.createTestingModule({
      imports: [CacheModule.forRoot(how === 'adapter option' ? { adapter } : {})],
    });
    if (how === 'overridden provider') builder.overrideProvider(CacheAdapter).useValue(adapter);
    const app = (await builder.compile()).createNestApplication({ logger: false });
    await app.init();
    const stack = app.get(CacheStack);
    expect(stack.tiers.failover).toBe(adapter.tier);
    await app.get(CacheService).set('k', 1);
    expect(await fallback.get('k')).toBe(1);
    expect(await primary.store.get('k')).toBe(1);
    await app.close();
    expect(counts).toEqual({
      primaryInit: 1,
      primaryShutdown: 1,
      fallbackInit: 1,
      fallbackShutdown: 1,
    });
  });
});
