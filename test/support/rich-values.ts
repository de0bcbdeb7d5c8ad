import { isDeepStrictEqual } from 'node:util';

/**
 * Every type `serializer: 'rich'` keeps, nested in objects, arrays, Maps and Sets, for the
 * round-trip specs (a fresh value per call: a test may mutate what it gets).
 */
export function richSample(): Record<string, unknown> {
  const shared = { id: 7 };
  return {
    when: new Date('2024-02-29T12:34:56.789Z'),
    byId: new Map<unknown, unknown>([
      ['b', { at: new Date(0) }],
      [1, 'one'],
      ['a', new Set(['x', 1n])],
    ]),
    tags: new Set(['z', 'a', 'm']),
    big: 2n ** 70n,
    negativeBig: -5n,
    buffer: Buffer.from('héllo, bytes'),
    bytes: new Uint8Array([0, 1, 255]),
    view: new Uint8Array([9, 8, 7, 6]).subarray(1, 3),
    floats: new Float64Array([1.5, -0, NaN]),
    ints: new Int32Array([-2, 2 ** 31 - 1]),
    bigInts: new BigUint64Array([2n ** 64n - 1n]),
    arrayBuffer: new Uint8Array([4, 2]).buffer,
    nested: {
      missing: undefined,
      negativeZero: -0,
      notANumber: NaN,
      up: Infinity,
      down: -Infinity,
    },
    list: [undefined, -0, new Date(1), [new Map([[{ k: 1 }, [2n]]])]],
    pattern: /a+b/giu,
    url: new URL('https://example.com/a?b=1#c'),
    plain: { name: 'Ada', n: 1, ok: true, nothing: null, inner: [1, 'two'] },
    twice: [shared, shared],
  };
}

/**
 * `isDeepStrictEqual` (which tells `-0` from `0`, `NaN` equals `NaN`, and a Buffer from a
 * Uint8Array by prototype) plus the order of every Map's keys and Set's items, and the
 * prototypes all the way down.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a, b) && sameOrder(a, b, new Set());
}

function sameOrder(a: unknown, b: unknown, seen: Set<unknown>): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return true;
  if (seen.has(a)) return true;
  seen.add(a);
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Map && b instanceof Map) {
    const ka = [...a.keys()];
    const kb = [...b.keys()];
    if (ka.length !== kb.length) return false;
    return ka.every(
      (key, i) =>
        isDeepStrictEqual(key, kb[i]) &&
        sameOrder(key, kb[i], seen) &&
        sameOrder(a.get(key), b.get(kb[i]), seen),
    );
  }
  if (a instanceof Set && b instanceof Set) {
    const ia = [...a];
    const ib = [...b];
    return ia.every((item, i) => isDeepStrictEqual(item, ib[i]) && sameOrder(item, ib[i], seen));
  }
  if (ArrayBuffer.isView(a)) return true;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = Object.keys(ra);
  if (keys.join('\u0000') !== Object.keys(rb).join('\u0000')) return false;
  return keys.every((key) => sameOrder(ra[key], rb[key], seen));
}
