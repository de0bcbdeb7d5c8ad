import { Logger } from '@nestjs/common';
import { Keyv } from 'keyv';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import { KeyvCacheAdapter } from '../../lib/adapters/keyv.adapter';
import type { CacheAdapter } from '../../lib/interfaces/cache-adapter.interface';
import { StoresCacheAdapter } from '../../lib/tiers/stores.adapter';
import { deleteManyOf, getManyOf, setManyOf } from '../../lib/tiers/bulk';
import { CachePartialError } from '../../lib/utils/cache.errors';

/**
 * A custom adapter without bulk methods (the port's only required ones), over a memory store,
 * whose reads of the keys in `broken` fail: a fault no real store here produces on demand.
 */
class PlainAdapter implements CacheAdapter {
  readonly broken = new Set<string>();
  readonly calls: string[] = [];
  private readonly inner = new MemoryCacheAdapter();
  get<T>(key: string): Promise<T | undefined> {
    this.calls.push(`get ${key}`);
    if (this.broken.has(key)) return Promise.reject(new Error(`node of ${key} down`));
    return this.inner.get<T>(key);
  }
  set(key: string, value: unknown, ttl: number): Promise<void> {
    this.calls.push(`set ${key}`);
    if (this.broken.has(key)) return Promise.reject(new Error(`node of ${key} down`));
    return this.inner.set(key, value, ttl);
  }
  delete(key: string): Promise<boolean> {
    this.calls.push(`delete ${key}`);
    return this.inner.delete(key);
  }
  has(key: string): Promise<boolean> {
    return this.inner.has(key);
  }
  clear(): Promise<void> {
    return this.inner.clear();
  }
  deleteByPrefix(prefix: string): Promise<number> {
    return this.inner.deleteByPrefix(prefix);
  }
}

const errorOf = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

describe('bulk operations over an adapter without them (lib/tiers/bulk.ts)', () => {
  it('runs the single-key methods, each distinct key once, answering in order', async () => {
    const adapter = new PlainAdapter();
    await setManyOf(adapter, [
      { key: 'a', value: 1, ttl: 60 },
      { key: 'b', value: 2, ttl: 60 },
    ]);
    adapter.calls.length = 0;
    expect(await getManyOf(adapter, ['b', 'a', 'b', 'zz'])).toEqual([2, 1, 2, undefined]);
    expect(adapter.calls.sort()).toEqual(['get a', 'get b', 'get zz']);
    expect(await deleteManyOf(adapter, ['a', 'a', 'zz'])).toBe(1);
    expect(await getManyOf(adapter, [])).toEqual([]);
  });

  it('some keys failing: CachePartialError with the others read; all failing: the error', async () => {
    const adapter = new PlainAdapter();
    await setManyOf(adapter, [
      { key: 'a', value: 1, ttl: 60 },
      { key: 'b', value: 2, ttl: 60 },
    ]);
    adapter.broken.add('b');
    const partial = await errorOf(getManyOf(adapter, ['a', 'b', 'c', 'b']));
    expect(partial).toBeInstanceOf(CachePartialError);
    expect((partial as CachePartialError).results).toEqual([1, undefined, undefined, undefined]);
    expect((partial as CachePartialError).failed).toEqual([1, 3]);
    expect(((partial as CachePartialError).cause as Error).message).toBe('node of b down');
    const total = await errorOf(getManyOf(adapter, ['b']));
    expect(total).not.toBeInstanceOf(CachePartialError);
    expect((total as Error).message).toBe('node of b down');
  });

  it('a failed write rejects once every write settled', async () => {
    const adapter = new PlainAdapter();
    adapter.broken.add('bad');
    await expect(
      setManyOf(adapter, [
        { key: 'bad', value: 1, ttl: 60 },
        { key: 'ok', value: 2, ttl: 60 },
      ]),
    ).rejects.toThrow('node of bad down');
    expect(await getManyOf(adapter, ['ok'])).toEqual([2]);
  });
});

describe('StoresCacheAdapter bulk operations', () => {
  beforeEach(() => {
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
  });
  afterEach(() => jest.restoreAllMocks());

  it('asks the stores in order for the keys still missing; writes and deletes all', async () => {
    const first = new MemoryCacheAdapter();
    const second = new MemoryCacheAdapter();
    const stores = new StoresCacheAdapter([first, second]);
    await stores.setMany([{ key: 'both', value: 'b', ttl: 60 }]);
    expect(await first.get('both')).toBe('b');
    expect(await second.get('both')).toBe('b');
    await second.set('second-only', 's', 60);
    expect(await stores.getMany(['second-only', 'both', 'none'])).toEqual(['s', 'b', undefined]);
    expect(await stores.deleteMany(['both', 'second-only'])).toBe(2);
    expect(await second.getMany(['both', 'second-only'])).toEqual([undefined, undefined]);
  });

  it('a store failing for some keys: the next store answers them; failing everywhere: partial', async () => {
    const broken = new PlainAdapter();
    const backup = new PlainAdapter();
    const stores = new StoresCacheAdapter([broken, backup]);
    await stores.setMany([
      { key: 'a', value: 1, ttl: 60 },
      { key: 'b', value: 2, ttl: 60 },
    ]);
    broken.broken.add('b');
    expect(await stores.getMany(['a', 'b'])).toEqual([1, 2]);
    // A miss of the next store is an answer: no failure.
    await backup.delete('b');
    expect(await stores.getMany(['a', 'b'])).toEqual([1, undefined]);
    backup.broken.add('b');
    const partial = await errorOf(stores.getMany(['a', 'b']));
    expect(partial).toBeInstanceOf(CachePartialError);
    expect((partial as CachePartialError).results).toEqual([1, undefined]);
    expect((partial as CachePartialError).failed).toEqual([1]);
    broken.broken.add('a');
    backup.broken.add('a');
    await expect(stores.getMany(['a', 'b'])).rejects.not.toBeInstanceOf(CachePartialError);
  });
});

describe('KeyvCacheAdapter bulk operations', () => {
  it('reads, writes and deletes through Keyv, in order, ttl 0 and invalid values included', async () => {
    const adapter = new KeyvCacheAdapter(new Keyv(), { namespace: 'bulk' });
    await adapter.setMany([
      { key: 'a', value: { n: 1 }, ttl: 60 },
      { key: 'b', value: null, ttl: 0 },
    ]);
    expect(await adapter.getMany(['b', 'x', 'a'])).toEqual([null, undefined, { n: 1 }]);
    await expect(
      adapter.setMany([
        { key: 'a', value: 'new', ttl: 60 },
        { key: 'c', value: BigInt(1), ttl: 60 },
      ]),
    ).rejects.toThrow();
    expect(await adapter.get('a')).toEqual({ n: 1 });
    expect(await adapter.deleteMany(['a', 'x'])).toBe(1);
    expect(await adapter.getMany(['a', 'b'])).toEqual([undefined, null]);
  });
});
