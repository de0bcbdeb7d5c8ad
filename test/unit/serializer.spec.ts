import { isDeepStrictEqual } from 'node:util';
import {
  CacheConfigError,
  CacheSerializationError,
  MemoryCacheAdapter,
  RedisCacheAdapter,
  type CacheSerializer,
} from '../../lib';
import { resolveCacheOptions } from '../../lib/config/cache-options.resolver';
import { toRichStorable } from '../../lib/utils/serializable';
import { JSON_SERIALIZER, RICH_SERIALIZER } from '../../lib/utils/serializer';
import { estimateRichSize, estimateSize } from '../../lib/utils/value-size';
import { boot, type BootedApp } from '../support/failover';
import { FlakyAdapter } from '../support/flaky-adapter';
import { richSample, sameValue } from '../support/rich-values';

/** What the rich format writes and reads back for `value` (what Redis would return). */
const throughRedisForm = (value: unknown): unknown =>
  RICH_SERIALIZER.deserialize(RICH_SERIALIZER.serialize(toRichStorable(value, 'k')));

describe('serializer option', () => {
  describe('configuration', () => {
    it("defaults to 'json' and resolves 'json', 'rich' and an object of two functions", () => {
      expect(resolveCacheOptions({}, {}).serializer).toBe(JSON_SERIALIZER);
      expect(resolveCacheOptions({ serializer: 'json' }, {}).serializer).toBe(JSON_SERIALIZER);
      expect(resolveCacheOptions({ serializer: 'rich' }, {}).serializer).toBe(RICH_SERIALIZER);
      const own: CacheSerializer = { serialize: JSON.stringify, deserialize: JSON.parse };
      expect(resolveCacheOptions({ serializer: own }, {}).serializer).toBe(own);
    });

    it.each([
      ['RICH', '"RICH"'],
      ['superjson', '"superjson"'],
      [null, 'null'],
      [42, '42'],
      [{ serialize: () => '' }, 'an object'],
      [{ serialize: 'x', deserialize: () => 1 }, 'an object'],
      [() => '', 'a function'],
    ])('rejects serializer %p at startup, naming the option and the value', (bad, shown) => {
      const resolve = () =>
        resolveCacheOptions({ serializer: bad as unknown as CacheSerializer }, {});
      expect(resolve).toThrow(CacheConfigError);
      expect(resolve).toThrow(/"serializer"/);
      expect(resolve).toThrow(shown);
      expect(resolve).toThrow(/'json', 'rich', or an object with serialize/);
    });

    it('rejects a bad serializer given to an adapter, naming the adapter', () => {
      expect(() => new MemoryCacheAdapter({ serializer: 'v8' as 'json' })).toThrow(
        /Invalid MemoryCacheAdapter option "serializer": "v8"/,
      );
      expect(
        () =>
          new RedisCacheAdapter({
            redis: { url: 'redis://127.0.0.1:1' },
            serializer: {} as CacheSerializer,
          }),
      ).toThrow(/Invalid RedisCacheAdapter option "serializer": an object/);
    });

    it('an adapter given as `adapter` writes with its own serializer', async () => {
      const booted = await boot({ adapter: new MemoryCacheAdapter({ serializer: 'rich' }) });
      try {
        await booted.cache.set('own', new Map([[1, new Date(2)]]));
        expect(sameValue(await booted.cache.get('own'), new Map([[1, new Date(2)]]))).toBe(true);
      } finally {
        await booted.app.close();
      }
      await expect(boot({ adapter: new MemoryCacheAdapter(), serializer: 'rich' })).rejects.toThrow(
        /"serializer": the adapter given writes with a serializer of its own/,
      );
    });

    it('refuses a rich or custom serializer with an adapter that stores values its own way', async () => {
      for (const serializer of ['rich', { serialize: String, deserialize: String }] as const) {
        await expect(boot({ adapter: new FlakyAdapter(), serializer })).rejects.toThrow(
          /"serializer": it applies to the built-in memory and Redis stores/,
        );
      }
      // JSON, the default, is what any adapter takes.
      const booted = await boot({ adapter: new FlakyAdapter(), serializer: 'json' });
      await booted.app.close();
    });

    it('fails the module at startup on a bad serializer', async () => {
      await expect(boot({ serializer: 'yaml' as 'json' })).rejects.toThrow(
        /Invalid CacheModule option "serializer": "yaml"/,
      );
    });
  });

  describe("'json' (the default) is unchanged", () => {
    let booted: BootedApp;
    beforeAll(async () => {
      booted = await boot({});
    });
    afterAll(() => booted.app.close());

    it('a Date comes back as its ISO string, -0 as 0, undefined properties left out', async () => {
      const { cache } = booted;
      await cache.set('json:date', { at: new Date(0), z: -0, gone: undefined });
      const back = await cache.get('json:date');
      expect(sameValue(back, { at: '1970-01-01T00:00:00.000Z', z: 0 })).toBe(true);
    });

    it('a BigInt, a Map or NaN is still rejected', async () => {
      const { cache } = booted;
      await expect(cache.set('json:big', { n: 1n })).rejects.toThrow(CacheSerializationError);
      await expect(cache.set('json:map', new Map())).rejects.toThrow(/a Map/);
      await expect(cache.set('json:nan', [NaN])).rejects.toThrow(/NaN/);
    });
  });

  describe("'rich' on the memory backend", () => {
    let booted: BootedApp;
    beforeAll(async () => {
      booted = await boot({ serializer: 'rich' });
    });
    afterAll(() => booted.app.close());

    it('returns every rich type as the Redis round trip does (set/get and wrap)', async () => {
      const { cache } = booted;
      const value = richSample();
      await cache.set('rich:all', value);
      const back = await cache.get('rich:all');
      expect(sameValue(back, value)).toBe(true);
      expect(sameValue(back, throughRedisForm(value))).toBe(true);
      expect(Buffer.isBuffer((back as { buffer: unknown }).buffer)).toBe(true);
      // A copy: changing what was cached changes nothing in the cache.
      (value.when as Date).setTime(0);
      (value.byId as Map<unknown, unknown>).clear();
      expect(sameValue(await cache.get('rich:all'), richSample())).toBe(true);

      const loaded = await cache.wrap('rich:wrap', () => Promise.resolve(richSample()));
      expect(sameValue(loaded, richSample())).toBe(true);
      expect(sameValue(await cache.get('rich:wrap'), richSample())).toBe(true);
    });

    it('keeps -0, NaN, ±Infinity and BigInt as whole values', async () => {
      const { cache } = booted;
      for (const [key, value] of [
        ['z', -0],
        ['nan', NaN],
        ['inf', -Infinity],
        ['big', 10n ** 30n],
      ] as const) {
        await cache.set(`rich:${key}`, value);
        expect(Object.is(await cache.get(`rich:${key}`), value)).toBe(true);
      }
    });

    it('reduces a class instance to a plain object, as the Redis round trip does', async () => {
      class Order {
        constructor(
          readonly id = 1,
          readonly placed = new Date(5),
        ) {}
        get total(): number {
          return 3;
        }
      }
      await booted.cache.set('rich:class', { order: new Order() });
      const back = (await booted.cache.get('rich:class')) as { order: object };
      expect(Object.getPrototypeOf(back.order)).toBe(Object.prototype);
      expect(sameValue(back, { order: { id: 1, placed: new Date(5) } })).toBe(true);
      expect(sameValue(back, throughRedisForm({ order: new Order() }))).toBe(true);
    });

    it('keeps circular and repeated references', async () => {
      const node: Record<string, unknown> = { name: 'root' };
      node.self = node;
      const shared = { id: 1 };
      await booted.cache.set('rich:cycle', { node, pair: [shared, shared] });
      const back = (await booted.cache.get('rich:cycle')) as {
        node: Record<string, unknown>;
        pair: object[];
      };
      expect(back.node.self).toBe(back.node);
      expect(back.pair[0]).toBe(back.pair[1]);
    });

    it.each([
      ['a function', { a: { f: () => 1 } }, /value\.a\.f is a function/],
      ['a symbol', [Symbol('s')], /value\[0\] is a symbol/],
      ['a WeakMap', { w: new WeakMap() }, /value\.w is a WeakMap/],
      ['a Promise', { p: Promise.resolve(1) }, /value\.p is a Promise/],
      ['an Error', { e: new Error('x') }, /value\.e is an Error/],
      ['a function in a Map', new Map([['k', () => 1]]), /value<Map value #0> is a function/],
      ['undefined', undefined, /value is undefined/],
      ['an own __proto__', JSON.parse('{"a":{"__proto__":{"x":1}}}'), /"__proto__"/],
    ])('rejects %s naming where, and keeps the old entry', async (_, bad, where) => {
      const { cache } = booted;
      await cache.set('rich:keep', { old: new Date(1) });
      await expect(cache.set('rich:keep', bad)).rejects.toThrow(CacheSerializationError);
      await expect(cache.set('rich:keep', bad)).rejects.toThrow(where);
      await expect(cache.set('rich:keep', bad)).rejects.toThrow(/key "rich:keep"/);
      expect(sameValue(await cache.get('rich:keep'), { old: new Date(1) })).toBe(true);
    });

    it('keeps an invalid Date as an invalid Date', async () => {
      await booted.cache.set('rich:invalid-date', { d: new Date(NaN) });
      const back = (await booted.cache.get('rich:invalid-date')) as { d: Date };
      expect(back.d).toBeInstanceOf(Date);
      expect(Number.isNaN(back.d.getTime())).toBe(true);
    });
  });

  describe('MemoryCacheAdapter({ serializer })', () => {
    it('bounds rich values by their estimated size, cycles included', async () => {
      const adapter = new MemoryCacheAdapter({ serializer: RICH_SERIALIZER, maxSize: 10_000 });
      const loop: Record<string, unknown> = { a: 1 };
      loop.b = loop;
      loop.c = [loop, loop, new Map([[loop, loop]])];
      await adapter.set('loop', loop, 0);
      expect(adapter.bytes).toBeLessThan(200);
      await adapter.set('big', { data: Buffer.alloc(20_000) }, 0);
      // Larger than the bound: not stored.
      expect(await adapter.get('big')).toBeUndefined();
      await adapter.set('ok', { data: Buffer.alloc(3_000) }, 0);
      expect(adapter.bytes).toBeGreaterThan(4_000);
      expect(Buffer.isBuffer(((await adapter.get('ok')) as { data: unknown }).data)).toBe(true);
    });

    it('estimates rich values near the length of their rich text', () => {
      const value = richSample();
      const text = RICH_SERIALIZER.serialize(toRichStorable(value, 'k')).length;
      expect(estimateRichSize(value)).toBeGreaterThan(text / 3);
      expect(estimateRichSize(value)).toBeLessThan(text * 3);
      // JSON values count the same either way.
      const plain = { id: 1, name: 'Ada', tags: ['a', 'b'] };
      expect(estimateRichSize(plain)).toBe(estimateSize(plain));
    });

    it('with a serializer of your own keeps deserialize(serialize(value))', async () => {
      const calls: string[] = [];
      const upper: CacheSerializer = {
        serialize: (value) => {
          calls.push('serialize');
          return JSON.stringify(value).toUpperCase();
        },
        deserialize: (text) => {
          calls.push('deserialize');
          return JSON.parse(text) as unknown;
        },
      };
      const adapter = new MemoryCacheAdapter({ serializer: upper });
      await adapter.set('k', { name: 'ada' }, 0);
      expect(await adapter.get('k')).toEqual({ NAME: 'ADA' });
      expect(calls).toEqual(['serialize', 'deserialize']);
    });

    it('with a serializer of your own rejects what it throws on or returns as a non-string', async () => {
      const adapter = new MemoryCacheAdapter({
        serializer: {
          serialize: (value) => {
            if (value === 'boom') throw new Error('cannot pack');
            return value === 'num' ? (7 as unknown as string) : JSON.stringify(value);
          },
          deserialize: (text) => JSON.parse(text) as unknown,
        },
      });
      await adapter.set('k', 'old', 0);
      await expect(adapter.set('k', 'boom', 0)).rejects.toThrow(CacheSerializationError);
      await expect(adapter.set('k', 'boom', 0)).rejects.toThrow(
        /key "k": the serializer's serialize\(\) threw .*cannot pack/,
      );
      await expect(adapter.set('k', 'num', 0)).rejects.toThrow(/returned 7, not a string/);
      expect(await adapter.get('k')).toBe('old');
    });
  });

  it('the rich form of plain JSON data is the value itself (no copy)', () => {
    const plain = { a: [1, 'x', { b: null }] };
    expect(toRichStorable(plain, 'k')).toBe(plain);
    expect(isDeepStrictEqual(throughRedisForm(plain), plain)).toBe(true);
  });
});
