import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Redis } from 'ioredis';
import {
  CacheArgumentError,
  CacheConfigError,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
  cacheResult,
  type CacheModuleOptions,
} from '../../lib';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import { jitteredTtl, MAX_TTL } from '../../lib/config/validators';
import type { CacheStack, CacheStackOptions } from '../../lib/core/cache-stack';
import { createCacheStack } from '../../lib/core/create-stack';
import { eventually } from '../support/eventually';
import { inspector, sharedRedisUrl, uniqueNamespace } from '../support/redis';

/**
 * `jitter` (issue 13, item 3): a write's TTL becomes `ttl * (1 + random * jitter)`, so entries
 * written together expire apart. The distribution is read from the backends themselves: on
 * memory by moving a faked clock and seeing when each entry is gone, on Redis with PTTL.
 */

const N = 2000;
const TTL = 100;
const JITTER = 0.5;

const keysOf = (prefix: string, n = N): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}:${i}`);

/**
 * Asserts TTLs (ms) lie in [ttl, ttl * (1 + jitter)] (give or take `slack` ms) and are spread
 * like a uniform draw: every tenth of the range holds entries, the standard deviation is that of
 * a uniform distribution (range / sqrt(12)) within 20 %.
 */
function expectSpread(ttls: number[], slack: number, everyBucket = ttls.length >= 1000): void {
  const low = TTL * 1000;
  const high = TTL * (1 + JITTER) * 1000;
  for (const ttl of ttls) {
    expect(ttl).toBeGreaterThanOrEqual(low - slack);
    expect(ttl).toBeLessThanOrEqual(high + slack);
  }
  const buckets = new Array<number>(10).fill(0);
  for (const ttl of ttls) {
    const at = Math.floor(((ttl - low) / (high - low)) * 10);
    buckets[Math.min(9, Math.max(0, at))]++;
  }
  const expected = ttls.length / 10;
  if (everyBucket) {
    // 2 000 draws: about 200 per bucket, 13 standard deviation; 100 is beyond 7 of them.
    for (const count of buckets) {
      expect(count).toBeGreaterThan(expected - 100);
      expect(count).toBeLessThan(expected + 100);
    }
  } else {
    expect(buckets.filter((count) => count > 0).length).toBeGreaterThanOrEqual(8);
  }
  const mean = ttls.reduce((sum, t) => sum + t, 0) / ttls.length;
  const sd = Math.sqrt(ttls.reduce((sum, t) => sum + (t - mean) ** 2, 0) / ttls.length);
  const uniform = (high - low) / Math.sqrt(12);
  expect(sd).toBeGreaterThan(uniform * 0.8);
  expect(sd).toBeLessThan(uniform * 1.2);
}

/**
 * When each entry expires, in ms after the writes (fake timers installed before them): every
 * entry is read as the clock moves in `step` ms steps from `from` to `to`.
 */
function expiries(
  peek: (key: string) => unknown,
  keys: string[],
  from = TTL * 1000 - 1,
  to = TTL * (1 + JITTER) * 1000 + 1000,
  step = 250,
): number[] {
  jest.advanceTimersByTime(from);
  let now = from;
  const gone = new Array<number>(keys.length).fill(Number.NaN);
  let alive = keys.map((_, i) => i);
  expect(alive.filter((i) => peek(keys[i]) === undefined)).toEqual([]);
  while (alive.length > 0 && now < to) {
    jest.advanceTimersByTime(step);
    now += step;
    alive = alive.filter((i) => {
      if (peek(keys[i]) !== undefined) return true;
      gone[i] = now;
      return false;
    });
  }
  expect(alive).toEqual([]);
  return gone;
}

describe('jitteredTtl', () => {
  it('adds up to `jitter` of the TTL, keeps 0 (never expires) and caps at MAX_TTL', () => {
    expect(jitteredTtl(100, 0.5, () => 0)).toBe(100);
    expect(jitteredTtl(100, 0.5, () => 0.5)).toBe(125);
    expect(jitteredTtl(100, 0.5, () => 0.999999)).toBeCloseTo(150, 3);
    expect(jitteredTtl(0, 1, () => 0.9)).toBe(0);
    expect(jitteredTtl(100, 0, () => 0.9)).toBe(100);
    expect(jitteredTtl(MAX_TTL, 1, () => 0.9)).toBe(MAX_TTL);
  });

  it('draws no random number without jitter (a write without it costs nothing more)', () => {
    const random = jest.fn(() => 0.5);
    jitteredTtl(100, 0, random);
    jitteredTtl(0, 0.5, random);
    expect(random).not.toHaveBeenCalled();
  });
});

describe('jitter on the memory provider (fake clock)', () => {
  const BASE: CacheStackOptions = { enabled: true, ttl: TTL, namespace: 'jitter' };
  let stack: CacheStack;

  function memoryStack(options: Partial<CacheStackOptions> = {}): CacheStack {
    return createCacheStack(new MemoryCacheAdapter({ sweepInterval: 0, maxEntries: 10 * N }), {
      ...BASE,
      ...options,
    });
  }

  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('spreads 2 000 entries written together over [ttl, ttl * 1.5] (module jitter 0.5)', async () => {
    stack = memoryStack({ jitter: JITTER });
    const keys = keysOf('set');
    await Promise.all(keys.map((key, i) => stack.set(key, i)));
    expectSpread(
      expiries((key) => stack.peek(key), keys),
      250,
    );
  });

  it('without jitter, every entry written together expires in the same millisecond', async () => {
    stack = memoryStack();
    const keys = keysOf('exact');
    await Promise.all(keys.map((key, i) => stack.set(key, i)));
    jest.advanceTimersByTime(TTL * 1000 - 1);
    expect(keys.filter((key) => stack.peek(key) === undefined)).toEqual([]);
    jest.advanceTimersByTime(2);
    expect(keys.filter((key) => stack.peek(key) !== undefined)).toEqual([]);
  });

  it('a per-call jitter of 0 overrides the module jitter: exact TTLs again', async () => {
    stack = memoryStack({ jitter: JITTER });
    const keys = keysOf('override', 200);
    await Promise.all(keys.map((key, i) => stack.set(key, i, { ttl: TTL, jitter: 0 })));
    jest.advanceTimersByTime(TTL * 1000 - 1);
    expect(keys.filter((key) => stack.peek(key) === undefined)).toEqual([]);
    jest.advanceTimersByTime(2);
    expect(keys.filter((key) => stack.peek(key) !== undefined)).toEqual([]);
  });

  it('a per-call jitter spreads writes of a module without one (set and wrap)', async () => {
    stack = memoryStack();
    const setKeys = keysOf('per-call-set', 1000);
    const wrapKeys = keysOf('per-call-wrap', 1000);
    await Promise.all(setKeys.map((key, i) => stack.set(key, i, { jitter: JITTER })));
    const loaded = await Promise.all(
      wrapKeys.map((key, i) => stack.wrap(key, () => i, { ttl: TTL, jitter: JITTER })),
    );
    expect(loaded.every((result) => result.status === 'miss')).toBe(true);
    expectSpread(
      expiries((key) => stack.peek(key), [...setKeys, ...wrapKeys]),
      250,
    );
  });

  it('applies the module jitter to loaded values (wrap)', async () => {
    stack = memoryStack({ jitter: JITTER });
    const keys = keysOf('loaded');
    await Promise.all(keys.map((key, i) => stack.wrap(key, () => Promise.resolve(i))));
    expectSpread(
      expiries((key) => stack.peek(key), keys),
      250,
    );
  });

  it('keeps a TTL of 0 (never expires) at 0, and caps a jittered TTL at MAX_TTL', async () => {
    stack = memoryStack({ jitter: 1 });
    await stack.set('forever', 1, 0);
    // Uncapped, MAX_TTL * (1 + r) is a TTL the memory store refuses (CacheArgumentError).
    await expect(stack.set('max', 1, { ttl: MAX_TTL, jitter: 1 })).resolves.toBeUndefined();
    jest.advanceTimersByTime(10 ** 9);
    expect(stack.peek('forever')).toBe(1);
    expect(stack.peek('max')).toBe(1);
  });

  it('refuses an invalid jitter or an unknown set option with CacheArgumentError', async () => {
    stack = memoryStack();
    for (const jitter of [-0.1, 1.5, Number.NaN, Infinity, '0.5', null]) {
      await expect(stack.set('k', 1, { jitter: jitter as number })).rejects.toThrow(
        CacheArgumentError,
      );
      await expect(stack.set('k', 1, { jitter: jitter as number })).rejects.toThrow(
        /^Invalid jitter .*expected a number from 0 to 1/,
      );
      await expect(stack.wrap('k', () => 1, { jitter: jitter as number })).rejects.toThrow(
        /^Invalid jitter/,
      );
    }
    await expect(stack.set('k', 1, { tag: ['a'] } as never)).rejects.toThrow(
      'Unknown set option "tag". Known options: ttl, jitter, grace, tags.',
    );
    await expect(stack.wrap('k', () => 1, { tag: ['a'] } as never)).rejects.toThrow(
      'Unknown wrap option "tag". Known options: ttl, jitter, timeouts, grace, graceBackoff, refreshAhead, lock, tags, unless.',
    );
    await expect(stack.set('k', 1, { tags: ['a', ''] })).rejects.toThrow(
      'Invalid tags (tag 1 is ""): expected an array of at most 100 non-empty strings.',
    );
    // Nothing was written by the refused calls.
    expect(stack.peek('k')).toBeUndefined();
  });
});

@Injectable()
class PriceService {
  loads = 0;

  @Cacheable('price:{sku}', { ttl: TTL, jitter: JITTER })
  async price(sku: number): Promise<number> {
    this.loads++;
    return sku * 2;
  }

  @Cacheable('plain:{sku}', { ttl: TTL })
  async plain(sku: number): Promise<number> {
    return sku;
  }

  @CachePut('price:{sku}', { ttl: TTL, jitter: JITTER })
  async update(sku: number): Promise<number> {
    return sku * 3;
  }
}

const lookup = cacheResult(async (sku: number) => sku * 4, {
  key: (sku: number) => `fn:${sku}`,
  ttl: TTL,
  jitter: JITTER,
});

describe('jitter on Redis (PTTL)', () => {
  let app: INestApplication;
  let cache: CacheService;
  let raw: Redis;
  let namespace: string;
  /** When the writes being measured started (their PTTL + the time since is their TTL). */
  let writesFrom: number;

  async function start(options: CacheModuleOptions = {}): Promise<void> {
    namespace = uniqueNamespace('jitter');
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: sharedRedisUrl() },
          namespace,
          ttl: TTL,
          ...options,
        }),
      ],
      providers: [PriceService],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    cache = app.get(CacheService);
    writesFrom = Date.now();
  }

  /** Each key's TTL in ms as Redis holds it (PTTL, plus what has elapsed since the writes). */
  async function ttlsOf(keys: string[]): Promise<number[]> {
    const pipeline = raw.pipeline();
    for (const key of keys) pipeline.pttl(`${namespace}:${key}`);
    const replies = (await pipeline.exec()) ?? [];
    const elapsed = Date.now() - writesFrom;
    return replies.map(([error, pttl]) => {
      expect(error).toBeNull();
      expect(pttl).toBeGreaterThan(0);
      // A TTL lies in [pttl, pttl + elapsed]: the middle, with `elapsed` as the slack.
      return (pttl as number) + elapsed / 2;
    });
  }

  /** Resolves once every key is in Redis (loaded values are written in the background). */
  async function written(keys: string[]): Promise<void> {
    await eventually(
      async () => (await raw.exists(...keys.map((k) => `${namespace}:${k}`))) === keys.length,
    );
  }

  beforeAll(() => {
    raw = inspector();
  });
  afterAll(async () => {
    await raw.quit();
  });
  afterEach(async () => {
    await cache?.clear();
    await app?.close();
  });

  it('spreads 2 000 entries set together by the module jitter over [100, 150] s', async () => {
    await start({ jitter: JITTER });
    const keys = keysOf('set');
    await Promise.all(keys.map((key, i) => cache.set(key, i)));
    const slack = Date.now() - writesFrom + 5;
    expectSpread(await ttlsOf(keys), slack);
  });

  it('without jitter, every entry gets the TTL exactly (spread only by the write time)', async () => {
    await start();
    const keys = keysOf('exact');
    await Promise.all(keys.map((key, i) => cache.set(key, i)));
    const pipeline = raw.pipeline();
    for (const key of keys) pipeline.pttl(`${namespace}:${key}`);
    const pttls = ((await pipeline.exec()) ?? []).map(([, pttl]) => pttl as number);
    const elapsed = Date.now() - writesFrom;
    for (const pttl of pttls) {
      expect(pttl).toBeLessThanOrEqual(TTL * 1000);
      expect(pttl).toBeGreaterThanOrEqual(TTL * 1000 - elapsed - 5);
    }
  });

  it('per call: set and wrap override the module jitter either way', async () => {
    await start({ jitter: JITTER });
    const exact = keysOf('exact', 200);
    await Promise.all(exact.map((key, i) => cache.set(key, i, { ttl: TTL, jitter: 0 })));
    await Promise.all(exact.map((key) => cache.wrap(`${key}:w`, () => 1, { jitter: 0 })));
    await written(exact.map((key) => `${key}:w`));
    const elapsed = Date.now() - writesFrom;
    for (const ttl of await ttlsOf([...exact, ...exact.map((key) => `${key}:w`)])) {
      expect(ttl).toBeLessThanOrEqual(TTL * 1000 + elapsed);
    }
    await cache.clear();
    await app.close();

    await start(); // module jitter 0
    const spread = keysOf('spread', 1000);
    const loaded = keysOf('loaded', 1000);
    await Promise.all(spread.map((key, i) => cache.set(key, i, { ttl: TTL, jitter: JITTER })));
    await Promise.all(loaded.map((key, i) => cache.wrap(key, () => i, { jitter: JITTER })));
    await written(loaded);
    expectSpread(await ttlsOf([...spread, ...loaded]), Date.now() - writesFrom + 5);
  });

  it('keeps 0 as "never expires" and caps at MAX_TTL', async () => {
    await start({ jitter: 1 });
    await cache.set('forever', 1, 0);
    await cache.set('max', 1, MAX_TTL);
    expect(await raw.pttl(`${namespace}:forever`)).toBe(-1);
    const max = await raw.pttl(`${namespace}:max`);
    expect(max).toBeLessThanOrEqual(MAX_TTL * 1000);
    expect(max).toBeGreaterThan(MAX_TTL * 1000 - 60_000);
  });

  it('@Cacheable, @CachePut and cacheResult carry their own jitter', async () => {
    await start(); // module jitter 0: any spread is the decorators' own
    const service = app.get(PriceService);
    const skus = Array.from({ length: 300 }, (_, i) => i);
    await Promise.all(skus.map((sku) => service.price(sku)));
    expect(service.loads).toBe(300);
    await written(skus.map((sku) => `price:${sku}`));
    expectSpread(await ttlsOf(skus.map((sku) => `price:${sku}`)), Date.now() - writesFrom + 5);

    writesFrom = Date.now();
    await Promise.all(skus.map((sku) => service.update(sku)));
    expect(await cache.get('price:7')).toBe(21);
    expectSpread(await ttlsOf(skus.map((sku) => `price:${sku}`)), Date.now() - writesFrom + 5);

    writesFrom = Date.now();
    await Promise.all(skus.map((sku) => lookup(sku)));
    await written(skus.map((sku) => `fn:${sku}`));
    expectSpread(await ttlsOf(skus.map((sku) => `fn:${sku}`)), Date.now() - writesFrom + 5);

    writesFrom = Date.now();
    await Promise.all(skus.map((sku) => lookup.refresh(sku)));
    expectSpread(await ttlsOf(skus.map((sku) => `fn:${sku}`)), Date.now() - writesFrom + 5);
  });

  it('the module jitter reaches a decorator that gives none', async () => {
    await start({ jitter: JITTER });
    const service = app.get(PriceService);
    const skus = Array.from({ length: 300 }, (_, i) => i);
    await Promise.all(skus.map((sku) => service.plain(sku)));
    await written(skus.map((sku) => `plain:${sku}`));
    expectSpread(await ttlsOf(skus.map((sku) => `plain:${sku}`)), Date.now() - writesFrom + 5);
  });
});

describe('jitter validation', () => {
  it('refuses a bad module jitter with CacheConfigError naming it', async () => {
    for (const jitter of [-0.1, 1.01, Number.NaN, '0.5', null]) {
      await expect(
        Test.createTestingModule({
          imports: [CacheModule.forRoot({ jitter: jitter as number })],
        }).compile(),
      ).rejects.toThrow(CacheConfigError);
    }
  });

  it('refuses a bad decorator jitter when the class is defined', () => {
    expect(() => Cacheable('k', { jitter: 2 })).toThrow(
      '@Cacheable(): invalid jitter 2; expected a number from 0 to 1',
    );
    expect(() => CachePut('k', { jitter: -1 })).toThrow(
      '@CachePut(): invalid jitter -1; expected a number from 0 to 1',
    );
    expect(() => Cacheable('k', { jitter: 1 })).not.toThrow();
  });

  it('refuses a bad cacheResult jitter with CacheConfigError', () => {
    expect(() => cacheResult(async () => 1, { key: () => 'k', jitter: 1.5, name: 'f' })).toThrow(
      'cacheResult(f): invalid jitter 1.5; expected a number from 0 to 1',
    );
  });
});
