import { CacheSerializationError } from '../../lib';
import { assertSerializable } from '../../lib/utils/serializable';

class Money {
  constructor(
    readonly amount: number,
    readonly currency: string,
  ) {}
}

class WithInheritedHelper {
  value = 1;
}
// An enumerable method on the prototype: JSON ignores inherited properties.
(WithInheritedHelper.prototype as unknown as Record<string, unknown>).helper = () => 1;

function rejection(value: unknown): string {
  try {
    assertSerializable(value, 'k');
  } catch (error) {
    expect(error).toBeInstanceOf(CacheSerializationError);
    return (error as Error).message;
  }
  throw new Error('accepted');
}

describe('assertSerializable', () => {
  it.each<[string, unknown]>([
    ['a string', 'text'],
    ['a finite number', 1.5],
    ['a boolean', false],
    ['null', null],
    ['a nested plain object', { id: 1, tags: ['a', 'b'], meta: { ok: true, none: null } }],
    ['an object with undefined properties (JSON leaves them out)', { a: 1, b: undefined }],
    ['an array holding null', [1, null, 'x']],
    ['an object without a prototype', Object.assign(Object.create(null) as object, { x: 1 })],
    ['a Date', new Date(0)],
    ['an object with its own toJSON', { secret: () => 1, toJSON: () => ({ shown: true }) }],
    ['an object whose own toJSON comes first', { toJSON: () => 1, secret: () => 1 }],
    ['a class instance with plain fields', new Money(5, 'EUR')],
    ['an instance with an enumerable inherited method', new WithInheritedHelper()],
    ['a deep but finite structure', { a: { b: { c: { d: { e: [[[{ f: 1 }]]] } } } } }],
  ])('accepts %s', (_label, value) => {
    expect(() => assertSerializable(value, 'k')).not.toThrow();
  });

  it.each<[string, unknown, string]>([
    ['undefined', undefined, 'value is undefined'],
    ['NaN at the top', NaN, 'value is NaN'],
    ['Infinity in an array', [1, Infinity], 'value[1] is Infinity'],
    ['undefined in an array', [1, undefined], 'value[1] is undefined'],
    ['a nested function', { a: { b: { f: () => 1 } } }, 'value.a.b.f is a function'],
    ['a symbol', { s: Symbol('x') }, 'value.s is a symbol'],
    ['a BigInt', { n: 1n }, 'value.n is a BigInt'],
    ['a nested Set', { tags: new Set(['a']) }, 'value.tags is a Set'],
    ['a Map in an array', [new Map()], 'value[0] is a Map'],
    ['a Promise', { p: Promise.resolve(1) }, 'value.p is a Promise'],
    [
      'an own toJSON that is not a function',
      { toJSON: 'nope', f: () => 1 },
      'value.f is a function',
    ],
  ])('rejects %s, naming where', (_label, value, where) => {
    expect(rejection(value)).toContain(where);
  });

  it('rejects a circular reference, however deep', () => {
    const root: Record<string, unknown> = { level: 0 };
    let node = root;
    for (let i = 1; i < 100; i++) node = node.child = { level: i };
    node.back = root;
    expect(rejection(root)).toContain('is a circular reference');
  });

  it('accepts a structure deeper than the quick check walks, when it has no cycle', () => {
    const root: Record<string, unknown> = {};
    let node = root;
    for (let i = 0; i < 200; i++) node = node.child = {};
    expect(() => assertSerializable(root, 'k')).not.toThrow();
  });
});
