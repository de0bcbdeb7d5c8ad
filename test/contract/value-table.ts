/**
 * What a cached value becomes, as one table every backend is held to (values.contract.spec.ts):
 * a value is either stored and read back as the same JSON form on memory and Redis, or rejected
 * by `set` with a CacheSerializationError saying what and where. The README's "What a cached
 * value becomes" section documents the same table.
 */

/** A value that is stored: how to make it, and what every later read returns. */
export type Accepted = [label: string, make: () => unknown, readBack: unknown];

/** A value that is rejected: how to make it, and a fragment of the error message. */
export type Rejected = [label: string, make: () => unknown, message: string];

class Money {
  constructor(
    readonly amount: number,
    readonly currency: string,
  ) {}

  /** A prototype getter: JSON (and so the cache) leaves it out. */
  get label(): string {
    return `${this.amount} ${this.currency}`;
  }
}

/** The example: a class whose toJSON returns a BigInt. */
class Ledger {
  constructor(readonly total: bigint) {}

  toJSON(): unknown {
    return { total: this.total };
  }
}

class Temperature {
  constructor(private readonly celsius: number) {}

  toJSON(): unknown {
    return { celsius: this.celsius, at: new Date(0) };
  }
}

function nested(levels: number, leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

function nestedArrays(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

function wide(size: number): Record<string, number> {
  const value: Record<string, number> = {};
  for (let i = 0; i < size; i++) value[`field${i}`] = i;
  return value;
}

export const ACCEPTED: Accepted[] = [
  // Plain JSON data: stored as it is.
  ['a string', () => 'text', 'text'],
  ['0', () => 0, 0],
  ['false', () => false, false],
  ['null', () => null, null],
  ['an empty string', () => '', ''],
  [
    'a nested plain object',
    () => ({ id: 1, tags: ['a', null], meta: { ok: true, price: 9.5 } }),
    { id: 1, tags: ['a', null], meta: { ok: true, price: 9.5 } },
  ],
  [
    'an own "__proto__" key',
    () => JSON.parse('{"__proto__":{"x":1}}'),
    JSON.parse('{"__proto__":{"x":1}}'),
  ],
  ['a very wide object (5 000 properties)', () => wide(5000), wide(5000)],
  ['256 levels of nesting (the most allowed)', () => nested(255, [1]), nested(255, [1])],
  [
    'an own getter (read as a property)',
    () => ({
      get x() {
        return 1;
      },
    }),
    { x: 1 },
  ],
  // What JSON writes differently, without losing what was meant to be kept: the JSON form.
  ['-0', () => -0, 0],
  ['-0 nested in arrays', () => [-0, [-0], { z: -0 }], [0, [0], { z: 0 }]],
  [
    'a Date',
    () => ({ at: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)) }),
    { at: '2024-01-02T03:04:05.006Z' },
  ],
  ['a class instance', () => new Money(5, 'EUR'), { amount: 5, currency: 'EUR' }],
  [
    'a class instance whose toJSON holds a Date',
    () => new Temperature(21),
    { celsius: 21, at: '1970-01-01T00:00:00.000Z' },
  ],
  [
    'an object without a prototype',
    () => Object.assign(Object.create(null) as object, { x: 1 }),
    { x: 1 },
  ],
  ['a Buffer', () => ({ file: Buffer.from('hi') }), { file: { type: 'Buffer', data: [104, 105] } }],
  [
    'a URL',
    () => ({ link: new URL('https://example.com/a?b=1') }),
    { link: 'https://example.com/a?b=1' },
  ],
  ['boxed primitives', () => [new Number(1), new String('x'), new Boolean(false)], [1, 'x', false]],
  [
    'toJSON, called with its property name',
    () => ({ p: { toJSON: (key: string) => `at ${key}` } }),
    { p: 'at p' },
  ],
  [
    'toJSON returning an object with its own toJSON inside',
    () => ({ toJSON: () => ({ inner: { toJSON: () => 7 } }) }),
    { inner: 7 },
  ],
  ['toJSON on an array', () => Object.assign([1, 2], { toJSON: () => 'list' }), 'list'],
  [
    'a symbol-keyed property of a class instance',
    () => Object.assign(new Money(1, 'X'), { [Symbol('s')]: 1 }),
    { amount: 1, currency: 'X' },
  ],
  ['an undefined property (left out, as JSON does)', () => ({ a: 1, b: undefined }), { a: 1 }],
  [
    'an undefined property deep inside, next to -0',
    () => ({ list: [{ id: 1, note: undefined, n: -0 }] }),
    { list: [{ id: 1, n: 0 }] },
  ],
  [
    'a non-enumerable property of a class instance',
    () => Object.defineProperty(new Money(1, 'X'), 'hidden', { value: 2 }),
    { amount: 1, currency: 'X' },
  ],
];

export const REJECTED: Rejected[] = [
  ['undefined', () => undefined, 'value is undefined'],
  ['an undefined array element', () => [1, undefined], 'value[1] is undefined'],
  // eslint-disable-next-line no-sparse-arrays
  ['an array with a hole', () => [1, , 3], 'value[1] is an empty slot'],
  ['NaN', () => NaN, 'value is NaN'],
  ['Infinity in an array', () => [1, Infinity], 'value[1] is Infinity'],
  ['a function', () => ({ f: () => 1 }), 'value.f is a function'],
  ['a symbol', () => ({ s: Symbol('s') }), 'value.s is a symbol'],
  ['a BigInt', () => ({ n: 10n }), 'value.n is a BigInt'],
  ['a boxed BigInt', () => [Object(1n)], 'value[0] is a BigInt'],
  ['a boxed NaN', () => [new Number(NaN)], 'value[0] is NaN'],
  [
    'a circular reference',
    () => {
      const o: Record<string, unknown> = { a: { b: 1 } };
      (o.a as Record<string, unknown>).self = o;
      return o;
    },
    'value.a.self is a circular reference (to value)',
  ],
  ['a Map', () => new Map([[1, 2]]), 'value is a Map'],
  ['a Set', () => ({ tags: new Set(['a']) }), 'value.tags is a Set'],
  ['a WeakMap', () => ({ w: new WeakMap() }), 'value.w is a WeakMap'],
  ['a WeakSet', () => ({ w: new WeakSet() }), 'value.w is a WeakSet'],
  ['a Promise', () => ({ p: Promise.resolve(1) }), 'value.p is a Promise'],
  ['a RegExp', () => ({ r: /x/ }), 'value.r is a RegExp'],
  ['an Error', () => ({ e: new Error('x') }), 'value.e is an Error'],
  ['a typed array', () => ({ t: new Float64Array([1]) }), 'value.t is a Float64Array'],
  ['an invalid Date', () => ({ d: new Date(NaN) }), 'value.d is an invalid Date'],
  ['a class whose toJSON returns a BigInt', () => new Ledger(1n), 'value.total is a BigInt'],
  [
    'a toJSON returning a BigInt',
    () => ({ a: { toJSON: () => 1n } }),
    'value.a.toJSON() returned a BigInt',
  ],
  [
    'a toJSON returning undefined',
    () => ({ a: { toJSON: () => undefined } }),
    'value.a.toJSON() returned undefined',
  ],
  [
    'a toJSON returning a function',
    () => [{ toJSON: () => () => 1 }],
    'value[0].toJSON() returned a function',
  ],
  [
    'a nested toJSON returning NaN',
    () => ({ toJSON: () => ({ b: { toJSON: () => NaN } }) }),
    'value.b.toJSON() returned NaN',
  ],
  [
    'a toJSON that throws',
    () => ({
      a: {
        toJSON: () => {
          throw new Error('nope');
        },
      },
    }),
    'value.a: its toJSON() threw "nope"',
  ],
  [
    'a getter returning a BigInt',
    () => ({
      get n() {
        return 1n;
      },
    }),
    'value.n is a BigInt',
  ],
  [
    'a getter that throws',
    () => ({
      get n(): number {
        throw new Error('nope');
      },
    }),
    'value.n: reading it threw "nope"',
  ],
  ['10 000 levels of nested objects', () => nested(10_000), 'is nested deeper than 256 levels'],
  [
    '10 000 levels of nested arrays',
    () => nestedArrays(10_000),
    'is nested deeper than 256 levels',
  ],
];
