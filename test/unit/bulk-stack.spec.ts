import { Logger } from '@nestjs/common';
import {
  CacheArgumentError,
  CacheKeyError,
  CacheLoaderTimeoutError,
  CacheSerializationError,
} from '../../lib';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import type { CacheStack, CacheStackOptions } from '../../lib/core/cache-stack';
import { createCacheStack } from '../../lib/core/create-stack';
import { FlakyAdapter } from '../support/flaky-adapter';
import { KEY_LOCK, type KeyLock } from '../../lib/interfaces/key-lock';
import { deferred } from '../support/deferred';

/**
 * The bulk operations of the stack (issue 17, items 1 and 2) on the in-process store and on a
 * remote-like store without bulk methods of its own (the per-key fallback a custom adapter gets).
 * Redis, Cluster and two tiers: test/redis/bulk-*.spec.ts.
 */
const OPTIONS: CacheStackOptions = { enabled: true, ttl: 60, namespace: 'test' };

type Shape = 'memory' | 'remote';
const SHAPES: Shape[] = ['memory', 'remote'];

function stackOf(
  shape: Shape,
  options: Partial<CacheStackOptions> = {},
): {
  stack: CacheStack;
  remote?: FlakyAdapter;
} {
  if (shape === 'memory') {
    return {
      stack: createCacheStack(new MemoryCacheAdapter({ sweepInterval: 0 }), {
        ...OPTIONS,
        ...options,
      }),
    };
  }
  const remote = new FlakyAdapter();
  return { stack: createCacheStack(remote, { ...OPTIONS, ...options }), remote };
}

describe.each(SHAPES)('bulk operations of the stack (%s)', (shape) => {
  let warnings: string[];

  beforeEach(() => {
    warnings = [];
    jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => {
      warnings.push(String(message));
    });
  });

  afterEach(() => jest.restoreAllMocks());

  describe('getMany / setMany / deleteMany', () => {
    it('reads in the order asked, duplicates included, misses as undefined', async () => {
      const { stack } = stackOf(shape);
      await stack.setMany([
        { key: 'a', value: 1 },
        { key: 'b', value: null },
        { key: 'c', value: { deep: [false, ''] }, ttl: 0 },
      ]);
      await expect(stack.getMany(['c', 'x', 'a', 'b', 'a'])).resolves.toEqual([
        { deep: [false, ''] },
        undefined,
        1,
        null,
        1,
      ]);
      await expect(stack.getMany([])).resolves.toEqual([]);
    });

    it('counts each key as a get (hits and misses)', async () => {
      const { stack } = stackOf(shape);
      await stack.set('a', 1);
      const hits: string[] = [];
      const misses: string[] = [];
      stack.events.on('hit', ({ key }) => hits.push(key));
      stack.events.on('miss', ({ key }) => misses.push(key));
      await stack.getMany(['a', 'b']);
      expect(hits).toEqual(['a']);
      expect(misses).toEqual(['b']);
      expect(stack.stats().hits).toBe(1);
      expect(stack.stats().misses).toBe(1);
    });

    it('checks every entry before writing any: one bad value keeps all old entries', async () => {
      const { stack } = stackOf(shape);
      await stack.setMany([
        { key: 'a', value: 'old-a' },
        { key: 'b', value: 'old-b' },
      ]);
      await expect(
        stack.setMany([
          { key: 'a', value: 'new-a' },
          { key: 'b', value: () => 'a function' },
        ]),
      ).rejects.toThrow(CacheSerializationError);
      await expect(
        stack.setMany([
          { key: 'a', value: 'new-a' },
          { key: '', value: 1 },
        ]),
      ).rejects.toThrow(/setMany entry 1/);
      await expect(stack.setMany([{ key: 'a', value: 1, ttl: -1 }])).rejects.toThrow(
        CacheArgumentError,
      );
      // An invalid option names its entry, like an invalid key.
      await expect(
        stack.setMany([
          { key: 'a', value: 'new-a' },
          { key: 'b', value: 'new-b', ttl: -1 },
        ]),
      ).rejects.toThrow(/^setMany entry 1: Invalid ttl -1/);
      await expect(
        stack.setMany([
          { key: 'a', value: 'new-a' },
          { key: 'b', value: 1, colour: 'red' } as never,
        ]),
      ).rejects.toThrow(/^setMany entry 1: Unknown set option "colour"/);
      await expect(stack.setMany('nope' as never)).rejects.toThrow(/array/);
      await expect(stack.getMany(['a', 'b'])).resolves.toEqual(['old-a', 'old-b']);
    });

    it('gives each entry its own TTL', async () => {
      jest.useFakeTimers({
        now: 1_000_000,
        doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'],
      });
      try {
        const { stack } = stackOf(shape);
        await stack.setMany([
          { key: 'short', value: 1, ttl: 1 },
          { key: 'long', value: 2, ttl: 100 },
          { key: 'default', value: 3 },
        ]);
        jest.advanceTimersByTime(2_000);
        await expect(stack.getMany(['short', 'long', 'default'])).resolves.toEqual([
          undefined,
          2,
          3,
        ]);
        jest.advanceTimersByTime(60_000);
        await expect(stack.getMany(['short', 'long', 'default'])).resolves.toEqual([
          undefined,
          2,
          undefined,
        ]);
      } finally {
        jest.useRealTimers();
      }
    });

    it('stores tagged entries that deleteByTag drops', async () => {
      const { stack } = stackOf(shape);
      await stack.setMany([
        { key: 'p1', value: 1, tags: ['products'] },
        { key: 'p2', value: 2, tags: ['products', 'p:2'] },
        { key: 'u1', value: 3, tags: ['users'] },
      ]);
      await stack.deleteByTag('products');
      await expect(stack.getMany(['p1', 'p2', 'u1'])).resolves.toEqual([undefined, undefined, 3]);
    });

    it('deletes many keys and says how many existed', async () => {
      const { stack } = stackOf(shape);
      await stack.setMany([
        { key: 'a', value: 1 },
        { key: 'b', value: 2 },
        { key: 'c', value: 3 },
      ]);
      await expect(stack.deleteMany(['a', 'b', 'a', 'zz'])).resolves.toBe(2);
      await expect(stack.getMany(['a', 'b', 'c'])).resolves.toEqual([undefined, undefined, 3]);
      await expect(stack.deleteMany([])).resolves.toBe(0);
    });

    it('rejects keys that are not non-empty strings, naming the position', async () => {
      const { stack } = stackOf(shape);
      await expect(stack.getMany(['a', ''])).rejects.toThrow(CacheKeyError);
      await expect(stack.getMany(['a', ''])).rejects.toThrow(/getMany key 1/);
      await expect(stack.deleteMany([1 as never])).rejects.toThrow(/deleteMany key 0/);
      await expect(stack.getMany('a' as never)).rejects.toThrow(/array of keys/);
    });

    it('does nothing when disabled', async () => {
      const { stack } = stackOf(shape, { enabled: false });
      await stack.setMany([{ key: 'a', value: 1 }]);
      await expect(stack.getMany(['a'])).resolves.toEqual([undefined]);
      await expect(stack.deleteMany(['a'])).resolves.toBe(0);
    });

    if (shape === 'remote') {
      it('answers misses, resolves writes and deletes, when the store is down (logged)', async () => {
        const { stack, remote } = stackOf(shape);
        await stack.set('a', 1);
        remote!.mode = 'down';
        await expect(stack.getMany(['a', 'b'])).resolves.toEqual([undefined, undefined]);
        await expect(stack.setMany([{ key: 'a', value: 2 }])).resolves.toBeUndefined();
        await expect(stack.deleteMany(['a'])).resolves.toBe(0);
        expect(stack.stats().errors).toBeGreaterThanOrEqual(3);
        expect(warnings.join('\n')).toMatch(/MGET/);
        remote!.mode = 'up';
        await expect(stack.getMany(['a'])).resolves.toEqual([1]);
      });

      it('answers the keys that were read when only some fail', async () => {
        const { stack, remote } = stackOf(shape);
        await stack.setMany([
          { key: 'a', value: 1 },
          { key: 'b', value: 2 },
        ]);
        const get = remote!.get.bind(remote);
        remote!.get = (key: string) =>
          key === 'b' ? Promise.reject(new Error('node down')) : get(key);
        await expect(stack.getMany(['a', 'b'])).resolves.toEqual([1, undefined]);
        expect(warnings.join('\n')).toMatch(/node down/);
      });
    }
  });

  describe('wrapMany', () => {
    it('calls the loader once with only the keys that missed, in order, each once', async () => {
      const { stack } = stackOf(shape);
      await stack.setMany([
        { key: 'k2', value: 'cached-2' },
        { key: 'k4', value: 'cached-4' },
      ]);
      const calls: string[][] = [];
      const values = await stack.wrapMany(['k1', 'k2', 'k3', 'k1', 'k4', 'k5'], async (missing) => {
        calls.push(missing);
        return missing.map((key) => `loaded-${key}`);
      });
      expect(calls).toEqual([['k1', 'k3', 'k5']]);
      expect(values).toEqual([
        'loaded-k1',
        'cached-2',
        'loaded-k3',
        'loaded-k1',
        'cached-4',
        'loaded-k5',
      ]);
      // Each stored under its own key.
      await expect(stack.getMany(['k1', 'k3', 'k5'])).resolves.toEqual([
        'loaded-k1',
        'loaded-k3',
        'loaded-k5',
      ]);
      const again = jest.fn(async (missing: string[]) => missing);
      await expect(stack.wrapMany(['k1', 'k5'], again)).resolves.toEqual([
        'loaded-k1',
        'loaded-k5',
      ]);
      expect(again).not.toHaveBeenCalled();
      expect(stack.stats().loader.runs).toBe(1);
    });

    it('reports one loader run for the batch: stats and loader events name all its keys', async () => {
      const { stack } = stackOf(shape);
      const done: Array<{ key: string; keys?: readonly string[] }> = [];
      const failed: Array<{ key: string; keys?: readonly string[] }> = [];
      stack.events.on('loader.done', ({ key, keys }) => done.push({ key, keys }));
      stack.events.on('loader.error', ({ key, keys }) => failed.push({ key, keys }));
      await stack.wrapMany(['a', 'b', 'c'], (keys) => keys);
      expect(done).toEqual([{ key: 'a', keys: ['a', 'b', 'c'] }]);
      await expect(
        stack.wrapMany(['x', 'y'], () => {
          throw new Error('nope');
        }),
      ).rejects.toThrow('nope');
      expect(failed).toEqual([{ key: 'x', keys: ['x', 'y'] }]);
      const { loader } = stack.stats();
      expect(loader.runs).toBe(2);
      expect(loader.errors).toBe(1);
    });

    if (shape === 'remote') {
      it('with lock, waits for every key to take its lock (answered at different times), then calls once', async () => {
        // A lock whose answers arrive key by key, 5 ms apart (as from several Cluster nodes);
        // 'held' is locked by another instance, which stores its value after 30 ms.
        class SlowLock extends FlakyAdapter {
          readonly lock: KeyLock = {
            acquire: async (key) => {
              await new Promise((resolve) => setTimeout(resolve, 5 * Number(key.slice(1) || 8)));
              if (key !== 'held') return true;
              setTimeout(() => void this.store.set('held', 'theirs', 60), 30);
              return false;
            },
            release: async () => true,
          };
          [KEY_LOCK](): KeyLock {
            return this.lock;
          }
        }
        const stack = createCacheStack(new SlowLock(), { ...OPTIONS, lock: { ttl: 5, wait: 2 } });
        const calls: string[][] = [];
        const values = await stack.wrapMany(['k1', 'k4', 'held', 'k7'], async (keys) => {
          calls.push(keys);
          return keys.map((key) => `ours-${key}`);
        });
        expect(calls).toEqual([['k1', 'k4', 'k7']]);
        expect(values).toEqual(['ours-k1', 'ours-k4', 'theirs', 'ours-k7']);
      });
    }

    it('takes a Map or an object by key; a key left out is undefined and not cached', async () => {
      const { stack } = stackOf(shape);
      await expect(
        stack.wrapMany(
          ['a', 'b', 'c'],
          async () =>
            new Map([
              ['a', 1],
              ['c', 3],
            ]),
        ),
      ).resolves.toEqual([1, undefined, 3]);
      await expect(stack.wrapMany(['d', 'e'], () => ({ e: 'E' }))).resolves.toEqual([
        undefined,
        'E',
      ]);
      await expect(stack.getMany(['a', 'b', 'c', 'd', 'e'])).resolves.toEqual([
        1,
        undefined,
        3,
        undefined,
        'E',
      ]);
      // Not cached: asked again.
      const loader = jest.fn(async (missing: string[]) => missing.map(() => 'now'));
      await expect(stack.wrapMany(['a', 'b', 'd'], loader)).resolves.toEqual([1, 'now', 'now']);
      expect(loader).toHaveBeenCalledWith(['b', 'd']);
    });

    it('does not take an inherited property of an object result as a value', async () => {
      const { stack } = stackOf(shape);
      await expect(stack.wrapMany(['toString', 'constructor'], () => ({}))).resolves.toEqual([
        undefined,
        undefined,
      ]);
    });

    it('rejects a loader result of the wrong length or kind, clearly', async () => {
      const { stack } = stackOf(shape);
      await expect(stack.wrapMany(['a', 'b'], async () => ['only one'])).rejects.toThrow(
        /resolved 1 values for 2 keys/,
      );
      await expect(stack.wrapMany(['a'], async () => 'text' as never)).rejects.toThrow(
        /must resolve an array/,
      );
      await expect(stack.getMany(['a', 'b'])).resolves.toEqual([undefined, undefined]);
    });

    it('joins loads in flight: no key is loaded twice concurrently', async () => {
      const { stack } = stackOf(shape);
      const slow = deferred<string>();
      const single = stack.wrap('b', () => slow.promise);
      // The single load has started (a remote store is read first).
      await new Promise((resolve) => setImmediate(resolve));
      expect(stack.loadsInFlight).toBe(1);
      const batchCalls: string[][] = [];
      const many = stack.wrapMany(['a', 'b', 'c'], async (missing) => {
        batchCalls.push(missing);
        return missing.map((key) => `batch-${key}`);
      });
      // And a second batch over the same keys while the first runs: it joins every one.
      const second = jest.fn(async (missing: string[]) => missing);
      const joined = stack.wrapMany(['a', 'c'], second);
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      slow.resolve('single-b');
      await expect(many).resolves.toEqual(['batch-a', 'single-b', 'batch-c']);
      await expect(joined).resolves.toEqual(['batch-a', 'batch-c']);
      await expect(single).resolves.toEqual({ value: 'single-b', status: 'miss' });
      expect(batchCalls).toEqual([['a', 'c']]);
      expect(second).not.toHaveBeenCalled();
    });

    it('lets single wraps join a batch in flight', async () => {
      const { stack } = stackOf(shape);
      const gate = deferred<void>();
      const batch = jest.fn(async (missing: string[]) => {
        await gate.promise;
        return missing.map((key) => `v-${key}`);
      });
      const many = stack.wrapMany(['a', 'b'], batch);
      await new Promise((resolve) => setImmediate(resolve));
      const single = jest.fn(() => 'single');
      const joining = stack.wrap('b', single);
      gate.resolve();
      await expect(many).resolves.toEqual(['v-a', 'v-b']);
      await expect(joining).resolves.toEqual({ value: 'v-b', status: 'shared' });
      expect(single).not.toHaveBeenCalled();
      expect(batch).toHaveBeenCalledTimes(1);
    });

    it('rejects with the loader error, and caches nothing of a failed batch', async () => {
      const { stack } = stackOf(shape);
      await expect(
        stack.wrapMany(['a', 'b'], async () => {
          throw new Error('db down');
        }),
      ).rejects.toThrow('db down');
      await expect(stack.getMany(['a', 'b'])).resolves.toEqual([undefined, undefined]);
      expect(stack.loadsInFlight).toBe(0);
    });

    it('serves stale values within grace when the batch loader fails', async () => {
      jest.useFakeTimers({
        now: 1_000_000,
        doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'],
      });
      try {
        const { stack } = stackOf(shape, { grace: 600 });
        await stack.wrapMany(['a', 'b'], (keys) => keys.map((key) => `first-${key}`), 10);
        jest.advanceTimersByTime(11_000);
        const failing = jest.fn(async () => {
          throw new Error('upstream down');
        });
        await expect(stack.wrapMany(['a', 'b'], failing, 10)).resolves.toEqual([
          'first-a',
          'first-b',
        ]);
        expect(failing).toHaveBeenCalledTimes(1);
        expect(failing).toHaveBeenCalledWith(['a', 'b']);
        // A key without a stale value: the error reaches the caller.
        await expect(stack.wrapMany(['a', 'new'], failing, 10)).rejects.toThrow('upstream down');
      } finally {
        jest.useRealTimers();
      }
    });

    it('bounds the wait with timeouts.hard (CacheLoaderTimeoutError), and still stores', async () => {
      const { stack } = stackOf(shape);
      const late = deferred<string[]>();
      await expect(
        stack.wrapMany(['a'], () => late.promise, { timeouts: { hard: 0.05 } }),
      ).rejects.toThrow(CacheLoaderTimeoutError);
      late.resolve(['late-a']);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await expect(stack.get('a')).resolves.toBe('late-a');
    });

    it('applies unless per value, tags per key, and a TTL to every entry', async () => {
      const { stack } = stackOf(shape);
      const values = await stack.wrapMany(
        ['p1', 'p2', 'empty'],
        (keys) => keys.map((key) => (key === 'empty' ? [] : [key])),
        {
          ttl: 30,
          unless: (value) => Array.isArray(value) && value.length === 0,
          tags: (key) => [`tag:${key}`, 'all'],
        },
      );
      expect(values).toEqual([['p1'], ['p2'], []]);
      await expect(stack.getMany(['p1', 'p2', 'empty'])).resolves.toEqual([
        ['p1'],
        ['p2'],
        undefined,
      ]);
      await stack.deleteByTag('tag:p1');
      await expect(stack.getMany(['p1', 'p2'])).resolves.toEqual([undefined, ['p2']]);
      await stack.deleteByTag('all');
      await expect(stack.getMany(['p2'])).resolves.toEqual([undefined]);
      await expect(stack.expiresAt('p1')).resolves.toBeUndefined();
    });

    it('validates its arguments', async () => {
      const { stack } = stackOf(shape);
      await expect(stack.wrapMany(['a'], 'nope' as never)).rejects.toThrow(/loader function/);
      await expect(stack.wrapMany(['a', ''], () => [])).rejects.toThrow(CacheKeyError);
      await expect(stack.wrapMany(['a'], () => ['x'], { colour: 1 } as never)).rejects.toThrow(
        /Unknown wrap option "colour"/,
      );
      await expect(
        stack.wrapMany(['a'], () => ['x'], { tags: (() => [1]) as never }),
      ).rejects.toThrow(/Invalid tags/);
      await expect(stack.wrapMany([], () => [])).resolves.toEqual([]);
    });

    it('calls the loader through when disabled', async () => {
      const { stack } = stackOf(shape, { enabled: false });
      const loader = jest.fn((keys: string[]) => keys.map((key) => key.toUpperCase()));
      await expect(stack.wrapMany(['a', 'b', 'a'], loader)).resolves.toEqual(['A', 'B', 'A']);
      expect(loader).toHaveBeenCalledWith(['a', 'b']);
    });

    it('lets a loader wrap its own keys again without waiting for itself', async () => {
      const { stack } = stackOf(shape);
      const values = await stack.wrapMany(['a', 'b'], async (keys) => {
        const inner = await stack.wrapMany(keys, (again) => again.map((key) => `inner-${key}`));
        return inner.map((value) => `outer(${String(value)})`);
      });
      expect(values).toEqual(['outer(inner-a)', 'outer(inner-b)']);
      await expect(stack.getMany(['a', 'b'])).resolves.toEqual([
        'outer(inner-a)',
        'outer(inner-b)',
      ]);
    });
  });
});
