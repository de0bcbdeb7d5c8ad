import { MemoryCacheAdapter } from '../../lib';
import { estimateRichSize } from '../../lib/utils/value-size';

// `serializer: 'rich'` keeps URLSearchParams (README, "Rich values"), but the size estimate
// behind memory.maxSize / l1.maxSize counts one as an empty object (2 bytes): a megabyte of
// query string passes a 10 kB bound, so the memory bound does not hold.
describe('rich values: URLSearchParams against the byte bound', () => {
  const big = (): URLSearchParams => new URLSearchParams({ q: 'x'.repeat(1_000_000) });

  it('counts about the length of its text', () => {
    expect(estimateRichSize(big())).toBeGreaterThan(1_000_000);
  });

  it('is not kept by a memory store bounded below its size', async () => {
    const memory = new MemoryCacheAdapter({ maxSize: 10_000, serializer: 'rich' });
    try {
      await memory.set('k', big(), 0).catch(() => undefined);
      expect(await memory.get('k')).toBeUndefined();
      expect(memory.bytes ?? 0).toBeLessThanOrEqual(10_000);
    } finally {
      memory.onApplicationShutdown?.();
    }
  });
});
