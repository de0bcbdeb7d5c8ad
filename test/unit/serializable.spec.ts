import { CacheSerializationError } from '../../lib';
import { MAX_VALUE_DEPTH, toStorable } from '../../lib/utils/serializable';

class Money {
  constructor(
    readonly amount: number,
    readonly currency: string,
  ) {}

  get label(): string {
    return `${this.amount} ${this.currency}`;
  }
}

class WithInheritedHelper {
  value = 1;
}
// An enumerable method on the prototype: JSON ignores inherited properties.
(WithInheritedHelper.prototype as unknown as Record<string, unknown>).helper = () => 1;

function rejection(value: unknown): string {
  try {
    toStorable(value, 'k');
  } catch (error) {
    expect(error).toBeInstanceOf(CacheSerializationError);
    return (error as Error).message;
  }
  throw new Error('accepted');
}

function nested(levels: number, leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

describe('toStorable', () => {
  it.each<[string, unknown]>([
    ['a string', 'text'],
    ['a finite number', 1.5],
    ['a boolean', false],
    ['null', null],
    ['a nested plain object', { id: 1, tags: ['a', 'b'], meta: { ok: true, none: null } }],
    ['an array holding null', [1, null, 'x']],
    ['an own "__proto__" key', JSON.parse('{"__proto__":{"x":1}}') as unknown],
  ])('stores plain JSON data as it is, without a copy: %s', (_label, value) => {
    expect(toStorable(value, 'k')).toBe(value);
  });

  it.each<[string, () => unknown, unknown]>([
    ['-0', () => -0, 0],
    ['-0 in an array', () => [1, -0, [-0]], [1, 0, [0]]],
    ['a Date', () => ({ at: new Date(0) }), { at: '1970-01-01T00:00:00.000Z' }],
    [
      'a class instance (own fields, no getters)',
      () => new Money(5, 'EUR'),
      { amount: 5, currency: 'EUR' },
    ],
    [
      'an instance with an enumerable inherited method',
      () => new WithInheritedHelper(),
      { value: 1 },
    ],
    [
      'an object without a prototype',
      () => Object.assign(Object.create(null) as object, { x: 1 }),
      { x: 1 },
    ],
    [
      'an own toJSON',
      () => ({ secret: () => 1, toJSON: () => ({ shown: true }) }),
      { shown: true },
    ],
    [
      'a non-enumerable own toJSON',
      () => Object.defineProperty({ a: 1 }, 'toJSON', { value: () => 'j' }),
      'j',
    ],
    ['a toJSON on an array', () => Object.assign([1, 2], { toJSON: () => 'list' }), 'list'],
    [
      'toJSON called with its property name',
      () => ({ p: { toJSON: (key: string) => `at ${key}` } }),
      { p: 'at p' },
    ],
    ['toJSON called with the index', () => [{ toJSON: (key: string) => key }], ['0']],
    ['toJSON at the top, called with ""', () => ({ toJSON: (key: string) => `[${key}]` }), '[]'],
    [
      'a toJSON result holding objects with their own toJSON',
      () => ({ toJSON: () => ({ inner: { toJSON: () => 7 } }) }),
      { inner: 7 },
    ],
    ['a Buffer', () => Buffer.from('hi'), { type: 'Buffer', data: [104, 105] }],
    [
      'boxed primitives',
      () => [new Number(1), new String('x'), new Boolean(false)],
      [1, 'x', false],
    ],
    [
      'a boxed number with its own valueOf',
      () => Object.assign(new Number(1), { valueOf: () => 2 }),
      2,
    ],
    [
      'a symbol-keyed property of a class instance',
      () => Object.assign(new Money(1, 'X'), { [Symbol('s')]: 1 }),
      { amount: 1, currency: 'X' },
    ],
    ['a BigInt when BigInt.prototype.toJSON is defined', () => withBigIntToJSON(), { n: '5' }],
    [
      `${MAX_VALUE_DEPTH} levels`,
      () => nested(MAX_VALUE_DEPTH - 1, [1]),
      nested(MAX_VALUE_DEPTH - 1, [1]),
    ],
  ])('stores the JSON form of %s', (_label, make, expected) => {
    const value = make();
    const stored = toStorable(value, 'k');
    expect(stored).toStrictEqual(expected);
    // Exactly what Redis returns: a JSON round trip of the value.
    expect(stored).toStrictEqual(JSON.parse(JSON.stringify(value)));
    delete (BigInt.prototype as { toJSON?: unknown }).toJSON;
  });

  it('builds an own "__proto__" property in a copy, never a prototype', () => {
    const value = Object.create(null) as Record<string, unknown>;
    value.__proto__ = { polluted: true };
    const stored = toStorable(value, 'k') as Record<string, unknown>;
    expect(Object.getPrototypeOf(stored)).toBe(Object.prototype);
    expect(Object.hasOwn(stored, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(stored).toStrictEqual(JSON.parse(JSON.stringify(value)));
  });

  it('leaves undefined properties out, as JSON does, so memory reads back what Redis does', () => {
    const value = { id: 1, note: undefined, nested: { keep: 'x', drop: undefined } };
    const stored = toStorable(value, 'k');
    expect(stored).toStrictEqual({ id: 1, nested: { keep: 'x' } });
    expect(Object.hasOwn(stored as object, 'note')).toBe(false);
    expect(stored).toStrictEqual(JSON.parse(JSON.stringify(value)));
    // The caller's object is not changed.
    expect(Object.hasOwn(value, 'note')).toBe(true);
    // A class instance with an unset optional field (useDefineForClassFields) too.
    expect(toStorable(Object.assign(new Money(1, 'X'), { note: undefined }), 'k')).toStrictEqual({
      amount: 1,
      currency: 'X',
    });
  });

  it.each<[string, () => unknown, string]>([
    ['undefined', () => undefined, 'value is undefined (a miss'],
    [
      'an undefined element',
      () => [1, undefined],
      'value[1] is undefined, which JSON stores as null',
    ],
    ['a hole', () => [1, , 3], 'value[1] is an empty slot'], // eslint-disable-line no-sparse-arrays
    ['NaN at the top', () => NaN, 'value is NaN'],
    ['Infinity in an array', () => [1, Infinity], 'value[1] is Infinity'],
    ['-Infinity', () => ({ x: -Infinity }), 'value.x is -Infinity'],
    ['a nested function', () => ({ a: { b: { f: () => 1 } } }), 'value.a.b.f is a function'],
    ['a symbol', () => ({ s: Symbol('x') }), 'value.s is a symbol'],
    ['a BigInt', () => ({ n: 1n }), 'value.n is a BigInt'],
    ['a boxed BigInt', () => [Object(1n)], 'value[0] is a BigInt'],
    ['a boxed NaN', () => [new Number(NaN)], 'value[0] is NaN'],
    ['a nested Set', () => ({ tags: new Set(['a']) }), 'value.tags is a Set'],
    ['a Map in an array', () => [new Map()], 'value[0] is a Map'],
    ['a WeakMap', () => ({ w: new WeakMap() }), 'value.w is a WeakMap'],
    ['a WeakSet', () => ({ w: new WeakSet() }), 'value.w is a WeakSet'],
    ['a Promise', () => ({ p: Promise.resolve(1) }), 'value.p is a Promise'],
    ['a RegExp', () => ({ r: /x/g }), 'value.r is a RegExp'],
    ['an Error', () => ({ e: new TypeError('x') }), 'value.e is an Error'],
    ['a typed array', () => ({ t: new Uint8Array([1]) }), 'value.t is a Uint8Array'],
    ['an ArrayBuffer', () => ({ b: new ArrayBuffer(1) }), 'value.b is an ArrayBuffer'],
    ['an iterator', () => ({ i: new Map().keys() }), 'value.i is an iterator'],
    ['an invalid Date', () => ({ d: new Date(NaN) }), 'value.d is an invalid Date'],
    [
      'a toJSON returning undefined',
      () => ({ a: { toJSON: () => undefined } }),
      'value.a.toJSON() returned undefined',
    ],
    [
      'a toJSON returning a BigInt',
      () => ({ a: { toJSON: () => 1n } }),
      'value.a.toJSON() returned a BigInt',
    ],
    [
      'a toJSON returning a function',
      () => [{ toJSON: () => () => 1 }],
      'value[0].toJSON() returned a function',
    ],
    [
      'a toJSON returning a Map',
      () => ({ a: { toJSON: () => new Map() } }),
      'value.a.toJSON() returned a Map',
    ],
    [
      'a nested toJSON returning NaN',
      () => ({ toJSON: () => ({ b: { toJSON: () => NaN } }) }),
      'value.b.toJSON() returned NaN',
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
          throw new Error('no');
        },
      }),
      'value.n: reading it threw "no"',
    ],
    [
      'a toJSON that throws',
      () => ({
        a: {
          toJSON() {
            throw new Error('bad');
          },
        },
      }),
      'value.a: its toJSON() threw "bad"',
    ],
    [
      'an own function-valued toJSON of a toJSON result',
      () => ({ toJSON: () => ({ toJSON: () => 1 }) }),
      'value.toJSON is a function',
    ],
    [
      'a key that is not an identifier',
      () => ({ 'a b': { 'x\ny': 1n } }),
      'value["a b"]["x\\ny"] is a BigInt',
    ],
  ])('rejects %s, naming where', (_label, make, where) => {
    expect(rejection(make())).toContain(where);
  });

  it('rejects a revoked proxy with its own error', () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(rejection({ p: proxy })).toMatch(/value\.p: .* threw .*revoked/);
    const hostile = new Proxy(
      {},
      {
        getPrototypeOf() {
          throw new Error('no prototype for you');
        },
      },
    );
    expect(rejection({ p: hostile })).toContain('value.p: inspecting it threw "no prototype');
  });

  it('names the cache key, quoted', () => {
    expect(rejection(undefined)).toContain('for key "k"');
    expect(() => toStorable(1n, 'a\nWARN forged')).toThrow('for key "a\\nWARN forged"');
  });

  it('rejects a circular reference, however deep, naming both ends', () => {
    const root: Record<string, unknown> = { level: 0 };
    let node = root;
    for (let i = 1; i < 100; i++) node = node.child = { level: i };
    node.back = root;
    expect(rejection(root)).toMatch(/value\.child.*\.back is a circular reference \(to value\)/);
  });

  it('accepts the same object twice when it is not its own ancestor', () => {
    const shared = { x: 1 };
    expect(toStorable({ a: shared, b: [shared] }, 'k')).toStrictEqual({
      a: { x: 1 },
      b: [{ x: 1 }],
    });
  });

  it(`rejects nesting deeper than ${MAX_VALUE_DEPTH} levels with its own error, never a RangeError`, () => {
    expect(rejection(nested(MAX_VALUE_DEPTH + 1))).toContain(
      `is nested deeper than ${MAX_VALUE_DEPTH} levels`,
    );
    const message = rejection(nested(10_000));
    expect(message).toContain('more levels');
    expect(message.length).toBeLessThan(1000);
    let array: unknown = 1;
    for (let i = 0; i < 10_000; i++) array = [array];
    expect(rejection(array)).toContain('is nested deeper than');
  });

  it('accepts a plain structure deeper than the quick check walks (a copy)', () => {
    const value = nested(200);
    expect(toStorable(value, 'k')).toStrictEqual(value);
  });

  it('accepts a very wide object', () => {
    const wide: Record<string, number> = {};
    for (let i = 0; i < 20_000; i++) wide[`k${i}`] = i;
    expect(toStorable(wide, 'k')).toBe(wide);
    const withDate = { ...wide, at: new Date(0) };
    expect(toStorable(withDate, 'k')).toStrictEqual(JSON.parse(JSON.stringify(withDate)));
  });
});

function withBigIntToJSON(): unknown {
  (BigInt.prototype as { toJSON?: unknown }).toJSON = function (this: bigint) {
    return this.toString();
  };
  return { n: 5n };
}
