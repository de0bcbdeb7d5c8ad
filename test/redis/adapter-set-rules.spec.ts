import { CacheSerializationError, MemoryCacheAdapter, RedisCacheAdapter } from '../../lib';
import type { CacheAdapter } from '../../lib/interfaces/cache-adapter.interface';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/**
 * The exported adapters, used directly, apply the cache's value rules (`CacheService.set`):
 * they store the JSON form of a value, or reject with CacheSerializationError and leave the
 * previous entry as it was. Memory and Redis agree.
 */
const circular: Record<string, unknown> = { a: 1 };
circular.self = circular;

const REJECTED: Array<[string, unknown]> = [
  ['a BigInt', 10n],
  ['a Map', new Map([['a', 1]])],
  ['a Set', new Set([1])],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['undefined', undefined],
  ['a function', () => 1],
  ['a circular object', circular],
  ['a nested BigInt', { a: [1, 2n] }],
];

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

const STORED_AS_JSON: Array<[string, unknown, unknown]> = [
  ['-0', -0, 0],
  ['a Date', new Date(0), '1970-01-01T00:00:00.000Z'],
  ['a class instance', new Point(1, 2), { x: 1, y: 2 }],
  ['an undefined property', { a: 1, b: undefined }, { a: 1 }],
  ['null', null, null],
];

const adapters: Array<[string, () => Promise<CacheAdapter>]> = [
  ['MemoryCacheAdapter', () => Promise.resolve(new MemoryCacheAdapter({ sweepInterval: 0 }))],
  [
    'RedisCacheAdapter',
    async () => {
      const adapter = new RedisCacheAdapter({
        redis: { url: sharedRedisUrl() },
        namespace: uniqueNamespace('set-rules'),
      });
      await adapter.onModuleInit?.();
      return adapter;
    },
  ],
];

describe.each(adapters)('%s.set used directly', (_name, create) => {
  let adapter: CacheAdapter;

  beforeAll(async () => {
    adapter = await create();
  });

  afterAll(async () => {
    await adapter.clear();
    await adapter.onApplicationShutdown?.();
  });

  it.each(REJECTED)(
    'rejects %s with CacheSerializationError, keeping the old entry',
    async (_v, value) => {
      await adapter.set('k', 'old', 60);
      await expect(adapter.set('k', value, 60)).rejects.toThrow(CacheSerializationError);
      expect(await adapter.get('k')).toBe('old');
    },
  );

  it.each(STORED_AS_JSON)('stores the JSON form of %s', async (_v, value, stored) => {
    await adapter.set('json', value, 60);
    const read = await adapter.get('json');
    expect(read).toEqual(stored);
    expect(Object.is(read, stored) || typeof stored === 'object').toBe(true);
  });
});
