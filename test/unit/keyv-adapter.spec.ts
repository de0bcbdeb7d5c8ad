import { Logger } from '@nestjs/common';
import { Cacheable } from 'cacheable';
import { Keyv } from 'keyv';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import { KeyvCacheAdapter } from '../../lib/adapters/keyv.adapter';
import type { CacheAdapter } from '../../lib/interfaces/cache-adapter.interface';
import { StoresCacheAdapter } from '../../lib/tiers/stores.adapter';
import {
  CacheArgumentError,
  CacheConfigError,
  CacheError,
  CacheSerializationError,
} from '../../lib/utils/cache.errors';
import { deferred } from '../support/deferred';
import { CapturingLogger } from '../support/logs';

let logs: CapturingLogger;
beforeEach(() => {
  logs = new CapturingLogger();
  Logger.overrideLogger(logs);
});
afterEach(() => Logger.overrideLogger(new Logger()));

/**
 * A store whose answers the test releases or fails by hand: only to inject a slow or failing
 * secondary, which a real in-process store cannot be.
 */
class GatedStore implements CacheAdapter {
  readonly calls: string[] = [];
  gate: Promise<void> = Promise.resolve();
  failWith: Error | undefined;
  private readonly inner = new MemoryCacheAdapter();

  private async pass<R>(call: string, run: () => Promise<R>): Promise<R> {
    this.calls.push(call);
    await this.gate;
    if (this.failWith) throw this.failWith;
    return run();
  }
  get<T>(key: string): Promise<T | undefined> {
    return this.pass(`get ${key}`, () => this.inner.get<T>(key));
  }
  set(key: string, value: unknown, ttl: number): Promise<void> {
    return this.pass(`set ${key}`, () => this.inner.set(key, value, ttl));
  }
  delete(key: string): Promise<boolean> {
    return this.pass(`delete ${key}`, () => this.inner.delete(key));
  }
  has(key: string): Promise<boolean> {
    return this.pass(`has ${key}`, () => this.inner.has(key));
  }
  clear(): Promise<void> {
    return this.pass('clear', () => this.inner.clear());
  }
  deleteByPrefix(prefix: string): Promise<number> {
    return this.pass(`deleteByPrefix ${prefix}`, () => this.inner.deleteByPrefix(prefix));
  }
}

const GLOB_KEYS = ['a*b:1', 'a*b:2', 'axb:1', 'a?c:1', 'abc:1', 'a[b]:1', 'ab]:1', 'a\\x:1'];

describe('KeyvCacheAdapter (in-memory Keyv)', () => {
  afterEach(() => jest.useRealTimers());

  it('round-trips JSON values, null included; a miss is undefined', async () => {
    const adapter = new KeyvCacheAdapter(new Keyv());
    for (const value of [null, 0, '', false, { a: [1, 'x', null] }]) {
      await adapter.set('k', value, 0);
      expect(await adapter.get('k')).toEqual(value);
      expect(await adapter.has('k')).toBe(true);
    }
    expect(await adapter.get('missing')).toBeUndefined();
    expect(await adapter.has('missing')).toBe(false);
  });

  it('stores the JSON form and refuses what JSON cannot hold, keeping the previous entry', async () => {
    const adapter = new KeyvCacheAdapter(new Keyv());
    await adapter.set('d', { when: new Date(0) }, 0);
    expect(await adapter.get('d')).toEqual({ when: '1970-01-01T00:00:00.000Z' });
    await expect(adapter.set('d', { n: BigInt(1) }, 0)).rejects.toThrow(CacheSerializationError);
    expect(await adapter.get('d')).toEqual({ when: '1970-01-01T00:00:00.000Z' });
  });

  it('turns TTL seconds into Keyv milliseconds, exactly; 0 never expires', async () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const keyv = new Keyv({ ttl: 50 }); // a Keyv default TTL must not apply to ttl 0
    const adapter = new KeyvCacheAdapter(keyv);
    await adapter.set('short', 'v', 2);
    await adapter.set('tiny', 'v', 0.0001);
    await adapter.set('forever', 'v', 0);
    expect(await keyv.get<{ expires?: number }>('cache:short', { raw: true })).toMatchObject({
      expires: 1_000_000 + 2000,
    });
    expect(await keyv.get<{ expires?: number }>('cache:tiny', { raw: true })).toMatchObject({
      expires: 1_000_000 + 1,
    });
    jest.advanceTimersByTime(1999);
    expect(await adapter.get('short')).toBe('v');
    jest.advanceTimersByTime(2);
    expect(await adapter.get('short')).toBeUndefined();
    jest.advanceTimersByTime(365 * 24 * 3600 * 1000);
    expect(await adapter.get('forever')).toBe('v');
    await expect(adapter.set('bad', 'v', -1)).rejects.toThrow(CacheArgumentError);
  });

  it('keeps two namespaces on one Keyv apart (get, clear, deleteByPrefix)', async () => {
    const keyv = new Keyv();
    const a = new KeyvCacheAdapter(keyv, { namespace: 'a' });
    const b = new KeyvCacheAdapter(keyv, { namespace: 'b' });
    await a.set('user:1', 'from a', 0);
    await b.set('user:1', 'from b', 0);
    expect(await a.get('user:1')).toBe('from a');
    expect(await b.get('user:1')).toBe('from b');
    expect(await a.deleteByPrefix('user:')).toBe(1);
    expect(await a.get('user:1')).toBeUndefined();
    expect(await b.get('user:1')).toBe('from b');
    await a.set('x', 1, 0);
    await a.clear();
    expect(await a.get('x')).toBeUndefined();
    expect(await b.get('user:1')).toBe('from b');
  });

  it.each([
    ['a Keyv with the default namespace', () => new Keyv()],
    ['a Keyv whose namespace is the adapter namespace', () => new Keyv({ namespace: 'cache' })],
    ['a Keyv without key prefixes', () => new Keyv({ namespace: undefined, useKeyPrefix: false })],
    ['a Map store, wrapped', () => new Map()],
  ])('deleteByPrefix with glob characters deletes literal prefixes only: %s', async (_, make) => {
    const adapter = new KeyvCacheAdapter(make());
    for (const key of GLOB_KEYS) await adapter.set(key, key, 0);
    expect(await adapter.deleteByPrefix('a*b:')).toBe(2);
    expect(await adapter.deleteByPrefix('a?')).toBe(1);
    expect(await adapter.deleteByPrefix('a[b]')).toBe(1);
    expect(await adapter.deleteByPrefix('a\\')).toBe(1);
    const left = [];
    for (const key of GLOB_KEYS) if ((await adapter.get(key)) !== undefined) left.push(key);
    expect(left).toEqual(['axb:1', 'abc:1', 'ab]:1']);
  });

  it('refuses deleteByPrefix when Keyv cuts its namespace off every key', async () => {
    const adapter = new KeyvCacheAdapter(new Keyv({ namespace: undefined }));
    await adapter.set('k', 1, 0);
    await expect(adapter.deleteByPrefix('k')).rejects.toThrow('give the Keyv a namespace');
  });

  it('rejects deleteByPrefix, naming the store, when it cannot be iterated', async () => {
    // A storage adapter without an iterator: a plain object over a Map.
    const map = new Map<string, unknown>();
    const store = {
      get: (k: string) => Promise.resolve(map.get(k)),
      set: (k: string, v: unknown) => Promise.resolve(void map.set(k, v)),
      delete: (k: string) => Promise.resolve(map.delete(k)),
      clear: () => Promise.resolve(map.clear()),
      on: () => store,
    };
    class PlainStore {}
    Object.setPrototypeOf(store, PlainStore.prototype);
    const adapter = new KeyvCacheAdapter(store);
    await adapter.set('k', 1, 0);
    const error = await adapter.deleteByPrefix('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheError);
    expect(String(error)).toMatch(/PlainStore offers no iterator.*iterable/);
    await adapter.clear(); // the Keyv namespace as a whole, as cache-manager does
    expect(await adapter.get('k')).toBeUndefined();
  });

  it('logs Keyv error events instead of crashing, and reports a write Keyv refused', async () => {
    const keyv = new Keyv({
      store: {
        get: () => Promise.reject(new Error('store down')),
        set: () => Promise.reject(new Error('store down')),
        delete: () => Promise.resolve(false),
        clear: () => Promise.resolve(),
      },
    });
    const adapter = new KeyvCacheAdapter(keyv);
    await expect(adapter.set('k', 1, 1)).rejects.toThrow('did not write');
    expect(logs.warnings().join('\n')).toMatch(/Keyv reported an error: "store down"/);
    expect(() => keyv.emit('error', new Error('boom'))).not.toThrow();
  });

  it('disconnects only a Keyv it created, unless told otherwise', async () => {
    const passed = new Keyv();
    const passedDisconnect = jest.spyOn(passed, 'disconnect');
    await new KeyvCacheAdapter(passed).onApplicationShutdown();
    expect(passedDisconnect).not.toHaveBeenCalled();
    await new KeyvCacheAdapter(passed, { disconnectOnShutdown: true }).onApplicationShutdown();
    expect(passedDisconnect).toHaveBeenCalledTimes(1);
    const wrapped = new KeyvCacheAdapter(new Map());
    const wrappedDisconnect = jest.spyOn(wrapped.keyv as Keyv, 'disconnect');
    await wrapped.onApplicationShutdown();
    expect(wrappedDisconnect).toHaveBeenCalledTimes(1);
  });

  it('refuses what is no store, and a namespace that could overlap another', () => {
    expect(() => new KeyvCacheAdapter(42 as never)).toThrow(CacheConfigError);
    expect(() => new KeyvCacheAdapter({} as never)).toThrow(CacheConfigError);
    expect(() => new KeyvCacheAdapter(new Keyv(), { namespace: 'a:b' })).toThrow(CacheConfigError);
  });
});

describe('KeyvCacheAdapter over a cacheable instance', () => {
  afterEach(() => jest.useRealTimers());

  it('round-trips values and null, expires by the TTL in ms, and keeps namespaces apart', async () => {
    jest.useFakeTimers({ now: 5_000_000 });
    const cacheable = new Cacheable({ ttl: 60_000 });
    const a = new KeyvCacheAdapter(cacheable, { namespace: 'a' });
    const b = new KeyvCacheAdapter(cacheable, { namespace: 'b' });
    await a.set('k', null, 0);
    await b.set('k', { v: 1 }, 3);
    expect(await a.get('k')).toBeNull();
    expect(await a.has('k')).toBe(true);
    expect(await b.get('k')).toEqual({ v: 1 });
    jest.advanceTimersByTime(2999);
    expect(await b.get('k')).toEqual({ v: 1 });
    jest.advanceTimersByTime(2);
    expect(await b.get('k')).toBeUndefined();
    // 0: never expires, even past the instance's default TTL.
    jest.advanceTimersByTime(120_000);
    expect(await a.get('k')).toBeNull();
    expect(await a.delete('k')).toBe(true);
    expect(await a.get('k')).toBeUndefined();
    await expect(a.deleteByPrefix('k')).rejects.toThrow(/offers no iterator/);
  });
});

describe('StoresCacheAdapter', () => {
  const keyvStore = (namespace = 'cache') => new KeyvCacheAdapter(new Keyv(), { namespace });

  it('reads the stores in order: the first value found wins, nothing is copied back', async () => {
    const first = keyvStore();
    const second = keyvStore();
    const stores = new StoresCacheAdapter([first, second]);
    await second.set('k', 'second', 0);
    expect(await stores.get('k')).toBe('second');
    expect(await first.get('k')).toBeUndefined();
    await first.set('k', 'first', 0);
    expect(await stores.get('k')).toBe('first');
    await second.set('n', null, 0);
    expect(await stores.get('n')).toBeNull();
    expect(await stores.has('n')).toBe(true);
    expect(await stores.has('none')).toBe(false);
  });

  it('writes, deletes and clears every store', async () => {
    const first = keyvStore();
    const second = keyvStore();
    const stores = new StoresCacheAdapter([first, second]);
    await stores.set('user:1', 1, 0);
    await stores.set('user:2', 2, 0);
    await stores.set('other', 3, 0);
    expect([await first.get('user:1'), await second.get('user:1')]).toEqual([1, 1]);
    expect(await stores.deleteByPrefix('user:')).toBe(2);
    expect([await first.get('user:2'), await second.get('user:2')]).toEqual([undefined, undefined]);
    expect(await stores.delete('other')).toBe(true);
    expect(await stores.delete('other')).toBe(false);
    await stores.set('x', 1, 0);
    await stores.clear();
    expect([await first.get('x'), await second.get('x')]).toEqual([undefined, undefined]);
  });

  it('skips a failing store on read; rejects only when every store failed', async () => {
    const broken = new GatedStore();
    broken.failWith = new Error('down');
    const second = keyvStore();
    await second.set('k', 'v', 0);
    expect(await new StoresCacheAdapter([broken, second]).get('k')).toBe('v');
    expect(await new StoresCacheAdapter([broken, second]).get('none')).toBeUndefined();
    const alsoBroken = new GatedStore();
    alsoBroken.failWith = new Error('down too');
    await expect(new StoresCacheAdapter([broken, alsoBroken]).get('k')).rejects.toThrow('down');
  });

  it('blocking: waits for every store; the first store failing rejects, a later one is logged', async () => {
    const first = keyvStore();
    const slow = new GatedStore();
    const gate = deferred<void>();
    slow.gate = gate.promise;
    const stores = new StoresCacheAdapter([first, slow]);
    let settled = false;
    const write = stores.set('k', 'v', 0).then(() => (settled = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    gate.resolve();
    await write;
    expect(await slow.get('k')).toBe('v');

    slow.failWith = new Error('secondary down');
    await expect(stores.set('k2', 'v2', 0)).resolves.toBeUndefined();
    expect(await first.get('k2')).toBe('v2');
    expect(logs.warnings()).toContain(
      'Cache store 2 of 2 (GatedStore) failed for SET "k2": "secondary down"',
    );
    await expect(new StoresCacheAdapter([slow, first]).set('k3', 1, 0)).rejects.toThrow(
      'secondary down',
    );
  });

  it('nonBlocking: writes wait for the first store only; a failing secondary is logged', async () => {
    const first = keyvStore();
    const slow = new GatedStore();
    const gate = deferred<void>();
    slow.gate = gate.promise;
    const stores = new StoresCacheAdapter([first, slow], { nonBlocking: true });
    await stores.set('k', 'v', 0); // resolves while the secondary is held
    expect(await first.get('k')).toBe('v');
    expect(slow.calls).toEqual(['set k']);
    expect(await stores.delete('k')).toBe(true);
    slow.failWith = new Error('secondary down');
    expect(logs.warnings()).toEqual([]);
    gate.resolve();
    await stores.onApplicationShutdown(); // background writes settle, their failures logged
    expect(logs.warnings()).toEqual([
      'Cache store 2 of 2 (GatedStore) failed for SET "k": "secondary down"',
      'Cache store 2 of 2 (GatedStore) failed for DELETE "k": "secondary down"',
    ]);
  });

  it('nonBlocking: get answers with the first store that answers, a failure never wins', async () => {
    const slow = new GatedStore();
    const gate = deferred<void>();
    slow.gate = gate.promise;
    await new MemoryCacheAdapter().set('unused', 1, 0);
    const fast = keyvStore();
    await fast.set('k', 'fast', 0);
    const stores = new StoresCacheAdapter([slow, fast], { nonBlocking: true });
    expect(await stores.get('k')).toBe('fast');

    const failing = new GatedStore();
    failing.failWith = new Error('down');
    expect(await new StoresCacheAdapter([failing, fast], { nonBlocking: true }).get('k')).toBe(
      'fast',
    );
    await expect(
      new StoresCacheAdapter([failing, failing], { nonBlocking: true }).get('k'),
    ).rejects.toThrow('down');
    gate.resolve();
  });

  it('forwards lifecycle hooks to every store', async () => {
    const first = new MemoryCacheAdapter({ sweepInterval: 1 });
    const wrapped = new KeyvCacheAdapter(new Map());
    const disconnect = jest.spyOn(wrapped.keyv as Keyv, 'disconnect');
    const stores = new StoresCacheAdapter([first, wrapped]);
    await stores.onModuleInit();
    expect(first['timer']).toBeDefined();
    await stores.onApplicationShutdown();
    expect(first['timer']).toBeUndefined();
    expect(disconnect).toHaveBeenCalledTimes(1);
  });

  it('needs at least one store', () => {
    expect(() => new StoresCacheAdapter([])).toThrow(CacheConfigError);
  });
});
