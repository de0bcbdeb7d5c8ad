import { MemoryCacheAdapter } from '../../lib';

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
});
