import { readParameters, type ParameterInfo } from '../../lib/keys/parameter-names';

type Fn = (...args: never[]) => unknown;

const names = (fn: Fn) => readParameters(fn)?.map((p) => p.name);
const defaults = (fn: Fn) =>
  readParameters(fn)?.map((p: ParameterInfo) =>
    p.default ? (p.default.resolvable ? { value: p.default.value } : 'unresolvable') : 'none',
  );

// Functions built from source text, so what is parsed is exactly what a compiler could emit.
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const fromSource = (source: string): Fn => new Function(`return (${source});`)() as Fn;

describe('readParameters', () => {
  it('reads class methods, async methods and generators', () => {
    class Sample {
      plain(a: string, b: number) {
        return [a, b];
      }
      async later(productId: string) {
        return Promise.resolve(productId);
      }
      *gen(x: number) {
        yield x;
      }
      async *agen(y: number) {
        yield await Promise.resolve(y);
      }
      ['computed' + 'Name'](c: string, d: string) {
        return c + d;
      }
    }
    const p = Sample.prototype;
    expect(names(p.plain as Fn)).toEqual(['a', 'b']);
    expect(names(p.later as Fn)).toEqual(['productId']);
    expect(names(p.gen as Fn)).toEqual(['x']);
    expect(names(p.agen as Fn)).toEqual(['y']);
    expect(names((p as unknown as Record<string, Fn>).computedName)).toEqual(['c', 'd']);
  });

  it('reads functions and arrows, with or without parentheses', () => {
    expect(names(fromSource('function named(a, b) { return a + b; }'))).toEqual(['a', 'b']);
    expect(names(fromSource('function (a) { return a; }'))).toEqual(['a']);
    expect(names(fromSource('async function * g(first) {}'))).toEqual(['first']);
    expect(names(fromSource('(a, b) => a + b'))).toEqual(['a', 'b']);
    expect(names(fromSource('single => single'))).toEqual(['single']);
    expect(names(fromSource('async single => single'))).toEqual(['single']);
    expect(names(fromSource('() => 1'))).toEqual([]);
  });

  it('ignores comments, including ones that look like parameters', () => {
    const fn = fromSource(`function f(/* skip, me */ a, // trailing, comment
      b /* c, d */) {}`);
    expect(names(fn)).toEqual(['a', 'b']);
  });

  it('keeps destructured parameters unnamed and marks rest parameters', () => {
    const params = readParameters(fromSource('function f({ id, page } = {}, [x, y], ...rest) {}'));
    expect(params?.map((p) => [p.name, p.rest])).toEqual([
      [undefined, false],
      [undefined, false],
      ['rest', true],
    ]);
  });

  it('reads literal default values', () => {
    const fn = fromSource(
      `function f(a, n = 1, neg = -2.5, hex = 0x10, s = 'it\\'s', d = "a,b", t = \`x\`, ` +
        `yes = true, no = false, nil = null, u = undefined, v = void 0, o = {}, arr = [], big = 10n) {}`,
    );
    expect(defaults(fn)).toEqual([
      'none',
      { value: 1 },
      { value: -2.5 },
      { value: 16 },
      { value: "it's" },
      { value: 'a,b' },
      { value: 'x' },
      { value: true },
      { value: false },
      { value: null },
      { value: undefined },
      { value: undefined },
      { value: {} },
      { value: [] },
      { value: 10n },
    ]);
  });

  it('marks non-literal defaults as unresolvable but still names the parameter', () => {
    const fn = fromSource(
      'function f(size = PAGE_SIZE, at = new Date(), pick = (x) => x, t = `a${1}`, eq = a == b) {}',
    );
    expect(names(fn)).toEqual(['size', 'at', 'pick', 't', 'eq']);
    expect(defaults(fn)).toEqual(Array(5).fill('unresolvable'));
  });

  it('does not mistake strings with brackets, commas or comment markers for structure', () => {
    const fn = fromSource(`function f(url = 'http://x/(a,b)', sep = ")", next) {}`);
    expect(names(fn)).toEqual(['url', 'sep', 'next']);
    expect(defaults(fn)).toEqual([{ value: 'http://x/(a,b)' }, { value: ')' }, 'none']);
  });

  it("reads TypeScript's ES5 defaults from the function body", () => {
    const fn = fromSource(
      'function search(query, page) { if (page === void 0) { page = 1; } return [query, page]; }',
    );
    expect(defaults(fn)).toEqual(['none', { value: 1 }]);
  });

  it('sees through istanbul coverage counters around defaults', () => {
    const fn = fromSource('function f(page = (cov_1x2y3z().b[4][0]++, 7)) {}');
    expect(defaults(fn)).toEqual([{ value: 7 }]);
  });

  it('reads TypeScript-compiled methods with default values (this file is compiled)', () => {
    class Search {
      find(query: string, page = 1, tag = 'all') {
        return [query, page, tag];
      }
    }
    expect(defaults(Search.prototype.find as Fn)).toEqual(['none', { value: 1 }, { value: 'all' }]);
  });

  it('answers undefined for native and bound functions', () => {
    expect(readParameters(Math.max as Fn)).toBeUndefined();
    expect(
      readParameters(
        function f(this: unknown, a: number) {
          return a;
        }.bind(null) as Fn,
      ),
    ).toBeUndefined();
  });
});
