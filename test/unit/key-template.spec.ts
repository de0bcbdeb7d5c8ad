import { CacheKeyError, KeyConstructor, argField, constField } from '../../lib';
import { createKeyResolver } from '../../lib/keys/key-resolver';
import { compileKeyTemplate, type MethodSignature } from '../../lib/keys/key-template';
import { readParameters } from '../../lib/keys/parameter-names';

type Fn = (...args: never[]) => unknown;

function signatureOf(fn: Fn, methodName = 'method'): MethodSignature {
  return { className: 'Service', methodName, parameters: readParameters(fn) };
}

/** Renders `template` for `fn` called with `args`. */
function render(template: string, fn: Fn, ...args: unknown[]): string {
  return compileKeyTemplate(template, signatureOf(fn), { allowResult: false }).render({
    args,
    hasResult: false,
  });
}

class Catalog {
  get(productId: string) {
    return productId;
  }
  search(query: string, page = 1) {
    return [query, page];
  }
  pair(a: unknown, b: unknown) {
    return [a, b];
  }
  byUser(user: { id: number; profile?: { region: string } }, filter: object) {
    return [user, filter];
  }
  later(size = PAGE_SIZE) {
    return size;
  }
  spread(first: string, ...rest: string[]) {
    return [first, rest];
  }
}
const PAGE_SIZE = 20;
const c = Catalog.prototype as unknown as Record<string, Fn>;

describe('key templates', () => {
  it('keeps simple keys readable', () => {
    expect(render('product:{productId}', c.get, '42')).toBe('product:42');
    expect(render('product:{productId}', c.get, 42)).toBe('product:42');
  });

  it('applies literal default values (the PyFly seed example)', () => {
    expect(render('search:{query}:page:{page}', c.search, 'shoes')).toBe('search:shoes:page:1');
    expect(render('search:{query}:page:{page}', c.search, 'shoes', 3)).toBe('search:shoes:page:3');
    expect(render('search:{query}:page:{page}', c.search, 'shoes', undefined)).toBe(
      'search:shoes:page:1',
    );
  });

  it('renders an omitted argument with a non-literal default as ~default', () => {
    expect(render('list:{size}', c.later)).toBe('list:~default');
    expect(render('list:{size}', c.later, 20)).toBe('list:20');
  });

  it('resolves positions and paths into arguments', () => {
    expect(render('user:{0.id}:{1}', c.byUser, { id: 7 }, 'x')).toBe('user:7:x');
    expect(render('user:{user.id}:region:{user.profile.region}', c.byUser, { id: 7 })).toBe(
      'user:7:region:~undefined',
    );
    expect(
      render('user:{user.profile.region}', c.byUser, { id: 7, profile: { region: 'eu' } }),
    ).toBe('user:eu');
  });

  it('reads rest parameters as arrays and positions past them as arguments', () => {
    expect(render('s:{rest}', c.spread, 'a', 'b', 'c')).toBe('s:~%5B"b","c"%5D');
    expect(render('s:{2}', c.spread, 'a', 'b', 'c')).toBe('s:c');
  });

  it('is injective where separators appear in values', () => {
    const left = render('f:{a}:{b}', c.pair, 'a:b', 'c');
    const right = render('f:{a}:{b}', c.pair, 'a', 'b:c');
    expect(left).not.toBe(right);
    expect(left).toBe('f:a%3Ab:c');
    expect(right).toBe('f:a:b%3Ac');
  });

  it('is injective with a template-specific separator', () => {
    expect(render('f:{a}-{b}', c.pair, 'x-y', 'z')).not.toBe(
      render('f:{a}-{b}', c.pair, 'x', 'y-z'),
    );
    expect(render('f:{a}-{b}', c.pair, 'red', 'shoes')).toBe('f:red-shoes');
    expect(render('f:{a}.{b}', c.pair, 1.5, 2)).not.toBe(render('f:{a}.{b}', c.pair, 1, 5.2));
  });

  it('never renders two different argument pairs to one key (fuzzed)', () => {
    // Deterministic PRNG, so a failure reproduces.
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const alphabet = [
      'a',
      'b',
      '1',
      ':',
      '-',
      '.',
      '~',
      '%',
      '*',
      '{',
      '}',
      ',',
      ' ',
      'x',
      'y',
      'z',
    ];
    const value = (): unknown => {
      const roll = random();
      if (roll < 0.05) return null;
      if (roll < 0.1) return undefined;
      const text = Array.from(
        { length: Math.floor(random() * 4) },
        () => alphabet[Math.floor(random() * alphabet.length)],
      ).join('');
      return roll < 0.25 ? { k: text } : text;
    };
    const identity = (v: unknown) =>
      v === undefined ? 'undefined' : typeof v === 'string' ? `s${v}` : `o${JSON.stringify(v)}`;
    const templates = ['f:{a}:{b}', 'f:{a}-{b}', '{a}.{b}', 'x{a}y{b}z', '{a}~{b}', '{a},{b}:{a}'];
    for (const template of templates) {
      const compiled = compileKeyTemplate(template, signatureOf(c.pair), { allowResult: false });
      const seen = new Map<string, string>();
      for (let i = 0; i < 4000; i++) {
        const args = [value(), value()];
        const key = compiled.render({ args, hasResult: false });
        const id = args.map(identity).join('|');
        const previous = seen.get(key);
        if (previous !== undefined && previous !== id) {
          throw new Error(`${template}: ${previous} and ${id} both render ${key}`);
        }
        seen.set(key, id);
      }
    }
  });

  it('tells null, undefined and objects apart from look-alike strings', () => {
    const keys = [
      render('k:{a}', c.pair, null),
      render('k:{a}', c.pair, 'null'),
      render('k:{a}', c.pair, '~null'),
      render('k:{a}', c.pair, undefined),
      render('k:{a}', c.pair, { x: 1 }),
      render('k:{a}', c.pair, '{"x":1}'),
      render('k:{a}', c.pair, '~{"x"%3A1}'),
      render('k:{a}', c.pair, [1]),
      render('k:{a}', c.pair, '[1]'),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('renders the number 42 and the string "42" alike, on purpose', () => {
    expect(render('k:{a}', c.pair, 42)).toBe(render('k:{a}', c.pair, '42'));
  });

  it('renders objects the same whatever their property order', () => {
    const one = render('q:{filter}', c.byUser, {}, { b: 2, a: { d: 4, c: 3 } });
    const two = render('q:{filter}', c.byUser, {}, { a: { c: 3, d: 4 }, b: 2 });
    expect(one).toBe(two);
    expect(render('q:{filter}', c.byUser, {}, { a: 1 })).not.toBe(
      render('q:{filter}', c.byUser, {}, { a: '1' }),
    );
  });

  it('escapes glob characters so user input cannot widen a pattern', () => {
    expect(render('p:{productId}', c.get, '*')).toBe('p:%2A');
    expect(render('p:{productId}', c.get, 'a?[b]\\')).toBe('p:a%3F%5Bb%5D%5C');
  });

  it('renders dates as their ISO text', () => {
    expect(render('d:{a}', c.pair, new Date('2024-01-02T03:04:05.000Z'))).toBe(
      'd:2024-01-02T03%3A04%3A05.000Z',
    );
  });

  it('throws at render time for values without a stable text', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => render('k:{a}', c.pair, circular)).toThrow(CacheKeyError);
    expect(() => render('k:{a}', c.pair, () => 1)).toThrow(CacheKeyError);
    expect(() => render('k:{a}', c.pair, new Map())).toThrow(CacheKeyError);
  });

  describe('errors when the decorator is applied', () => {
    const compile = (template: string, fn: Fn = c.get) =>
      compileKeyTemplate(template, signatureOf(fn, 'get'), { allowResult: false });

    it('names a placeholder that is no parameter, and lists the parameters', () => {
      expect(() => compile('product:{id}')).toThrow(CacheKeyError);
      expect(() => compile('product:{id}')).toThrow(
        /no parameter "id".*\(productId\).*\{productId\}/,
      );
    });

    it('rejects a position past the last parameter', () => {
      expect(() => compile('product:{1}')).toThrow(/takes 1 parameter/);
    });

    it('rejects malformed templates', () => {
      expect(() => compile('')).toThrow(CacheKeyError);
      expect(() => compile('a:{productId')).toThrow(/unclosed/);
      expect(() => compile('a:}')).toThrow(/without "\{"/);
      expect(() => compile('a:{}')).toThrow(/invalid placeholder/);
      expect(() => compile('a:{product-id}')).toThrow(/invalid placeholder/);
      expect(() => compile('{a}{b}', c.pair)).toThrow(/side by side/);
      expect(() => compile('{a}%{b}', c.pair)).toThrow(/"%"/);
    });

    it('allows {result} only where the result exists', () => {
      expect(() => compile('p:{result.id}')).toThrow(/no parameter "result"/);
      const put = compileKeyTemplate('p:{result.id}', signatureOf(c.get), { allowResult: true });
      expect(put.usesResult).toBe(true);
      expect(put.render({ args: ['x'], hasResult: true, result: { id: 9 } })).toBe('p:9');
    });
  });
});

describe('key resolvers', () => {
  const call = (args: unknown[]) => ({ instance: {}, args, hasResult: false });

  it('builds a default key from the class, the method and every argument', () => {
    const resolver = createKeyResolver(undefined, signatureOf(c.pair, 'pair'), {
      allowResult: false,
      what: '@Cacheable',
    });
    expect(resolver.render(call(['a:b', 'c']))).toBe('Service:pair:a%3Ab:c');
    expect(resolver.render(call(['a', 'b:c']))).toBe('Service:pair:a:b%3Ac');
  });

  it('uses a key function verbatim and rejects empty results', () => {
    const resolver = createKeyResolver((id: string) => `p:${id}`, signatureOf(c.get), {
      allowResult: false,
      what: '@Cacheable',
    });
    expect(resolver.render(call(['7']))).toBe('p:7');
    const empty = createKeyResolver(() => '', signatureOf(c.get), {
      allowResult: false,
      what: '@Cacheable',
    });
    expect(() => empty.render(call(['7']))).toThrow(CacheKeyError);
  });

  it('accepts a KeyConstructor as a key source, with defaults applied', () => {
    const SearchKey = KeyConstructor.define({
      namespace: 'search',
      fields: [argField('query', { partition: true }), argField('page'), constField('v', 1)],
    });
    const resolver = createKeyResolver(SearchKey, signatureOf(c.search, 'search'), {
      allowResult: false,
      what: '@Cacheable',
    });
    expect(resolver.render(call(['shoes']))).toBe('search:query=shoes:page=1:v=1');
  });

  it('lets a KeyConstructor reject the method when the decorator is applied', () => {
    const UserKey = KeyConstructor.define({ namespace: 'users', fields: [argField('userId')] });
    expect(() =>
      createKeyResolver(UserKey, signatureOf(c.get, 'get'), {
        allowResult: false,
        what: '@Cacheable',
      }),
    ).toThrow(CacheKeyError);
  });
});
