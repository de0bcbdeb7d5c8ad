import { CacheArgumentError, CacheConfigError, MemoryCacheAdapter } from '../../lib';
import { resolveCacheOptions } from '../../lib/config/cache-options.resolver';

/**
 * A TTL that arrives as a string: configuration (the `ttl` option, `CACHE_TTL`) accepts plain
 * decimal digits only and names any other string as it was given, as do `set`/`wrap` and the
 * decorators; the adapters take numbers only and show a string as a string ("60", not 60).
 */
describe('TTL strings', () => {
  // Each would be read as a number by Number() — or as 0, or as Infinity — not as written.
  const ambiguous = ['0x10', '0b1', '0o7', '1e3', ' 60 ', '60 ', '\t60', '60s', '-1', '+1'];
  const others = ['Infinity', '-0', '.5', '5.', '1_000', '1,5', 'NaN', '99999999999999999999'];

  it.each([...ambiguous, ...others, ''])(
    'the ttl option %p fails at startup, naming the option and the string',
    (ttl) => {
      const run = () => resolveCacheOptions({ ttl: ttl as `${number}` }, {});
      expect(run).toThrow(CacheConfigError);
      expect(run).toThrow(`Invalid CacheModule option "ttl": ${JSON.stringify(ttl)} (expected`);
      expect(run).toThrow(/plain decimal digits such as "60" or "1.5"/);
    },
  );

  it.each([...ambiguous, ...others])(
    'CACHE_TTL=%p fails at startup, naming the variable and the string',
    (ttl) => {
      const run = () => resolveCacheOptions({}, { CACHE_TTL: ttl });
      expect(run).toThrow(CacheConfigError);
      expect(run).toThrow(
        `Invalid CacheModule option "ttl (from CACHE_TTL)": ${JSON.stringify(ttl)} (expected`,
      );
    },
  );

  it.each([
    ['60', 60],
    ['1.5', 1.5],
    ['0', 0],
    ['0.001', 0.001],
    ['9007199254740', 9007199254740],
  ])('accepts the plain decimal %p as %p seconds, as option and variable', (ttl, seconds) => {
    expect(resolveCacheOptions({ ttl: ttl as `${number}` }, {}).ttl).toBe(seconds);
    expect(resolveCacheOptions({}, { CACHE_TTL: ttl }).ttl).toBe(seconds);
  });

  it('a decimal string beyond the bound is named as given', () => {
    expect(() => resolveCacheOptions({ ttl: '9007199254741' }, {})).toThrow(
      /"ttl": "9007199254741" \(expected a number of seconds from 0 to 9007199254740/,
    );
  });

  it('a blank CACHE_TTL counts as unset, like every variable', () => {
    expect(resolveCacheOptions({}, { CACHE_TTL: '' }).ttl).toBe(300);
    expect(resolveCacheOptions({}, { CACHE_TTL: '  ' }).ttl).toBe(300);
  });

  it.each(['60', '0x10', ' 1 ', ''])(
    'MemoryCacheAdapter.set shows the string ttl %p quoted',
    async (ttl) => {
      const adapter = new MemoryCacheAdapter();
      try {
        await adapter.set('k', 'old', 60);
        const setting = adapter.set('k', 'new', ttl as never);
        await expect(setting).rejects.toThrow(CacheArgumentError);
        await expect(setting).rejects.toThrow(
          `Invalid ttl ${JSON.stringify(ttl)} (a string; pass a number of seconds): expected`,
        );
        expect(await adapter.get('k')).toBe('old');
      } finally {
        adapter.onApplicationShutdown();
      }
    },
  );

  it('a number is still shown as a number', async () => {
    const adapter = new MemoryCacheAdapter();
    try {
      await expect(adapter.set('k', 1, -5)).rejects.toThrow(/^Invalid ttl -5: expected/);
    } finally {
      adapter.onApplicationShutdown();
    }
  });
});
