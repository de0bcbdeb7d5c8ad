import { toRichStorable } from '../../lib/utils/serializable';
import { estimateRichSize } from '../../lib/utils/value-size';

// Defect: with serializer 'rich' the pre-write walk (and the byte-bound size estimate) visit
// every slot of a sparse array, holes included: `a[50_000_000] = 1` blocks the event loop for
// seconds (2**32 - 2 for minutes), where 'json' rejects it at the first hole and devalue itself
// writes it in its sparse form. Counted through a proxy: the reads must follow the elements.
function counted(length: number, present: Record<number, unknown>) {
  const target: unknown[] = [];
  for (const [index, item] of Object.entries(present)) target[Number(index)] = item;
  target.length = length;
  let reads = 0;
  const proxy = new Proxy(target, {
    get(t, prop, receiver) {
      if (typeof prop === 'string' && /^\d+$/.test(prop)) reads++;
      return Reflect.get(t, prop, receiver) as unknown;
    },
    has(t, prop) {
      if (typeof prop === 'string' && /^\d+$/.test(prop)) reads++;
      return Reflect.has(t, prop);
    },
  });
  return { proxy, reads: () => reads };
}

describe('rich values, sparse arrays', () => {
  it('toRichStorable reads the elements a sparse array holds, not every slot', () => {
    const { proxy, reads } = counted(1_000_000, { 0: 'a', 999_998: 'b' });
    const out = toRichStorable({ list: proxy }, 'k') as { list: unknown[] };
    expect(out.list.length).toBe(1_000_000);
    expect(out.list[999_998]).toBe('b');
    expect(1 in out.list).toBe(false);
    expect(reads()).toBeLessThan(100);
  });

  it('estimateRichSize reads the elements a sparse array holds, not every slot', () => {
    const { proxy, reads } = counted(1_000_000, { 0: 'a', 999_998: 'b' });
    estimateRichSize({ list: proxy });
    expect(reads()).toBeLessThan(100);
  });

  it('keeps holes, undefined and late elements exactly', () => {
    // eslint-disable-next-line no-sparse-arrays
    const value: unknown[] = [1, , undefined, 4];
    value[10] = 'x';
    const out = toRichStorable(value, 'k') as unknown[];
    expect(out.length).toBe(11);
    expect(1 in out).toBe(false);
    expect(2 in out).toBe(true);
    expect(out[3]).toBe(4);
    expect(out[10]).toBe('x');
    expect(9 in out).toBe(false);
  });
});
