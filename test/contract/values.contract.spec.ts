import { Injectable } from '@nestjs/common';
import {
  CacheInvalidator,
  Cacheable,
  CachePut,
  CacheSerializationError,
  cacheResult,
  type CacheModuleOptions,
  type CacheService,
} from '../../lib';
import { boot, type BootedApp } from '../support/failover';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';
import { ACCEPTED, REJECTED } from './value-table';

/**
 * Issue 10, item 6: one table of values, the same expectations on every backend. A value is
 * stored and read back as its JSON form by memory and Redis alike, or rejected with a
 * CacheSerializationError that names the problem and leaves the previous entry untouched —
 * through `set`, `wrap`, `@Cacheable` and `@CachePut` (whose callers still get their value).
 */

@Injectable()
class Catalog {
  /** What the next call returns (built per call by the test). */
  next: () => unknown = () => null;
  runs = 0;

  @Cacheable('cacheable:{id}')
  async load(id: string): Promise<unknown> {
    void id;
    this.runs++;
    return this.next();
  }

  @CachePut('put:{id}')
  async save(id: string): Promise<unknown> {
    void id;
    return this.next();
  }
}

/** What the next call of `computed` returns (built per call by the test). */
let nextResult: () => unknown = () => null;
const computed = cacheResult(async (id: string) => (void id, nextResult()), {
  key: (id: string) => `result:${id}`,
});

const BACKENDS: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({ provider: 'memory' })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('values'),
    }),
  ],
  [
    'redis with failover',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('values-fo'),
      failover: true,
    }),
  ],
];

describe.each(BACKENDS)('cached values on %s', (_backend, options) => {
  let booted: BootedApp;
  let cache: CacheService;
  let catalog: Catalog;
  let n = 0;
  const fresh = (): string => `v${++n}`;

  beforeAll(async () => {
    booted = await boot(options(), undefined, [Catalog]);
    cache = booted.cache;
    catalog = booted.app.get(Catalog);
    computed.attach(booted.app.get(CacheInvalidator));
  });

  afterAll(async () => {
    computed.attach(undefined);
    await cache.clear();
    await booted.app.close();
  });

  describe.each(ACCEPTED)('%s', (_label, make, readBack) => {
    it('set stores it and every read returns its JSON form', async () => {
      const key = fresh();
      const value = make();
      await cache.set(key, value);
      expect(await cache.get(key)).toStrictEqual(readBack);
      expect(await cache.get(key)).toStrictEqual(readBack);
      // The JSON form is what a JSON round trip gives: what Redis stores, on every backend.
      expect(readBack).toStrictEqual(JSON.parse(JSON.stringify(value)));
    });

    it("wrap's loader caller gets the loader's own value; later hits the JSON form", async () => {
      const key = fresh();
      const value = make();
      expect(await cache.wrap(key, () => value)).toBe(value);
      await settled(cache, key);
      expect(await cache.wrap(key, () => 'loaded again')).toStrictEqual(readBack);
    });

    it('@Cacheable returns the method result on a miss, the JSON form on a hit', async () => {
      const id = fresh();
      const value = make();
      catalog.next = () => value;
      const runs = catalog.runs;
      expect(await catalog.load(id)).toBe(value);
      await settled(cache, `cacheable:${id}`);
      expect(await catalog.load(id)).toStrictEqual(readBack);
      expect(catalog.runs).toBe(runs + 1);
    });

    it('@CachePut returns the method result and stores the JSON form', async () => {
      const id = fresh();
      const value = make();
      catalog.next = () => value;
      expect(await catalog.save(id)).toBe(value);
      expect(await cache.get(`put:${id}`)).toStrictEqual(readBack);
    });

    it('cacheResult: a call and a refresh return the result, and store the JSON form', async () => {
      const id = fresh();
      const value = make();
      nextResult = () => value;
      expect(await computed(id)).toBe(value);
      await settled(cache, `result:${id}`);
      expect(await computed(id)).toStrictEqual(readBack);
      await cache.set(`result:${id}`, 'older');
      expect(await computed.refresh(id)).toBe(value);
      expect(await cache.get(`result:${id}`)).toStrictEqual(readBack);
    });
  });

  describe.each(REJECTED)('%s', (_label, make, message) => {
    it('set rejects it, saying what and where, and keeps the previous entry', async () => {
      const key = fresh();
      await cache.set(key, { version: 1 });
      const error = await cache.set(key, make()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(CacheSerializationError);
      expect((error as Error).message).toContain(message);
      expect((error as Error).message).toContain(`"${key}"`);
      expect(await cache.get(key)).toEqual({ version: 1 });
    });

    it("wrap returns the loader's value and stores nothing", async () => {
      const key = fresh();
      const value = make();
      await expect(cache.wrap(key, () => value)).resolves.toBe(value);
      await settled(cache, key);
      expect(await cache.has(key)).toBe(false);
    });

    it('@Cacheable returns the method result and stores nothing', async () => {
      const id = fresh();
      const value = make();
      catalog.next = () => value;
      const runs = catalog.runs;
      await expect(catalog.load(id)).resolves.toBe(value);
      await settled(cache, `cacheable:${id}`);
      await expect(catalog.load(id)).resolves.toBe(value);
      expect(catalog.runs).toBe(runs + 2);
    });

    it('cacheResult: a call returns the result uncached; a refresh returns it and drops the stale entry', async () => {
      const id = fresh();
      const value = make();
      nextResult = () => value;
      await expect(computed(id)).resolves.toBe(value);
      await settled(cache, `result:${id}`);
      expect(await cache.has(`result:${id}`)).toBe(false);
      await cache.set(`result:${id}`, { version: 1 });
      await expect(computed.refresh(id)).resolves.toBe(value);
      // A result of undefined is not stored by refresh, which leaves the entry alone; one that
      // cannot be stored deletes it (it no longer describes the data).
      const previous = value === undefined ? { version: 1 } : undefined;
      expect(await cache.get(`result:${id}`)).toEqual(previous);
    });

    it('@CachePut returns the method result and deletes the stale entry', async () => {
      const id = fresh();
      await cache.set(`put:${id}`, { version: 1 });
      const value = make();
      catalog.next = () => value;
      await expect(catalog.save(id)).resolves.toBe(value);
      // Not stored (undefined, or a value JSON cannot hold): the old entry no longer describes
      // the data, so @CachePut deletes it (documented).
      expect(await cache.has(`put:${id}`)).toBe(false);
    });
  });

  it('logs why a loaded value was not stored (rate-limited)', async () => {
    const other = await boot(options());
    try {
      await expect(other.cache.wrap('bad', () => ({ n: 1n }))).resolves.toEqual({ n: 1n });
      await settled(other.cache, 'bad');
      expect(other.logger.warnings()).toEqual([
        expect.stringContaining('Cache value for "bad" was not stored: Cannot cache the value'),
      ]);
      expect(other.logger.warnings()[0]).toContain('value.n is a BigInt');
    } finally {
      await other.app.close();
    }
  });

  it('a plain object keeps, on memory only, what JSON cannot see (symbol keys)', async () => {
    // The documented exception: plain objects are stored as they are on memory (no copy), so a
    // symbol-keyed property stays visible there. Everything JSON can see is the same.
    const key = fresh();
    const symbol = Symbol('s');
    await cache.set(key, { a: 1, [symbol]: 2 });
    const read = await cache.get<Record<string, unknown>>(key);
    expect(JSON.parse(JSON.stringify(read))).toStrictEqual({ a: 1 });
  });
});

/** Waits for a background write of `key` (wrap does not make its caller wait for it). */
async function settled(cache: CacheService, key: string): Promise<void> {
  // A read on the same connection is answered after the write it follows.
  await cache.has(key);
}
