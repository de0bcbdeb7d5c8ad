import { Redis } from 'ioredis';
import { eventually } from '../support/eventually';
import { Fleet, summarize } from '../support/fleet';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 14, item 3: `deleteByTag` reaches the L1 of every process of a fleet. Three real Node
 * processes (each its own Nest application with `CacheModule.forRoot({ provider: 'redis',
 * l1: true })`) share one redis-server; each reads tagged keys into its L1, one invalidates a
 * tag, and the others must miss within a bounded time. Propagation latency is printed, never
 * asserted.
 */

const PROCESSES = 3;
const ROUNDS = 24;
/** Generous: a loaded 2-core machine runs the whole suite next to this. */
const BOUND_MS = 5000;

let redis: RedisServer;
let raw: Redis;
let fleet: Fleet;
let namespace: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  raw = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  namespace = uniqueNamespace('tags-fleet');
  fleet = await Fleet.start(PROCESSES, {
    cache: { provider: 'redis', redis: { url: redis.url }, namespace, ttl: 300, l1: true },
  });
}, 90_000);

afterAll(async () => {
  await fleet?.stop();
  raw?.disconnect();
  await redis?.stop();
}, 30_000);

it('deleteByTag in one process: every other process misses the tagged keys it had in its L1, within a bound', async () => {
  const afterResolved: number[] = [];
  const afterCalled: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const key = `product:${r}`;
    const tag = `product:${r}`;
    const marker = r % PROCESSES;
    await fleet.call((r + 1) % PROCESSES, 'setTagged', {
      key,
      value: { r },
      tags: [tag, 'products'],
    });
    await fleet.call(marker, 'setTagged', { key: `other:${r}`, value: r, tags: [`other:${r}`] });
    // Every process reads both keys: into its L1.
    for (const read of await fleet.all('read', { keys: [key, `other:${r}`] })) {
      expect(read).toEqual([
        { hit: true, value: { r } },
        { hit: true, value: r },
      ]);
    }
    const watchers = Array.from({ length: PROCESSES }, (_v, i) => i).filter((i) => i !== marker);
    const armed = await Promise.all(
      watchers.map((i) => fleet.call(i, 'watchMiss', { key, timeoutMs: BOUND_MS, intervalMs: 1 })),
    );
    for (const a of armed) expect(a.first).toEqual({ hit: true, value: { r } });
    const { calledAt, doneAt } = await fleet.call(marker, 'deleteByTag', { tags: [tag] });
    expect(await fleet.call(marker, 'get', { key })).toEqual({ hit: false });
    await Promise.all(
      watchers.map(async (i, n) => {
        const { seenAt } = await fleet.call(
          i,
          'watched',
          { watchId: armed[n].watchId },
          BOUND_MS + 5000,
        );
        const seen = fleet.toParent(i, seenAt);
        afterResolved.push(seen - fleet.toParent(marker, doneAt));
        afterCalled.push(seen - fleet.toParent(marker, calledAt));
      }),
    );
    // The other tag's entry is untouched everywhere.
    for (const read of await fleet.all('get', { key: `other:${r}` })) {
      expect(read).toEqual({ hit: true, value: r });
    }
  }
  const ms = (n: number) => `${n.toFixed(3)} ms`;
  const line = (name: string, samples: number[]) => {
    const s = summarize(samples);
    return `  ${name}: p50 ${ms(s.p50)}, p99 ${ms(s.p99)}, max ${ms(s.max)}, min ${ms(s.min)} (n=${s.count})`;
  };
  process.stdout.write(
    [
      `deleteByTag propagation to the other L1s (${PROCESSES} processes, nest ${fleet.nest}, ` +
        `clock error <= ${ms(fleet.clockError)}, offsets ${fleet.offsets.map(ms).join(', ')})`,
      line('after deleteByTag resolved', afterResolved),
      line('after deleteByTag called  ', afterCalled),
      '',
    ].join('\n'),
  );
  // A tag shared by every entry of every round: one call invalidates them all, everywhere.
  const keys = Array.from({ length: ROUNDS }, (_v, r) => `product:${r}`);
  for (let r = 0; r < ROUNDS; r++) {
    await fleet.call(r % PROCESSES, 'setTagged', { key: keys[r], value: r, tags: ['products'] });
  }
  for (const reads of await fleet.all('read', { keys })) {
    expect(reads.every((read) => read.hit)).toBe(true);
  }
  await fleet.call(1, 'deleteByTag', { tags: ['products'] });
  await eventually(
    async () =>
      (await fleet.all('read', { keys })).every((reads) => reads.every((read) => !read.hit)),
    BOUND_MS,
    5,
  );
}, 60_000);

it('an entry written by another process right after the invalidation is served by every process', async () => {
  for (let r = 0; r < 20; r++) {
    const key = `fresh:${r}`;
    const [marker, writer] = [r % PROCESSES, (r + 1) % PROCESSES];
    await fleet.call(writer, 'setTagged', { key, value: 'before', tags: ['fresh'] });
    await fleet.all('get', { key });
    await fleet.call(marker, 'deleteByTag', { tags: ['fresh'] });
    await fleet.call(writer, 'setTagged', { key, value: 'after', tags: ['fresh'] });
    // The writer serves it at once; the others once the write's bus message has dropped their
    // L1 copy (bounded).
    expect(await fleet.call(writer, 'get', { key })).toEqual({ hit: true, value: 'after' });
    await eventually(
      async () =>
        (await fleet.all('get', { key })).every((read) => read.hit && read.value === 'after'),
      BOUND_MS,
      5,
    );
  }
}, 60_000);
