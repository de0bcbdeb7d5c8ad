import { Cluster } from 'ioredis';
import type { CacheModuleOptions } from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { eventually } from '../support/eventually';
import { boot, type BootedApp } from '../support/failover';
import { RedisCluster } from '../support/redis-cluster';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 14, item 3 on a real 3-master Redis Cluster: entries and their tags spread over many
 * slots (and so over every master); invalidating several tags at once works with no CROSSSLOT
 * error (nothing logged), on plain Redis and with `l1` (the bus reaches the other L1).
 */

const ENTRIES = 200;
const TAGS = 20;
/** The two tags of entry `i`: its slots and its tags' slots differ. */
const tagsOf = (i: number) => [`tag:${i % TAGS}`, `tag:${(i * 7 + 3) % TAGS}`];

type Instance = BootedApp & { stack: CacheStack };

let redisCluster: RedisCluster;
let inspector: Cluster;
const apps: Instance[] = [];

beforeAll(async () => {
  redisCluster = await RedisCluster.start(3);
  inspector = new Cluster(redisCluster.seeds, { redisOptions: { maxRetriesPerRequest: 1 } });
}, 60_000);
afterAll(async () => {
  inspector?.disconnect();
  await redisCluster?.stop();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.app.close()));
});

async function instance(namespace: string, options: CacheModuleOptions): Promise<Instance> {
  const booted = await boot({
    provider: 'redis',
    redis: { cluster: redisCluster.seeds },
    namespace,
    ttl: 120,
    ...options,
  });
  const stack = booted.app.get(CacheStack);
  const instance = { ...booted, stack };
  apps.push(instance);
  if (options.l1) await eventually(async () => stack.busState === 'live', 10_000, 10);
  return instance;
}

const problems = (i: Instance) =>
  i.logger.lines.filter((l) => l.level === 'warn' || l.level === 'error');

/** The master serving each key's slot, by port, in order. */
async function ownerOf(keys: string[]): Promise<string[]> {
  const slots = await Promise.all(keys.map((key) => inspector.cluster('KEYSLOT', key)));
  const ranges = (await inspector.cluster('SLOTS')) as unknown as Array<
    [number, number, [string, number]]
  >;
  return slots.map((slot) => {
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    return String(range?.[2][1]);
  });
}

const ownersOf = async (keys: string[]) => new Set(await ownerOf(keys));

/**
 * A fresh namespace whose tag records live on every master, and the tags to invalidate: two
 * per master (so one `deleteByTag` call spans every node).
 */
async function spreadNamespace(): Promise<{ ns: string; invalidated: string[] }> {
  const tags = Array.from({ length: TAGS }, (_v, t) => `tag:${t}`);
  for (;;) {
    const ns = uniqueNamespace('tags-cluster');
    const owners = await ownerOf(tags.map((tag) => `${ns}#tag:${tag}`));
    const byOwner = new Map<string, string[]>();
    owners.forEach((owner, t) => byOwner.set(owner, [...(byOwner.get(owner) ?? []), tags[t]]));
    if (byOwner.size === 3)
      return { ns, invalidated: [...byOwner.values()].flatMap((list) => list.slice(0, 2)) };
  }
}

describe.each([
  ['plain', {}],
  ['l1 + bus', { l1: true, bus: { heartbeat: 0.3 } }],
] as Array<[string, CacheModuleOptions]>)('tags on a real Redis Cluster (%s)', (_mode, options) => {
  const l1 = options.l1 === true;

  it('deleteByTag of several tags spread over the masters: covered entries miss on both instances, the others hit, no CROSSSLOT', async () => {
    const { ns, invalidated: INVALIDATED } = await spreadNamespace();
    const a = await instance(ns, options);
    const b = await instance(ns, options);
    const keys = Array.from({ length: ENTRIES }, (_v, i) => `item:${i}`);
    for (const [i, key] of keys.entries()) await a.cache.set(key, { i }, { tags: tagsOf(i) });
    await a.cache.set('untagged', 'plain');
    // b reads every entry: each read checks tags living on other slots than the entry.
    for (const [i, key] of keys.entries()) expect(await b.cache.get(key)).toEqual({ i });

    await a.cache.deleteByTag(INVALIDATED);
    const records = INVALIDATED.map((tag) => `${ns}#tag:${tag}`);
    // The records (and the entries) are spread over every master.
    expect((await ownersOf(records)).size).toBe(3);
    expect((await ownersOf(keys.map((key) => `${ns}:${key}`))).size).toBe(3);
    for (const record of records) {
      const pttl = await inspector.pttl(record);
      expect(pttl).toBeGreaterThan(110_000);
      expect(pttl).toBeLessThanOrEqual(120_000);
    }

    const covered = (i: number) => tagsOf(i).some((tag) => INVALIDATED.includes(tag));
    expect(keys.filter((_k, i) => covered(i)).length).toBeGreaterThan(40);
    for (const [i, key] of keys.entries()) {
      if (!covered(i)) continue;
      if (l1) await eventually(async () => (await b.cache.get(key)) === undefined, 5000, 5);
      expect([key, await b.cache.get(key)]).toEqual([key, undefined]);
      expect([key, await a.cache.get(key)]).toEqual([key, undefined]);
    }
    for (const [i, key] of keys.entries()) {
      if (covered(i)) continue;
      expect([key, await b.cache.get(key)]).toEqual([key, { i }]);
      expect([key, await a.cache.get(key)]).toEqual([key, { i }]);
    }
    expect(await b.cache.get('untagged')).toBe('plain');

    // Every tag at once, from b: nothing tagged is left.
    await b.cache.deleteByTag(Array.from({ length: TAGS }, (_v, t) => `tag:${t}`));
    for (const key of keys) {
      if (l1) await eventually(async () => (await a.cache.get(key)) === undefined, 5000, 5);
      expect([key, await a.cache.get(key)]).toEqual([key, undefined]);
    }
    expect(await a.cache.get('untagged')).toBe('plain');
    // And a reload after it is served everywhere.
    expect(await a.cache.wrap('item:1', () => 'again', { tags: tagsOf(1) })).toBe('again');
    await eventually(async () => (await b.cache.get('item:1')) === 'again', 5000, 5);

    expect(problems(a)).toEqual([]);
    expect(problems(b)).toEqual([]);
    expect(a.stack.failures + b.stack.failures).toBe(0);
  }, 50_000);
});
