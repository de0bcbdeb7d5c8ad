import { Test } from '@nestjs/testing';
import type { INestApplication } from '@nestjs/common';
import { CacheModule, CacheSerializationError, CacheService, CacheKeyError } from '../../lib';
import type { CacheModuleOptions } from '../../lib';
import { describeBulkContract } from './bulk-contract';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The behaviour every backend must share. Each backend's spec calls this with the module
 * options that select it; every test runs in a fresh Nest application.
 */
export function describeCacheContract(name: string, optionsFor: () => CacheModuleOptions): void {
  describe(`CacheService contract: ${name}`, () => {
    let app: INestApplication;
    let cache: CacheService;

    beforeEach(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [CacheModule.forRoot(optionsFor())],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      cache = app.get(CacheService);
    });

    afterEach(async () => {
      await cache.clear();
      await app.close();
    });

    it('returns undefined for a missing key', async () => {
      expect(await cache.get('nope')).toBeUndefined();
    });

    it('stores and returns objects', async () => {
      // set resolves nothing, whatever the backend's client answers ('OK' for Redis).
      expect(await cache.set('user:123', { name: 'Alice', email: 'alice@example.com' })).toBe(
        undefined,
      );
      expect(await cache.get('user:123')).toEqual({ name: 'Alice', email: 'alice@example.com' });
    });

    it.each([
      ['null', null],
      ['zero', 0],
      ['empty string', ''],
      ['false', false],
    ])('treats a cached %s as a hit', async (_label, value) => {
      await cache.set('falsy', value);
      expect(await cache.get('falsy')).toBe(value);
      expect(await cache.has('falsy')).toBe(true);
    });

    it('overwrites an existing entry', async () => {
      await cache.set('k', 1);
      await cache.set('k', 2);
      expect(await cache.get('k')).toBe(2);
    });

    it('delete reports whether the key existed', async () => {
      await cache.set('key', 'value');
      expect(await cache.delete('key')).toBe(true);
      expect(await cache.delete('key')).toBe(false);
      expect(await cache.get('key')).toBeUndefined();
    });

    it('has reflects presence', async () => {
      expect(await cache.has('key')).toBe(false);
      await cache.set('key', 'value');
      expect(await cache.has('key')).toBe(true);
    });

    it('clear removes every entry', async () => {
      await cache.set('a', 1);
      await cache.set('b', 2);
      await cache.clear();
      expect(await cache.get('a')).toBeUndefined();
      expect(await cache.get('b')).toBeUndefined();
    });

    it('expires entries after a fractional TTL in seconds', async () => {
      await cache.set('short', 'v', 0.15);
      expect(await cache.get('short')).toBe('v');
      await sleep(300);
      expect(await cache.get('short')).toBeUndefined();
      expect(await cache.has('short')).toBe(false);
    });

    it('keeps ttl 0 entries (never expire) while short ones expire', async () => {
      await cache.set('forever', 'v', 0);
      await cache.set('brief', 'v', 0.1);
      await sleep(250);
      expect(await cache.get('forever')).toBe('v');
      expect(await cache.get('brief')).toBeUndefined();
    });

    it('deleteByPrefix deletes only keys with that literal prefix', async () => {
      await cache.set('user:1:profile', 1);
      await cache.set('user:1:orders', 2);
      await cache.set('user:10:profile', 3);
      await cache.set('product:1', 4);
      expect(await cache.deleteByPrefix('user:1:')).toBe(2);
      expect(await cache.get('user:1:profile')).toBeUndefined();
      expect(await cache.get('user:10:profile')).toBe(3);
      expect(await cache.get('product:1')).toBe(4);
    });

    it.each(['*', '?', '[ab]', 'a\\'])('deleteByPrefix treats %s literally', async (glob) => {
      await cache.set(`lit:${glob}:x`, 'literal');
      await cache.set('lit:a:x', 'other-a');
      await cache.set('lit:b:x', 'other-b');
      await cache.set('lit:zz:x', 'other-zz');
      expect(await cache.deleteByPrefix(`lit:${glob}`)).toBe(1);
      expect(await cache.get(`lit:${glob}:x`)).toBeUndefined();
      expect(await cache.get('lit:a:x')).toBe('other-a');
      expect(await cache.get('lit:b:x')).toBe('other-b');
      expect(await cache.get('lit:zz:x')).toBe('other-zz');
    });

    it.each([
      [
        'a circular object',
        () => {
          const o: Record<string, unknown> = { a: 1 };
          o.self = o;
          return o;
        },
      ],
      ['a BigInt', () => ({ n: 10n })],
      ['a function', () => ({ f: () => 1 })],
      ['a Map', () => new Map([[1, 2]])],
      ['undefined', () => undefined],
      ['NaN', () => NaN],
    ])('rejects %s and keeps the previous entry', async (_label, make) => {
      await cache.set('keep', { version: 1 });
      await expect(cache.set('keep', make())).rejects.toThrow(CacheSerializationError);
      expect(await cache.get('keep')).toEqual({ version: 1 });
    });

    it.each([[''], [undefined], [42], [null]])('rejects the key %p', async (key) => {
      await expect(cache.get(key as string)).rejects.toThrow(CacheKeyError);
      await expect(cache.set(key as string, 1)).rejects.toThrow(CacheKeyError);
    });

    it('rejects a negative ttl argument', async () => {
      await expect(cache.set('k', 1, -1)).rejects.toThrow(/ttl/);
    });

    it('reads a ttl of plain decimal digits (as ConfigService gives it) as seconds', async () => {
      await cache.set('s', 'v', '60');
      expect(await cache.get('s')).toBe('v');
      expect(await cache.wrap('ws', () => 'loaded', '1.5')).toBe('loaded');
      expect(await cache.get('ws')).toBe('loaded');
    });

    it.each(['0x10', '1e3', ' 60', ''])(
      'rejects the string ttl %p, showing it as the string it is',
      async (ttl) => {
        await cache.set('k', 'old');
        const message = `Invalid ttl ${JSON.stringify(ttl)} (a string`;
        await expect(cache.set('k', 'new', ttl as never)).rejects.toThrow(message);
        await expect(cache.wrap('w', () => 1, ttl as never)).rejects.toThrow(message);
        expect(await cache.get('k')).toBe('old');
      },
    );

    describe('wrap', () => {
      it('runs the loader once for 100 concurrent calls on a cold key', async () => {
        let calls = 0;
        const loader = async () => {
          calls++;
          await sleep(30);
          return { id: 7 };
        };
        const results = await Promise.all(
          Array.from({ length: 100 }, () => cache.wrap('cold', loader)),
        );
        expect(calls).toBe(1);
        expect(results.every((r) => r.id === 7)).toBe(true);
        expect(await cache.get('cold')).toEqual({ id: 7 });
      });

      it('rejects every waiter when the loader throws and caches nothing', async () => {
        let calls = 0;
        const loader = async () => {
          calls++;
          // Long enough that every caller's read (remote backends) has answered before the
          // failure lands, even on a loaded machine: a caller after it rightly loads again.
          await sleep(50);
          throw new Error('db down');
        };
        const settled = await Promise.allSettled(
          Array.from({ length: 20 }, () => cache.wrap('failing', loader)),
        );
        expect(calls).toBe(1);
        expect(
          settled.every(
            (s) => s.status === 'rejected' && (s.reason as Error).message === 'db down',
          ),
        ).toBe(true);
        expect(await cache.has('failing')).toBe(false);
        // The failure is not sticky: the next call loads again.
        await expect(cache.wrap('failing', () => 'ok')).resolves.toBe('ok');
        expect(calls).toBe(1);
      });

      it('recovers from a loader that throws synchronously (the key is not poisoned)', async () => {
        let calls = 0;
        const boom = (): string => {
          calls++;
          throw new Error(`sync boom ${calls}`);
        };
        await expect(cache.wrap('sync-throw', boom)).rejects.toThrow('sync boom 1');
        await expect(cache.wrap('sync-throw', boom)).rejects.toThrow('sync boom 2');
        expect(calls).toBe(2);
        await expect(cache.wrap('sync-throw', () => 42)).resolves.toBe(42);
        expect(await cache.get('sync-throw')).toBe(42);
      });

      it('returns the loaded value uncached when `unless` throws', async () => {
        const unless = (): boolean => {
          throw new Error('bad predicate');
        };
        await expect(cache.wrap('unless-throws', () => 'v', { unless })).resolves.toBe('v');
        expect(await cache.has('unless-throws')).toBe(false);
      });

      it('returns the cached value without calling the loader', async () => {
        await cache.set('warm', 'cached');
        const loader = jest.fn(() => 'fresh');
        expect(await cache.wrap('warm', loader)).toBe('cached');
        expect(loader).not.toHaveBeenCalled();
      });

      it('caches a loaded null as a hit', async () => {
        const loader = jest.fn(() => null);
        expect(await cache.wrap('nullish', loader)).toBeNull();
        expect(await cache.wrap('nullish', loader)).toBeNull();
        expect(loader).toHaveBeenCalledTimes(1);
      });

      it('honours the ttl argument', async () => {
        await cache.wrap('wrapped-ttl', () => 1, 0.1);
        await sleep(250);
        expect(await cache.has('wrapped-ttl')).toBe(false);
      });

      it('does not store a value that `unless` rejects', async () => {
        expect(await cache.wrap('u', () => [], { unless: (v) => v.length === 0 })).toEqual([]);
        expect(await cache.has('u')).toBe(false);
      });

      it('does not write back a value loaded before a concurrent delete', async () => {
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        let started = false;
        const pending = cache.wrap('racy', async () => {
          started = true;
          await gate;
          return 'old';
        });
        // The load must be running (a remote backend answers the read first) before the delete.
        for (let waited = 0; !started && waited < 5000; waited += 5) await sleep(5);
        expect(started).toBe(true);
        await cache.delete('racy');
        release();
        expect(await pending).toBe('old');
        expect(await cache.has('racy')).toBe(false);
      });
    });

    describeBulkContract(() => app);

    // The PyFly seed's InMemoryCache tests, translated.
    describe('PyFly InMemoryCache tests', () => {
      it('test_put_and_get', async () => {
        await cache.set('key', { data: 'value' });
        expect(await cache.get('key')).toEqual({ data: 'value' });
      });
      it('test_get_missing_key', async () => {
        expect(await cache.get('nonexistent')).toBeUndefined();
      });
      it('test_evict', async () => {
        await cache.set('key', 'value');
        expect(await cache.delete('key')).toBe(true);
        expect(await cache.delete('key')).toBe(false);
      });
      it('test_exists', async () => {
        expect(await cache.has('key')).toBe(false);
        await cache.set('key', 'value');
        expect(await cache.has('key')).toBe(true);
      });
      it('test_clear', async () => {
        await cache.set('a', 1);
        await cache.set('b', 2);
        await cache.clear();
        expect(await cache.get('a')).toBeUndefined();
        expect(await cache.get('b')).toBeUndefined();
      });
    });
  });
}
