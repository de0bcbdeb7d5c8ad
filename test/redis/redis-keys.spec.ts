import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Redis } from 'ioredis';
import {
  CacheAdapter,
  CacheArgumentError,
  CacheModule,
  CacheService,
  Cacheable,
  FailoverCacheAdapter,
  KeyConstructor,
  RedisCacheAdapter,
  argField,
  constField,
  type CacheModuleOptions,
} from '../../lib';
import { MAX_TTL } from '../../lib/config/validators';
import { CapturingLogger } from '../support/logs';
import { inspector, sharedRedisUrl, uniqueNamespace } from '../support/redis';

// Issue 10, items 2, 7 and 8 on a real redis-server: keys that differ only in UTF-16
// surrogates stay distinct, `has` agrees with `get` on foreign data, and TTLs Redis cannot
// store are refused instead of dropped.

async function boot(options: CacheModuleOptions, providers: Array<new () => unknown> = []) {
  const logger = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
    providers,
  }).compile();
  const app: INestApplication = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, cache: app.get(CacheService), logger };
}

const onRedis = (label: string): CacheModuleOptions => ({
  provider: 'redis',
  redis: { url: sharedRedisUrl() },
  namespace: uniqueNamespace(label),
});

/** Strings that UTF-8 (and so ioredis, given a string) would merge or reorder. */
const SURROGATE_KEYS = [
  '\uD800',
  '\uDC00',
  '\uFFFD',
  '\uDBFF',
  '\uDFFF',
  '\uD83D\uDE00', // 😀, a valid pair
  '\uD83D',
  '\uDE00',
  '\uD83Dx',
  'x\uDE00',
  '\uDE00\uD83D', // a reversed pair: two lone halves
  '\uD83D\uD83D',
  'k:\uD800',
  'k:\uDC00',
  'k:\uFFFD',
  'k:?',
  'é',
  'plain',
];

describe('keys on Redis are injective over all JS strings', () => {
  let raw: Redis;
  beforeAll(() => {
    raw = inspector();
  });
  afterAll(async () => {
    await raw.quit();
  });

  it('keeps every key apart in get, set, has and delete', async () => {
    const options = onRedis('surrogate');
    const { app, cache } = await boot(options);
    try {
      for (const [i, key] of SURROGATE_KEYS.entries()) await cache.set(key, i, 0);
      for (const [i, key] of SURROGATE_KEYS.entries()) {
        expect([key, await cache.get(key)]).toEqual([key, i]);
        expect(await cache.has(key)).toBe(true);
      }
      expect(await raw.keys(`${options.namespace}:*`)).toHaveLength(SURROGATE_KEYS.length);

      expect(await cache.delete('\uDC00')).toBe(true);
      expect(await cache.get('\uDC00')).toBeUndefined();
      expect(await cache.get('\uD800')).toBe(0);
      expect(await cache.get('\uFFFD')).toBe(2);
    } finally {
      await cache.clear();
      await app.close();
    }
  });

  it('writes surrogates in CESU-8 and every other key as plain UTF-8', async () => {
    const options = onRedis('bytes');
    const { app, cache } = await boot(options);
    const prefix = Buffer.from(`${options.namespace}:`);
    try {
      await cache.set('é:\uD800', 'lone', 0);
      await cache.set('é:\uD83D\uDE00', 'pair', 0);
      await cache.set('é:\uFFFD', 'replacement', 0);
      // 'é' is UTF-8 C3 A9 in every key; each surrogate unit is its own ED xx xx sequence.
      const lone = Buffer.concat([prefix, Buffer.from([0xc3, 0xa9, 0x3a, 0xed, 0xa0, 0x80])]);
      const pair = Buffer.concat([
        prefix,
        Buffer.from([0xc3, 0xa9, 0x3a, 0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80]),
      ]);
      expect(await raw.get(lone as unknown as string)).toBe('"lone"');
      expect(await raw.get(pair as unknown as string)).toBe('"pair"');
      // A key without surrogates is exactly what ioredis would write for the string.
      expect(await raw.get(`${options.namespace}:é:\uFFFD`)).toBe('"replacement"');
    } finally {
      await cache.clear();
      await app.close();
    }
  });

  const PREFIX_KEYS = [
    'p:\uD83D\uDE00',
    'p:\uD83D\uDE01',
    'p:\uD83Dx',
    'p:\uD83D',
    'p:\uD83E\uDD00',
    'p:\uFFFD',
    'p:\uDE00',
    'p:x',
    'q:\uD83D',
  ];
  const backends: Array<[string, () => CacheModuleOptions]> = [
    ['memory', () => ({ provider: 'memory', namespace: uniqueNamespace('prefix') })],
    ['redis', () => onRedis('prefix')],
    ['redis with failover', () => ({ ...onRedis('prefix'), failover: true })],
  ];
  it.each(backends)('deleteByPrefix matches by UTF-16 units on %s', async (_name, optionsFor) => {
    const { app, cache } = await boot(optionsFor());
    const survivors = async () => {
      const left: string[] = [];
      for (const key of PREFIX_KEYS) if (await cache.has(key)) left.push(key);
      return left;
    };
    const seed = async () => {
      for (const key of PREFIX_KEYS) await cache.set(key, key, 0);
    };
    try {
      await seed();
      // A prefix ending with a lone high surrogate takes the keys that go on with a low one.
      expect(await cache.deleteByPrefix('p:\uD83D')).toBe(4);
      expect(await survivors()).toEqual([
        'p:\uD83E\uDD00',
        'p:\uFFFD',
        'p:\uDE00',
        'p:x',
        'q:\uD83D',
      ]);
      await seed();
      expect(await cache.deleteByPrefix('p:\uD83D\uDE00')).toBe(1);
      expect(await cache.deleteByPrefix('p:\uDE00')).toBe(1);
      expect(await cache.deleteByPrefix('p:\uFFFD')).toBe(1);
      expect(await cache.get('p:\uD83D\uDE01')).toBe('p:\uD83D\uDE01');
      await cache.clear();
      expect(await survivors()).toEqual([]);
    } finally {
      await cache.clear();
      await app.close();
    }
  });

  it('clear() removes CESU-8 keys too', async () => {
    const options = onRedis('clear');
    const { app, cache } = await boot(options);
    for (const key of SURROGATE_KEYS) await cache.set(key, 1, 0);
    await cache.clear();
    expect(await raw.keys(`${options.namespace}:*`)).toEqual([]);
    await app.close();
  });

  const ItemKey = KeyConstructor.define({
    namespace: 'items',
    fields: [argField('id', { partition: true }), constField('v', 1)],
  });

  @Injectable()
  class Lookup {
    calls = 0;

    @Cacheable('item:{id}')
    async byTemplate(id: string): Promise<string> {
      this.calls++;
      return `template ${id}`;
    }

    @Cacheable()
    async byDefault(id: string): Promise<string> {
      this.calls++;
      return `default ${id}`;
    }

    @Cacheable({ key: ItemKey })
    async byConstructor(id: string): Promise<string> {
      this.calls++;
      return `constructor ${id}`;
    }

    @Cacheable({ key: 'obj:{filter}' })
    async byObject(filter: { q: string }): Promise<string> {
      this.calls++;
      return `object ${filter.q}`;
    }
  }

  it('keeps @Cacheable templates, default keys and KeyConstructor fields apart', async () => {
    const { app, cache } = await boot(onRedis('decorated'), [Lookup]);
    const lookup = app.get(Lookup);
    const ids = ['\uD800', '\uDC00', '\uFFFD', '\uD83D\uDE00', '\uD83Dx', '\uDE00\uD83D'];
    try {
      for (let round = 0; round < 2; round++) {
        for (const id of ids) {
          expect(await lookup.byTemplate(id)).toBe(`template ${id}`);
          expect(await lookup.byDefault(id)).toBe(`default ${id}`);
          expect(await lookup.byConstructor(id)).toBe(`constructor ${id}`);
          expect(await lookup.byObject({ q: id })).toBe(`object ${id}`);
        }
      }
      // Every distinct id missed once, then hit.
      expect(lookup.calls).toBe(ids.length * 4);
      // A partition is its own prefix: wiping the lone high surrogate keeps the emoji.
      expect(await cache.deleteByPrefix(ItemKey.partition({ id: '\uD83D' }))).toBe(0);
      expect(await cache.deleteByPrefix(ItemKey.partition({ id: '\uD800' }))).toBe(1);
      expect(await lookup.byConstructor('\uDC00')).toBe('constructor \uDC00');
      expect(lookup.calls).toBe(ids.length * 4);
    } finally {
      await cache.clear();
      await app.close();
    }
  });
});

describe('has agrees with get on data the cache did not write', () => {
  let raw: Redis;
  beforeAll(() => {
    raw = inspector();
  });
  afterAll(async () => {
    await raw.quit();
  });

  async function plant(namespace: string): Promise<string[]> {
    const at = (key: string) => `${namespace}:${key}`;
    await raw.set(at('not-json'), 'hello');
    await raw.set(at('truncated'), '{"a": 1');
    await raw.set(at('empty'), '');
    await raw.set(at('undefined-text'), 'undefined');
    await raw.hset(at('hash'), 'f', '1');
    await raw.rpush(at('list'), 'x');
    await raw.sadd(at('set'), 'x');
    await raw.zadd(at('zset'), 1, 'x');
    await raw.xadd(at('stream'), '*', 'f', 'v');
    return [
      'not-json',
      'truncated',
      'empty',
      'undefined-text',
      'hash',
      'list',
      'set',
      'zset',
      'stream',
    ];
  }

  it.each([
    ['redis', false],
    ['redis with failover', true],
  ])('on %s: a miss for get, false for has, logged', async (_name, failover) => {
    const options = { ...onRedis('foreign'), failover };
    const { app, cache, logger } = await boot(options);
    try {
      const keys = await plant(options.namespace!);
      const adapter = app.get<CacheAdapter>(CacheAdapter);
      for (const key of keys) {
        expect([key, await cache.get(key)]).toEqual([key, undefined]);
        expect([key, await cache.has(key)]).toEqual([key, false]);
        expect([key, await adapter.has(key)]).toEqual([key, false]);
      }
      expect(await cache.has('absent')).toBe(false);
      // A cached null is a hit for both.
      await cache.set('null', null, 0);
      expect(await cache.get('null')).toBeNull();
      expect(await cache.has('null')).toBe(true);
      const warnings = logger.warnings().join('\n');
      // (Whatever quoting the log uses for keys.)
      expect(warnings).toMatch(/:truncated\W* holds data that is not valid JSON/);
      expect(warnings).toMatch(/:stream\W* holds a non-string Redis type/);
      // wrap reloads over foreign data, as get's miss says.
      expect(await cache.wrap('truncated', () => 'reloaded')).toBe('reloaded');
      expect(await cache.has('truncated')).toBe(true);
    } finally {
      await cache.clear();
      await app.close();
    }
  });

  it('with failover, has and get both fall back when Redis holds foreign data', async () => {
    const options: CacheModuleOptions = { ...onRedis('foreign-fb'), failover: true };
    const { app, cache } = await boot(options);
    try {
      await cache.set('k', 'kept', 0); // both tiers
      await raw.set(`${options.namespace}:k`, '{"broken');
      const adapter = app.get<FailoverCacheAdapter>(CacheAdapter);
      expect(adapter.primary).toBeInstanceOf(RedisCacheAdapter);
      expect(await adapter.primary.has('k')).toBe(false);
      expect(await cache.get('k')).toBe('kept');
      expect(await cache.has('k')).toBe(true);
    } finally {
      await cache.clear();
      await app.close();
    }
  });
});

describe('TTL bound on Redis', () => {
  let raw: Redis;
  beforeAll(() => {
    raw = inspector();
  });
  afterAll(async () => {
    await raw.quit();
  });

  const tooLong = [MAX_TTL + 1, 1e16, 1e18, 1e21, 1e300, Infinity];

  it.each([
    ['redis', false],
    ['redis with failover', true],
  ])('on %s: set rejects a TTL Redis cannot store, the old entry stays', async (_n, failover) => {
    const options = { ...onRedis('ttl'), failover };
    const { app, cache } = await boot(options);
    try {
      await cache.set('k', 'old', 60);
      for (const ttl of tooLong) {
        await expect(cache.set('k', 'new', ttl)).rejects.toThrow(CacheArgumentError);
        await expect(cache.wrap('w', () => 'loaded', ttl)).rejects.toThrow(CacheArgumentError);
        // The adapter used directly refuses it too (the failover adapter through its fallback).
        const adapter = app.get<CacheAdapter>(CacheAdapter);
        await expect(adapter.set('k', 'new', ttl)).rejects.toThrow(CacheArgumentError);
        expect(await cache.get('k')).toBe('old');
      }
      expect(await raw.get(`${options.namespace}:k`)).toBe('"old"');
      expect(await raw.exists(`${options.namespace}:w`)).toBe(0);
    } finally {
      await cache.clear();
      await app.close();
    }
  });

  it('stores MAX_TTL exactly, and a tiny fraction as 1 ms, never as "no expiry"', async () => {
    const options = onRedis('ttl-edge');
    const { app, cache } = await boot(options);
    try {
      await cache.set('max', 'v', MAX_TTL);
      const pttl = await raw.pttl(`${options.namespace}:max`);
      expect(pttl).toBeGreaterThan(MAX_TTL * 1000 - 60_000);
      expect(pttl).toBeLessThanOrEqual(MAX_TTL * 1000);

      for (const ttl of [1e-9, 0.0004, Number.MIN_VALUE]) {
        await cache.set('tiny', 'v', ttl);
        expect(await raw.pttl(`${options.namespace}:tiny`)).not.toBe(-1);
        await new Promise((resolve) => setTimeout(resolve, 10));
        expect(await cache.get('tiny')).toBeUndefined();
      }
    } finally {
      await cache.clear();
      await app.close();
    }
  });

  it('RedisCacheAdapter used directly rejects what memory rejects', async () => {
    const adapter = new RedisCacheAdapter({
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('ttl-direct'),
    });
    await adapter.onModuleInit();
    try {
      await adapter.set('k', 'old', 0);
      for (const ttl of [...tooLong, -1, NaN, '5' as unknown as number]) {
        await expect(adapter.set('k', 'new', ttl)).rejects.toThrow(/Invalid ttl .* from 0 to/);
      }
      expect(await adapter.get('k')).toBe('old');
    } finally {
      await adapter.clear();
      await adapter.onApplicationShutdown();
    }
  });
});
