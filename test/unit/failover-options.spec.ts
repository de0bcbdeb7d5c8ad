import { CacheConfigError } from '../../lib';
import { FAILOVER_DEFAULTS } from '../../lib/config/defaults';
import { resolveCacheOptions } from '../../lib/config/cache-options.resolver';

const redis = { provider: 'redis' as const, redis: { url: 'redis://127.0.0.1:6379' } };

describe('failover options', () => {
  it('defaults to false', () => {
    expect(resolveCacheOptions(redis, {}).failover).toBe(false);
  });

  it('true means the documented defaults', () => {
    expect(resolveCacheOptions({ ...redis, failover: true }, {}).failover).toEqual({
      failureThreshold: 5,
      cooldown: 5,
      timeout: 0.5,
      maxTrackedKeys: 10_000,
    });
    expect(FAILOVER_DEFAULTS).toEqual({
      failureThreshold: 5,
      cooldown: 5,
      timeout: 0.5,
      maxTrackedKeys: 10_000,
    });
  });

  it('an object overrides some fields and keeps the other defaults', () => {
    expect(
      resolveCacheOptions({ ...redis, failover: { failureThreshold: 2, timeout: 0 } }, {}).failover,
    ).toEqual({ failureThreshold: 2, cooldown: 5, timeout: 0, maxTrackedKeys: 10_000 });
  });

  it.each([
    [{ failover: 'yes' }, /"failover": "yes" \(expected true, false or \{/],
    [{ failover: { failureThreshold: 0 } }, /"failover.failureThreshold": 0/],
    [{ failover: { failureThreshold: 2.5 } }, /"failover.failureThreshold": 2.5/],
    [{ failover: { cooldown: 0 } }, /"failover.cooldown": 0/],
    [{ failover: { cooldown: Infinity } }, /"failover.cooldown": Infinity/],
    [{ failover: { timeout: -1 } }, /"failover.timeout": -1/],
    [{ failover: { maxTrackedKeys: 0 } }, /"failover.maxTrackedKeys": 0/],
    [{ failover: { threshold: 3 } }, /Unknown CacheModule option "failover.threshold"/],
  ])('rejects %p naming the option', (options, message) => {
    expect(() => resolveCacheOptions({ ...redis, ...options } as never, {})).toThrow(
      CacheConfigError,
    );
    expect(() => resolveCacheOptions({ ...redis, ...options } as never, {})).toThrow(message);
  });

  it('still requires provider redis, for true and for an object', () => {
    expect(() => resolveCacheOptions({ failover: true }, {})).toThrow(
      /"failover": true needs provider 'redis'/,
    );
    expect(() => resolveCacheOptions({ failover: { cooldown: 1 } }, {})).toThrow(
      /"failover".*needs provider 'redis'/,
    );
  });
});
