/**
 * What the bulk operations (issue 17) buy, in the same run: `getMany` of 100 keys on Redis
 * against 100 awaited `get`s, 100 concurrent `get`s and cache-manager 7's `mget` over Keyv and
 * @keyv/redis (and with `l1`, against the same keys in process; on a 3-master Cluster, against
 * 100 awaited `get`s); `wrapMany` of 100 ids of which 10 miss against 100 `wrap`s, concurrent
 * and awaited, with the loader calls each makes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createCache } from 'cache-manager';
import { Keyv } from 'keyv';
import KeyvRedis from '@keyv/redis';
import { CacheModule, CacheService, type CacheModuleOptions } from '../lib';
import { CacheStack } from '../lib/core/cache-stack';
import { RedisCluster } from '../test/support/redis-cluster';
import { formatOps, interleave, ratio, type Contender, type Measured } from './measure';
import type { BenchContext } from './tiers';

type App = Awaited<ReturnType<typeof NestFactory.createApplicationContext>>;

const BATCH = 100;
const MISSES = 10;
const value = (i: number) => ({ id: i, name: `Product ${i}`, price: 9.99, tags: ['a', 'b'] });
const keys = Array.from({ length: BATCH }, (_, i) => `product:${i}`);

async function appWith(options: CacheModuleOptions): Promise<App> {
  @Module({ imports: [CacheModule.forRoot(options)] })
  class BulkBenchModule {}
  const app = await NestFactory.createApplicationContext(BulkBenchModule, { logger: false });
  await app.init();
  // With `l1`, the L1 is not read until the bus is subscribed: wait for it.
  const stack = app.get(CacheStack, { strict: false });
  for (let waited = 0; stack.busState === 'deaf'; waited += 10) {
    if (waited >= 10_000) throw new Error('bulk: the bus did not subscribe within 10 s');
    await sleep(10);
  }
  return app;
}

/** A contender whose one op reads the 100 keys; checks the first answer is complete. */
function reader(name: string, read: () => Promise<ReadonlyArray<unknown>>): Contender {
  return {
    name,
    run: async (ops) => {
      const first = await read();
      if (first.length !== BATCH || first.some((v) => v === undefined)) {
        throw new Error(`bulk: ${name} missed some of the ${BATCH} keys`);
      }
      for (let i = 1; i < ops; i++) await read();
    },
  };
}

const awaitedGets = (cache: CacheService) => async () => {
  const values: unknown[] = [];
  for (const key of keys) values.push(await cache.get(key));
  return values;
};

function readRows(measured: Measured[], ours: Measured): string[][] {
  return measured.map((m) => [
    m.name,
    formatOps(m.opsPerSec),
    formatOps(m.opsPerSec * BATCH),
    m === ours ? '' : ratio(ours.opsPerSec, m.opsPerSec),
  ]);
}

const READ_HEADERS = ['contender', '100-key reads/s', 'keys/s', 'getMany ÷ it'];

async function getManyOnRedis(ctx: BenchContext, rounds: { rounds: number; roundMs: number }) {
  const namespace = `bench-bulk-${process.pid}`;
  const app = await appWith({ provider: 'redis', redis: { url: ctx.url }, namespace, ttl: 600 });
  const l1App = await appWith({
    provider: 'redis',
    redis: { url: ctx.url },
    namespace: `${namespace}-l1`,
    ttl: 600,
    l1: true,
  });
  const keyv = new Keyv({ store: new KeyvRedis(ctx.url), namespace: `${namespace}-cm` });
  const cm = createCache({ stores: [keyv] });
  try {
    const cache = app.get(CacheService);
    const l1 = l1App.get(CacheService);
    const entries = keys.map((key, i) => ({ key, value: value(i) }));
    await cache.setMany(entries);
    await l1.setMany(entries);
    await cm.mset(entries.map((entry) => ({ ...entry, ttl: 600_000 })));
    const measured = await interleave(
      [
        reader('cachekit getMany(100)', () => cache.getMany(keys)),
        reader('cachekit 100 awaited get', awaitedGets(cache)),
        reader('cachekit 100 concurrent get (Promise.all)', () =>
          Promise.all(keys.map((key) => cache.get(key))),
        ),
        reader('cache-manager 7 mget(100) + @keyv/redis', () => cm.mget(keys)),
        reader('cachekit l1: true getMany(100), L1 hits', () => l1.getMany(keys)),
      ],
      rounds,
    );
    const ours = measured[0];
    ctx.log('### getMany of 100 keys on Redis (one node), one caller');
    ctx.table(READ_HEADERS, readRows(measured, ours));
    ctx.target(
      'getMany(100) on Redis vs 100 awaited get',
      ours.opsPerSec / measured[1].opsPerSec,
      5,
    );
    ctx.target(
      'getMany(100) on Redis vs cache-manager mget(100)',
      ours.opsPerSec / measured[3].opsPerSec,
      1,
    );
    await cache.deleteMany(keys);
    await l1.deleteMany(keys);
    await cm.mdel(keys);
  } finally {
    await keyv.disconnect();
    await l1App.close();
    await app.close();
  }
}

async function getManyOnCluster(ctx: BenchContext, rounds: { rounds: number; roundMs: number }) {
  let cluster: RedisCluster;
  try {
    cluster = await RedisCluster.start(3);
  } catch (error) {
    ctx.log(`### getMany on a Redis Cluster: skipped (${(error as Error).message.split('\n')[0]})`);
    ctx.log();
    return;
  }
  try {
    const app = await appWith({
      provider: 'redis',
      redis: { cluster: cluster.seeds },
      namespace: `bench-bulk-${process.pid}`,
      ttl: 600,
    });
    try {
      const cache = app.get(CacheService);
      await cache.setMany(keys.map((key, i) => ({ key, value: value(i) })));
      const measured = await interleave(
        [
          reader('cachekit getMany(100)', () => cache.getMany(keys)),
          reader('cachekit 100 awaited get', awaitedGets(cache)),
          reader('cachekit 100 concurrent get (Promise.all)', () =>
            Promise.all(keys.map((key) => cache.get(key))),
          ),
        ],
        rounds,
      );
      ctx.log(
        '### getMany of 100 keys on a 3-master Redis Cluster (one MGET per slot, one pipeline per node)',
      );
      ctx.log(
        '- 100 keys fall in about 100 hash slots: one MGET per slot (a multi-key command spans one slot), so on a Cluster getMany saves round trips and per-call cost, not commands',
      );
      ctx.table(READ_HEADERS, readRows(measured, measured[0]));
    } finally {
      await app.close();
    }
  } finally {
    await cluster.stop();
  }
}

async function wrapManyOnRedis(ctx: BenchContext, rounds: { rounds: number; roundMs: number }) {
  const app = await appWith({
    provider: 'redis',
    redis: { url: ctx.url },
    namespace: `bench-bulk-wrap-${process.pid}`,
    ttl: 600,
  });
  try {
    const cache = app.get(CacheService);
    const hot = keys.slice(0, BATCH - MISSES);
    await cache.setMany(hot.map((key, i) => ({ key, value: value(i) })));
    // Every op asks for the 90 cached keys and 10 it has never seen: 10 misses each time.
    let fresh = 0;
    const ids = () => {
      const batch = hot.slice();
      for (let i = 0; i < MISSES; i++) batch.push(`fresh:${++fresh}`);
      return batch;
    };
    const tally = new Map<string, { ops: number; loads: number }>();
    const contender = (
      name: string,
      op: (batch: string[], count: () => void) => Promise<unknown[]>,
    ) => {
      const counts = { ops: 0, loads: 0 };
      tally.set(name, counts);
      const count = () => void counts.loads++;
      return {
        name,
        run: async (ops: number) => {
          for (let i = 0; i < ops; i++) {
            const answer = await op(ids(), count);
            if (answer.length !== BATCH || answer[BATCH - 1] === undefined) {
              throw new Error(`bulk: ${name} answered without the loaded values`);
            }
          }
          counts.ops += ops;
        },
      };
    };
    const measured = await interleave(
      [
        contender('cachekit wrapMany(100), 10 misses', (batch, count) =>
          cache.wrapMany(batch, (missing) => {
            count();
            return missing.map((key) => ({ key }));
          }),
        ),
        contender('cachekit 100 concurrent wrap (Promise.all)', (batch, count) =>
          Promise.all(
            batch.map((key) =>
              cache.wrap(key, () => {
                count();
                return { key };
              }),
            ),
          ),
        ),
        contender('cachekit 100 awaited wrap', async (batch, count) => {
          const values: unknown[] = [];
          for (const key of batch) {
            values.push(
              await cache.wrap(key, () => {
                count();
                return { key };
              }),
            );
          }
          return values;
        }),
      ],
      rounds,
    );
    const ours = measured[0];
    ctx.log(`### wrapMany of 100 ids, ${MISSES} of them missing each time, on Redis, one caller`);
    ctx.log(
      '- the loader answers at once (no simulated database): ops/s are the cache’s own cost; a real query adds its latency once per loader call',
    );
    ctx.table(
      ['contender', '100-id lookups/s', 'wrapMany ÷ it', 'loader calls per lookup'],
      measured.map((m) => {
        const counts = tally.get(m.name) ?? { ops: 0, loads: 0 };
        return [
          m.name,
          formatOps(m.opsPerSec),
          m === ours ? '' : ratio(ours.opsPerSec, m.opsPerSec),
          (counts.loads / Math.max(1, counts.ops)).toFixed(2),
        ];
      }),
    );
    const perOp = (name: string) => {
      const counts = tally.get(name) ?? { ops: 0, loads: 0 };
      return counts.loads / Math.max(1, counts.ops);
    };
    ctx.check(
      'wrapMany(100) with 10 misses: 1 loader call per lookup (100 wraps: 10)',
      `${perOp(ours.name).toFixed(2)} vs ${perOp(measured[2].name).toFixed(2)}`,
      perOp(ours.name) === 1 && perOp(measured[2].name) === MISSES,
    );
    await cache.clear();
  } finally {
    await app.close();
  }
}

/** Runs the bulk scenario: its tables go to `ctx.log`, its targets to `ctx.target` / `ctx.check`. */
export async function bulkScenario(ctx: BenchContext): Promise<void> {
  ctx.log('## Bulk operations: getMany and wrapMany of 100 keys against per-key calls');
  ctx.log(
    '- one op reads (or looks up) 100 keys of small JSON objects (about 60 bytes); ratios are getMany (wrapMany) ÷ the other line, same run',
  );
  ctx.log();
  const rounds = { rounds: ctx.quick ? 2 : 5, roundMs: ctx.quick ? 100 : 400 };
  await getManyOnRedis(ctx, rounds);
  await getManyOnCluster(ctx, rounds);
  await wrapManyOnRedis(ctx, rounds);
}
