import {
  hostKey,
  isEntry,
  storedEntry,
  variantKey,
  varyMatches,
  type RequestHeaders,
} from '../../lib/interceptors/http-cache-rules';

/** A sent response: its status and headers, read as Node's `getHeader` does. */
function sent(statusCode: number, headers: Record<string, string | string[]> = {}) {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { statusCode, getHeader: (name: string) => lower[name.toLowerCase()] };
}

const stored = (response: ReturnType<typeof sent>, request: RequestHeaders = {}) =>
  storedEntry(response, undefined, request, { ok: true });

describe('storedEntry: what HTTP lets a shared cache keep', () => {
  it('keeps a plain 200, and a public one', () => {
    expect(stored(sent(200))).toEqual({ body: { ok: true } });
    expect(stored(sent(200, { 'Cache-Control': 'public, max-age=60' }))).toEqual({
      body: { ok: true },
    });
  });

  it.each([201, 203, 204, 206, 301, 302, 304, 404, 500])('never a %i', (status) => {
    expect(stored(sent(status))).toBeUndefined();
  });

  it.each([
    'private',
    'PRIVATE',
    'max-age=60, private',
    'private="Set-Cookie"',
    'max-age=60,private , must-revalidate',
    'no-store',
    'No-Store',
    'public,no-store',
    'no-cache',
    'max-age=0, NO-CACHE',
    'no-cache="Set-Cookie"',
  ])('never Cache-Control: %s', (value) => {
    expect(stored(sent(200, { 'Cache-Control': value }))).toBeUndefined();
  });

  it('reads every Cache-Control line', () => {
    expect(stored(sent(200, { 'Cache-Control': ['public', 'private'] }))).toBeUndefined();
  });

  it.each(['max-age=60', 'public, s-maxage=30', 'no-transform', 'x-private-ish'])(
    'keeps Cache-Control: %s',
    (value) => {
      expect(stored(sent(200, { 'Cache-Control': value }))).toBeDefined();
    },
  );

  it('never a response that sets a cookie, in any form', () => {
    expect(stored(sent(200, { 'Set-Cookie': 'a=1' }))).toBeUndefined();
    expect(stored(sent(200, { 'Set-Cookie': ['a=1', 'b=2'] }))).toBeUndefined();
    expect(stored(sent(200, { 'Set-Cookie': [] }))).toBeDefined();
  });

  it('never Vary: *, alone or in a list', () => {
    expect(stored(sent(200, { Vary: '*' }))).toBeUndefined();
    expect(stored(sent(200, { Vary: 'Accept-Encoding, *' }))).toBeUndefined();
    expect(stored(sent(200, { Vary: ['Origin', ' * '] }))).toBeUndefined();
  });

  it('records the varying headers (lower case, sorted, unique) and the request values', () => {
    const entry = stored(sent(200, { Vary: ['X-B, accept-language', 'X-b,,'] }), {
      'accept-language': 'fr',
      'x-b': ['1', '2'],
    });
    expect(entry).toEqual({
      body: { ok: true },
      vary: ['accept-language', 'x-b'],
      values: ['fr', '1, 2'],
    });
  });

  it('reads headers through the HTTP adapter when there is one', () => {
    const response = { statusCode: 200 };
    const adapter = {
      getHeader: (_res: unknown, name: string) => (name === 'set-cookie' ? 'a=1' : undefined),
    };
    expect(storedEntry(response, adapter, {}, 1)).toBeUndefined();
  });
});

describe('Vary variants', () => {
  const entry = { body: 1, vary: ['a', 'b'], values: ['1', null] };

  it('match only the same values; absent is not empty', () => {
    expect(varyMatches(entry, { a: '1' })).toBe(true);
    expect(varyMatches(entry, { a: '1', b: '' })).toBe(false);
    expect(varyMatches(entry, { a: '2' })).toBe(false);
    expect(varyMatches({ body: 1 }, { a: 'x' })).toBe(true);
  });

  it('never read a header name from the prototype', () => {
    const proto = { body: 1, vary: ['__proto__', 'constructor'], values: [null, null] };
    expect(varyMatches(proto, {})).toBe(true);
    expect(variantKey('k', proto, {})).toBe('http:vary:2:__proto__=~:constructor=~:k');
  });

  it('have injective keys', () => {
    const names = ['a', 'b'];
    const requests: RequestHeaders[] = [
      {},
      { a: '' },
      { a: '~' },
      { a: '1' },
      { a: '1:b=2' },
      { a: '1', b: '2' },
      { a: '1=', b: '2' },
      { a: '1', b: '=2' },
      { a: '%7E' },
      { a: '1', b: ':k' },
    ];
    const keys = new Set<string>();
    for (const base of ['k', 'k:b=2', ':k']) {
      for (const headers of requests) {
        keys.add(variantKey(base, { body: 0, vary: names, values: [null, null] }, headers));
      }
      // Another number of names never meets these.
      keys.add(variantKey(base, { body: 0, vary: ['a'], values: [null] }, { a: '1' }));
    }
    expect(keys.size).toBe(3 * (requests.length + 1));
  });

  it('isEntry refuses malformed entries', () => {
    expect(isEntry({ body: null })).toBe(true);
    expect(isEntry(entry)).toBe(true);
    expect(isEntry({ n: 1 })).toBe(false);
    expect(isEntry('body')).toBe(false);
    expect(isEntry({ body: 1, vary: ['a'] })).toBe(false);
    expect(isEntry({ body: 1, vary: ['a'], values: [1] })).toBe(false);
    expect(isEntry({ body: 1, vary: 'a', values: 'b' })).toBe(false);
  });
});

describe('hostKey', () => {
  it('never contains ":" or "/", and is injective', () => {
    const hosts = ['a.test', 'a.test/p', 'a.test%2Fp', 'a.test:80', 'a.test%3A80', '', 'A.test'];
    const keys = hosts.map(hostKey);
    expect(new Set(keys).size).toBe(hosts.length);
    for (const key of keys) expect(key).not.toMatch(/[:/]/);
  });
});
