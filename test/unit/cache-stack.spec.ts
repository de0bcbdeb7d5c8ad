import { Logger } from '@nestjs/common';
import { CacheArgumentError, CacheKeyError, CacheSerializationError } from '../../lib';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import type { CacheStack, CacheStackOptions } from '../../lib/core/cache-stack';
import { createCacheStack } from '../../lib/core/create-stack';
import type { CacheAdapter } from '../../lib/interfaces/cache-adapter.interface';
import { FlakyAdapter } from '../support/flaky-adapter';
import { Gate } from '../support/gated-adapter';

/**
 * The cache stack on its own (issue 11, item 5): no Nest application, fake timers for TTLs and
 * for the shared window of a pending write. A fault-injecting adapter stands in where a real
 * server cannot produce the fault (a synchronous throw, a write that never settles).
 */
const OPTIONS: CacheStackOptions = { enabled: true, ttl: 60, namespace: 'test' };

/** Lets pending Promise callbacks run (fake timers leave the microtask queue alone). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A remote-like adapter (no sync capability) whose writes can be held back. */
class HeldWrites extends FlakyAdapter {
  hold: Gate | undefined;

  override async set(key: string, value: unknown, ttl: number): Promise<void> {
    if (this.hold) await this.hold.wait;
    return super.set(key, value, ttl);
  }
}

describe('CacheStack', () => {
  let warnings: string[];

  beforeEach(() => {
    warnings = [];
    jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => {
      warnings.push(String(message));
    });
  });

  afterEach(() => {
    jest.restoreAllMocks();
    jest.useRealTimers();
  });

  describe('the local tier (sync fast path)', () => {
    it('reads the built-in memory adapter synchronously: peek answers in the same turn', async () => {
      const memory = new MemoryCacheAdapter({ sweepInterval: 0 });
      const stack = createCacheStack(memory, OPTIONS);
      // A spy would replace `get` on the instance, which opts the adapter out of the sync view
      // (see the next test): count the Promise API's use through the store's own state instead.
      let asyncReads = 0;
      const original = MemoryCacheAdapter.prototype.get;
      expect(memory.syncView()).toBe(memory);
      await stack.set('k', { v: 1 });
      expect(stack.peek('k')).toEqual({ v: 1 });
      await expect(stack.wrap('k', () => 'loaded')).resolves.toEqual({
        value: { v: 1 },
        status: 'hit',
      });
      await expect(stack.get('k')).resolves.toEqual({ v: 1 });
      // Only now spied: the stack took its view at construction, so it never calls `get`.
      jest.spyOn(memory, 'get').mockImplementation((key) => {
        asyncReads++;
        return original.call(memory, key);
      });
      await stack.get('k');
      await stack.wrap('k', () => 'loaded');
      expect(asyncReads).toBe(0);
    });

    it('calls a subclass that overrides get/set through them (no sync view), as before', async () => {
      class Counting extends MemoryCacheAdapter {
        gets = 0;
        override get<T>(key: string): Promise<T | undefined> {
          this.gets++;
          return super.get<T>(key);
        }
      }
      const memory = new Counting({ sweepInterval: 0 });
      expect(memory.syncView()).toBeUndefined();
      const stack = createCacheStack(memory, OPTIONS);
      await stack.set('k', 1);
      expect(stack.peek('k')).toBeUndefined();
      expect(await stack.get('k')).toBe(1);
      expect(memory.gets).toBe(1);
    });

    it('takes the sync capability from any adapter that offers it (no instanceof)', async () => {
      const entries = new Map<string, unknown>();
      const custom: CacheAdapter = {
        get: () => Promise.reject(new Error('the async path must not be used')),
        set: () => Promise.reject(new Error('the async path must not be used')),
        delete: (key) => Promise.resolve(entries.delete(key)),
        has: (key) => Promise.resolve(entries.has(key)),
        clear: () => Promise.resolve(entries.clear()),
        deleteByPrefix: () => Promise.resolve(0),
        syncView: () => ({
          getSync: <T>(key: string) => entries.get(key) as T | undefined,
          setSync: (key: string, value: unknown) => void entries.set(key, value),
        }),
      };
      const stack = createCacheStack(custom, OPTIONS);
      await stack.set('k', 'v');
      expect(stack.peek('k')).toBe('v');
      expect(await stack.wrap('other', () => 'loaded')).toEqual({
        value: 'loaded',
        status: 'miss',
      });
      expect(entries.get('other')).toBe('loaded');
      expect(warnings).toEqual([]);
    });

    it('peek answers nothing for an adapter without the capability, or when disabled', async () => {
      expect(createCacheStack(new FlakyAdapter(), OPTIONS).peek('k')).toBeUndefined();
      const memory = new MemoryCacheAdapter({ sweepInterval: 0 });
      await memory.set('k', 1, 0);
      expect(createCacheStack(memory, { ...OPTIONS, enabled: false }).peek('k')).toBeUndefined();
    });
  });

  describe('TTL (fake timers)', () => {
    beforeEach(() => jest.useFakeTimers());

    it('an entry expires after its TTL; the default TTL applies when none is given', async () => {
      const stack = createCacheStack(new MemoryCacheAdapter({ sweepInterval: 0 }), OPTIONS);
      await stack.set('short', 'a', 1);
      await stack.set('default', 'b');
      jest.advanceTimersByTime(999);
      expect(await stack.get('short')).toBe('a');
      jest.advanceTimersByTime(2);
      expect(await stack.get('short')).toBeUndefined();
      jest.advanceTimersByTime(58_000);
      expect(await stack.get('default')).toBe('b');
      jest.advanceTimersByTime(1_000);
      expect(await stack.get('default')).toBeUndefined();
    });

    it('ttl 0 never expires', async () => {
      const stack = createCacheStack(new MemoryCacheAdapter({ sweepInterval: 0 }), OPTIONS);
      await stack.set('k', 'v', 0);
      jest.advanceTimersByTime(365 * 24 * 3600 * 1000);
      expect(await stack.get('k')).toBe('v');
    });

    it('a pending write is shared as a hit for its TTL only, then the key loads again', async () => {
      const remote = new HeldWrites();
      remote.hold = new Gate();
      const stack = createCacheStack(remote, OPTIONS);
      let runs = 0;
      const loader = () => ++runs;
      expect(await stack.wrap('k', loader, 1)).toEqual({ value: 1, status: 'miss' });
      expect(await stack.wrap('k', loader, 1)).toEqual({ value: 1, status: 'hit' });
      jest.advanceTimersByTime(1_001);
      // The write never settled: after its TTL the entry would have expired anyway.
      expect(await stack.wrap('k', loader, 1)).toEqual({ value: 2, status: 'miss' });
      remote.hold.open();
    });
  });

  describe('single-flight and supersession', () => {
    let stack: CacheStack;
    let memory: MemoryCacheAdapter;

    beforeEach(() => {
      memory = new MemoryCacheAdapter({ sweepInterval: 0 });
      stack = createCacheStack(memory, OPTIONS);
    });

    it('concurrent misses share one loader call: one miss, the others shared', async () => {
      const gate = new Gate();
      let runs = 0;
      const loader = async () => {
        runs++;
        await gate.wait;
        return 'v';
      };
      const calls = [stack.wrap('k', loader), stack.wrap('k', loader), stack.wrap('k', loader)];
      expect(stack.loadsInFlight).toBe(1);
      gate.open();
      const results = await Promise.all(calls);
      expect(results.map((r) => r.status)).toEqual(['miss', 'shared', 'shared']);
      expect(results.every((r) => r.value === 'v')).toBe(true);
      expect(runs).toBe(1);
      expect(stack.loadsInFlight).toBe(0);
      expect(await stack.wrap('k', loader)).toEqual({ value: 'v', status: 'hit' });
    });

    it('a loader that throws rejects every waiter, caches nothing, and leaves no flight', async () => {
      const gate = new Gate();
      const loader = async () => {
        await gate.wait;
        throw new Error('boom');
      };
      const calls = [stack.wrap('k', loader), stack.wrap('k', loader)];
      gate.open();
      for (const call of calls) await expect(call).rejects.toThrow('boom');
      expect(stack.loadsInFlight).toBe(0);
      expect(await stack.get('k')).toBeUndefined();
      // A loader that throws at once too.
      await expect(
        stack.wrap('k', () => {
          throw new Error('at once');
        }),
      ).rejects.toThrow('at once');
      expect(stack.loadsInFlight).toBe(0);
    });

    it.each([
      ['set', (s: CacheStack) => s.set('k', 'written')],
      ['delete', (s: CacheStack) => s.delete('k')],
      ['clear', (s: CacheStack) => s.clear()],
      ['deleteByPrefix', (s: CacheStack) => s.deleteByPrefix('k')],
      ['invalidate', (s: CacheStack) => s.invalidate({ keys: ['k'] })],
    ])(
      'a %s during the load supersedes it: its result is returned, not stored',
      async (_, change) => {
        const gate = new Gate();
        let runs = 0;
        const loader = async () => {
          runs++;
          await gate.wait;
          return 'stale';
        };
        const first = stack.wrap('k', loader);
        await change(stack);
        // A new caller does not join the superseded load.
        const second = stack.wrap('k', async () => 'fresh');
        gate.open();
        expect((await first).value).toBe('stale');
        expect((await second).value).toMatch(/fresh|written/);
        expect(await stack.get('k')).not.toBe('stale');
        expect(runs).toBe(1);
      },
    );

    it('a prefix supersedes only the loads under it', async () => {
      const gate = new Gate();
      const loader = async () => {
        await gate.wait;
        return 'loaded';
      };
      const under = stack.wrap('user:1', loader);
      const other = stack.wrap('order:1', loader);
      await stack.deleteByPrefix('user:');
      gate.open();
      await Promise.all([under, other]);
      expect(await stack.get('user:1')).toBeUndefined();
      expect(await stack.get('order:1')).toBe('loaded');
    });

    it('a loader that wraps its own key is let through instead of waiting for itself', async () => {
      const result = await stack.wrap('k', () =>
        stack.wrap('k', () => 'inner').then((inner) => `outer(${inner.value})`),
      );
      expect(result).toEqual({ value: 'outer(inner)', status: 'miss' });
      expect(await stack.get('k')).toBe('outer(inner)');
    });

    it('unless vetoes the store; an undefined result is not stored', async () => {
      await stack.wrap('a', () => 'no', { unless: (v) => v === 'no' });
      await stack.wrap('b', () => undefined);
      expect(await stack.has('a')).toBe(false);
      expect(await stack.has('b')).toBe(false);
    });

    it('read false loads without reading first', async () => {
      await stack.set('k', 'cached');
      expect(await stack.wrap('k', () => 'loaded', undefined, false)).toEqual({
        value: 'loaded',
        status: 'miss',
      });
    });
  });

  describe('the error policy', () => {
    let remote: FlakyAdapter;
    let stack: CacheStack;

    beforeEach(() => {
      remote = new FlakyAdapter();
      remote.mode = 'down';
      stack = createCacheStack(remote, OPTIONS);
    });

    it('a failing backend answers as a miss or a no-op, logged and counted, never thrown', async () => {
      await expect(stack.get('k')).resolves.toBeUndefined();
      await expect(stack.set('k', 1)).resolves.toBeUndefined();
      await expect(stack.has('k')).resolves.toBe(false);
      await expect(stack.delete('k')).resolves.toBe(false);
      await expect(stack.clear()).resolves.toBeUndefined();
      await expect(stack.deleteByPrefix('k')).resolves.toBe(0);
      expect(stack.failures).toBe(6);
      expect(warnings).toContain('Cache GET "k" failed, calling through: connect ECONNREFUSED');
    });

    it('logs one line per operation, rate-limited', async () => {
      for (let i = 0; i < 5; i++) await stack.get(`k${i}`);
      expect(stack.failures).toBe(5);
      expect(warnings.filter((w) => w.startsWith('Cache GET'))).toHaveLength(1);
    });

    it('wrap calls the loader when the backend fails, and its value is returned', async () => {
      expect(await stack.wrap('k', () => 'loaded')).toEqual({ value: 'loaded', status: 'miss' });
      await flush();
      expect(stack.failures).toBe(2); // the read and the background write
    });

    it('an adapter that throws instead of rejecting is treated alike', async () => {
      const throwing: CacheAdapter = {
        ...remote,
        get: () => {
          throw new Error('sync get');
        },
        set: () => {
          throw new Error('sync set');
        },
        delete: () => {
          throw new Error('sync delete');
        },
        has: () => Promise.resolve(false),
        clear: () => Promise.resolve(),
        deleteByPrefix: () => Promise.resolve(0),
      };
      const s = createCacheStack(throwing, OPTIONS);
      await expect(s.get('k')).resolves.toBeUndefined();
      await expect(s.set('k', 1)).resolves.toBeUndefined();
      await expect(s.delete('k')).resolves.toBe(false);
      // invalidate reports the failure (a durable job retries), as a rejection, not a throw.
      await expect(s.invalidate({ keys: ['k'] })).rejects.toThrow('sync delete');
    });

    it('invalidate rejects when the backend fails', async () => {
      await expect(stack.invalidate({ keys: ['a'], prefixes: ['b:'] })).rejects.toThrow(
        'ECONNREFUSED',
      );
    });

    it('programming errors do throw: empty key, invalid TTL, a value JSON cannot hold', async () => {
      await expect(stack.get('')).rejects.toBeInstanceOf(CacheKeyError);
      await expect(stack.set('k', 1, -1)).rejects.toBeInstanceOf(CacheArgumentError);
      await expect(stack.set('k', () => 1)).rejects.toBeInstanceOf(CacheSerializationError);
      await expect(stack.wrap('', () => 1)).rejects.toBeInstanceOf(CacheKeyError);
      await expect(stack.wrap('k', () => 1, Number.NaN)).rejects.toBeInstanceOf(CacheArgumentError);
      await expect(stack.deleteByPrefix(1 as unknown as string)).rejects.toBeInstanceOf(
        CacheKeyError,
      );
      expect(stack.failures).toBe(0);
    });

    it('a loaded value JSON cannot hold is returned, not stored, and logged', async () => {
      const memory = createCacheStack(new MemoryCacheAdapter({ sweepInterval: 0 }), OPTIONS);
      const value = { n: BigInt(1) };
      expect((await memory.wrap('k', () => value)).value).toBe(value);
      expect(await memory.has('k')).toBe(false);
      expect(warnings.some((w) => w.startsWith('Cache value for "k" was not stored'))).toBe(true);
    });
  });

  describe('disabled', () => {
    it('reads miss, writes do nothing, wrap calls through', async () => {
      const memory = new MemoryCacheAdapter({ sweepInterval: 0 });
      const stack = createCacheStack(memory, { ...OPTIONS, enabled: false });
      await stack.set('k', 1);
      expect(await memory.has('k')).toBe(false);
      expect(await stack.get('k')).toBeUndefined();
      expect(await stack.wrap('k', () => 2)).toEqual({ value: 2, status: 'disabled' });
      expect(await stack.invalidate({ keys: ['k'] })).toBe(0);
    });
  });
});
