import { CacheConfigError } from '../../lib';
import { Redis } from 'ioredis';
import { callTimeoutOf, resolveCacheOptions } from '../../lib/config/cache-options.resolver';

describe('resolveCacheOptions', () => {
  it('applies the documented defaults', () => {
    const resolved = resolveCacheOptions({}, {});
    expect(resolved).toMatchObject({
      enabled: true,
      provider: 'memory',
      ttl: 300,
      namespace: 'cache',
      failover: false,
      l1: false,
      bus: false,
    });
    // No byte bound unless asked for: entries are then not measured at all.
    expect(resolved.memory).toEqual({ maxEntries: 10_000, sweepInterval: 60, maxSize: undefined });
    expect(resolveCacheOptions({ memory: {} }, {}).memory).toEqual(resolved.memory);
  });

  it('reads every CACHE_* environment variable', () => {
    const resolved = resolveCacheOptions(
      {},
      {
        CACHE_ENABLED: 'false',
        CACHE_PROVIDER: 'redis',
        CACHE_TTL: '12.5',
        CACHE_NAMESPACE: 'shop',
        CACHE_REDIS_URL: 'redis://:pw@10.0.0.1:6380/3',
      },
    );
    expect(resolved.enabled).toBe(false);
    expect(resolved.provider).toBe('redis');
    expect(resolved.ttl).toBe(12.5);
    expect(resolved.namespace).toBe('shop');
    expect(resolved.redis).toEqual({ url: 'redis://:pw@10.0.0.1:6380/3' });
  });

  it('lets explicit options win over the environment', () => {
    const resolved = resolveCacheOptions(
      {
        enabled: true,
        provider: 'memory',
        ttl: 5,
        namespace: 'app',
        redis: { url: 'redis://h:1' },
      },
      {
        CACHE_ENABLED: 'false',
        CACHE_PROVIDER: 'redis',
        CACHE_TTL: '99',
        CACHE_NAMESPACE: 'env',
        CACHE_REDIS_URL: 'redis://env:2',
      },
    );
    expect(resolved).toMatchObject({ enabled: true, provider: 'memory', ttl: 5, namespace: 'app' });
    expect(resolved.redis).toEqual({ url: 'redis://h:1' });
  });

  // DESIGN: "a numeric string is accepted", as it is from CACHE_TTL (a ConfigService value).
  it.each([
    ['60', 60],
    ['1.5', 1.5],
    ['0', 0],
  ])('accepts the numeric string ttl %p as %p seconds, like CACHE_TTL', (ttl, seconds) => {
    expect(resolveCacheOptions({ ttl: ttl as `${number}` }, {}).ttl).toBe(seconds);
    expect(resolveCacheOptions({}, { CACHE_TTL: ttl }).ttl).toBe(seconds);
  });

  it('passes memory.maxSize through as given', () => {
    expect(resolveCacheOptions({ memory: { maxSize: 1 } }, {}).memory.maxSize).toBe(1);
    expect(resolveCacheOptions({ memory: { maxSize: 1_048_576 } }, {}).memory).toEqual({
      maxEntries: 10_000,
      sweepInterval: 60,
      maxSize: 1_048_576,
    });
  });

  it('resolves l1 and bus (test/unit/l1-options.spec.ts covers every shape)', () => {
    const resolved = resolveCacheOptions({ provider: 'redis', l1: { ttl: 10 } }, {});
    expect(resolved.l1).toEqual({ maxEntries: 10_000, maxSize: 67_108_864, ttl: 10 });
    expect(resolved.bus).toEqual({ heartbeat: 1, maxBuffered: 1000 });
    expect(resolveCacheOptions({ provider: 'redis' }, { CACHE_L1: 'true' }).l1).toMatchObject({
      ttl: 60,
    });
  });

  it('resolves jitter (default 0, 0 to 1 inclusive) and timeouts (default none, only hard)', () => {
    const defaults = resolveCacheOptions({}, {});
    expect(defaults.jitter).toBe(0);
    expect(defaults.timeouts).toEqual({});
    expect(resolveCacheOptions({ jitter: 0 }, {}).jitter).toBe(0);
    expect(resolveCacheOptions({ jitter: 0.25 }, {}).jitter).toBe(0.25);
    expect(resolveCacheOptions({ jitter: 1 }, {}).jitter).toBe(1);
    expect(resolveCacheOptions({ timeouts: {} }, {}).timeouts).toEqual({});
    expect(resolveCacheOptions({ timeouts: { hard: 2.5 } }, {}).timeouts).toEqual({ hard: 2.5 });
    expect(resolveCacheOptions({ timeouts: { hard: 2_147_483.647 } }, {}).timeouts).toEqual({
      hard: 2_147_483.647,
    });
  });

  it('resolves the loading options over their defaults', () => {
    expect(resolveCacheOptions({}, {}).loading).toEqual({
      jitter: 0,
      soft: undefined,
      hard: undefined,
      grace: 0,
      graceBackoff: 10,
      refreshAhead: undefined,
      lock: undefined,
    });
    const loading = resolveCacheOptions(
      { grace: 60, timeouts: { soft: 0.2 }, refreshAhead: 0.8, lock: { wait: 2 } },
      {},
    ).loading;
    expect(loading).toMatchObject({ grace: 60, soft: 0.2, hard: undefined, refreshAhead: 0.8 });
    expect(loading.lock).toEqual({ ttl: 10, wait: 2 });
    expect(resolveCacheOptions({ lock: true }, {}).loading.lock).toEqual({ ttl: 10, wait: 10 });
    expect(resolveCacheOptions({ lock: false }, {}).loading.lock).toBeUndefined();
  });

  it('accepts ttl 0 (never expires) and fractional seconds', () => {
    expect(resolveCacheOptions({ ttl: 0 }, {}).ttl).toBe(0);
    expect(resolveCacheOptions({ ttl: 0.25 }, {}).ttl).toBe(0.25);
  });

  it.each([
    [{ provider: 'memcached' }, /"provider": "memcached"/],
    [{ ttl: -1 }, /"ttl": -1/],
    [{ ttl: Number.NaN }, /"ttl": NaN/],
    [{ ttl: 'sixty' }, /"ttl": "sixty"/],
    [{ ttl: '' }, /"ttl": ""/],
    [{ ttl: '-1' }, /"ttl": "-1"/],
    [{ ttl: 'Infinity' }, /"ttl": "Infinity"/],
    [{ ttl: true }, /"ttl": true/],
    [{ namespace: '' }, /"namespace": ""/],
    [{ enabled: 'yes' }, /"enabled": "yes"/],
    [{ memory: { maxEntries: 0 } }, /"memory.maxEntries": 0/],
    [{ memory: { sweepInterval: -5 } }, /"memory.sweepInterval": -5/],
    [{ memory: { maxSize: 0 } }, /"memory.maxSize": 0 \(expected a whole number >= 1\)/],
    [{ memory: { maxSize: -1 } }, /"memory.maxSize": -1 \(expected a whole number >= 1\)/],
    [{ memory: { maxSize: 1.5 } }, /"memory.maxSize": 1.5 \(expected a whole number >= 1\)/],
    [{ memory: { maxSize: NaN } }, /"memory.maxSize": NaN \(expected a whole number >= 1\)/],
    [{ memory: { maxSize: Infinity } }, /"memory.maxSize": Infinity/],
    [{ memory: { maxSize: '64mb' } }, /"memory.maxSize": "64mb" \(expected a whole number >= 1\)/],
    [{ memory: { maxSize: null } }, /"memory.maxSize": null \(expected a whole number >= 1\)/],
    [{ l1: true }, /"l1".*provider 'redis'/],
    [{ provider: 'redis', bus: true }, /"bus".*needs l1/],
    [{ provider: 'redis', l1: { ttl: 0 } }, /"l1.ttl": 0/],
    [{ provider: 'redis', l1: true, bus: { heartbeat: -1 } }, /"bus.heartbeat": -1/],
    [{ failover: true }, /"failover".*provider 'redis'/],
    [{ ttL: 60 }, /Unknown CacheModule option "ttL"/],
    [
      { provider: 'redis', redis: { url: 'not a url' } },
      /"redis.url": "not a url" is not a valid URL/,
    ],
    [{ provider: 'redis', redis: { url: 'http://h:1' } }, /"redis.url".*redis:\/\/ or rediss:\/\//],
    [{ provider: 'redis', redis: { url: 'redis://h:1/abc' } }, /"redis.url".*database "abc"/],
    [{ adapter: { get: () => 1 } }, /"adapter"/],
    [{ jitter: -0.1 }, /"jitter": -0.1 \(expected a number from 0 to 1/],
    [{ jitter: 1.5 }, /"jitter": 1.5 \(expected a number from 0 to 1/],
    [{ jitter: NaN }, /"jitter": NaN/],
    [{ jitter: '0.5' }, /"jitter": "0.5"/],
    [{ jitter: null }, /"jitter": null/],
    [{ timeouts: 5 }, /"timeouts": 5 \(expected an object such as \{ soft: 1, hard: 5 \}\)/],
    [{ timeouts: null }, /"timeouts": null/],
    [{ timeouts: { hard: 0 } }, /"timeouts.hard": 0 \(expected a number of seconds above 0/],
    [{ timeouts: { hard: -1 } }, /"timeouts.hard": -1/],
    [{ timeouts: { hard: Infinity } }, /"timeouts.hard": Infinity/],
    [{ timeouts: { hard: NaN } }, /"timeouts.hard": NaN/],
    [{ timeouts: { hard: '5' } }, /"timeouts.hard": "5"/],
    [{ timeouts: { hard: 2_147_484 } }, /"timeouts.hard": 2147484 .*at most 2147483.647/],
    [{ timeouts: { sof: 1 } }, /^Unknown CacheModule option "timeouts.sof". Known: soft, hard.$/],
    [{ timeouts: { hard: 1, grace: 1 } }, /Unknown CacheModule option "timeouts.grace"/],
    [{ timeouts: { soft: 0 } }, /"timeouts.soft": 0 \(expected a number of seconds above 0/],
    [{ grace: -1 }, /"grace": -1 \(expected a number of seconds from 0/],
    [{ grace: '10' }, /"grace": "10"/],
    [{ graceBackoff: 0 }, /"graceBackoff": 0/],
    [{ refreshAhead: 1 }, /"refreshAhead": 1 \(expected a number above 0 and below 1/],
    [{ refreshAhead: 0 }, /"refreshAhead": 0/],
    [{ lock: 'yes' }, /"lock": "yes" \(expected an object such as/],
    [{ lock: { ttl: 0 } }, /"lock.ttl": 0/],
    [{ lock: { tll: 5 } }, /^Unknown CacheModule option "lock.tll". Known: ttl, wait.$/],
  ])('rejects %p naming the option and value', (options, message) => {
    expect(() => resolveCacheOptions(options as never, {})).toThrow(CacheConfigError);
    expect(() => resolveCacheOptions(options as never, {})).toThrow(message);
  });

  it.each([
    [{ CACHE_TTL: 'soon' }, /"ttl \(from CACHE_TTL\)": "soon"/],
    [{ CACHE_TTL: '-3' }, /"ttl \(from CACHE_TTL\)": "-3"/],
    [{ CACHE_ENABLED: 'maybe' }, /CACHE_ENABLED="maybe"/],
    [{ CACHE_L1: 'maybe' }, /CACHE_L1="maybe"/],
    [{ CACHE_L1: 'true' }, /"l1 \(from CACHE_L1\)".*provider 'redis'/],
    [{ CACHE_PROVIDER: 'disk' }, /"provider \(from CACHE_PROVIDER\)": "disk"/],
    [{ CACHE_PROVIDER: 'redis', CACHE_REDIS_URL: 'redis//missing-colon' }, /CACHE_REDIS_URL/],
  ])('rejects the environment %p naming the variable', (env, message) => {
    expect(() => resolveCacheOptions({}, env)).toThrow(message);
  });

  it('ignores CACHE_REDIS_URL when the provider is memory', () => {
    expect(resolveCacheOptions({}, { CACHE_REDIS_URL: 'garbage' }).provider).toBe('memory');
  });

  it('never puts a URL password into an error message', () => {
    const attempts: Array<() => unknown> = [
      () =>
        resolveCacheOptions(
          { provider: 'redis', redis: { url: 'redis://user:hunter2@host:6379/db9x' } },
          {},
        ),
      () => resolveCacheOptions({ provider: 'redis', redis: { url: 'http://:hunter2@host' } }, {}),
      () =>
        resolveCacheOptions(
          {},
          { CACHE_PROVIDER: 'redis', CACHE_REDIS_URL: 'redis://:hunter2@/x y' },
        ),
    ];
    for (const attempt of attempts) {
      let message = '';
      try {
        attempt();
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).not.toBe('');
      expect(message).not.toContain('hunter2');
      expect(message).toContain('***');
    }
  });

  describe('callTimeoutOf (the per-call budget handed to dispatchers)', () => {
    const of = (options: Parameters<typeof resolveCacheOptions>[0]) =>
      callTimeoutOf(resolveCacheOptions(options, {}));

    it('is the Redis commandTimeout, 1000 ms unless set', () => {
      expect(of({})).toBe(1000);
      expect(of({ provider: 'redis' })).toBe(1000);
      expect(of({ provider: 'redis', redis: { url: 'redis://h:1', commandTimeout: 300 } })).toBe(
        300,
      );
      expect(
        of({
          provider: 'redis',
          redis: {
            cluster: [{ host: 'h', port: 1 }],
            clusterOptions: { redisOptions: { commandTimeout: 250 } },
          },
        }),
      ).toBe(250);
    });

    it("reads an application-provided client's commandTimeout, else the default", () => {
      const timed = new Redis({ lazyConnect: true, commandTimeout: 400 });
      const plain = new Redis({ lazyConnect: true });
      try {
        expect(of({ provider: 'redis', redis: { client: timed } })).toBe(400);
        expect(of({ provider: 'redis', redis: { client: plain } })).toBe(1000);
      } finally {
        timed.disconnect();
        plain.disconnect();
      }
    });

    it('is the failover timeout when that is shorter', () => {
      expect(of({ provider: 'redis', failover: true })).toBe(500);
      expect(of({ provider: 'redis', failover: { timeout: 2 } })).toBe(1000);
      expect(of({ provider: 'redis', failover: { timeout: 0 } })).toBe(1000);
    });
  });
});
