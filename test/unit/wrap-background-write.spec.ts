import { CacheAdapter, CacheService, MemoryCacheAdapter } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { boot, type BootedApp } from '../support/failover';
import { Gate } from '../support/gated-adapter';

/**
 * Issue 10, item 5, by event order rather than the clock: `wrap` hands the loaded value over
 * without waiting for its cache write. A memory adapter whose writes are held back stands in for
 * a backend that hangs (the frozen-Redis suite shows the same with a real server).
 */
class HeldWritesAdapter extends MemoryCacheAdapter {
  /** While set, writes wait for it; `fail` makes them reject once it opens. */
  hold: Gate | undefined;
  fail = false;
  readonly writes: string[] = [];

  override async set(key: string, value: unknown, ttl: number): Promise<void> {
    this.writes.push(key);
    const gate = this.hold;
    if (gate) await gate.wait;
    if (this.fail) throw new Error('write refused');
    return super.set(key, value, ttl);
  }
}

describe('wrap writes in the background', () => {
  let booted: BootedApp;
  let cache: CacheService;
  let adapter: HeldWritesAdapter;

  beforeEach(async () => {
    adapter = new HeldWritesAdapter();
    booted = await boot({ adapter });
    cache = booted.cache;
    expect(booted.app.get(CacheAdapter)).toBe(adapter);
  });

  afterEach(async () => {
    adapter.hold?.open();
    await booted.app.close();
  });

  it("resolves the loader's value while the write is still pending", async () => {
    adapter.hold = new Gate();
    const value = { id: 1 };
    await expect(cache.wrap('k', () => value)).resolves.toBe(value);
    expect(adapter.writes).toEqual(['k']);
    expect(await adapter.get('k')).toBeUndefined(); // not written yet
    adapter.hold.open();
    await flush();
    expect(await cache.get('k')).toEqual({ id: 1 });
  });

  it('hands new callers of the key the loaded value, as a hit, until the write settles', async () => {
    adapter.hold = new Gate();
    let runs = 0;
    const loader = () => ++runs;
    expect(await booted.app.get(CacheStack).wrap('k', loader)).toEqual({
      value: 1,
      status: 'miss',
    });
    // Loaded already: a hit, though the backend has not stored it yet.
    expect(await booted.app.get(CacheStack).wrap('k', loader)).toEqual({ value: 1, status: 'hit' });
    adapter.hold.open();
    await flush();
    expect(await booted.app.get(CacheStack).wrap('k', loader)).toEqual({ value: 1, status: 'hit' });
    expect(runs).toBe(1);
  });

  it('hands them the JSON form being stored, the loader caller its own value', async () => {
    adapter.hold = new Gate();
    const loaded = { at: new Date(0) };
    expect(await cache.wrap('k', () => loaded)).toBe(loaded);
    expect(await cache.wrap('k', () => 'unused')).toStrictEqual({
      at: '1970-01-01T00:00:00.000Z',
    });
  });

  it('stops sharing once a delete, set or clear supersedes the pending write', async () => {
    adapter.hold = new Gate();
    let runs = 0;
    const loader = () => ++runs;
    await cache.wrap('a', loader);
    await cache.wrap('b', loader);
    await cache.wrap('c', loader);
    expect(runs).toBe(3);
    await cache.delete('a');
    void cache.set('b', 'newer'); // held like the others
    await cache.clear();
    // Writes are still held: nobody shares the superseded values, each key loads afresh.
    expect(await cache.wrap('a', loader)).toBe(4);
    expect(await cache.wrap('b', loader)).toBe(5);
    await cache.wrap('c', loader);
    expect(runs).toBe(6);
  });

  it('stops sharing after the TTL, whatever the write does', async () => {
    adapter.hold = new Gate();
    let runs = 0;
    await cache.wrap('k', () => ++runs, 0.05);
    expect(await cache.wrap('k', () => ++runs, 0.05)).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(await cache.wrap('k', () => ++runs, 0.05)).toBe(2);
  });

  it('logs a write that fails, after the caller has its value', async () => {
    adapter.hold = new Gate();
    adapter.fail = true;
    await expect(cache.wrap('k', () => 'v')).resolves.toBe('v');
    expect(booted.logger.warnings()).toEqual([]);
    adapter.hold.open();
    await flush();
    expect(booted.logger.warnings().join('\n')).toContain('Cache SET "k" failed');
    // The failed write ended the shared window: the next caller loads again.
    adapter.fail = false;
    await expect(cache.wrap('k', () => 'again')).resolves.toBe('again');
  });

  it('still writes synchronously on the built-in memory adapter', async () => {
    const memory = await boot({});
    try {
      await memory.cache.wrap('k', () => 'v');
      expect(await memory.app.get<MemoryCacheAdapter>(CacheAdapter).get('k')).toBe('v');
    } finally {
      await memory.app.close();
    }
  });
});

/** Lets settled promises run their callbacks. */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
