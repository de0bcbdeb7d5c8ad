import { redisInstances } from '../support/redis-instances';
import { CacheSerializationError, type CacheSerializer } from '../../lib';
import { richSample, sameValue } from '../support/rich-values';
import { CacheStack } from '../../lib/core/cache-stack';

/**
 * `serializer` on a real redis-server: what `'rich'` writes is read back exactly (through
 * CacheService set/get/wrap, by another instance, through an L1), the memory backend returns
 * the same thing, unreadable data is a logged miss, and a serializer of one's own is used.
 */
describe('serializer on a real redis-server', () => {
  const redis = redisInstances('ser', { serializer: 'rich' });

  const stored = (key: string) => redis.raw.get(`${redis.namespace}:${key}`);

  describe("'rich'", () => {
    it('round-trips every rich type through Redis as the memory backend returns it', async () => {
      const a = await redis.instance();
      const other = await redis.instance();
      const local = await redis.memory();
      await a.cache.set('all', richSample(), 60);
      await local.cache.set('all', richSample(), 60);
      const fromRedis = await other.cache.get('all');
      const fromMemory = await local.cache.get('all');
      expect(sameValue(fromRedis, richSample())).toBe(true);
      expect(sameValue(fromRedis, fromMemory)).toBe(true);
      const back = fromRedis as Record<string, unknown>;
      expect(Buffer.isBuffer(back.buffer)).toBe(true);
      expect(Buffer.isBuffer(back.bytes)).toBe(false);
      expect(Object.is((back.nested as { negativeZero: number }).negativeZero, -0)).toBe(true);
      expect([...(back.byId as Map<unknown, unknown>).keys()]).toEqual(['b', 1, 'a']);
      // Text, readable with redis-cli.
      const text = (await stored('all')) as string;
      expect(text).toContain('["Date","2024-02-29T12:34:56.789Z"]');
      expect(text).toContain('"Buffer"');
    });

    it('round-trips through wrap, with grace (an envelope) and for whole values', async () => {
      const a = await redis.instance();
      const b = await redis.instance();
      const loaded = await a.cache.wrap('wrapped', () => Promise.resolve(richSample()), {
        ttl: 60,
        grace: 60,
      });
      expect(sameValue(loaded, richSample())).toBe(true);
      expect(sameValue(await b.cache.get('wrapped'), richSample())).toBe(true);
      expect(
        sameValue(
          await b.cache.wrap('wrapped', () => Promise.resolve('not called'), 60),
          richSample(),
        ),
      ).toBe(true);
      for (const [key, value] of [
        ['z', -0],
        ['nan', NaN],
        ['inf', Infinity],
        ['big', -(2n ** 80n)],
        ['date', new Date(42)],
        ['set', new Set([3, 1, 2])],
      ] as const) {
        await a.cache.set(key, value, 60);
        const back = await b.cache.get(key);
        expect(sameValue(back, value)).toBe(true);
      }
    });

    it('still wraps a value that looks like an entry envelope', async () => {
      const a = await redis.instance();
      const b = await redis.instance();
      const lookalike = { '\u0000cachekit': 1, v: new Map([[1, 2]]), e: 0, x: 0 };
      await a.cache.set('lookalike', lookalike, 60);
      expect(sameValue(await b.cache.get('lookalike'), lookalike)).toBe(true);
    });

    it('with l1: the L1 and Redis return the same rich value on every instance', async () => {
      const a = await redis.instance({ l1: true });
      const b = await redis.instance({ l1: true });
      await a.cache.set('tiers', richSample(), 60);
      // a answers from its L1, b from Redis (then from its L1).
      expect(sameValue(await a.cache.get('tiers'), richSample())).toBe(true);
      expect(sameValue(await b.cache.get('tiers'), richSample())).toBe(true);
      expect(sameValue(await b.cache.get('tiers'), richSample())).toBe(true);
      const loaded = await b.cache.wrap('tiers-wrap', () => Promise.resolve(richSample()), 60);
      expect(sameValue(loaded, richSample())).toBe(true);
      expect(sameValue(await a.cache.get('tiers-wrap'), richSample())).toBe(true);
    });

    it('with l1: the L1 bounds rich values by their size (Maps and binary data counted)', async () => {
      const a = await redis.instance({ l1: { maxSize: 10_000 } });
      const stack = a.app.get(CacheStack);
      await a.cache.set('small', new Map([['text', 'x'.repeat(100)]]), 60);
      await a.cache.set('large', new Map([['text', 'x'.repeat(20_000)]]), 60);
      await a.cache.set('large-bytes', { bytes: Buffer.alloc(20_000, 1) }, 60);
      expect(stack.peek('small')).toBeDefined();
      // Too large for the L1: read from Redis.
      expect(stack.peek('large')).toBeUndefined();
      expect(stack.peek('large-bytes')).toBeUndefined();
      const large = (await a.cache.get('large')) as Map<string, string>;
      expect(large.get('text')).toHaveLength(20_000);
      const bytes = (await a.cache.get('large-bytes')) as { bytes: Buffer };
      expect(Buffer.isBuffer(bytes.bytes) && bytes.bytes.length).toBe(20_000);
    });

    it('rejects a value it cannot store and keeps the old entry in Redis', async () => {
      const a = await redis.instance();
      await a.cache.set('keep', { at: new Date(1) }, 60);
      const before = await stored('keep');
      await expect(a.cache.set('keep', { at: new Date(2), run: () => 1 }, 60)).rejects.toThrow(
        CacheSerializationError,
      );
      await expect(a.cache.set('keep', { w: new WeakSet() }, 60)).rejects.toThrow(
        /key "keep": value\.w is a WeakSet/,
      );
      expect(await stored('keep')).toBe(before);
      expect(sameValue(await a.cache.get('keep'), { at: new Date(1) })).toBe(true);
      // A loader's value that cannot be stored is still returned, uncached.
      const fn = () => 1;
      expect(await a.cache.wrap('keep', () => Promise.resolve({ fn }), 60)).toEqual({
        at: new Date(1),
      });
    });

    it('reads data it cannot parse as a miss, with a warning', async () => {
      const a = await redis.instance();
      await redis.raw.set(`${redis.namespace}:garbage`, 'not devalue at all');
      await redis.raw.set(`${redis.namespace}:json-text`, '{"plain":"json"}');
      expect(await a.cache.get('garbage')).toBeUndefined();
      expect(await a.cache.get('json-text')).toBeUndefined();
      expect(await a.cache.has('garbage')).toBe(false);
      expect(a.logger.warnings().join('\n')).toMatch(
        /key ".+:garbage" holds data the serializer cannot read; treated as a miss/,
      );
      // The loader is called and its value replaces the unreadable data.
      expect(await a.cache.wrap('garbage', () => Promise.resolve(new Set([1])), 60)).toEqual(
        new Set([1]),
      );
      expect(await a.cache.get('garbage')).toEqual(new Set([1]));
    });
  });

  describe('a serializer of your own', () => {
    const tagged = (): CacheSerializer & { written: unknown[] } => {
      const written: unknown[] = [];
      return {
        written,
        serialize(value) {
          if (value === 'refuse') throw new Error('refused by the codec');
          written.push(value);
          return 'v1:' + Buffer.from(JSON.stringify(value)).toString('base64');
        },
        deserialize(text) {
          if (!text.startsWith('v1:')) throw new Error('not mine');
          return JSON.parse(Buffer.from(text.slice(3), 'base64').toString()) as unknown;
        },
      };
    };

    it('writes and reads Redis with it; the memory backend returns the same', async () => {
      const codec = tagged();
      const a = await redis.instance({ serializer: codec });
      await a.cache.set('own', { name: 'Ada', when: new Date(0) }, 60);
      expect((await stored('own')) as string).toMatch(/^v1:/);
      expect(await a.cache.get('own')).toEqual({ name: 'Ada', when: '1970-01-01T00:00:00.000Z' });
      const mem = await redis.memory({ serializer: tagged() });
      await mem.cache.set('own', { name: 'Ada', when: new Date(0) }, 60);
      expect(await mem.cache.get('own')).toEqual(await a.cache.get('own'));
    });

    it('rejects what serialize throws on, naming the key, and keeps the old entry', async () => {
      const a = await redis.instance({ serializer: tagged() });
      await a.cache.set('own-keep', 'old', 60);
      const before = await stored('own-keep');
      await expect(a.cache.set('own-keep', 'refuse', 60)).rejects.toThrow(CacheSerializationError);
      await expect(a.cache.set('own-keep', 'refuse', 60)).rejects.toThrow(
        /key "own-keep": the serializer's serialize\(\) threw .*refused by the codec/,
      );
      expect(await stored('own-keep')).toBe(before);
      expect(await a.cache.get('own-keep')).toBe('old');
    });

    it('reads what deserialize throws on as a miss, with a warning', async () => {
      const a = await redis.instance({ serializer: tagged() });
      await redis.raw.set(`${redis.namespace}:foreign`, JSON.stringify('json text'));
      expect(await a.cache.get('foreign')).toBeUndefined();
      expect(a.logger.warnings().join('\n')).toMatch(/holds data the serializer cannot read/);
    });
  });

  describe("'json' (the default) on Redis", () => {
    it('is unchanged: JSON text, a Date as its ISO string, a BigInt rejected', async () => {
      const a = await redis.instance({ serializer: 'json' });
      await a.cache.set('json', { at: new Date(0), n: 1 }, 60);
      expect(await stored('json')).toBe('{"at":"1970-01-01T00:00:00.000Z","n":1}');
      expect(await a.cache.get('json')).toEqual({ at: '1970-01-01T00:00:00.000Z', n: 1 });
      await expect(a.cache.set('json', { n: 1n }, 60)).rejects.toThrow(/a BigInt/);
      await redis.raw.set(`${redis.namespace}:bad`, 'not json');
      expect(await a.cache.get('bad')).toBeUndefined();
      expect(a.logger.warnings().join('\n')).toMatch(/holds data that is not valid JSON/);
    });
  });
});
