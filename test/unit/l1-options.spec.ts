import { CacheConfigError, type CacheBusOptions, type CacheL1Options } from '../../lib';
import { resolveCacheOptions } from '../../lib/config/cache-options.resolver';
import { BUS_DEFAULTS, L1_DEFAULTS } from '../../lib/config/defaults';
import { MAX_TIMER_SECONDS, MAX_TTL } from '../../lib/config/validators';
import type { CacheModuleOptions } from '../../lib';

// Issue 12: the options of the two-tier mode (`l1`, `bus`, env CACHE_L1), resolved and checked
// in one place (lib/config/cache-options.resolver.ts).

const redis = { provider: 'redis', redis: { url: 'redis://127.0.0.1:6379' } } as const;
const resolve = (options: CacheModuleOptions, env: Record<string, string> = {}) =>
  resolveCacheOptions(options, env);
/** The CacheConfigError `options` raise (fails the test when none is raised). */
const errorOf = (options: unknown, env: Record<string, string> = {}): CacheConfigError => {
  try {
    resolveCacheOptions(options as CacheModuleOptions, env);
  } catch (error) {
    expect(error).toBeInstanceOf(CacheConfigError);
    return error as CacheConfigError;
  }
  throw new Error(`no CacheConfigError for ${JSON.stringify(options)}`);
};

describe('l1 and bus options', () => {
  it('are off by default, with no L1 and no bus', () => {
    const resolved = resolve({});
    expect(resolved.l1).toBe(false);
    expect(resolved.bus).toBe(false);
    expect(resolve({ ...redis }).l1).toBe(false);
    expect(resolve({ ...redis }).bus).toBe(false);
  });

  it('l1: true takes the documented defaults and turns the bus on', () => {
    const resolved = resolve({ ...redis, l1: true });
    expect(resolved.l1).toEqual({ maxEntries: 10_000, maxSize: 67_108_864, ttl: 60 });
    expect(resolved.bus).toEqual({ heartbeat: 1, maxBuffered: 1000 });
    expect(resolved.l1).toEqual(L1_DEFAULTS);
    expect(resolved.bus).toEqual(BUS_DEFAULTS);
    // Copies: a consumer cannot change the defaults through them.
    expect(resolved.l1).not.toBe(L1_DEFAULTS);
    expect(resolved.bus).not.toBe(BUS_DEFAULTS);
  });

  it('fills the fields an l1 object leaves out', () => {
    const l1: CacheL1Options = { ttl: 5 };
    expect(resolve({ ...redis, l1 }).l1).toEqual({
      maxEntries: 10_000,
      maxSize: 67_108_864,
      ttl: 5,
    });
    expect(resolve({ ...redis, l1: { maxEntries: 3, maxSize: 4096, ttl: 0.25 } }).l1).toEqual({
      maxEntries: 3,
      maxSize: 4096,
      ttl: 0.25,
    });
    expect(resolve({ ...redis, l1: {} }).l1).toEqual(L1_DEFAULTS);
  });

  it('fills the fields a bus object leaves out', () => {
    const bus: CacheBusOptions = { heartbeat: 0 };
    expect(resolve({ ...redis, l1: true, bus }).bus).toEqual({ heartbeat: 0, maxBuffered: 1000 });
    expect(resolve({ ...redis, l1: true, bus: { maxBuffered: 7, heartbeat: 2.5 } }).bus).toEqual({
      heartbeat: 2.5,
      maxBuffered: 7,
    });
    expect(resolve({ ...redis, l1: true, bus: true }).bus).toEqual(BUS_DEFAULTS);
    expect(resolve({ ...redis, l1: true, bus: {} }).bus).toEqual(BUS_DEFAULTS);
  });

  it('bus: false keeps L1 without a bus (one instance)', () => {
    const resolved = resolve({ ...redis, l1: true, bus: false });
    expect(resolved.l1).toEqual(L1_DEFAULTS);
    expect(resolved.bus).toBe(false);
  });

  it('l1: false and bus: false are accepted anywhere', () => {
    expect(resolve({ l1: false, bus: false })).toMatchObject({ l1: false, bus: false });
    expect(resolve({ ...redis, l1: false })).toMatchObject({ l1: false, bus: false });
  });

  it('accepts l1 with a custom adapter (any shared store)', () => {
    const adapter = {
      get: () => Promise.resolve(undefined),
      set: () => Promise.resolve(),
      delete: () => Promise.resolve(false),
      has: () => Promise.resolve(false),
      clear: () => Promise.resolve(),
      deleteByPrefix: () => Promise.resolve(0),
    };
    expect(resolve({ adapter, l1: true }).l1).toEqual(L1_DEFAULTS);
  });

  it('accepts l1.ttl up to MAX_TTL', () => {
    const l1 = resolve({ ...redis, l1: { ttl: MAX_TTL } }).l1;
    expect(l1 && l1.ttl).toBe(MAX_TTL);
  });

  describe('CACHE_L1', () => {
    it.each([
      ['true', true],
      ['TRUE', true],
      ['1', true],
      ['on', true],
      [' yes ', true],
      ['false', false],
      ['0', false],
      ['off', false],
      ['', false],
    ])('CACHE_L1=%p turns L1 %p', (raw, on) => {
      const resolved = resolve({ ...redis }, { CACHE_L1: raw });
      expect(resolved.l1).toEqual(on ? L1_DEFAULTS : false);
      expect(resolved.bus).toEqual(on ? BUS_DEFAULTS : false);
    });

    it('loses to an explicit l1 option, either way', () => {
      expect(resolve({ ...redis, l1: false }, { CACHE_L1: 'true' }).l1).toBe(false);
      expect(resolve({ ...redis, l1: { ttl: 9 } }, { CACHE_L1: 'false' }).l1).toMatchObject({
        ttl: 9,
      });
      expect(resolve({ ...redis, l1: true }, { CACHE_L1: 'false' }).l1).toEqual(L1_DEFAULTS);
    });

    it('combines with an explicit bus option', () => {
      expect(resolve({ ...redis, bus: false }, { CACHE_L1: 'true' }).bus).toBe(false);
      expect(resolve({ ...redis, bus: { heartbeat: 3 } }, { CACHE_L1: 'true' }).bus).toEqual({
        heartbeat: 3,
        maxBuffered: 1000,
      });
      const error = errorOf({ ...redis, bus: true }, { CACHE_L1: 'false' });
      expect(error.message).toMatch(/option "bus"/);
    });

    it('rejects a value that is not a boolean, naming the variable and the value', () => {
      const error = errorOf({ ...redis }, { CACHE_L1: 'maybe' });
      expect(error.message).toContain('CACHE_L1="maybe"');
      expect(error.message).toMatch(/expected true\/false/);
    });

    it('on with the memory provider is an error naming CACHE_L1', () => {
      const error = errorOf({}, { CACHE_L1: 'true' });
      expect(error.message).toContain('"l1 (from CACHE_L1)"');
      expect(error.message).toContain("provider 'redis'");
    });
  });

  it('needs provider redis (or a custom adapter), naming l1 and suggesting redis', () => {
    for (const l1 of [true, { ttl: 5 }]) {
      const error = errorOf({ l1 });
      expect(error.message).toContain('option "l1"');
      expect(error.message).toContain("got provider 'memory'");
      expect(error.message).toContain("provider: 'redis'");
    }
    // The provider may come from the environment too.
    expect(resolve({ l1: true }, { CACHE_PROVIDER: 'redis' }).l1).toEqual(L1_DEFAULTS);
    expect(errorOf({ l1: true }, { CACHE_PROVIDER: 'memory' }).message).toContain('option "l1"');
  });

  it('bus without l1 is an error naming bus', () => {
    for (const bus of [true, { heartbeat: 1 }, {}]) {
      const error = errorOf({ ...redis, bus });
      expect(error.message).toContain('option "bus"');
      expect(error.message).toContain('bus keeps L1 tiers coherent; it needs l1');
    }
    expect(errorOf({ ...redis, l1: false, bus: true }).message).toContain('option "bus"');
  });

  describe('rejects', () => {
    it.each<[string, unknown, RegExp]>([
      [
        'a string',
        'true',
        /option "l1": "true" \(expected true, false or \{ maxEntries, maxSize, ttl \}\)/,
      ],
      ['a number', 1, /option "l1": 1 \(expected true, false or/],
      ['null', null, /option "l1": null \(expected true, false or/],
      ['an array', [], /option "l1": an array \(expected true, false or/],
    ])('l1 as %s', (_what, l1, message) => {
      expect(errorOf({ ...redis, l1 }).message).toMatch(message);
    });

    it.each<[string, unknown, RegExp]>([
      [
        'a string',
        'on',
        /option "bus": "on" \(expected true, false or \{ heartbeat, maxBuffered \}\)/,
      ],
      ['a number', 0, /option "bus": 0 \(expected true, false or/],
      ['null', null, /option "bus": null \(expected true, false or/],
      ['an array', [1], /option "bus": an array \(expected true, false or/],
    ])('bus as %s', (_what, bus, message) => {
      expect(errorOf({ ...redis, l1: true, bus }).message).toMatch(message);
    });

    it('unknown l1 and bus fields, listing the known ones', () => {
      expect(errorOf({ ...redis, l1: { foo: 1 } }).message).toBe(
        'Unknown CacheModule option "l1.foo". Known: maxEntries, maxSize, ttl.',
      );
      expect(errorOf({ ...redis, l1: true, bus: { heartBeat: 1 } }).message).toBe(
        'Unknown CacheModule option "bus.heartBeat". Known: heartbeat, maxBuffered.',
      );
    });

    it.each([0, -1, 1.5, NaN, Infinity, '10', null])('l1.maxEntries %p', (value) => {
      expect(errorOf({ ...redis, l1: { maxEntries: value } }).message).toMatch(
        /option "l1\.maxEntries": .* \(expected a whole number >= 1\)/,
      );
    });

    it.each([0, -1, 0.5, NaN, Infinity, '64mb', null])('l1.maxSize %p', (value) => {
      expect(errorOf({ ...redis, l1: { maxSize: value } }).message).toMatch(
        /option "l1\.maxSize": .* \(expected a whole number >= 1\)/,
      );
    });

    it.each([0, -1, -1e-9, NaN, Infinity, MAX_TTL + 1, '60', null])('l1.ttl %p', (value) => {
      const error = errorOf({ ...redis, l1: { ttl: value } });
      expect(error.message).toContain('option "l1.ttl"');
      expect(error.message).toContain('above 0');
      expect(error.message).toContain(`at most ${MAX_TTL}`);
    });

    it('l1.ttl 0, saying that "never expires" is refused', () => {
      expect(errorOf({ ...redis, l1: { ttl: 0 } }).message).toBe(
        `Invalid CacheModule option "l1.ttl": 0 (expected a number of seconds above 0 and at most ${MAX_TTL} (0, "never expires", is refused)).`,
      );
    });

    it.each([-1, NaN, Infinity, MAX_TIMER_SECONDS + 1, '1', null])('bus.heartbeat %p', (value) => {
      expect(errorOf({ ...redis, l1: true, bus: { heartbeat: value } }).message).toMatch(
        /option "bus\.heartbeat": .* \(expected a number of seconds from 0 to 2147483\.647 \(0 = no heartbeat\)\)/,
      );
    });

    it.each([0, -1, 2.5, NaN, '1000', null])('bus.maxBuffered %p', (value) => {
      expect(errorOf({ ...redis, l1: true, bus: { maxBuffered: value } }).message).toMatch(
        /option "bus\.maxBuffered": .* \(expected a whole number >= 1\)/,
      );
    });

    it('shows the rejected value as given', () => {
      expect(errorOf({ ...redis, l1: { ttl: '60' } }).message).toContain('"l1.ttl": "60"');
      expect(errorOf({ ...redis, l1: true, bus: { heartbeat: -2 } }).message).toContain(
        '"bus.heartbeat": -2',
      );
    });
  });

  it('accepts heartbeat up to the longest Node.js timer', () => {
    const bus = resolve({ ...redis, l1: true, bus: { heartbeat: MAX_TIMER_SECONDS } }).bus;
    expect(bus && bus.heartbeat).toBe(MAX_TIMER_SECONDS);
    // setTimeout fires after 1 ms beyond 2^31 - 1 ms: the bound is that one.
    expect(MAX_TIMER_SECONDS * 1000).toBe(2 ** 31 - 1);
  });
});
