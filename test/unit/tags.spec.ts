import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CacheArgumentError, CacheModule, CacheService, type CacheModuleOptions } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { Gate } from '../support/gated-adapter';
import { CapturingLogger } from '../support/logs';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 14 (tags) on the memory provider, through CacheService of a real Nest application:
 * `set` / `wrap` with `{ tags }` and `deleteByTag` (items 2 storage, 3, 4). The decorators are
 * covered elsewhere.
 */

interface Booted {
  app: INestApplication;
  cache: CacheService;
  stack: CacheStack;
  logger: CapturingLogger;
}

async function boot(options: CacheModuleOptions = {}): Promise<Booted> {
  const logger = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot({ namespace: uniqueNamespace('tags'), ...options })],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, cache: app.get(CacheService), stack: app.get(CacheStack), logger };
}

/** What the three read paths say about `key`: `get`, `has` and the synchronous `peek`. */
async function views(b: Booted, key: string): Promise<[unknown, boolean, unknown]> {
  return [await b.cache.get(key), await b.cache.has(key), b.stack.peek(key)];
}

describe('tags on the memory provider (CacheService)', () => {
  let b: Booted;
  let cache: CacheService;

  beforeEach(async () => {
    b = await boot({ ttl: 60 });
    cache = b.cache;
  });
  afterEach(async () => {
    await b.app.close();
  });

  it('deleteByTag of one tag invalidates every entry carrying it, whatever its key, and nothing else', async () => {
    await cache.set('product:1', { id: 1 }, { tags: ['product:1', 'products'] });
    await cache.set('product:2', { id: 2 }, { ttl: 30, tags: ['product:2', 'products'] });
    await cache.set('listing:home', ['p1', 'p2'], { tags: ['products', 'home'] });
    await cache.set('user:1', { id: 'u1' }, { tags: ['users'] });
    await cache.set('untagged', 'plain');
    await cache.set('untagged-envelope', 'with grace', { ttl: 10, grace: 60 });

    await cache.deleteByTag('product:1');
    expect(await views(b, 'product:1')).toEqual([undefined, false, undefined]);
    expect(await views(b, 'product:2')).toEqual([{ id: 2 }, true, { id: 2 }]);
    expect(await cache.get('listing:home')).toEqual(['p1', 'p2']);

    await cache.deleteByTag('products');
    for (const key of ['product:1', 'product:2', 'listing:home']) {
      expect(await views(b, key)).toEqual([undefined, false, undefined]);
    }
    expect(await views(b, 'user:1')).toEqual([{ id: 'u1' }, true, { id: 'u1' }]);
    expect(await views(b, 'untagged')).toEqual(['plain', true, 'plain']);
    expect(await cache.get('untagged-envelope')).toBe('with grace');
  });

  it('deleteByTag of several tags at once invalidates the entries carrying any of them', async () => {
    for (let i = 0; i < 30; i++) {
      await cache.set(`item:${i}`, i, { tags: [`t${i % 5}`, `group${i % 2}`] });
    }
    await cache.deleteByTag(['t1', 't3']);
    for (let i = 0; i < 30; i++) {
      const covered = i % 5 === 1 || i % 5 === 3;
      expect([i, await cache.get(`item:${i}`)]).toEqual([i, covered ? undefined : i]);
      expect(await cache.has(`item:${i}`)).toBe(!covered);
    }
    // A tag list and a single tag, both empty of matches: nothing changes.
    await cache.deleteByTag(['nobody', 'nothing']);
    expect(await cache.get('item:0')).toBe(0);
    await cache.deleteByTag([]);
    expect(await cache.get('item:0')).toBe(0);
  });

  it('an entry written after the invalidation is served at once, even within the same millisecond', async () => {
    // Many set → deleteByTag → set sequences back to back: most run inside one millisecond, so
    // only a clock that never repeats a time (creation after the mark) keeps the new value.
    let sameMillisecond = 0;
    for (let i = 0; i < 3000; i++) {
      await cache.set('hot', `before-${i}`, { tags: ['hot'] });
      await cache.set(`sibling:${i % 10}`, `before-${i}`, { tags: ['hot'] });
      const markedAt = Date.now();
      await cache.deleteByTag('hot');
      await cache.set('hot', `after-${i}`, { tags: ['hot'] });
      if (Date.now() === markedAt) sameMillisecond++;
      const [got, has, peeked] = await views(b, 'hot');
      if (got !== `after-${i}` || !has || peeked !== `after-${i}`) {
        throw new Error(`iteration ${i}: read ${JSON.stringify([got, has, peeked])}`);
      }
      expect(await cache.get(`sibling:${i % 10}`)).toBeUndefined();
    }
    // Printed, not asserted (a loaded machine may be slow): how often the mark and the write
    // after it fell in the same millisecond.
    process.stdout.write(`tags: ${sameMillisecond}/3000 mark+write pairs in one millisecond\n`);
    // Same with wrap: the load started after the mark is stored and served.
    await cache.deleteByTag('hot');
    const loader = jest.fn(() => 'loaded-after');
    expect(await cache.wrap('hot', loader, { tags: ['hot'] })).toBe('loaded-after');
    expect(await cache.wrap('hot', loader, { tags: ['hot'] })).toBe('loaded-after');
    expect(loader).toHaveBeenCalledTimes(1);
  });

  it('wrap with tags caches, and reloads after its tag is invalidated', async () => {
    let version = 0;
    const loader = jest.fn(() => ({ version: ++version }));
    const options = { ttl: 60, tags: ['catalog'] };
    expect(await cache.wrap('catalog', loader, options)).toEqual({ version: 1 });
    expect(await cache.wrap('catalog', loader, options)).toEqual({ version: 1 });
    expect(await views(b, 'catalog')).toEqual([{ version: 1 }, true, { version: 1 }]);
    expect(loader).toHaveBeenCalledTimes(1);

    await cache.deleteByTag('catalog');
    expect(await views(b, 'catalog')).toEqual([undefined, false, undefined]);
    expect(await cache.wrap('catalog', loader, options)).toEqual({ version: 2 });
    expect(await cache.wrap('catalog', loader, options)).toEqual({ version: 2 });
    expect(await cache.get('catalog')).toEqual({ version: 2 });
    expect(loader).toHaveBeenCalledTimes(2);
  });

  it('an invalidated entry is no stale value: a failing or slow loader over it is not answered with it', async () => {
    const options = { ttl: 1, grace: 600, tags: ['t'] };
    expect(await cache.wrap('k', () => 'old', options)).toBe('old');
    await cache.deleteByTag('t');
    await expect(
      cache.wrap('k', () => Promise.reject(new Error('db down')), options),
    ).rejects.toThrow('db down');
    const gate = new Gate();
    const slow = cache.wrap(
      'k',
      async () => {
        await gate.wait;
        return 'new';
      },
      { ...options, timeouts: { soft: 0.01 } },
    );
    await new Promise((resolve) => setTimeout(resolve, 30));
    gate.open();
    expect(await slow).toBe('new');
    expect(await cache.get('k')).toBe('new');
  });

  it('a load in flight when its tag is invalidated is returned but not stored; a load started after is', async () => {
    const gate = new Gate();
    let calls = 0;
    const slow = async () => {
      calls++;
      const mine = calls;
      if (mine === 1) await gate.wait;
      return `load-${mine}`;
    };
    const other = new Gate();
    const first = cache.wrap('report', slow, { tags: ['reports', 'r:1'] });
    // A load of another key under another tag, in flight at the same time: it is stored.
    const unrelated = cache.wrap(
      'audit',
      async () => {
        await other.wait;
        return 'audit-1';
      },
      { tags: ['audits'] },
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(b.stack.loadsInFlight).toBe(2);

    await cache.deleteByTag('r:1');
    expect(b.stack.loadsInFlight).toBe(1);
    // A caller arriving after the invalidation does not join the outdated load: it loads anew.
    expect(await cache.wrap('report', slow, { tags: ['reports', 'r:1'] })).toBe('load-2');
    gate.open();
    other.open();
    expect(await first).toBe('load-1');
    expect(await unrelated).toBe('audit-1');
    await new Promise((resolve) => setImmediate(resolve));
    // The outdated load did not overwrite the newer one.
    expect(await views(b, 'report')).toEqual(['load-2', true, 'load-2']);
    expect(await cache.get('audit')).toBe('audit-1');
    expect(calls).toBe(2);
  });

  it('a load in flight whose tag is invalidated, with no newer load, leaves the key empty', async () => {
    const gate = new Gate();
    const loader = jest.fn(async () => {
      await gate.wait;
      return 'outdated';
    });
    const pending = cache.wrap('k', loader, { tags: ['t'] });
    await new Promise((resolve) => setImmediate(resolve));
    await cache.deleteByTag(['other', 't']);
    gate.open();
    expect(await pending).toBe('outdated');
    await new Promise((resolve) => setImmediate(resolve));
    expect(await views(b, 'k')).toEqual([undefined, false, undefined]);
    expect(await cache.wrap('k', () => 'fresh', { tags: ['t'] })).toBe('fresh');
    expect(loader).toHaveBeenCalledTimes(1);
  });

  it('refuses invalid tags with CacheArgumentError, writing nothing and calling no loader', async () => {
    await cache.set('k', 'old', { tags: ['t'] });
    const loader = jest.fn(() => 'loaded');
    const tooMany = Array.from({ length: 101 }, (_v, i) => `t${i}`);
    const bad: unknown[] = [[''], ['ok', ''], 'products', [1], [null], tooMany, {}, null];
    for (const tags of bad) {
      const options = { tags } as unknown as { tags: string[] };
      await expect(cache.set('k', 'new', options)).rejects.toBeInstanceOf(CacheArgumentError);
      await expect(cache.wrap('w', loader, options)).rejects.toBeInstanceOf(CacheArgumentError);
      if (typeof tags !== 'string') {
        await expect(cache.deleteByTag(tags as string[])).rejects.toBeInstanceOf(
          CacheArgumentError,
        );
      }
    }
    await expect(cache.set('k', 'new', { tags: ['ok', ''] })).rejects.toThrow(
      'Invalid tags (tag 1 is ""): expected an array of at most 100 non-empty strings.',
    );
    await expect(cache.deleteByTag('')).rejects.toBeInstanceOf(CacheArgumentError);
    await expect(cache.deleteByTag(tooMany)).rejects.toThrow(/101 tags/);
    expect(loader).not.toHaveBeenCalled();
    expect(await cache.get('k')).toBe('old');
    expect(await cache.get('w')).toBeUndefined();
    // 100 tags is the bound, accepted; an empty list means no tags.
    const hundred = tooMany.slice(0, 100);
    await cache.set('many', 1, { tags: hundred });
    await cache.set('none', 1, { tags: [] });
    await cache.deleteByTag('t99');
    expect(await cache.get('many')).toBeUndefined();
    expect(await cache.get('none')).toBe(1);
  });

  it('tags that look like keys, globs, markers or lone surrogates stay distinct from keys and from each other', async () => {
    const tags = [
      'user:1',
      'p*',
      'p?',
      '[p]',
      'p',
      'a#tag:b',
      'a',
      'b',
      '#tag:',
      '\uD800',
      '\uDBFF',
      '\uFFFD',
      '\uD83D\uDE00',
      '\uD83D',
    ];
    // Each entry carries exactly one tag; 'user:1' is also an untagged key.
    await cache.set('user:1', 'the user');
    for (const [i, tag] of tags.entries()) await cache.set(`e${i}`, tag, { tags: [tag] });
    for (const [i, tag] of tags.entries()) {
      await cache.deleteByTag(tag);
      for (const [j, other] of tags.entries()) {
        expect([tag, other, await cache.get(`e${j}`)]).toEqual([
          tag,
          other,
          j <= i ? undefined : other,
        ]);
      }
      expect(await cache.get('user:1')).toBe('the user');
    }
  });

  it('logs nothing for tagged traffic', async () => {
    await cache.set('a', 1, { tags: ['x'] });
    await cache.deleteByTag('x');
    await cache.wrap('a', () => 2, { tags: ['x'] });
    expect(b.logger.lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
  });
});

describe('tag marks on the memory provider are bounded (fake clock)', () => {
  // Beyond this many marks the oldest go: expired ones first; if none has expired, the
  // memory store is cleared with them (see TagClock).
  const MAX_MARKS = 100_000;
  let b: Booted | undefined;

  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(async () => {
    await b?.app.close();
    b = undefined;
    jest.useRealTimers();
  });

  /** `count` distinct tags invalidated, 100 per call. */
  async function invalidateMany(cache: CacheService, count: number, label: string): Promise<void> {
    for (let i = 0; i < count; i += 100) {
      const batch = Array.from({ length: Math.min(100, count - i) }, (_v, j) => `${label}${i + j}`);
      await cache.deleteByTag(batch);
    }
  }

  /** Fills the marks to the bound, moves the clock, then adds one more mark. */
  async function overflowAfter(ms: number, tagged?: { ttl: number; grace?: number }) {
    b = await boot({ ttl: 60, memory: { sweepInterval: 0, maxEntries: 1000 } });
    const { cache } = b;
    await cache.set('untagged', 'kept unless the store is cleared', 0);
    if (tagged) await cache.set('tagged', 'old', { ...tagged, tags: ['m0'] });
    await invalidateMany(cache, MAX_MARKS, 'm');
    expect(await cache.get('tagged')).toBeUndefined();
    await jest.advanceTimersByTimeAsync(ms);
    await cache.deleteByTag('one-more');
    return cache;
  }

  it('keeps marks for the module ttl + grace: expired ones are dropped instead of clearing the cache', async () => {
    const cache = await overflowAfter(60_001);
    expect(await cache.get('untagged')).toBe('kept unless the store is cleared');
  });

  it('marks not yet expired (ttl + grace not passed) are never dropped one by one: the cache is cleared with them', async () => {
    const cache = await overflowAfter(59_000);
    // Forgetting a mark while an entry it covers may live would bring that entry back: the
    // store goes with the marks.
    expect(await cache.get('untagged')).toBeUndefined();
  });

  it('a tagged entry with a longer ttl + grace keeps marks longer', async () => {
    const cache = await overflowAfter(61_000, { ttl: 100, grace: 20 });
    expect(await cache.get('untagged')).toBeUndefined();
    expect(await cache.get('tagged')).toBeUndefined();
  });

  it('… and lets them go once that longest life has passed', async () => {
    const cache = await overflowAfter(120_001, { ttl: 100, grace: 20 });
    expect(await cache.get('untagged')).toBe('kept unless the store is cleared');
    expect(await cache.get('tagged')).toBeUndefined();
  });

  it('a tagged entry that never expires (ttl 0) keeps marks forever (until the bound clears the cache)', async () => {
    const cache = await overflowAfter(3_600_000, { ttl: 0 });
    expect(await cache.get('untagged')).toBeUndefined();
    expect(await cache.get('tagged')).toBeUndefined();
  });

  it('an entry created before an expired mark has expired itself: nothing comes back', async () => {
    b = await boot({ ttl: 60, memory: { sweepInterval: 0 } });
    const { cache } = b;
    await cache.set('a', 'a', { ttl: 10, grace: 5, tags: ['t'] });
    await cache.set('b', 'b', { ttl: 30, tags: ['t'] });
    await cache.deleteByTag('t');
    for (const step of [1_000, 14_000, 15_001, 30_000, 60_001]) {
      await jest.advanceTimersByTimeAsync(step);
      expect(await cache.get('a')).toBeUndefined();
      expect(await cache.get('b')).toBeUndefined();
    }
    await cache.set('a', 'new', { ttl: 10, tags: ['t'] });
    expect(await cache.get('a')).toBe('new');
  });
});
