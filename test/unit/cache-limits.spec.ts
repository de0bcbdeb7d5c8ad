import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheAdapter,
  CacheArgumentError,
  CacheConfigError,
  CacheModule,
  CachePut,
  CacheService,
  CacheTTL,
  Cacheable,
  KeyConstructor,
  MemoryCacheAdapter,
  RedisCacheAdapter,
  argField,
  cacheResult,
  type CacheModuleOptions,
} from '../../lib';
import { resolveCacheOptions } from '../../lib/config/cache-options.resolver';
import { MAX_TTL } from '../../lib/config/validators';
import { compileKeyTemplate, type MethodSignature } from '../../lib/keys/key-template';
import { MAX_VALUE_DEPTH } from '../../lib/utils/serializable';
import { estimateSize } from '../../lib/utils/value-size';

// Issue 10, items 1 and 8: the namespace rule and the TTL bound, at every entry point that does
// not need a Redis server (test/redis/ covers the rest on a real one).

/** Every value one of these rejects could make `ns:` + key ambiguous between two apps. */
const BAD_NAMESPACES: unknown[] = [
  '',
  'a:b',
  'shop:prod',
  ':',
  'a:',
  ':a',
  'a*',
  'a?',
  'a[b]',
  'a\\b',
  'a{b}',
  'a b',
  ' a',
  'a\n',
  'a\u0000',
  'a\t',
  'é',
  'a\uD800',
  'x'.repeat(129),
  42,
  null,
];

describe('namespace rule', () => {
  it.each(['a', 'a.b', 'a-b', 'a_b', 'A9', '.', '-', 'x'.repeat(128), 'test-1a2b3c4d'])(
    'accepts %p',
    (namespace) => {
      expect(resolveCacheOptions({ namespace }, {}).namespace).toBe(namespace);
      expect(
        () => new RedisCacheAdapter({ redis: { url: 'redis://127.0.0.1:1' }, namespace }),
      ).not.toThrow();
    },
  );

  it.each(BAD_NAMESPACES.map((n) => [n]))('rejects %p at startup with CacheConfigError', (bad) => {
    expect(() => resolveCacheOptions({ namespace: bad as string }, {})).toThrow(CacheConfigError);
  });

  it('names the option, shows the value and suggests a fix', () => {
    expect(() => resolveCacheOptions({ namespace: 'shop:prod' }, {})).toThrow(
      /option "namespace": "shop:prod" \(expected 1 to 128 letters, digits, '_', '-' or '\.'.*Use e\.g\. "shop\.prod"/,
    );
  });

  it('names CACHE_NAMESPACE when the value came from the environment', () => {
    expect(() => resolveCacheOptions({}, { CACHE_NAMESPACE: 'a:b' })).toThrow(
      /"namespace \(from CACHE_NAMESPACE\)": "a:b".*"a\.b"/,
    );
  });

  it('escapes control characters of a bad namespace in the message', () => {
    let message = '';
    try {
      resolveCacheOptions({ namespace: 'a\nb' }, {});
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('"a\\nb"');
    expect(message).not.toContain('\n');
  });

  it.each(BAD_NAMESPACES.filter((n) => n !== '').map((n) => [n]))(
    'new RedisCacheAdapter({ namespace: %p }) applies the same rule',
    (bad) => {
      expect(
        () =>
          new RedisCacheAdapter({
            redis: { url: 'redis://127.0.0.1:1' },
            namespace: bad as string,
          }),
      ).toThrow(/RedisCacheAdapter option "namespace"/);
    },
  );

  it('fails CacheModule.forRoot at startup for a namespace that could overlap', async () => {
    const boot = async (options: CacheModuleOptions) => {
      const moduleRef = await Test.createTestingModule({
        imports: [CacheModule.forRoot(options)],
      }).compile();
      await moduleRef.close();
    };
    await expect(boot({ namespace: 'a:b' })).rejects.toThrow(CacheConfigError);
    await expect(boot({ provider: 'redis', namespace: 'app:*' })).rejects.toThrow(CacheConfigError);
  });

  it('keeps KeyConstructor namespaces free of the separator too', () => {
    // `users` and `users:x` would overlap as `users:` and `users:x:`: the second is rejected.
    expect(() => KeyConstructor.define({ namespace: 'users:x', fields: [] })).toThrow();
    const users = KeyConstructor.define({ namespace: 'users', fields: [argField('id')] });
    const usersX = KeyConstructor.define({ namespace: 'users.x', fields: [argField('id')] });
    expect(usersX.render({ id: 1 }).startsWith(users.prefix)).toBe(false);
    expect(users.render({ id: 1 }).startsWith(usersX.prefix)).toBe(false);
  });
});

describe('TTL bound', () => {
  const tooLong = [MAX_TTL + 1, MAX_TTL * 2, 1e16, 1e300, Number.MAX_VALUE, Infinity];
  const invalid = [...tooLong, -1, -1e-9, NaN, -Infinity, '60', null];
  // The cache's calls read a string of plain decimal digits ('60') as seconds; adapters do not.
  const invalidForCalls = [...tooLong, -1, -1e-9, NaN, -Infinity, '0x10', '1e3', '60s', null];

  it('is the largest whole number of seconds whose milliseconds are a safe integer', () => {
    expect(Number.isSafeInteger(MAX_TTL * 1000)).toBe(true);
    expect(Number.isSafeInteger((MAX_TTL + 1) * 1000)).toBe(false);
  });

  it('accepts 0 to MAX_TTL seconds as the module ttl', () => {
    for (const ttl of [0, 1e-9, 0.5, 300, MAX_TTL]) {
      expect(resolveCacheOptions({ ttl }, {}).ttl).toBe(ttl);
    }
  });

  it.each(tooLong.map((t) => [t]))('rejects the module ttl %p at startup', (ttl) => {
    expect(() => resolveCacheOptions({ ttl }, {})).toThrow(
      new RegExp(`option "ttl".*expected a number of seconds from 0 to ${MAX_TTL}`),
    );
  });

  it('rejects a CACHE_TTL beyond the bound, naming the variable', () => {
    expect(() => resolveCacheOptions({}, { CACHE_TTL: '9007199254741' })).toThrow(
      /"ttl \(from CACHE_TTL\)": "9007199254741"/,
    );
    // Not plain decimal digits: refused as written, not read as 1e+300.
    expect(() => resolveCacheOptions({}, { CACHE_TTL: '1e300' })).toThrow(
      /"ttl \(from CACHE_TTL\)": "1e300"/,
    );
  });

  describe('CacheService on memory', () => {
    let cache: CacheService;
    let close: () => Promise<void>;

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [CacheModule.forRoot({ namespace: 'ttl-bound' })],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      cache = app.get(CacheService);
      close = () => app.close();
    });
    afterAll(() => close());

    it.each(invalidForCalls.map((t) => [t]))(
      'set(key, value, %p) rejects and leaves the entry untouched',
      async (ttl) => {
        await cache.set('k', 'old', 60);
        await expect(cache.set('k', 'new', ttl as number)).rejects.toThrow(CacheArgumentError);
        expect(await cache.get('k')).toBe('old');
      },
    );

    it.each(tooLong.map((t) => [t]))('wrap with ttl %p rejects before loading', async (ttl) => {
      const loader = jest.fn(() => 'loaded');
      await expect(cache.wrap('w', loader, ttl)).rejects.toThrow(CacheArgumentError);
      await expect(cache.wrap('w', loader, { ttl })).rejects.toThrow(CacheArgumentError);
      expect(loader).not.toHaveBeenCalled();
    });

    it('stores MAX_TTL without expiring it', async () => {
      await cache.set('max', 'kept', MAX_TTL);
      expect(await cache.get('max')).toBe('kept');
    });
  });

  describe('MemoryCacheAdapter used directly', () => {
    it.each(invalid.map((t) => [t]))(
      'set(key, value, %p) rejects with CacheArgumentError, previous entry intact',
      async (ttl) => {
        const adapter = new MemoryCacheAdapter();
        await adapter.set('k', 'old', 0);
        await expect(adapter.set('k', 'new', ttl as number)).rejects.toThrow(CacheArgumentError);
        expect(() => adapter.setSync('k', 'new', ttl as number)).toThrow(CacheArgumentError);
        expect(await adapter.get('k')).toBe('old');
      },
    );

    it('rejects an invalid ttl even right after the same ttl was refused (no cached pass)', async () => {
      const adapter = new MemoryCacheAdapter();
      await expect(adapter.set('a', 1, 1e300)).rejects.toThrow(CacheArgumentError);
      await expect(adapter.set('a', 1, 1e300)).rejects.toThrow(CacheArgumentError);
      expect(await adapter.has('a')).toBe(false);
    });
  });

  describe('fractional TTLs', () => {
    afterEach(() => jest.useRealTimers());

    it.each([1e-9, 1e-4, 0.0004, Number.MIN_VALUE])(
      'a ttl of %p seconds expires (at least 1 ms), never "forever"',
      async (ttl) => {
        jest.useFakeTimers();
        const adapter = new MemoryCacheAdapter({ sweepInterval: 0 });
        await adapter.set('k', 'v', ttl);
        jest.advanceTimersByTime(5);
        expect(await adapter.get('k')).toBeUndefined();
        expect(await adapter.has('k')).toBe(false);
      },
    );
  });

  describe('decorators and cacheResult', () => {
    it.each(tooLong.map((t) => [t]))('@Cacheable / @CachePut / @CacheTTL reject ttl %p', (ttl) => {
      expect(() => Cacheable('k', { ttl })).toThrow(CacheArgumentError);
      expect(() => Cacheable({ key: 'k', ttl })).toThrow(/expected a number of seconds from 0/);
      expect(() => CachePut({ key: 'k', ttl })).toThrow(CacheArgumentError);
      expect(() => CacheTTL(ttl)).toThrow(CacheArgumentError);
    });

    it('accepts MAX_TTL on the decorators', () => {
      @Injectable()
      class Service {
        @Cacheable('a', { ttl: MAX_TTL })
        a() {
          return 1;
        }
      }
      expect(Service).toBeDefined();
      expect(() => CacheTTL(MAX_TTL)).not.toThrow();
    });

    it.each(tooLong.map((t) => [t]))('cacheResult rejects ttl %p when declared', (ttl) => {
      expect(() => cacheResult((id: number) => id, { key: (id) => `r:${id}`, ttl })).toThrow(
        /cacheResult\(anonymous\): invalid ttl .*expected a number of seconds from 0/,
      );
    });
  });
});

describe('key templates keep lone surrogates apart', () => {
  const signature: MethodSignature = {
    className: 'C',
    methodName: 'm',
    parameters: [
      { name: 'a', rest: false },
      { name: 'b', rest: false },
    ],
  };

  it('in values next to a separator that holds surrogates', () => {
    // The separator's characters are percent-encoded in values; Buffer's UTF-8 wrote U+FFFD's
    // bytes for both halves, so '\uD800' and '\uDC00' rendered the same key.
    const template = compileKeyTemplate('k:{a}\uD800-\uDC00{b}', signature, {
      allowResult: false,
    });
    const keys = ['x\uD800', 'x\uDC00', 'x\uFFFD', 'x\uD800\uDC00', 'x'].map((a) =>
      template.render({ args: [a, 'y'], hasResult: false }),
    );
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('in plain templates, without throwing', () => {
    const template = compileKeyTemplate('k:{a}:{b}', signature, { allowResult: false });
    const values = ['\uD800', '\uDC00', '\uFFFD', '\uD83D\uDE00', '\uD83Dx', '\uDE00\uD83D'];
    const keys = values.map((a) => template.render({ args: [a, { v: a }], hasResult: false }));
    expect(new Set(keys).size).toBe(values.length);
  });
});

// Issue 12: the byte bounds (`memory.maxSize`, `l1.maxSize`) count estimateSize.
describe('estimateSize', () => {
  it.each<[string, unknown]>([
    ['an empty string', ''],
    ['a string', 'hello'],
    ['an integer', 0],
    ['a negative integer', -12345],
    ['a large integer', Number.MAX_SAFE_INTEGER],
    ['true', true],
    ['false', false],
    ['null', null],
    ['an empty array', []],
    ['an array', [1, 'a', null, true, [2, []]]],
    ['an empty object', {}],
    ['an object', { id: 1, name: 'Ada', tags: ['x', 'y'], nested: { ok: false, n: null } }],
    ['unicode keys and values', { ключ: 'значение', 键: '值' }],
  ])('is the length of the JSON text for %s', (_what, value) => {
    expect(estimateSize(value)).toBe(JSON.stringify(value).length);
  });

  it('grows with string length, one per UTF-16 code unit', () => {
    let previous = 0;
    for (let length = 0; length <= 5000; length += 250) {
      const size = estimateSize('a'.repeat(length));
      expect(size).toBeGreaterThan(previous);
      expect(size).toBe(length + 2);
      previous = size;
    }
    // Escapes are not counted (the text is not built): '\n' counts 1, as 'a' does.
    expect(estimateSize('a\nb')).toBe(estimateSize('aab'));
  });

  it('counts non-ASCII text by UTF-16 code units: an estimate below its UTF-8 bytes', () => {
    expect(estimateSize('é')).toBe(3);
    expect(estimateSize('日本語')).toBe(5);
    expect(estimateSize('😀')).toBe(4); // a surrogate pair
    expect(estimateSize({ s: '😀'.repeat(100) })).toBeGreaterThan(estimateSize({ s: '😀' }));
    expect(estimateSize('日本語')).toBeLessThanOrEqual(Buffer.byteLength('"日本語"'));
  });

  it('grows with every level and item of a nested structure', () => {
    let value: unknown = 'leaf';
    let previous = estimateSize(value);
    for (let depth = 0; depth < 50; depth++) {
      value = depth % 2 ? { child: value, n: depth } : [value, depth];
      const size = estimateSize(value);
      expect(size).toBeGreaterThan(previous);
      expect(size).toBe(JSON.stringify(value).length);
      previous = size;
    }
    const items = Array.from({ length: 1000 }, (_, i) => ({ id: i, label: `item ${i}` }));
    expect(estimateSize(items)).toBe(JSON.stringify(items).length);
    expect(estimateSize(items)).toBeGreaterThan(estimateSize(items.slice(1)));
  });

  it('estimates numbers with a fraction, and leaves out undefined fields as JSON does', () => {
    const price = estimateSize(19.99);
    expect(price).toBeGreaterThanOrEqual(1);
    expect(estimateSize(-19.99)).toBe(price + 1);
    expect(estimateSize(1e21)).toBeGreaterThanOrEqual(JSON.stringify(1e21).length);
    expect(estimateSize({ a: 1, b: undefined })).toBe(JSON.stringify({ a: 1 }).length);
  });

  it('is a whole number >= 1 and never throws, whatever it is given', () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = cycle;
    let deep: unknown = 1;
    for (let i = 0; i < MAX_VALUE_DEPTH * 4; i++) deep = [deep];
    const throwing = {
      ok: 'counted',
      get boom(): never {
        throw new Error('getter');
      },
    };
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    for (const value of [
      undefined,
      () => 1,
      Symbol('s'),
      10n,
      NaN,
      Infinity,
      cycle,
      deep,
      throwing,
      revoked.proxy,
      new Map([[1, 2]]),
    ]) {
      const size = estimateSize(value);
      expect(Number.isInteger(size)).toBe(true);
      expect(size).toBeGreaterThanOrEqual(1);
    }
    // Deeper than any storable value: bounded, not walked to the end.
    expect(estimateSize(deep)).toBeLessThan(MAX_VALUE_DEPTH * 4);
  });
});

describe('memory.maxSize through CacheModule', () => {
  let cache: CacheService;
  let adapter: MemoryCacheAdapter;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ namespace: 'bytes', memory: { maxSize: 2000 } })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    cache = app.get(CacheService);
    adapter = app.get<MemoryCacheAdapter>(CacheAdapter);
    close = () => app.close();
  });
  afterAll(() => close());

  it('bounds the store by estimated bytes, evicting the oldest entries', async () => {
    await cache.clear();
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, 'v'.repeat(100), 60);
    // ~100 bytes an entry under a 2000-byte bound: far fewer than the 100 written.
    expect(adapter.size).toBeLessThan(20);
    expect(adapter.size).toBeGreaterThan(10);
    expect(await cache.get('k0')).toBeUndefined();
    expect(await cache.get('k99')).toBe('v'.repeat(100));
  });

  it('does not keep an older value when the new one exceeds the bound', async () => {
    await cache.set('doc', { rev: 1 }, 60);
    expect(await cache.get('doc')).toEqual({ rev: 1 });
    await cache.set('doc', { rev: 2, body: 'x'.repeat(5000) }, 60);
    expect(await cache.get('doc')).toBeUndefined();
    // wrap reads through to the loader rather than serving rev 1.
    expect(await cache.wrap('doc', () => ({ rev: 3 }), 60)).toEqual({ rev: 3 });
  });
});
