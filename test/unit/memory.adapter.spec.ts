import { CacheConfigError, MemoryCacheAdapter } from '../../lib';
import { estimateSize } from '../../lib/utils/value-size';

describe('MemoryCacheAdapter', () => {
  afterEach(() => jest.useRealTimers());

  it('keeps plain JSON data as-is (same reference, no serialisation round trip)', async () => {
    const adapter = new MemoryCacheAdapter();
    const value = { when: '1970-01-01T00:00:00.000Z', tags: ['a'] };
    await adapter.set('k', value, 0);
    expect(await adapter.get('k')).toBe(value);
    // Anything else in its JSON form, as the cache stores it (test/redis/adapter-set-rules.spec.ts).
    await adapter.set('d', { when: new Date(0) }, 0);
    expect(await adapter.get('d')).toEqual({ when: '1970-01-01T00:00:00.000Z' });
  });

  it('expires lazily on read', async () => {
    jest.useFakeTimers();
    const adapter = new MemoryCacheAdapter({ sweepInterval: 0 });
    await adapter.set('k', 'v', 2);
    jest.advanceTimersByTime(1999);
    expect(await adapter.get('k')).toBe('v');
    jest.advanceTimersByTime(2);
    expect(await adapter.get('k')).toBeUndefined();
    expect(await adapter.has('k')).toBe(false);
  });

  it('sweeps expired entries periodically, without any read', async () => {
    jest.useFakeTimers();
    const adapter = new MemoryCacheAdapter({ sweepInterval: 5 });
    adapter.onModuleInit();
    await adapter.set('short', 1, 1);
    await adapter.set('long', 2, 0);
    expect(adapter.size).toBe(2);
    jest.advanceTimersByTime(5_000);
    expect(adapter.size).toBe(1);
    adapter.onApplicationShutdown();
  });

  it('unrefs the sweep timer and stops it at shutdown', () => {
    const setIntervalSpy = jest.spyOn(global, 'setInterval');
    const clearIntervalSpy = jest.spyOn(global, 'clearInterval');
    const adapter = new MemoryCacheAdapter({ sweepInterval: 1 });
    adapter.onModuleInit();
    const timer = setIntervalSpy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    adapter.onApplicationShutdown();
    expect(clearIntervalSpy).toHaveBeenCalledWith(timer);
    setIntervalSpy.mockRestore();
    clearIntervalSpy.mockRestore();
  });

  it('never holds more than maxEntries, evicting the least recently used', async () => {
    const adapter = new MemoryCacheAdapter({ maxEntries: 3 });
    await adapter.set('a', 1, 0);
    await adapter.set('b', 2, 0);
    await adapter.set('c', 3, 0);
    await adapter.get('a'); // a is now the most recently used
    await adapter.set('d', 4, 0);
    expect(adapter.size).toBe(3);
    expect(await adapter.has('b')).toBe(false);
    expect(await adapter.get('a')).toBe(1);
    for (let i = 0; i < 1000; i++) await adapter.set(`bulk:${i}`, i, 0);
    expect(adapter.size).toBe(3);
  });

  it('defaults to a bound of 10 000 entries', async () => {
    const adapter = new MemoryCacheAdapter();
    for (let i = 0; i < 10_050; i++) await adapter.set(`k${i}`, i, 0);
    expect(adapter.size).toBe(10_000);
    expect(await adapter.has('k0')).toBe(false);
    expect(await adapter.has('k10049')).toBe(true);
  });

  it('deleteByPrefix skips expired entries and counts only live deletions', async () => {
    jest.useFakeTimers();
    const adapter = new MemoryCacheAdapter({ sweepInterval: 0 });
    await adapter.set('p:1', 1, 1);
    await adapter.set('p:2', 2, 0);
    jest.advanceTimersByTime(1500);
    expect(await adapter.deleteByPrefix('p:')).toBe(1);
  });

  describe('maxSize (bytes, estimated)', () => {
    // key 'k00' (3) + '"' + 95 x + '"' (97) = 100 bytes per entry.
    const entry = (i: number) => [`k${String(i).padStart(2, '0')}`, 'x'.repeat(95)] as const;
    const bytesHeld = async (adapter: MemoryCacheAdapter, keys: string[]) => {
      let bytes = 0;
      for (const key of keys) {
        if (await adapter.has(key)) bytes += key.length + estimateSize(await adapter.get(key));
      }
      return bytes;
    };

    it('evicts the least recently used entries to stay under the bound', async () => {
      const [key, value] = entry(0);
      expect(key.length + estimateSize(value)).toBe(100);
      const adapter = new MemoryCacheAdapter({ maxSize: 1000 });
      const keys: string[] = [];
      for (let i = 0; i < 50; i++) {
        const [k, v] = entry(i);
        keys.push(k);
        await adapter.set(k, v, 0);
        expect(await bytesHeld(adapter, keys)).toBeLessThanOrEqual(1000);
      }
      // 10 entries of 100 bytes fit; the 40 oldest are gone, the 10 newest kept.
      expect(adapter.size).toBe(10);
      expect(await adapter.has('k39')).toBe(false);
      for (let i = 40; i < 50; i++) expect(await adapter.get(entry(i)[0])).toBe(entry(i)[1]);
      // A read makes an entry recent: the next write evicts k41, not k40.
      await adapter.get('k40');
      await adapter.set('k50', entry(50)[1], 0);
      expect(await adapter.has('k40')).toBe(true);
      expect(await adapter.has('k41')).toBe(false);
    });

    it('makes room for a large entry by evicting several small ones', async () => {
      const adapter = new MemoryCacheAdapter({ maxSize: 1000 });
      for (let i = 0; i < 10; i++) await adapter.set(...entry(i), 0);
      // 'big' (3) + 497 = 500 bytes: the five oldest entries make room for it.
      await adapter.set('big', 'y'.repeat(495), 0);
      expect(adapter.size).toBe(6);
      expect(await adapter.has('k04')).toBe(false);
      expect(await adapter.has('k05')).toBe(true);
      expect(await adapter.get('big')).toBe('y'.repeat(495));
    });

    it('does not store an entry larger than the bound, and drops the previous one', async () => {
      const adapter = new MemoryCacheAdapter({ maxSize: 1000 });
      await adapter.set('other', 'kept', 0);
      await adapter.set('k', { version: 1 }, 0);
      await adapter.set('k', { version: 2, blob: 'z'.repeat(2000) }, 0);
      // Never the older value: a miss, so the cache reads through to the source.
      expect(await adapter.get('k')).toBeUndefined();
      expect(await adapter.has('k')).toBe(false);
      expect(await adapter.get('other')).toBe('kept');
      expect(adapter.size).toBe(1);

      // The synchronous path the cache uses does the same.
      adapter.setSync('s', 'old', 0);
      adapter.setSync('s', 'z'.repeat(2000), 0);
      expect(adapter.getSync('s')).toBeUndefined();
      // Exactly the bound fits: 's' (1) + 999.
      adapter.setSync('s', 'z'.repeat(997), 0);
      expect(adapter.getSync('s')).toBe('z'.repeat(997));
    });

    it('stores null with a bound too', async () => {
      const adapter = new MemoryCacheAdapter({ maxSize: 100 });
      await adapter.set('n', null, 0);
      expect(await adapter.get('n')).toBeNull();
      expect(await adapter.has('n')).toBe(true);
    });

    it('measures values only when maxSize is set', () => {
      let reads = 0;
      const value = {
        get field() {
          reads++;
          return 'v';
        },
      };
      new MemoryCacheAdapter().setSync('k', value, 0);
      expect(reads).toBe(0);
      new MemoryCacheAdapter({ maxSize: 1000 }).setSync('k', value, 0);
      expect(reads).toBe(1);
    });

    it.each([0, -1, 1.5, NaN, Infinity, '1000', null])('rejects maxSize %p', (maxSize) => {
      expect(() => new MemoryCacheAdapter({ maxSize: maxSize as number })).toThrow(
        CacheConfigError,
      );
      expect(() => new MemoryCacheAdapter({ maxSize: maxSize as number })).toThrow(
        /Invalid MemoryCacheAdapter option "maxSize": .* \(expected a whole number >= 1\)/,
      );
    });
  });
});
