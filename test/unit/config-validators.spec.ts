import { BullMqDispatcher, CacheConfigError, DeferredDispatcher } from '../../lib';
import { CircuitBreaker } from '../../lib/tiers/circuit-breaker';
import {
  BULLMQ_DISPATCHER_DEFAULTS,
  DEFERRED_DISPATCHER_DEFAULTS,
  FAILOVER_DEFAULTS,
  MEMORY_DEFAULTS,
  MODULE_DEFAULTS,
} from '../../lib/config/defaults';
import {
  MAX_TTL,
  describeRedisNode,
  describeRedisUrl,
  nonNegativeProblem,
  parseRedisUrl,
  parseTtl,
  positiveIntegerProblem,
  ttlProblem,
} from '../../lib/config/validators';
import { resolveCacheOptions } from '../../lib/config/cache-options.resolver';

describe('config/validators (the shared checks)', () => {
  describe('ttlProblem', () => {
    it.each([0, 0.001, 1, 300, MAX_TTL])('accepts %p seconds', (ttl) => {
      expect(ttlProblem(ttl)).toBeUndefined();
    });

    it.each([-1, MAX_TTL + 1, Number.NaN, Infinity, '60', null, undefined, true])(
      'rejects %p',
      (ttl) => {
        expect(ttlProblem(ttl)).toMatch(/a number of seconds from 0 to \d+/);
      },
    );
  });

  it('parseTtl reads plain decimal strings only', () => {
    expect(parseTtl('60')).toBe(60);
    expect(parseTtl('2.5')).toBe(2.5);
    expect(parseTtl('0')).toBe(0);
    expect(parseTtl('007')).toBe(7);
    expect(parseTtl(7)).toBe(7);
    // Anything Number() would read some other way stays a string, for ttlProblem to reject.
    for (const text of ['abc', '', ' ', ' 2.5 ', '0x10', '0b1', '0o7', '1e3', '60s', '-1', '+1']) {
      expect(parseTtl(text)).toBe(text);
    }
    for (const text of ['Infinity', '.5', '5.', '1_000', '1,5', '\t60', '60\n', '٣']) {
      expect(parseTtl(text)).toBe(text);
    }
  });

  it('positiveIntegerProblem and nonNegativeProblem say what the value must be', () => {
    expect(positiveIntegerProblem(1)).toBeUndefined();
    expect(positiveIntegerProblem(0)).toBe('a whole number >= 1');
    expect(positiveIntegerProblem(1.5)).toBe('a whole number >= 1');
    expect(positiveIntegerProblem('3')).toBe('a whole number >= 1');
    expect(nonNegativeProblem(0)).toBeUndefined();
    expect(nonNegativeProblem(-1, 'ms')).toBe('a number of ms >= 0');
    expect(nonNegativeProblem(Infinity, 'seconds', 'no sweep')).toBe(
      'a number of seconds >= 0 (0 = no sweep)',
    );
  });

  describe('parseRedisUrl (the one Redis URL parser)', () => {
    it('takes a URL apart, decoding its userinfo', () => {
      expect(parseRedisUrl('rediss://us%40er:p%3Ass@cache.example:6380/4')).toEqual({
        tls: true,
        host: 'cache.example',
        port: 6380,
        username: 'us@er',
        password: 'p:ss',
        db: 4,
      });
      expect(parseRedisUrl('redis://127.0.0.1')).toEqual({
        tls: false,
        host: '127.0.0.1',
        port: 6379,
      });
    });

    it.each([
      ['not a url', /is not a valid URL/],
      ['http://h:1', /must use redis:\/\/ or rediss:\/\//],
      ['redis://h:1/abc', /database "abc"/],
      [42, /is not a redis:\/\/ or rediss:\/\/ URL string/],
    ])('refuses %p, saying why', (url, why) => {
      const parsed = parseRedisUrl(url);
      expect('problem' in parsed && parsed.problem).toMatch(why);
    });

    it('never shows the password of a refused URL', () => {
      const parsed = parseRedisUrl('http://user:hunter2@h:1');
      expect('problem' in parsed && parsed.problem).not.toContain('hunter2');
    });
  });

  it('describeRedisUrl and describeRedisNode show where, never who', () => {
    expect(describeRedisUrl('redis://user:hunter2@10.0.0.1:6380/2')).toBe(
      'Redis at redis://10.0.0.1:6380/2',
    );
    expect(describeRedisUrl('::')).toBe('Redis');
    expect(describeRedisNode('redis://:hunter2@10.0.0.2:7000')).toBe('10.0.0.2:7000');
    expect(describeRedisNode({ port: 7001 })).toBe('127.0.0.1:7001');
    expect(describeRedisNode(7002)).toBe('7002');
  });

  it('the resolver, the dispatchers and the circuit breaker share one URL check', () => {
    const url = 'redis://h:1/abc';
    expect(() => resolveCacheOptions({ provider: 'redis', redis: { url } }, {})).toThrow(
      /"redis\.url".*database "abc"/,
    );
    expect(() => new BullMqDispatcher({ connection: { url } })).toThrow(CacheConfigError);
    expect(() => new BullMqDispatcher({ connection: { url } })).toThrow(
      /BullMqDispatcher option "connection\.url".*database "abc"/,
    );
  });

  it.each([
    [() => new BullMqDispatcher({ connection: {}, attempts: 0 }), /"attempts": 0/],
    [() => new BullMqDispatcher({ connection: {}, addTimeout: -1 }), /"addTimeout": -1/],
    [() => new DeferredDispatcher({ concurrency: 1.5 }), /"concurrency": 1.5/],
    [() => new DeferredDispatcher({ maxQueue: 0 }), /"maxQueue": 0.*whole number >= 1/],
  ])('dispatcher options are checked by the shared validators (%#)', (create, message) => {
    expect(create).toThrow(CacheConfigError);
    expect(create).toThrow(message);
  });

  it('the circuit breaker checks its options with the same validators', () => {
    expect(() => new CircuitBreaker({ failureThreshold: 0 })).toThrow(
      /failureThreshold must be a whole number >= 1/,
    );
    expect(() => new CircuitBreaker({ cooldownMs: -1 })).toThrow(/cooldownMs must be a number/);
  });
});

describe('config/defaults (every default once)', () => {
  it('the resolver applies the module, memory and failover defaults from defaults.ts', () => {
    const resolved = resolveCacheOptions({}, {});
    expect(resolved).toMatchObject({
      enabled: MODULE_DEFAULTS.enabled,
      provider: MODULE_DEFAULTS.provider,
      ttl: MODULE_DEFAULTS.ttl,
      namespace: MODULE_DEFAULTS.namespace,
      memory: MEMORY_DEFAULTS,
    });
    expect(resolveCacheOptions({ provider: 'redis', failover: true }, {}).failover).toEqual(
      FAILOVER_DEFAULTS,
    );
  });

  it('the dispatchers and the circuit breaker start from defaults.ts', () => {
    expect(new DeferredDispatcher()).toBeDefined();
    expect(DEFERRED_DISPATCHER_DEFAULTS).toEqual({ concurrency: 1, maxQueue: 10_000 });
    // Before an application starts it; then `cachekit-invalidation.<namespace>`.
    expect(new BullMqDispatcher({ connection: {} }).queueName).toBe(
      BULLMQ_DISPATCHER_DEFAULTS.queueName,
    );
    expect(BULLMQ_DISPATCHER_DEFAULTS.addTimeout).toBe(1000);
    expect(new CircuitBreaker().failureThreshold).toBe(FAILOVER_DEFAULTS.failureThreshold);
  });

  it('defaults cannot be changed at run time', () => {
    expect(Object.isFrozen(MODULE_DEFAULTS)).toBe(true);
    expect(Object.isFrozen(FAILOVER_DEFAULTS)).toBe(true);
    expect(Object.isFrozen(BULLMQ_DISPATCHER_DEFAULTS)).toBe(true);
  });
});
