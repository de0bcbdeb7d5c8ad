import type { INestApplication } from '@nestjs/common';
import { CacheArgumentError, CacheSerializationError } from '../../lib';
import type { CacheAdapter } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { TwoTier } from '../../lib/tiers/two-tier';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What the stack's tiers object answers a bulk call with: the local store (memory), the plain
 * remote adapter (Redis), the failover tier, or the two-tier store.
 */
export function bulkStoreOf(
  app: INestApplication,
): Required<Pick<CacheAdapter, 'getMany' | 'setMany' | 'deleteMany'>> & CacheAdapter {
  const { tiers } = app.get(CacheStack);
  const store: CacheAdapter = tiers.twoTier ?? tiers.failover ?? tiers.remote ?? tiers.local.store;
  for (const method of ['getMany', 'setMany', 'deleteMany'] as const) {
    if (typeof store[method] !== 'function') {
      throw new Error(`${store.constructor.name} has no ${method}`);
    }
  }
  return store as ReturnType<typeof bulkStoreOf>;
}

/**
 * The bulk operations (`getMany`, `setMany`, `deleteMany`) of the store a backend's stack uses:
 * every backend must agree with its single-key operations.
 */
export function describeBulkContract(appOf: () => INestApplication): void {
  describe('bulk operations of the store', () => {
    let store: ReturnType<typeof bulkStoreOf>;
    beforeEach(() => {
      store = bulkStoreOf(appOf());
    });

    it('getMany answers in the order of the keys, duplicates and misses included', async () => {
      await store.setMany([
        { key: 'a', value: { n: 1 }, ttl: 60 },
        { key: 'b', value: [2], ttl: 60 },
      ]);
      expect(await store.getMany(['b', 'nope', 'a', 'b', 'nope'])).toEqual([
        [2],
        undefined,
        { n: 1 },
        [2],
        undefined,
      ]);
      expect(await store.getMany(['nope'])).toEqual([undefined]);
    });

    it('agrees with the single-key operations both ways', async () => {
      await store.set('single', 'one', 60);
      await store.setMany([{ key: 'bulk', value: 'many', ttl: 60 }]);
      expect(await store.get('bulk')).toBe('many');
      expect(await store.getMany(['single', 'bulk'])).toEqual(['one', 'many']);
    });

    it.each([
      ['null', null],
      ['zero', 0],
      ['empty string', ''],
      ['false', false],
    ])('reads a stored %s as a hit', async (_label, value) => {
      await store.setMany([{ key: 'falsy', value, ttl: 60 }]);
      expect(await store.getMany(['falsy'])).toEqual([value]);
    });

    it('takes empty arrays', async () => {
      expect(await store.getMany([])).toEqual([]);
      await expect(store.setMany([])).resolves.toBeUndefined();
      expect(await store.deleteMany([])).toBe(0);
    });

    it('keeps ttl 0 entries and expires fractional ones', async () => {
      await store.setMany([
        { key: 'short', value: 's', ttl: 0.2 },
        { key: 'forever', value: 'f', ttl: 0 },
      ]);
      expect(await store.getMany(['short', 'forever'])).toEqual(['s', 'f']);
      await sleep(450);
      expect(await store.getMany(['short', 'forever'])).toEqual([undefined, 'f']);
    });

    it('a later entry of the same key wins', async () => {
      await store.setMany([
        { key: 'twice', value: 1, ttl: 60 },
        { key: 'twice', value: 2, ttl: 60 },
      ]);
      expect(await store.getMany(['twice'])).toEqual([2]);
    });

    // The two-tier store takes values and TTLs the stack has checked (as its `set` does): with
    // failover, a refusal of the shared store is an outage to it. The stack's own bulk calls
    // check them for every backend.
    const checksInput = () => !(store instanceof TwoTier);

    it('an invalid value rejects the whole batch and writes nothing', async () => {
      if (!checksInput()) return;
      await store.set('keep', 'old', 60);
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      await expect(
        store.setMany([
          { key: 'keep', value: 'new', ttl: 60 },
          { key: 'fresh', value: 'x', ttl: 60 },
          { key: 'bad', value: circular, ttl: 60 },
        ]),
      ).rejects.toBeInstanceOf(CacheSerializationError);
      await expect(
        store.setMany([{ key: 'big', value: BigInt(1), ttl: 60 }]),
      ).rejects.toBeInstanceOf(CacheSerializationError);
      expect(await store.getMany(['keep', 'fresh', 'bad', 'big'])).toEqual([
        'old',
        undefined,
        undefined,
        undefined,
      ]);
    });

    it('an invalid ttl rejects the whole batch and writes nothing', async () => {
      if (!checksInput()) return;
      await expect(
        store.setMany([
          { key: 'fresh', value: 'x', ttl: 60 },
          { key: 'neg', value: 'y', ttl: -1 },
        ]),
      ).rejects.toBeInstanceOf(CacheArgumentError);
      expect(await store.getMany(['fresh', 'neg'])).toEqual([undefined, undefined]);
    });

    it('keeps distinct keys distinct, odd characters included', async () => {
      const keys = ['\uD800', '\uDC00', '\uFFFD', 'a:b', 'a*', '[x]', '{tag}1', 'é', 'x y', '\\'];
      await store.setMany(keys.map((key, i) => ({ key, value: i, ttl: 60 })));
      expect(await store.getMany(keys)).toEqual(keys.map((_, i) => i));
      for (const [i, key] of keys.entries()) expect(await store.get(key)).toBe(i);
      expect(await store.deleteMany(['\uD800', 'a*'])).toBe(2);
      expect(await store.getMany(keys)).toEqual(
        keys.map((key, i) => (key === '\uD800' || key === 'a*' ? undefined : i)),
      );
    });

    it('deleteMany deletes every key and counts those that existed', async () => {
      await store.setMany([
        { key: 'd1', value: 1, ttl: 60 },
        { key: 'd2', value: 2, ttl: 60 },
        { key: 'other', value: 3, ttl: 60 },
      ]);
      expect(await store.deleteMany(['d1', 'd2', 'missing'])).toBe(2);
      expect(await store.getMany(['d1', 'd2', 'other'])).toEqual([undefined, undefined, 3]);
      expect(await store.get('d1')).toBeUndefined();
      expect(await store.deleteMany(['d1'])).toBe(0);
    });

    it('reads and writes a batch of 500 keys', async () => {
      const keys = Array.from({ length: 500 }, (_, i) => `many:${i}`);
      await store.setMany(keys.map((key, i) => ({ key, value: { i }, ttl: 60 })));
      expect(await store.getMany(keys)).toEqual(keys.map((_, i) => ({ i })));
      expect(await store.deleteMany(keys)).toBe(500);
      expect((await store.getMany(keys)).every((value) => value === undefined)).toBe(true);
    });
  });
}
