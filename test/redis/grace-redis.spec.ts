import { Redis } from 'ioredis';
import type { CacheModuleOptions } from '../../lib';
import { CacheStack, type WrapOptions } from '../../lib/core/cache-stack';
import { eventually } from '../support/eventually';
import { boot, type BootedApp } from '../support/failover';
import { Gate } from '../support/gated-adapter';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Grace, the entry envelope and expire() (issue 13, items 1, 5, 6) on a real redis-server, with
 * the plain Redis provider, with an L1 in front (`l1: true`, kept coherent by the bus) and with
 * the failover layer (`failover: true`). What the cache wrote is read back with a raw client.
 */

const MARK = '\u0000cachekit';

type Instance = BootedApp & { stack: CacheStack };

const CONFIGS: Array<[string, CacheModuleOptions]> = [
  ['redis', {}],
  ['redis + l1', { l1: true }],
  ['redis + failover', { failover: true }],
];

describe('grace and envelopes on a real redis-server', () => {
  let server: RedisServer;
  let raw: Redis;

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    raw.disconnect();
    await server.stop();
  });

  describe.each(CONFIGS)('%s', (_name, extra) => {
    let namespace: string;
    const apps: Instance[] = [];

    beforeEach(() => {
      namespace = uniqueNamespace('grace');
    });
    afterEach(async () => {
      await Promise.all(apps.splice(0).map(({ app }) => app.close()));
    });

    /** One application (an instance of the service) on the test's namespace. */
    const instance = async (options: CacheModuleOptions = {}): Promise<Instance> => {
      const booted = await boot({
        provider: 'redis',
        redis: { url: server.url },
        namespace,
        ...extra,
        ...options,
      });
      const stack = booted.app.get(CacheStack);
      const live = { ...booted, stack };
      apps.push(live);
      if (extra.l1) await eventually(async () => stack.busState === 'live', 5000, 10);
      return live;
    };

    const rawKey = (key: string) => `${namespace}:${key}`;
    const rawJson = async (key: string): Promise<unknown> => {
      const text = await raw.get(rawKey(key));
      return text === null ? undefined : JSON.parse(text);
    };
    /** Loaded values are written in the background: waits until Redis holds the key. */
    const written = (key: string) =>
      eventually(async () => (await raw.exists(rawKey(key))) === 1, 5000, 10);
    const failing = (message = 'db down') =>
      jest.fn((): Promise<never> => Promise.reject(new Error(message)));

    it('serves the stale value after the TTL when the loader fails (status stale, logged, backed off)', async () => {
      const a = await instance();
      const options: WrapOptions<unknown> = { ttl: 0.3, grace: 60 };
      await expect(
        a.stack.wrap('rate', () => ({ eur: 1.1 }), options, true, true),
      ).resolves.toEqual({ value: { eur: 1.1 }, status: 'miss' });
      await written('rate');
      await eventually(async () => (await a.cache.get('rate')) === undefined, 5000, 20);
      await expect(a.cache.has('rate')).resolves.toBe(false);
      expect(await raw.exists(rawKey('rate'))).toBe(1); // kept by grace

      const loader = failing('rates api down');
      await expect(a.stack.wrap('rate', loader, options, true, true)).resolves.toEqual({
        value: { eur: 1.1 },
        status: 'stale',
      });
      await expect(a.cache.wrap('rate', loader, options)).resolves.toEqual({ eur: 1.1 });
      expect(loader).toHaveBeenCalledTimes(1); // back-off
      const warning = a.logger.warnings().find((line) => line.includes('serving its stale value'));
      expect(warning).toContain('"rate"');
      expect(warning).toContain('rates api down');

      // Another instance (its own memory, nothing cached locally) finds the stale value in Redis.
      const b = await instance();
      await expect(b.cache.get('rate')).resolves.toBeUndefined();
      await expect(b.stack.wrap('rate', failing(), options, true, true)).resolves.toEqual({
        value: { eur: 1.1 },
        status: 'stale',
      });
      // Without a stale value, the loader's error reaches the caller.
      await expect(b.cache.wrap('cold', failing('cold down'), options)).rejects.toThrow(
        'cold down',
      );
    });

    it('a loader that succeeds after the TTL replaces the stale entry in Redis (and answers miss)', async () => {
      const a = await instance();
      const options: WrapOptions<unknown> = { ttl: 0.3, grace: 60 };
      await a.cache.wrap('rate', () => 'v1', options);
      await written('rate');
      await eventually(async () => (await a.cache.get('rate')) === undefined, 5000, 20);
      await expect(a.stack.wrap('rate', () => 'v2', options, true, true)).resolves.toEqual({
        value: 'v2',
        status: 'miss',
      });
      await eventually(
        async () => ((await rawJson('rate')) as { v?: unknown } | undefined)?.v === 'v2',
        5000,
        10,
      );
      // The writer fills its own L1 once its SET is acknowledged, a moment after Redis has it.
      await eventually(async () => (await a.cache.get('rate')) === 'v2', 5000, 10);
      const b = await instance();
      await expect(b.cache.get('rate')).resolves.toBe('v2');
    });

    it('a value shaped like the envelope reads back exactly as written (set and wrap)', async () => {
      const lookalikes: unknown[] = [
        { [MARK]: 1, v: 'inner', e: 0, x: 0 },
        { [MARK]: 1, v: 'inner', e: 1, x: 1 }, // an "envelope" expired in 1970
        { [MARK]: 1, v: { [MARK]: 1, v: 2, e: 0, x: 0 }, e: 0, x: 0 },
        { [MARK]: 1, v: 'refreshing', e: 0, x: 0, r: 1 },
        { [MARK]: 1 }, // malformed as an envelope, fine as a value
        { [MARK]: 2, v: 1, e: 'x', x: 0 },
        { [MARK]: null, other: true },
      ];
      const a = await instance();
      const keys: string[] = [];
      for (const [i, value] of lookalikes.entries()) {
        await a.cache.set(`set:${i}`, value);
        await a.cache.set(`set-grace:${i}`, value, { ttl: 60, grace: 60 });
        await expect(
          a.stack.wrap(`wrap:${i}`, () => value, { ttl: 60 }, true, true),
        ).resolves.toEqual({ value, status: 'miss' });
        await expect(
          a.cache.wrap(`wrap-grace:${i}`, () => value, { ttl: 60, grace: 60 }),
        ).resolves.toEqual(value);
        keys.push(`set:${i}`, `set-grace:${i}`, `wrap:${i}`, `wrap-grace:${i}`);
      }
      for (const key of keys) await written(key);
      const b = await instance(); // reads Redis afresh
      for (const [i, value] of lookalikes.entries()) {
        for (const key of [`set:${i}`, `set-grace:${i}`, `wrap:${i}`, `wrap-grace:${i}`]) {
          for (const reader of [a, b]) {
            await expect(reader.cache.get(key)).resolves.toEqual(value);
            await expect(reader.cache.has(key)).resolves.toBe(true);
            const loader = jest.fn(() => 'reloaded');
            await expect(reader.stack.wrap(key, loader, { ttl: 60 }, true, true)).resolves.toEqual({
              value,
              status: 'hit',
            });
            expect(loader).not.toHaveBeenCalled();
          }
        }
      }
      for (const reader of [a, b]) {
        expect(reader.logger.warnings().filter((line) => line.includes('malformed'))).toEqual([]);
      }
    });

    it('entries written plain before envelopes existed still read', async () => {
      await raw.set(
        rawKey('legacy:user'),
        JSON.stringify({ name: 'Ada', tags: ['a'] }),
        'PX',
        60_000,
      );
      await raw.set(rawKey('legacy:count'), '42');
      await raw.set(rawKey('legacy:null'), 'null', 'PX', 60_000);
      await raw.set(rawKey('legacy:text'), JSON.stringify('\u0000cachekit'));
      const a = await instance({ grace: 60 });
      await expect(a.cache.get('legacy:user')).resolves.toEqual({ name: 'Ada', tags: ['a'] });
      await expect(a.cache.get('legacy:count')).resolves.toBe(42);
      await expect(a.cache.get('legacy:null')).resolves.toBeNull();
      await expect(a.cache.get('legacy:text')).resolves.toBe('\u0000cachekit');
      await expect(a.cache.has('legacy:user')).resolves.toBe(true);
      const loader = jest.fn(() => 'reloaded');
      await expect(a.stack.wrap('legacy:user', loader, undefined, true, true)).resolves.toEqual({
        value: { name: 'Ada', tags: ['a'] },
        status: 'hit',
      });
      expect(loader).not.toHaveBeenCalled();
      // A plain (legacy) entry has no grace: expire deletes it.
      await expect(a.cache.expire('legacy:count')).resolves.toBe(true);
      expect(await raw.exists(rawKey('legacy:count'))).toBe(0);
      await expect(a.cache.get('legacy:count')).resolves.toBeUndefined();
    });

    it.each([
      ['marker only', `{"\\u0000cachekit":1}`],
      ['bad expiry', `{"\\u0000cachekit":1,"v":1,"e":"x","x":0}`],
      ['no value', `{"\\u0000cachekit":1,"e":0,"x":0}`],
      ['bad refresh point', `{"\\u0000cachekit":1,"v":1,"e":0,"x":0,"r":"soon"}`],
    ])('a corrupt envelope (%s) reads as a miss and logs a warning', async (_label, text) => {
      expect(Object.keys(JSON.parse(text) as object)[0]).toBe(MARK);
      await raw.set(rawKey('corrupt'), text, 'PX', 60_000);
      const a = await instance();
      await expect(a.cache.get('corrupt')).resolves.toBeUndefined();
      await expect(a.cache.has('corrupt')).resolves.toBe(false);
      const warning = a.logger.warnings().find((line) => line.includes('malformed envelope'));
      expect(warning).toBe('Cache entry "corrupt" holds a malformed envelope; read as a miss');
      // wrap runs the loader (a corrupt entry is nothing to serve) and replaces the entry.
      await expect(
        a.stack.wrap('corrupt', () => 'fresh', { ttl: 60 }, true, true),
      ).resolves.toEqual({ value: 'fresh', status: 'miss' });
      await eventually(async () => (await raw.get(rawKey('corrupt'))) === '"fresh"', 5000, 10);
      await eventually(async () => (await a.cache.get('corrupt')) === 'fresh', 5000, 10);
    });

    it('entries without grace or refreshAhead are stored as plain JSON', async () => {
      const a = await instance();
      const value = { name: 'Ada', tags: ['a', 'b'], admin: false, score: 1.5, none: null };
      await a.cache.set('set', value, 60);
      await a.cache.set('set-zero', value, { ttl: 60, grace: 0 });
      await a.cache.set('forever', value, { ttl: 0, grace: 60 }); // never expires: nothing to keep
      await a.cache.wrap('wrap', () => value, 60);
      await a.cache.wrap('wrap-zero', () => value, { ttl: 60, grace: 0 });
      for (const key of ['set', 'set-zero', 'forever', 'wrap', 'wrap-zero']) {
        await written(key);
        expect(await raw.get(rawKey(key))).toBe(JSON.stringify(value));
      }
      expect(await raw.pttl(rawKey('forever'))).toBe(-1);
      expect(await raw.pttl(rawKey('set'))).toBeLessThanOrEqual(60_000);
    });

    it('an envelope entry is kept ttl + grace in Redis, its logical expiry ttl from the write', async () => {
      const a = await instance();
      const before = Date.now();
      await a.cache.set('set', 'v', { ttl: 30, grace: 60 });
      await a.cache.wrap('wrap', () => 'w', { ttl: 30, grace: 60 });
      await written('wrap');
      const after = Date.now();
      for (const key of ['set', 'wrap']) {
        const pttl = await raw.pttl(rawKey(key));
        expect(pttl).toBeLessThanOrEqual(90_000);
        expect(pttl).toBeGreaterThan(90_000 - (Date.now() - before) - 50);
        const envelope = (await rawJson(key)) as Record<string, unknown>;
        expect(envelope[MARK]).toBe(1);
        expect(envelope.v).toBe(key === 'set' ? 'v' : 'w');
        expect(envelope.e).toBeGreaterThanOrEqual(before + 30_000);
        expect(envelope.e).toBeLessThanOrEqual(after + 30_000);
        expect((envelope.x as number) - (envelope.e as number)).toBe(60_000);
      }

      // The module's grace applies to a set and a wrap that give none.
      const m = await instance({ ttl: 20, grace: 40 });
      await m.cache.set('module-set', 1);
      await m.cache.wrap('module-wrap', () => 2);
      await written('module-wrap');
      for (const key of ['module-set', 'module-wrap']) {
        const pttl = await raw.pttl(rawKey(key));
        expect(pttl).toBeLessThanOrEqual(60_000);
        expect(pttl).toBeGreaterThan(60_000 - (Date.now() - before) - 50);
      }
    });

    it('expire() across two instances: both see the miss, both can still serve the stale value', async () => {
      const a = await instance();
      const b = await instance();
      await a.cache.set('k', 'old', { ttl: 60, grace: 60 });
      await expect(b.cache.get('k')).resolves.toBe('old'); // with l1: now in b's L1 too
      await expect(a.cache.get('k')).resolves.toBe('old');

      await expect(a.cache.expire('k')).resolves.toBe(true);
      await expect(a.cache.get('k')).resolves.toBeUndefined();
      await eventually(async () => (await b.cache.get('k')) === undefined, 5000, 10);
      await expect(b.cache.has('k')).resolves.toBe(false);
      const pttl = await raw.pttl(rawKey('k'));
      expect(pttl).toBeGreaterThan(0); // kept, for the grace it had left
      expect(pttl).toBeLessThanOrEqual(120_000);

      await expect(b.stack.wrap('k', failing(), undefined, true, true)).resolves.toEqual({
        value: 'old',
        status: 'stale',
      });
      const loader = jest.fn(() => 'new');
      await expect(a.stack.wrap('k', loader, { ttl: 60, grace: 60 }, true, true)).resolves.toEqual({
        value: 'new',
        status: 'miss',
      });
      await eventually(async () => (await b.cache.get('k')) === 'new', 5000, 10);
      expect(loader).toHaveBeenCalledTimes(1);

      // An entry without grace is deleted, for every instance.
      await a.cache.set('plain', 'x', 60);
      await expect(b.cache.get('plain')).resolves.toBe('x');
      await expect(a.cache.expire('plain')).resolves.toBe(true);
      expect(await raw.exists(rawKey('plain'))).toBe(0);
      await eventually(async () => (await b.cache.get('plain')) === undefined, 5000, 10);
      await expect(b.cache.wrap('plain', failing('no stale'))).rejects.toThrow('no stale');
      await expect(b.cache.expire('plain')).resolves.toBe(false);
    });

    it('refreshAhead: hits past the refresh point answer at once, one background load lands', async () => {
      const a = await instance();
      const options: WrapOptions<string> = { ttl: 60, refreshAhead: 0.002 }; // 120 ms
      await a.cache.wrap('ra', () => 'v1', options);
      await written('ra');
      const { r } = (await rawJson('ra')) as { r: number };
      expect(typeof r).toBe('number');
      await eventually(async () => Date.now() > r + 5, 5000, 10);

      const gate = new Gate();
      let loads = 0;
      const loader = async () => {
        loads++;
        await gate.wait;
        return 'v2';
      };
      const answers = await Promise.all(
        Array.from({ length: 30 }, () => a.stack.wrap('ra', loader, options, true, true)),
      );
      expect(answers).toEqual(new Array(30).fill({ value: 'v1', status: 'hit' }));
      expect(loads).toBe(1);
      gate.open();
      await eventually(async () => (await a.cache.get('ra')) === 'v2', 5000, 10);
      await eventually(async () => (await rawJson('ra')) !== undefined, 5000, 10);
      expect(((await rawJson('ra')) as { v: unknown }).v).toBe('v2');
      expect(loads).toBe(1);
    });
  });
});
